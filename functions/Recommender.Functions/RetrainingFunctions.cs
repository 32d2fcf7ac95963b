using Microsoft.Azure.Functions.Worker;
using Microsoft.DurableTask;
using Microsoft.DurableTask.Client;
using Recommender.Orchestration;

namespace Recommender.Functions;

/// <summary>
/// The retraining orchestration and its activities as Durable Functions, one line each (the class-based
/// source generator is not available here); the work is in <see cref="RetrainingOrchestration"/> and
/// <see cref="RetrainingSteps"/>. Two timers start runs: a schedule and a check for enough new events.
/// </summary>
public sealed class RetrainingFunctions(RetrainingSteps steps, RetrainingTrigger trigger)
{
    [Function(RetrainingOrchestration.Name)]
    public static Task<RetrainingOutcome> Orchestrate([OrchestrationTrigger] TaskOrchestrationContext context) =>
        new RetrainingOrchestration().RunAsync(context, context.GetInput<RetrainingRequest>()!);

    [Function(RetrainingActivities.CreateSnapshot)]
    public Task<SnapshotResult> CreateSnapshot([ActivityTrigger] SnapshotRequest request) => steps.CreateSnapshotAsync(request);

    [Function(RetrainingActivities.StartTrainingJob)]
    public Task<string> StartTrainingJob([ActivityTrigger] TrainingJobRequest request) => steps.StartTrainingJobAsync(request);

    [Function(RetrainingActivities.GetTrainingJobStatus)]
    public Task<TrainingJobStatus> GetTrainingJobStatus([ActivityTrigger] string executionId) => steps.GetTrainingJobStatusAsync(executionId);

    [Function(RetrainingActivities.StopTrainingJob)]
    public async Task<bool> StopTrainingJob([ActivityTrigger] string executionId)
    {
        await steps.StopTrainingJobAsync(executionId);
        return true;
    }

    [Function(RetrainingActivities.EvaluateCandidate)]
    public Task<GateVerdict> EvaluateCandidate([ActivityTrigger] GateRequest request) => steps.EvaluateCandidateAsync(request);

    [Function(RetrainingActivities.Promote)]
    public Task<bool> Promote([ActivityTrigger] PromotionRequest request) => steps.PromoteAsync(request);

    /// <summary>The nightly run (<c>RetrainingSchedule</c>, an NCRONTAB expression).</summary>
    [Function("RetrainOnSchedule")]
    public Task RetrainOnSchedule([TimerTrigger("%RetrainingSchedule%")] TimerInfo timer, [DurableClient] DurableTaskClient client, CancellationToken cancellationToken) =>
        trigger.StartAsync(client, "schedule", cancellationToken);

    /// <summary>A run when enough events arrived since the last snapshot (checked on <c>NewEventsCheckSchedule</c>).</summary>
    [Function("RetrainOnNewEvents")]
    public Task RetrainOnNewEvents([TimerTrigger("%NewEventsCheckSchedule%")] TimerInfo timer, [DurableClient] DurableTaskClient client, CancellationToken cancellationToken) =>
        trigger.StartIfEnoughNewEventsAsync(client, cancellationToken);
}
