using Recommender.Training.MetaLearning;
using Recommender.Training.Pipeline;
using static TorchSharp.torch;

namespace Recommender.Training.Tests;

/// <summary>The few-shot user adaptation: its closed-form gradient, what it does to the support loss, and its serving-time twin.</summary>
[Collection("Torch")]
public sealed class UserAdaptationTests
{
    private static (Tensor States, Tensor Targets, Tensor Items) Problem(int seed, ScalarType type = ScalarType.Float32)
    {
        random.manual_seed(seed);
        const int d = 8, items = 30, pairs = 4;
        var vectors = randn(items + 1, d, dtype: type);
        var states = randn(pairs, d, dtype: type);
        var targets = tensor(new long[] { 3, 17, 3, 29 });
        return (states, targets, vectors);
    }

    [Fact]
    public void The_closed_form_gradient_matches_finite_differences_and_autograd()
    {
        var (states, targets, items) = Problem(1, ScalarType.Float64);
        var u = randn(8, dtype: ScalarType.Float64) * 0.3;
        var gradient = UserAdaptation.Gradient(states, targets, u, items).data<double>().ToArray();
        const double h = 1e-6;
        for (var k = 0; k < 8; k++)
        {
            var step = zeros(8, dtype: ScalarType.Float64);
            step[k] = h;
            var numeric = (UserAdaptation.Loss(states, targets, u + step, items).item<double>() - UserAdaptation.Loss(states, targets, u - step, items).item<double>()) / (2 * h);
            Assert.Equal(numeric, gradient[k], 6);
        }
        var leaf = u.clone().requires_grad_(true);
        UserAdaptation.Loss(states, targets, leaf, items).backward();
        Assert.True(leaf.grad!.allclose(tensor(gradient), rtol: 1e-9, atol: 1e-12));
    }

    [Fact]
    public void Adaptation_lowers_the_support_loss_of_a_new_user()
    {
        var (states, targets, items) = Problem(2);
        var start = zeros(8);
        var adapted = UserAdaptation.Adapt(states, targets, items, start, full(8, Math.Log(0.5)), steps: 5);
        Assert.True(UserAdaptation.Loss(states, targets, adapted, items).item<float>() < UserAdaptation.Loss(states, targets, start, items).item<float>() - 0.1);
    }

    [Fact]
    public void Serving_time_adaptation_in_csharp_equals_the_torchsharp_one()
    {
        var (states, targets, items) = Problem(3);
        var initial = randn(8) * 0.1;
        var rates = rand(8) + 0.2;
        var expected = UserAdaptation.Adapt(states, targets, items, initial, rates.log(), steps: 4).data<float>().ToArray();

        // Serving sees the model's scores after each support prefix (s_t = h_t Vᵀ, as the ONNX graph outputs them), not the states.
        var scores = states.matmul(items.T);
        var actual = Recommender.Serving.ServingTimeAdaptation.Adapt(
            Enumerable.Range(0, 4).Select(t => scores[t].data<float>().ToArray()).ToList(),
            targets.data<long>().Select(t => (int)t).ToList(),
            items.data<float>().ToArray(), 8, new Recommender.ModelContract.UserAdaptationParameters(initial.data<float>().ToArray(), rates.data<float>().ToArray(), Steps: 4, MaxHistory: 5));

        Assert.Equal(expected.Length, actual.Length);
        for (var k = 0; k < expected.Length; k++)
            Assert.True(Math.Abs(expected[k] - actual[k]) < 1e-5, $"dimension {k}: {expected[k]} vs {actual[k]}");
    }
}

/// <summary>A run trained with user adaptation: the manifest carries it, and serving adapts short histories as the training job does.</summary>
[Collection("Torch")]
public sealed class ServedUserAdaptationTests
{
    [Fact]
    public async Task Serving_adapts_a_short_history_as_the_training_job_scores_it_and_leaves_long_ones_alone()
    {
        var world = new Recommender.Data.SyntheticWorld(new Recommender.Data.SyntheticWorldOptions { Users = 200, Items = 80, Seed = 21 });
        var data = world.ToDataset(world.GenerateHistory(DateTimeOffset.UnixEpoch.AddYears(50)));
        var directory = Path.Combine(Path.GetTempPath(), "adapted-run-" + Guid.NewGuid().ToString("N"));
        var config = new SequenceModelConfig { Dimension = 16, Blocks = 1, MaxLength = 10, Epochs = 3, EvaluateEvery = 3, BatchSize = 64, Negatives = 32, UserFeatures = false, UserAdaptation = true };
        await new TrainingRun(config, new EvaluationProtocol()).RunAsync(data, directory);

        var manifest = RunPublisher.Manifest(directory, "v1", "test");
        var adaptation = Assert.IsType<Recommender.ModelContract.UserAdaptationParameters>(manifest.UserAdaptation);
        using var served = Recommender.Serving.PolicyModel.Load(manifest, await File.ReadAllBytesAsync(Path.Combine(directory, "policy.onnx")));
        var model = SavedModel.Load(directory, data, out var saved);
        var learner = new UserMetaLearner(model, saved, data.UserFeatures, new MetaLearningConfig());
        var histories = new[] { new[] { 3 }, [5, 9], [12, 40, 7], [1, 2, 3, 4, 5] };
        var expected = learner.Scorer("adapted", adaptation).Score(histories.Select(_ => 0).ToList(), histories);
        var plain = learner.Scorer("as is", adaptation with { Initial = new float[adaptation.Initial.Length], Steps = 0 }).Score(histories.Select(_ => 0).ToList(), histories);

        for (var h = 0; h < histories.Length; h++)
        {
            Assert.True(served.AdaptsTo(histories[h]));
            var actual = served.AdaptedScores(histories[h], null);
            var difference = Enumerable.Range(1, data.ItemCount).Max(i => Math.Abs(actual[i] - expected[h][i]));
            Assert.True(difference < 1e-4, $"history of {histories[h].Length}: max |served - training job| = {difference:E2}");
            var moved = Enumerable.Range(1, data.ItemCount).Max(i => Math.Abs(expected[h][i] - plain[h][i]));
            Assert.True(moved > 1e-3, $"history of {histories[h].Length}: adaptation moved the scores by only {moved:E2}");
        }
        Assert.False(served.AdaptsTo(Enumerable.Range(1, adaptation.MaxHistory + 1).ToArray()));
        Assert.False(served.AdaptsTo([]));
    }
}
