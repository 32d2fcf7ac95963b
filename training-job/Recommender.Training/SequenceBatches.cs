using Recommender.Data;
using static TorchSharp.torch;

namespace Recommender.Training;

/// <summary>Turns sequences into the tensors the model reads: left-padded to the model's length, as SASRec does.</summary>
public static class SequenceBatches
{
    /// <summary>The last <paramref name="length"/> items of each history, left-padded with 0: [B, length].</summary>
    public static Tensor Histories(IReadOnlyList<int[]> histories, int length, Device device)
    {
        var flat = new long[histories.Count * length];
        for (var b = 0; b < histories.Count; b++)
        {
            var h = histories[b];
            var take = Math.Min(length, h.Length);
            for (var t = 0; t < take; t++)
                flat[b * length + length - take + t] = h[h.Length - take + t];
        }
        return tensor(flat, [histories.Count, length], device: device);
    }

    /// <summary>Inputs and next-item targets for training: input s[..^1], target s[1..], both the last <paramref name="length"/>, left-padded.</summary>
    public static (Tensor Inputs, Tensor Targets) NextItem(IReadOnlyList<int[]> sequences, int length, Device device) =>
        (Histories(sequences.Select(s => s[..^1]).ToList(), length, device),
         Histories(sequences.Select(s => s[1..]).ToList(), length, device));

    /// <summary>Which tokens each row has, as 0/1 [rows, vocabulary] (rows beyond the table, and row 0 when it is padding, are all 0).</summary>
    public static Tensor TokenMatrix(FeatureTable? features, int rows)
    {
        var width = features?.VocabularySize ?? 1;
        var flat = new float[rows * width];
        for (var r = 0; features is not null && r < rows && r < features.Tokens.Length; r++)
        {
            foreach (var token in features.Tokens[r])
                flat[r * width + token] = 1;
        }
        return tensor(flat, [rows, width]);
    }

    /// <summary>The users' attribute tokens, 0-padded: [B, T]; null when there are none.</summary>
    public static Tensor? UserTokens(FeatureTable? features, IReadOnlyList<int> users, Device device)
    {
        if (features is null || features.VocabularySize <= 1)
            return null;
        var width = Math.Max(1, features.MaxTokens);
        var flat = new long[users.Count * width];
        for (var b = 0; b < users.Count; b++)
        {
            var row = features.Tokens[users[b]];
            for (var t = 0; t < row.Length; t++)
                flat[b * width + t] = row[t];
        }
        return tensor(flat, [users.Count, width], device: device);
    }
}

/// <summary>Scores with a trained <see cref="SasRecModel"/>: the last position's state against every item vector.</summary>
/// <remarks><paramref name="itemVectors"/> replaces the model's item table for scoring (not for reading the history), e.g. with generated vectors for new items.</remarks>
public sealed class SasRecScorer(SasRecModel model, SequenceModelConfig config, FeatureTable? userFeatures, Device device, string name = "SASRec+features", Tensor? itemVectors = null) : ISequenceScorer
{
    public string Name => name;

    public float[][] Score(IReadOnlyList<int> users, IReadOnlyList<int[]> histories)
    {
        model.eval();
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var states = model.forward(SequenceBatches.Histories(histories, config.MaxLength, device),
            SequenceBatches.UserTokens(userFeatures, users, device));
        var last = states[.., -1, ..];
        var scores = last.matmul((itemVectors ?? model.ItemVectors()).T).cpu();
        var result = new float[users.Count][];
        var data = scores.data<float>().ToArray();
        var width = (int)scores.shape[1];
        for (var b = 0; b < users.Count; b++)
            result[b] = data.AsSpan(b * width, width).ToArray();
        return result;
    }
}
