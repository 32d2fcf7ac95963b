using Recommender.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Recommender.Training.Tests;

/// <summary>
/// The two things that make a CPU training step fast, checked for what they must not change: the blocks work on
/// the real positions only (packed rows), and dropout masks are drawn by <see cref="DropoutMasks"/>.
/// Whole-position agreement is checked against the ONNX graph, which computes every position, in <see cref="PolicyExportTests"/>.
/// </summary>
[Collection("Torch")]
[Trait("Kind", "Unit")]
public sealed class SasRecModelTests
{
    private static readonly SequenceModelConfig Config = new()
    {
        Dimension = 16, Blocks = 2, Heads = 2, MaxLength = 8, Dropout = 0.3, ItemContent = false, UserFeatures = false, Seed = 3,
    };

    [Fact]
    public void A_row_states_do_not_depend_on_the_other_rows_of_its_batch()
    {
        using var model = new SasRecModel(Config, itemCount: 30, null, 0, 0);
        model.eval();
        int[][] histories = [[3, 4, 5], [7, 8, 9, 10, 11, 12, 13, 14, 15, 16], [2], []];
        using var together = model.forward(SequenceBatches.Histories(histories, Config.MaxLength, CPU), null);
        for (var b = 0; b < histories.Length; b++)
        {
            using var alone = model.forward(SequenceBatches.Histories([histories[b]], Config.MaxLength, CPU), null);
            Assert.True(together[b].allclose(alone[0], rtol: 1e-5, atol: 1e-6), $"row {b} changed with its batch");
        }
    }

    [Fact]
    public void A_padded_position_reads_as_the_final_norm_of_zero_and_an_empty_history_is_all_padding()
    {
        using var model = new SasRecModel(Config, itemCount: 30, null, 0, 0);
        model.eval();
        using var states = model.forward(SequenceBatches.Histories([[3, 4, 5], []], Config.MaxLength, CPU), null);
        var bias = model.named_parameters().Single(p => p.name == "_finalNorm.bias").parameter;
        for (var t = 0; t < Config.MaxLength - 3; t++)
            Assert.True(states[0, t].allclose(bias), $"padded position {t}");
        for (var t = 0; t < Config.MaxLength; t++)
            Assert.True(states[1, t].allclose(bias));
        Assert.False(states[0, Config.MaxLength - 1].allclose(bias), "a real position is not padding");
    }

    [Fact]
    public void Dropout_keeps_one_minus_p_of_the_elements_scaled_to_keep_the_mean()
    {
        var masks = new DropoutMasks(seed: 1);
        using var mask = masks.Mask([100_000], p: 0.3);
        var kept = mask.ne(0).to(float32).mean().item<float>();
        Assert.InRange(kept, 0.695, 0.705);
        Assert.Equal(1 / 0.7f, mask.max().item<float>(), 5);
        Assert.InRange(mask.mean().item<float>(), 0.99, 1.01);
    }

    [Fact]
    public void Dropout_repeats_for_a_seed_differs_between_seeds_and_is_the_identity_when_not_training()
    {
        using var first = new DropoutMasks(seed: 5).Mask([1000], 0.5);
        using var again = new DropoutMasks(seed: 5).Mask([1000], 0.5);
        using var other = new DropoutMasks(seed: 6).Mask([1000], 0.5);
        Assert.True(first.eq(again).all().item<bool>());
        Assert.False(first.eq(other).all().item<bool>());

        using var x = randn(4, 5);
        var masks = new DropoutMasks(seed: 5);
        Assert.Same(x, masks.Apply(x, 0.5, training: false));
        Assert.Same(x, masks.Apply(x, 0.0, training: true));
        // An element count that is not a multiple of the four draws a random word gives.
        using var odd = masks.Mask([7], 0.5);
        Assert.Equal(7, odd.numel());
    }
}
