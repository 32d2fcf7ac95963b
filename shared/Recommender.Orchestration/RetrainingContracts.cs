using Recommender.EventLog;
using Recommender.ModelContract;

namespace Recommender.Orchestration;

/// <summary>How the learning loop runs; travels in the orchestration's input so every replay sees the same values.</summary>
public sealed record RetrainingSettings
{
    public SnapshotRequirements Snapshot { get; init; } = new();
    /// <summary>How often the job's status is checked.</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromMinutes(1);
    /// <summary>An execution still running after this long is stopped and counted as failed.</summary>
    public TimeSpan JobTimeout { get; init; } = TimeSpan.FromHours(3);
    /// <summary>Executions tried before the run gives up (the first included).</summary>
    public int MaxJobAttempts { get; init; } = 3;
    /// <summary>Wait before the second execution; doubled before each one after it.</summary>
    public TimeSpan RetryBackoff { get; init; } = TimeSpan.FromMinutes(5);
    /// <summary>
    /// Metrics the candidate must not lose on: offline ranking quality, the doubly robust estimate of return, and the reward
    /// model's own estimate of it, so a policy is promoted on RL grounds only when the importance-weighted correction and the
    /// model it corrects agree that it is not worse.
    /// </summary>
    public IReadOnlyList<string> GateMetrics { get; init; } = [MetricKeys.Ndcg, MetricKeys.OffPolicyReward, MetricKeys.RewardModelReturn];
    public double MinRelativeImprovement { get; init; }
    /// <summary>
    /// How far below the champion a gate metric may fall (relative) and still count as not worse: the next-item metric is a
    /// guardrail of a policy judged by long-term reward, and a warm-started candidate's differs from the champion's by noise.
    /// </summary>
    public IReadOnlyDictionary<string, double> GateTolerances { get; init; } = new Dictionary<string, double> { [MetricKeys.Ndcg] = 0.02 };
    /// <summary>The fewest effective logged decisions (Kish's ESS of the importance weights) an off-policy gate metric must rest on to be trusted.</summary>
    public double MinEffectiveSampleSize { get; init; } = 100;
    /// <summary>Skip training when the champion was trained on exactly this snapshot's data.</summary>
    public bool SkipWhenChampionIsCurrent { get; init; } = true;
}

/// <summary>The orchestration's input.</summary>
public sealed record RetrainingRequest(string Trigger, RetrainingSettings Settings);

[System.Text.Json.Serialization.JsonConverter(typeof(System.Text.Json.Serialization.JsonStringEnumConverter<RetrainingResult>))]
public enum RetrainingResult
{
    /// <summary>The candidate beat the champion and serves now.</summary>
    Promoted,
    /// <summary>The candidate was trained and published but did not pass the gate; the champion serves on.</summary>
    ChampionKept,
    /// <summary>The champion was trained on the same data: nothing to do.</summary>
    UpToDate,
    /// <summary>The snapshot was too small or unreadable.</summary>
    SnapshotRefused,
    /// <summary>Every execution of the training job failed or timed out.</summary>
    TrainingFailed,
    /// <summary>The candidate passed, but another model was promoted while it was judged.</summary>
    PromotionConflict,
}

/// <summary>The orchestration's output: what happened and why, for the status endpoint and the logs.</summary>
public sealed record RetrainingOutcome(
    RetrainingResult Result,
    string Reason,
    TrainingSnapshot? Snapshot = null,
    string? CandidateVersion = null,
    IReadOnlyList<string>? JobAttempts = null,
    GateVerdict? Verdict = null);

public sealed record SnapshotRequest(DateTimeOffset Watermark, SnapshotRequirements Requirements);

/// <summary>The snapshot activity's answer: the snapshot, and whether the champion was trained on it.</summary>
public sealed record SnapshotResult(TrainingSnapshot Snapshot, string? ChampionVersion, bool ChampionTrainedOnIt);

public sealed record GateRequest(string CandidateVersion, IReadOnlyList<string> GateMetrics, double MinRelativeImprovement, double MinEffectiveSampleSize = 0,
    IReadOnlyDictionary<string, double>? GateTolerances = null);

public sealed record PromotionRequest(string CandidateVersion, string? ExpectedChampionVersion, string Reason);
