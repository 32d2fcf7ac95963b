namespace Recommender.Orchestration;

/// <summary>What one training-job execution is asked to do: train on a snapshot and publish the candidate as a version.</summary>
public sealed record TrainingJobRequest(string SnapshotId, string CandidateVersion);

[System.Text.Json.Serialization.JsonConverter(typeof(System.Text.Json.Serialization.JsonStringEnumConverter<TrainingJobState>))]
public enum TrainingJobState { Running, Succeeded, Failed }

public sealed record TrainingJobStatus(TrainingJobState State, string? Detail = null);

/// <summary>
/// Starts and watches executions of the training job (<c>training-job retrain</c>): a local process on a
/// developer machine, a Container Apps job execution in Azure. Executions are named by the launcher.
/// </summary>
public interface ITrainingJobLauncher
{
    Task<string> StartAsync(TrainingJobRequest request, CancellationToken cancellationToken = default);

    Task<TrainingJobStatus> GetStatusAsync(string executionId, CancellationToken cancellationToken = default);

    /// <summary>Stops an execution (after a timeout); stopping one that has ended does nothing.</summary>
    Task StopAsync(string executionId, CancellationToken cancellationToken = default);

    /// <summary>The command-line arguments of <c>training-job</c> for a request, the same for every launcher.</summary>
    public static IReadOnlyList<string> JobArguments(TrainingJobRequest request, IEnumerable<string> settings) =>
        ["retrain", "--snapshot", request.SnapshotId, "--version", request.CandidateVersion, "--quiet", .. settings];
}
