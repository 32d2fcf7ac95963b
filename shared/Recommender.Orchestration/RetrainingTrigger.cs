using Microsoft.DurableTask;
using Microsoft.DurableTask.Client;
using Recommender.EventLog;
using Recommender.Storage;

namespace Recommender.Orchestration;

/// <summary>How the three triggers (a schedule, an HTTP call, enough new events) start a retraining.</summary>
public sealed record RetrainingTriggerOptions
{
    public RetrainingSettings Settings { get; init; } = new();
    /// <summary>New events in the log since the latest snapshot that start a run on their own.</summary>
    public long NewEventsThreshold { get; init; } = 100_000;
}

/// <summary>What a start request got: a new instance, or the one already running.</summary>
public sealed record RetrainingStart(string InstanceId, bool Started);

/// <summary>
/// Starts the retraining orchestration at most once at a time, whatever fires it: a run already pending or running is
/// returned instead of starting a second one over the same data. The look for a running instance and the start are one
/// step under a <see cref="BlobMutex"/>, so triggers firing in the same instant (the schedule, the new-events check and
/// an HTTP call, on any instance of the app) cannot both find none and both start one; and a trigger that waited for
/// the lock while another started a run joins that run rather than start a second one after it.
/// </summary>
public sealed class RetrainingTrigger(RetrainingTriggerOptions options, EventLogStore eventLog, TrainingSnapshotStore snapshots, TimeProvider? time = null)
{
    public const string InstancePrefix = "retraining-";
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    public RetrainingTriggerOptions Options => options;

    /// <summary>The lock blob in the training container that start requests take in turn.</summary>
    public const string StartLockBlob = "locks/retraining-start";

    /// <summary>How long a start waits for another start in progress (a query and a schedule: well under a second).</summary>
    private static readonly TimeSpan StartLockWait = TimeSpan.FromSeconds(30);

    public async Task<RetrainingStart> StartAsync(DurableTaskClient client, string trigger, CancellationToken cancellationToken = default)
    {
        var firedAt = _time.GetUtcNow();
        await snapshots.Container.CreateIfNotExistsAsync(cancellationToken: cancellationToken);
        await using var startLock = await BlobMutex.AcquireAsync(snapshots.Container, StartLockBlob, StartLockWait, cancellationToken);
        // A run started after this trigger fired (while it waited for the lock) already covers its data, even if it has finished.
        var joined = await FindAsync(client, new OrchestrationQuery { InstanceIdPrefix = InstancePrefix, CreatedFrom = firedAt }, cancellationToken)
            ?? await FindAsync(client, new OrchestrationQuery
            {
                InstanceIdPrefix = InstancePrefix,
                Statuses = [OrchestrationRuntimeStatus.Pending, OrchestrationRuntimeStatus.Running, OrchestrationRuntimeStatus.Suspended],
            }, cancellationToken);
        if (joined is not null)
            return new RetrainingStart(joined, Started: false);
        var instanceId = $"{InstancePrefix}{_time.GetUtcNow():yyyyMMdd'T'HHmmss'Z'}-{Guid.NewGuid().ToString("N")[..6]}";
        await client.ScheduleNewOrchestrationInstanceAsync(RetrainingOrchestration.Name, new RetrainingRequest(trigger, options.Settings),
            new StartOrchestrationOptions { InstanceId = instanceId }, cancellationToken);
        return new RetrainingStart(instanceId, Started: true);
    }

    /// <summary>The trigger on new data: starts a run when at least <see cref="RetrainingTriggerOptions.NewEventsThreshold"/> events arrived since the latest snapshot.</summary>
    public async Task<RetrainingStart?> StartIfEnoughNewEventsAsync(DurableTaskClient client, CancellationToken cancellationToken = default)
    {
        var latest = await snapshots.GetLatestAsync(cancellationToken);
        var newEvents = await eventLog.CountEventsWrittenSinceAsync(latest?.Watermark ?? DateTimeOffset.MinValue, cancellationToken);
        return newEvents >= options.NewEventsThreshold
            ? await StartAsync(client, $"{newEvents} new events", cancellationToken)
            : null;
    }

    private static async Task<string?> FindAsync(DurableTaskClient client, OrchestrationQuery query, CancellationToken cancellationToken)
    {
        await foreach (var instance in client.GetAllInstancesAsync(query).WithCancellation(cancellationToken))
            return instance.InstanceId;
        return null;
    }
}
