using Microsoft.DurableTask;
using Microsoft.Extensions.Logging;

namespace Recommender.Orchestration;

/// <summary>
/// The learning loop, once: snapshot the event log -> run the training job (retried with backoff, each
/// execution watched with durable timers until it ends or times out) -> judge the candidate against the
/// champion -> promote it or keep the champion, saying why.
/// </summary>
/// <remarks>
/// Orchestrator code is replayed from history, so it only decides: time comes from
/// <see cref="TaskOrchestrationContext.CurrentUtcDateTime"/>, waiting from durable timers, and every
/// effect from an activity (<see cref="RetrainingActivities"/>).
/// </remarks>
[DurableTask(Name)]
public sealed class RetrainingOrchestration : TaskOrchestrator<RetrainingRequest, RetrainingOutcome>
{
    public const string Name = nameof(RetrainingOrchestration);

    /// <summary>
    /// Activities that only read, or write content-addressed or conditional data (snapshot, job status, gate,
    /// promotion), are retried when storage fails for a moment; starting a job is not (a retry could start two).
    /// </summary>
    private static readonly TaskOptions Transient = TaskOptions.FromRetryPolicy(new RetryPolicy(3, TimeSpan.FromSeconds(5), backoffCoefficient: 2));

    public override async Task<RetrainingOutcome> RunAsync(TaskOrchestrationContext context, RetrainingRequest request)
    {
        var settings = request.Settings;
        var log = context.CreateReplaySafeLogger<RetrainingOrchestration>();

        // 1. Freeze the data.
        var snap = await context.CallActivityAsync<SnapshotResult>(RetrainingActivities.CreateSnapshot,
            new SnapshotRequest(context.CurrentUtcDateTime, settings.Snapshot), Transient);
        var snapshot = snap.Snapshot;
        if (!snapshot.Accepted)
            return new RetrainingOutcome(RetrainingResult.SnapshotRefused, snapshot.RefusedBecause!, snapshot);
        if (settings.SkipWhenChampionIsCurrent && snap.ChampionTrainedOnIt)
            return new RetrainingOutcome(RetrainingResult.UpToDate, $"the champion {snap.ChampionVersion} was trained on snapshot {snapshot.Id}", snapshot);
        log.LogInformation("snapshot {Snapshot}: {Engagements} engagements of {Users} users", snapshot.Id, snapshot.Statistics.Engagements, snapshot.Statistics.Users);

        // 2. Train: one execution at a time, each with its own candidate version (versions are immutable).
        var attempts = new List<string>();
        string? candidate = null;
        for (var attempt = 1; attempt <= settings.MaxJobAttempts && candidate is null; attempt++)
        {
            if (attempt > 1)
                await context.CreateTimer(settings.RetryBackoff * Math.Pow(2, attempt - 2), CancellationToken.None);
            var version = $"{context.CurrentUtcDateTime:yyyyMMdd'T'HHmmss'Z'}-{snapshot.Id[..8]}-{attempt}";
            var execution = await context.CallActivityAsync<string>(RetrainingActivities.StartTrainingJob, new TrainingJobRequest(snapshot.Id, version));
            var status = await WatchAsync(context, execution, settings);
            attempts.Add($"{execution}: {status.State}{(status.Detail is null ? "" : " (" + status.Detail + ")")}");
            log.LogInformation("training attempt {Attempt}: {Outcome}", attempt, attempts[^1]);
            if (status.State == TrainingJobState.Succeeded)
                candidate = version;
        }
        if (candidate is null)
            return new RetrainingOutcome(RetrainingResult.TrainingFailed, $"{attempts.Count} training attempt(s) failed", snapshot, null, attempts);

        // 3. Judge.
        var verdict = await context.CallActivityAsync<GateVerdict>(RetrainingActivities.EvaluateCandidate,
            new GateRequest(candidate, settings.GateMetrics, settings.MinRelativeImprovement, settings.MinEffectiveSampleSize, settings.GateTolerances), Transient);
        if (!verdict.Promote)
            return new RetrainingOutcome(RetrainingResult.ChampionKept, verdict.Reason, snapshot, candidate, attempts, verdict);

        // 4. Promote, unless someone else promoted meanwhile.
        var promoted = await context.CallActivityAsync<bool>(RetrainingActivities.Promote,
            new PromotionRequest(candidate, verdict.ChampionVersion, $"{request.Trigger}: {verdict.Reason}"), Transient);
        return promoted
            ? new RetrainingOutcome(RetrainingResult.Promoted, verdict.Reason, snapshot, candidate, attempts, verdict)
            : new RetrainingOutcome(RetrainingResult.PromotionConflict, "another model was promoted while the candidate was judged", snapshot, candidate, attempts, verdict);
    }

    /// <summary>Polls an execution on durable timers until it ends; stops it and reports failure at the timeout.</summary>
    private static async Task<TrainingJobStatus> WatchAsync(TaskOrchestrationContext context, string execution, RetrainingSettings settings)
    {
        var deadline = context.CurrentUtcDateTime + settings.JobTimeout;
        while (true)
        {
            var next = context.CurrentUtcDateTime + settings.PollInterval;
            await context.CreateTimer(next < deadline ? next : deadline, CancellationToken.None);
            var status = await context.CallActivityAsync<TrainingJobStatus>(RetrainingActivities.GetTrainingJobStatus, execution, Transient);
            if (status.State != TrainingJobState.Running)
                return status;
            if (context.CurrentUtcDateTime >= deadline)
            {
                await context.CallActivityAsync(RetrainingActivities.StopTrainingJob, execution);
                return new TrainingJobStatus(TrainingJobState.Failed, $"timed out after {settings.JobTimeout}");
            }
        }
    }
}
