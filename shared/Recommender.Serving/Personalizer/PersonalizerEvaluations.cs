using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Azure;
using Azure.Data.Tables;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;

namespace Recommender.Serving;

public sealed record EvaluationPolicy(string Name, string Arguments);

/// <summary>The spec's <c>EvaluationContract</c>: a name, a time range of logged ranks, and the policies to judge on them.</summary>
public sealed record EvaluationRequest(string? Name, DateTimeOffset? StartTime, DateTimeOffset? EndTime, List<EvaluationPolicy>? Policies, bool? EnableOfflineExperimentation = null);

/// <summary>
/// The spec's <c>PolicyResultSummary</c>: IPS is <c>ipsEstimatorNumerator / ipsEstimatorDenominator</c> (the sum of
/// w·r over the number of events), SNIPS is <c>ipsEstimatorNumerator / snipsEstimatorDenominator</c> (over the sum of
/// the weights w = π(a|x) / p(a|x)); <c>sumOfSquares</c> is Σ (w·r)², <c>confidenceInterval</c> the 95% half-width of
/// the IPS estimate, <c>nonZeroProbability</c> the events the policy could have chosen as logged.
/// </summary>
public sealed record PolicyResultSummary(DateTimeOffset TimeStamp, double IpsEstimatorNumerator, double IpsEstimatorDenominator, double SnipsEstimatorDenominator,
    string AggregateTimeWindow, double NonZeroProbability, double ConfidenceInterval, double SumOfSquares);

public sealed record PolicyResult(string Name, string Arguments, List<PolicyResultSummary>? Summary = null, PolicyResultSummary? TotalSummary = null);

public sealed record Evaluation(string Id, string Name, DateTimeOffset StartTime, DateTimeOffset EndTime, string? JobId, string Status,
    List<PolicyResult> PolicyResults, List<List<string>> FeatureImportance);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(EvaluationRequest))]
[JsonSerializable(typeof(Evaluation))]
[JsonSerializable(typeof(List<Evaluation>))]
public sealed partial class PersonalizerEvaluationJsonContext : JsonSerializerContext;

/// <summary>
/// Personalizer's offline evaluations: policies judged on the ranks logged in a time range, by importance weighting
/// against the probabilities Rank logged. Judged every time: <b>Online</b>, the policy that was serving (its weights are
/// 1: the estimate is the logged reward); <b>Baseline</b>, the first action not excluded; <b>Random</b>; and each
/// submitted policy, read as this product's bandit with the submitted <c>--epsilon</c> (0.2 when absent) learning
/// progressively in time order, so each event is judged by what the policy had learned before it. Each policy also
/// gets a doubly robust row ("name (doubly robust)", its IPS fields holding the DR sum): the reward model is a bandit
/// learned progressively from the same log. Computed when requested and kept in Blob Storage under
/// <c>personalizer/evaluations/</c>; the answer is already <c>completed</c>.
/// </summary>
public sealed class PersonalizerEvaluations(BlobContainerClient container, RankEventTable ranks, PersonalizerStore store, TimeProvider? time = null)
{
    private TableClient rankEvents => ranks.Table;

    private const string Prefix = "personalizer/evaluations/";
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    public static string? Validate(EvaluationRequest request) =>
        string.IsNullOrWhiteSpace(request.Name) ? "name is required"
        : request.StartTime is null || request.EndTime is null ? "startTime and endTime are required"
        : request.EndTime <= request.StartTime ? "endTime must be after startTime"
        : request.Policies is null ? "policies is required"
        : request.Policies.Any(p => p is null || string.IsNullOrWhiteSpace(p.Name)) ? "every policy needs a name"
        : null;

    public async Task<Evaluation> CreateAsync(EvaluationRequest request, CancellationToken cancellationToken = default)
    {
        var configuration = await store.GetConfigurationAsync(cancellationToken: cancellationToken);
        var events = await ReadAsync(request.StartTime!.Value, request.EndTime!.Value, configuration, cancellationToken);
        var results = new List<PolicyResult>();
        foreach (var (name, arguments, policy) in Policies(request.Policies!))
        {
            var (ips, dr) = Judge(events, policy);
            results.Add(new PolicyResult(name, arguments, ips.Windows, ips.Total));
            results.Add(new PolicyResult(name + " (doubly robust)", arguments, dr.Windows, dr.Total));
        }
        var evaluation = new Evaluation(Guid.NewGuid().ToString("D"), request.Name!, request.StartTime.Value, request.EndTime.Value, null, "completed", results, []);
        await container.GetBlobClient(Prefix + evaluation.Id + ".json").UploadAsync(
            BinaryData.FromBytes(JsonSerializer.SerializeToUtf8Bytes(evaluation, PersonalizerEvaluationJsonContext.Default.Evaluation)), overwrite: true, cancellationToken);
        return evaluation;
    }

    public async Task<Evaluation?> GetAsync(string id, CancellationToken cancellationToken = default)
    {
        if (!Guid.TryParse(id, out _))
            return null;
        try
        {
            var content = await container.GetBlobClient(Prefix + id + ".json").DownloadContentAsync(cancellationToken);
            return JsonSerializer.Deserialize(content.Value.Content.ToMemory().Span, PersonalizerEvaluationJsonContext.Default.Evaluation);
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            return null;
        }
    }

    public async Task<List<Evaluation>> ListAsync(CancellationToken cancellationToken = default)
    {
        var all = new List<Evaluation>();
        await foreach (var blob in container.GetBlobsAsync(BlobTraits.None, BlobStates.None, Prefix, cancellationToken))
        {
            if (await GetAsync(Path.GetFileNameWithoutExtension(blob.Name), cancellationToken) is { } evaluation)
                all.Add(evaluation);
        }
        return all;
    }

    public async Task DeleteAsync(string id, CancellationToken cancellationToken = default)
    {
        if (Guid.TryParse(id, out _))
            await container.GetBlobClient(Prefix + id + ".json").DeleteIfExistsAsync(cancellationToken: cancellationToken);
    }

    /// <summary>One logged rank: what was known, which candidate was chosen with what probability, and its reward.</summary>
    private sealed record LoggedRank(DateTimeOffset At, List<Feature> Context, List<List<Feature>> Candidates, int Chosen, double Probability, double Reward, double[] Logged);

    /// <summary>A policy's probability of choosing each candidate of a logged rank, and what it learns from the rank afterwards.</summary>
    private interface IPolicy
    {
        double[] Probabilities(LoggedRank rank);
        void Learn(LoggedRank rank);
    }

    private sealed class Online : IPolicy
    {
        public double[] Probabilities(LoggedRank rank) => rank.Logged;
        public void Learn(LoggedRank rank) { }
    }

    private sealed class Baseline : IPolicy
    {
        public double[] Probabilities(LoggedRank rank) => Enumerable.Range(0, rank.Candidates.Count).Select(i => i == 0 ? 1.0 : 0).ToArray();
        public void Learn(LoggedRank rank) { }
    }

    private sealed class Uniform : IPolicy
    {
        public double[] Probabilities(LoggedRank rank) => Enumerable.Repeat(1.0 / rank.Candidates.Count, rank.Candidates.Count).ToArray();
        public void Learn(LoggedRank rank) { }
    }

    private sealed class LearningBandit(double epsilon) : IPolicy
    {
        public ContextualBandit Bandit { get; } = new();
        public double[] Probabilities(LoggedRank rank) => ContextualBandit.Probabilities(Bandit.Predict(rank.Context, rank.Candidates), epsilon);
        public void Learn(LoggedRank rank) => Bandit.Learn(rank.Context, rank.Candidates[rank.Chosen], rank.Reward);
    }

    private static IEnumerable<(string Name, string Arguments, Func<IPolicy> Policy)> Policies(List<EvaluationPolicy> submitted)
    {
        yield return ("Online", "the policy that was serving", () => new Online());
        yield return ("Baseline", "the first action not excluded", () => new Baseline());
        yield return ("Random", "every action equally likely", () => new Uniform());
        foreach (var policy in submitted)
            yield return (policy.Name, policy.Arguments ?? "", () => new LearningBandit(Epsilon(policy.Arguments)));
    }

    /// <summary><c>--epsilon X</c> of Vowpal Wabbit-style arguments; 0.2, Personalizer's default, when absent or unreadable.</summary>
    private static double Epsilon(string? arguments)
    {
        var parts = (arguments ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var at = Array.IndexOf(parts, "--epsilon");
        return at >= 0 && at + 1 < parts.Length && double.TryParse(parts[at + 1], NumberStyles.Float, CultureInfo.InvariantCulture, out var e) && e is >= 0 and <= 1 ? e : 0.2;
    }

    private sealed record Estimates(List<PolicyResultSummary> Windows, PolicyResultSummary Total);

    /// <summary>IPS/SNIPS and DR of one policy over the events in time order, per day and in total.</summary>
    private static (Estimates Ips, Estimates Dr) Judge(List<LoggedRank> events, Func<IPolicy> create)
    {
        var policy = create();
        var rewardModel = new ContextualBandit(); // DR's reward model, learned progressively like the policies
        var ips = new List<(DateTimeOffset At, double Weight, double Value)>();
        var dr = new List<(DateTimeOffset At, double Weight, double Value)>();
        foreach (var rank in events)
        {
            var pi = policy.Probabilities(rank);
            var weight = pi[rank.Chosen] / rank.Probability;
            var predicted = rewardModel.Predict(rank.Context, rank.Candidates);
            ips.Add((rank.At, weight, weight * rank.Reward));
            // DR: the reward model's value of the policy's choice, corrected by the weighted error on the logged action.
            dr.Add((rank.At, 1, pi.Zip(predicted, (p, q) => p * q).Sum() + weight * (rank.Reward - predicted[rank.Chosen])));
            policy.Learn(rank);
            rewardModel.Learn(rank.Context, rank.Candidates[rank.Chosen], rank.Reward);
        }
        return (Summaries(ips), Summaries(dr));
    }

    private static Estimates Summaries(List<(DateTimeOffset At, double Weight, double Value)> rows)
    {
        static PolicyResultSummary Summary(DateTimeOffset at, string window, IReadOnlyCollection<(DateTimeOffset At, double Weight, double Value)> rows)
        {
            var n = rows.Count;
            var mean = n == 0 ? 0 : rows.Average(r => r.Value);
            var variance = n < 2 ? 0 : rows.Sum(r => (r.Value - mean) * (r.Value - mean)) / (n - 1);
            return new PolicyResultSummary(at, rows.Sum(r => r.Value), n, rows.Sum(r => r.Weight), window, rows.Count(r => r.Weight > 0),
                n == 0 ? 0 : 1.96 * Math.Sqrt(variance / n), rows.Sum(r => r.Value * r.Value));
        }
        var windows = rows.GroupBy(r => new DateTimeOffset(r.At.UtcDateTime.Date, TimeSpan.Zero)).OrderBy(g => g.Key)
            .Select(g => Summary(g.Key, "1.00:00:00", g.ToList())).ToList();
        return new Estimates(windows, Summary(rows.Count > 0 ? rows[^1].At : DateTimeOffset.UnixEpoch, "00:00:00", rows));
    }

    /// <summary>The activated ranks in [from, to) whose reward is known (rewarded, or past rewardWaitTime: the default), in time order.</summary>
    private async Task<List<LoggedRank>> ReadAsync(DateTimeOffset from, DateTimeOffset to, PersonalizerConfiguration configuration, CancellationToken cancellationToken)
    {
        var matureBefore = _time.GetUtcNow() - configuration.RewardWait;
        var events = new List<LoggedRank>();
        var filter = TableClient.CreateQueryFilter($"RankedAt ge {from} and RankedAt lt {to}");
        await ranks.FlushAsync(cancellationToken);
        await foreach (var record in rankEvents.QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken))
        {
            if (record.GetBoolean("Activated") != true || record.GetString("Candidates") is not { } candidatesJson || record.GetString("Context") is not { } contextJson
                || record.GetDouble("Probability") is not { } probability || probability <= 0 || record.GetDateTimeOffset("RankedAt") is not { } at)
                continue;
            var reward = record.GetDouble("Reward") ?? (at < matureBefore ? configuration.DefaultReward : (double?)null);
            if (reward is null)
                continue;
            var candidates = JsonSerializer.Deserialize(candidatesJson, PersonalizerJsonContext.Default.ListListFeature)!;
            var chosen = candidates.FindIndex(c => c.Count > 0 && c[0].Name == "a.id=" + record.GetString("RewardActionId"));
            if (chosen < 0)
                continue;
            // The whole distribution Rank drew from, by candidate: the online policy's, for DR's expectation over actions.
            var ranked = JsonSerializer.Deserialize(record.GetString("Ranking") ?? "[]", PersonalizerJsonContext.Default.ListRankedAction)!.ToDictionary(r => "a.id=" + r.Id, r => r.Probability, StringComparer.Ordinal);
            var logged = candidates.Select(c => ranked.GetValueOrDefault(c[0].Name)).ToArray();
            events.Add(new LoggedRank(at, JsonSerializer.Deserialize(contextJson, PersonalizerJsonContext.Default.ListFeature)!, candidates, chosen, probability, reward.Value, logged));
        }
        events.Sort((a, b) => a.At.CompareTo(b.At));
        return events;
    }
}
