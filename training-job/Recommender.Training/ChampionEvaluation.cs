using System.Text.Json.Nodes;
using Recommender.Data;
using Recommender.ModelContract;
using Recommender.Serving;

namespace Recommender.Training;

/// <summary>
/// Scores with a published ONNX policy (the champion being served) on a dataset numbered differently:
/// histories are mapped to the policy's item numbers by id (items it never saw are left out), and items it
/// cannot score rank last.
/// </summary>
public sealed class PolicyModelScorer(PolicyModel model, InteractionDataset data) : ISequenceScorer
{
    private readonly int[] _policyNumber = data.ItemIds.Select(id => model.TryGetItemNumber(id, out var n) ? n : 0).ToArray();

    public string Name => $"champion {model.Version}";

    public float[][] Score(IReadOnlyList<int> users, IReadOnlyList<int[]> histories) =>
        histories.Select((history, b) =>
        {
            var known = history.Select(i => _policyNumber[i]).Where(n => n > 0).ToList();
            var userTokens = data.UserFeatures is { } features ? model.UserTokens(features.Tokens[users[b]].Select(t => features.Vocabulary[t])) : null;
            var scores = model.Score(known, userTokens, out _, 1);
            return _policyNumber.Select((n, i) => i == 0 || n == 0 ? float.NegativeInfinity : scores[n]).ToArray();
        }).ToArray();
}

/// <summary>
/// The champion measured on the candidate's own test split, so the promotion gate compares like with like
/// (a champion's recorded metrics come from an older snapshot).
/// </summary>
public static class ChampionEvaluation
{
    /// <summary>The model being served, loaded (null when nothing is promoted); the caller disposes it.</summary>
    public static async Task<PolicyModel?> LoadAsync(ModelRegistry registry, CancellationToken cancellationToken = default)
    {
        var current = await registry.GetCurrentAsync(cancellationToken);
        if (current is null)
            return null;
        var (manifest, policy) = await registry.DownloadAsync(current.Pointer.Version, cancellationToken);
        return PolicyModel.Load(manifest, policy);
    }

    /// <summary>The <c>champion</c> block of a candidate's metrics: the served version and its offline metrics on this data.</summary>
    public static JsonObject Measure(PolicyModel champion, InteractionDataset data, EvaluationProtocol protocol)
    {
        var result = Evaluator.Evaluate(new PolicyModelScorer(champion, data), LeaveOneOutSplit.Create(data), data.ItemCount, EvaluationStage.Test, protocol);
        return result.All.AddTo(new JsonObject { [MetricKeys.ChampionVersion] = champion.Version });
    }

    /// <summary>The <c>champion</c> block of a candidate's metrics: the served version and its metrics on this data; null when nothing is promoted.</summary>
    public static async Task<JsonObject?> MeasureAsync(ModelRegistry registry, InteractionDataset data, EvaluationProtocol protocol, CancellationToken cancellationToken = default)
    {
        using var model = await LoadAsync(registry, cancellationToken);
        return model is null ? null : Measure(model, data, protocol);
    }
}
