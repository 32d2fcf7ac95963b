using Azure;
using Recommender.EventLog;
using Recommender.ModelContract;
using Recommender.Serving;
using Recommender.Storage;

namespace Recommender.Orchestration;

/// <summary>
/// The work behind each activity of the retraining orchestration. Activities may run more than once
/// (at-least-once delivery), so each step is safe to repeat: snapshots are content-addressed, versions
/// immutable, and promotion a conditional write.
/// </summary>
public sealed class RetrainingSteps(TrainingSnapshotStore snapshots, ModelRegistry registry, ITrainingJobLauncher launcher)
{
    public async Task<SnapshotResult> CreateSnapshotAsync(SnapshotRequest request, CancellationToken cancellationToken = default)
    {
        var snapshot = await snapshots.CreateAsync(request.Watermark, request.Requirements, cancellationToken);
        var champion = await registry.GetCurrentAsync(cancellationToken);
        if (champion is null)
            return new SnapshotResult(snapshot, null, false);
        var manifest = await registry.GetManifestAsync(champion.Pointer.Version, cancellationToken);
        return new SnapshotResult(snapshot, champion.Pointer.Version, manifest.DataSnapshot == DataSnapshotName(snapshot.Id));
    }

    /// <summary>How a manifest names the snapshot it was trained on (what <c>training-job retrain</c> records).</summary>
    public static string DataSnapshotName(string snapshotId) => "snapshot:" + snapshotId;

    public Task<string> StartTrainingJobAsync(TrainingJobRequest request, CancellationToken cancellationToken = default) =>
        launcher.StartAsync(request, cancellationToken);

    public Task<TrainingJobStatus> GetTrainingJobStatusAsync(string executionId, CancellationToken cancellationToken = default) =>
        launcher.GetStatusAsync(executionId, cancellationToken);

    public Task StopTrainingJobAsync(string executionId, CancellationToken cancellationToken = default) =>
        launcher.StopAsync(executionId, cancellationToken);

    /// <summary>Reads the candidate and the champion from the registry, smoke-tests the candidate's ONNX, and applies <see cref="PromotionGate"/>.</summary>
    public async Task<GateVerdict> EvaluateCandidateAsync(GateRequest request, CancellationToken cancellationToken = default)
    {
        ModelManifest candidate;
        try
        {
            var (manifest, policy) = await registry.DownloadAsync(request.CandidateVersion, cancellationToken);
            candidate = manifest;
            PolicyModel.SmokeTest(manifest, policy);
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            return PromotionGate.Decide(null, null, null, $"version {request.CandidateVersion} is not published", request.GateMetrics, request.MinRelativeImprovement);
        }
        catch (Exception ex) when (ex is InvalidModelException or InvalidDataException or System.Text.Json.JsonException)
        {
            RecommenderMetrics.TrainingCandidates.Add(1, new KeyValuePair<string, object?>("verdict", "broken"));
            return PromotionGate.Decide(null, null, null, ex.Message, request.GateMetrics, request.MinRelativeImprovement);
        }
        var current = await registry.GetCurrentAsync(cancellationToken);
        var champion = current is null ? null : await registry.GetManifestAsync(current.Pointer.Version, cancellationToken);
        var verdict = PromotionGate.Decide(candidate.Metrics, ChampionMetrics(candidate, champion), champion?.Version, smokeTestFailure: null, request.GateMetrics,
            request.MinRelativeImprovement, request.MinEffectiveSampleSize, request.GateTolerances);
        RecommenderMetrics.TrainingCandidates.Add(1, new KeyValuePair<string, object?>("verdict", verdict.Promote ? "promote" : "keep"));
        return verdict;
    }

    /// <summary>
    /// The champion's figures to judge against: those the training job measured for the champion on the
    /// candidate's own data (the candidate's <c>champion</c> block, when it names this champion), and only those,
    /// so every figure compared was measured on the same split and the same logged decisions; else those the
    /// champion recorded on its own, older snapshot.
    /// </summary>
    private static System.Text.Json.Nodes.JsonObject? ChampionMetrics(ModelManifest candidate, ModelManifest? champion)
    {
        if (champion?.Metrics is not { } recorded)
            return null;
        if (candidate.Metrics?[MetricKeys.Champion] is System.Text.Json.Nodes.JsonObject sameData && (string?)sameData[MetricKeys.ChampionVersion] == champion.Version)
            return (System.Text.Json.Nodes.JsonObject)sameData.DeepClone();
        return (System.Text.Json.Nodes.JsonObject)recorded.DeepClone();
    }

    /// <summary>Promotes the candidate if the champion is still the one it was judged against; false otherwise.</summary>
    public async Task<bool> PromoteAsync(PromotionRequest request, CancellationToken cancellationToken = default)
    {
        var current = await registry.GetCurrentAsync(cancellationToken);
        if (current?.Pointer.Version == request.CandidateVersion)
            return true; // this activity ran before and its answer was lost
        if (current?.Pointer.Version != request.ExpectedChampionVersion)
            return false;
        return await registry.PromoteAsync(request.CandidateVersion, current, request.Reason, cancellationToken);
    }
}
