using Microsoft.DurableTask;
using Microsoft.DurableTask.Client;
using Recommender.Serving;
using Recommender.Storage;

namespace Recommender.Orchestration;

/// <summary>
/// The purge a deletion schedules for itself: a durable timer until the deletion's grace period has passed, then
/// <see cref="ServingServices.PurgeDeletedUsersAsync"/>. Deletions due in the same slot (<see cref="UserDataPurgeOptions.ScheduleSlot"/>)
/// share one instance (its id is the slot's end), so a burst of deletions makes one purge, not one each; the timer
/// (<c>PurgeSchedule</c>) catches any deletion whose scheduled purge was lost.
/// </summary>
[DurableTask(Name)]
public sealed class UserDataPurgeOrchestration : TaskOrchestrator<DateTime, PurgeRun>
{
    public const string Name = nameof(UserDataPurgeOrchestration);
    public const string PurgeActivity = "PurgeDeletedUsers";
    public const string InstancePrefix = "purge-";

    private static readonly TaskOptions Transient = TaskOptions.FromRetryPolicy(new RetryPolicy(5, TimeSpan.FromSeconds(10), backoffCoefficient: 2));

    public override async Task<PurgeRun> RunAsync(TaskOrchestrationContext context, DateTime dueAt)
    {
        if (dueAt > context.CurrentUtcDateTime)
            await context.CreateTimer(dueAt, CancellationToken.None);
        return await context.CallActivityAsync<PurgeRun>(PurgeActivity, null, Transient);
    }

    /// <summary>Schedules the purge of a deletion made at <paramref name="deletedAt"/>, unless one for its slot is already scheduled.</summary>
    public static async Task ScheduleAsync(DurableTaskClient client, DateTimeOffset deletedAt, UserDataPurgeOptions options, CancellationToken cancellationToken = default)
    {
        var width = options.ScheduleSlot.Ticks;
        var due = deletedAt.UtcDateTime + options.Grace;
        var slot = new DateTime((due.Ticks + width - 1) / width * width, DateTimeKind.Utc);
        var instanceId = $"{InstancePrefix}{slot:yyyyMMdd'T'HHmmss'Z'}";
        if (await client.GetInstanceAsync(instanceId, cancellationToken) is { IsRunning: true } or { RuntimeStatus: OrchestrationRuntimeStatus.Pending })
            return;
        try
        {
            await client.ScheduleNewOrchestrationInstanceAsync(Name, slot, new StartOrchestrationOptions { InstanceId = instanceId }, cancellationToken);
        }
        catch (Exception) when (!cancellationToken.IsCancellationRequested)
        {
            // Each backend says "exists" its own way: another deletion of the same quarter scheduled it in between, or this fails for real.
            if (await client.GetInstanceAsync(instanceId, cancellationToken) is null)
                throw;
        }
    }
}

/// <summary>Registers the purge orchestration and its activity; <see cref="ServingServices"/> must be in the worker's services.</summary>
public static class UserDataPurgeActivities
{
    public static DurableTaskRegistry AddUserDataPurge(this DurableTaskRegistry registry) => registry
        .AddOrchestrator<UserDataPurgeOrchestration>()
        .AddActivity<PurgeActivity>(UserDataPurgeOrchestration.PurgeActivity);

    private sealed class PurgeActivity(ServingServices serving) : TaskActivity<object?, PurgeRun>
    {
        public override Task<PurgeRun> RunAsync(TaskActivityContext context, object? input) => serving.PurgeDeletedUsersAsync();
    }
}
