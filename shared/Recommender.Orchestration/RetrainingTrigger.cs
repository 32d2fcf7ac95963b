using Microsoft.DurableTask;
using Microsoft.DurableTask.Client;
using Recommender.Ingestion;

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
/// Starts the retraining orchestration at most once at a time: a run already pending or running is
/// returned instead of starting a second one over the same data.
/// </summary>
public sealed class RetrainingTrigger(RetrainingTriggerOptions options, EventLog eventLog, TrainingSnapshotStore snapshots, TimeProvider? time = null)
{
    public const string InstancePrefix = "retraining-";
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    public RetrainingTriggerOptions Options => options;

    public async Task<RetrainingStart> StartAsync(DurableTaskClient client, string trigger, CancellationToken cancellationToken = default)
    {
        var running = await FindActiveAsync(client, cancellationToken);
        if (running is not null)
            return new RetrainingStart(running, Started: false);
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

    private static async Task<string?> FindActiveAsync(DurableTaskClient client, CancellationToken cancellationToken)
    {
        var query = new OrchestrationQuery
        {
            InstanceIdPrefix = InstancePrefix,
            Statuses = [OrchestrationRuntimeStatus.Pending, OrchestrationRuntimeStatus.Running, OrchestrationRuntimeStatus.Suspended],
        };
        await foreach (var instance in client.GetAllInstancesAsync(query).WithCancellation(cancellationToken))
            return instance.InstanceId;
        return null;
    }
}
