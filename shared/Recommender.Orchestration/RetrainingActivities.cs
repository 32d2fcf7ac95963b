using Microsoft.DurableTask;

namespace Recommender.Orchestration;

/// <summary>
/// The activities of <see cref="RetrainingOrchestration"/>: their names (which the Functions app's
/// one-line wrappers also use), and the class-based form registered with a Durable Task worker (the
/// in-process host of the tests and the local host). Each delegates to <see cref="RetrainingSteps"/>.
/// </summary>
public static class RetrainingActivities
{
    public const string CreateSnapshot = "CreateTrainingSnapshot";
    public const string StartTrainingJob = "StartTrainingJob";
    public const string GetTrainingJobStatus = "GetTrainingJobStatus";
    public const string StopTrainingJob = "StopTrainingJob";
    public const string EvaluateCandidate = "EvaluateCandidate";
    public const string Promote = "PromoteCandidate";

    /// <summary>Registers the orchestration and its activities; <see cref="RetrainingSteps"/> must be in the worker's services.</summary>
    public static DurableTaskRegistry AddRetraining(this DurableTaskRegistry registry) => registry
        .AddOrchestrator<RetrainingOrchestration>()
        .AddActivity<CreateSnapshotActivity>(CreateSnapshot)
        .AddActivity<StartTrainingJobActivity>(StartTrainingJob)
        .AddActivity<GetTrainingJobStatusActivity>(GetTrainingJobStatus)
        .AddActivity<StopTrainingJobActivity>(StopTrainingJob)
        .AddActivity<EvaluateCandidateActivity>(EvaluateCandidate)
        .AddActivity<PromoteActivity>(Promote);

    private sealed class CreateSnapshotActivity(RetrainingSteps steps) : TaskActivity<SnapshotRequest, SnapshotResult>
    {
        public override Task<SnapshotResult> RunAsync(TaskActivityContext context, SnapshotRequest input) => steps.CreateSnapshotAsync(input);
    }

    private sealed class StartTrainingJobActivity(RetrainingSteps steps) : TaskActivity<TrainingJobRequest, string>
    {
        public override Task<string> RunAsync(TaskActivityContext context, TrainingJobRequest input) => steps.StartTrainingJobAsync(input);
    }

    private sealed class GetTrainingJobStatusActivity(RetrainingSteps steps) : TaskActivity<string, TrainingJobStatus>
    {
        public override Task<TrainingJobStatus> RunAsync(TaskActivityContext context, string input) => steps.GetTrainingJobStatusAsync(input);
    }

    private sealed class StopTrainingJobActivity(RetrainingSteps steps) : TaskActivity<string, bool>
    {
        public override async Task<bool> RunAsync(TaskActivityContext context, string input)
        {
            await steps.StopTrainingJobAsync(input);
            return true;
        }
    }

    private sealed class EvaluateCandidateActivity(RetrainingSteps steps) : TaskActivity<GateRequest, GateVerdict>
    {
        public override Task<GateVerdict> RunAsync(TaskActivityContext context, GateRequest input) => steps.EvaluateCandidateAsync(input);
    }

    private sealed class PromoteActivity(RetrainingSteps steps) : TaskActivity<PromotionRequest, bool>
    {
        public override Task<bool> RunAsync(TaskActivityContext context, PromotionRequest input) => steps.PromoteAsync(input);
    }
}
