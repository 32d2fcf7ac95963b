using System.Text.Json;
using System.Text.Json.Nodes;
using Recommender.Serving;

namespace Recommender.Training;

/// <summary>Publishes a run folder (written by <see cref="TrainingRun"/>) as a model version, and optionally promotes it.</summary>
public static class RunPublisher
{
    public static ModelManifest Manifest(string runDirectory, string version, string dataSnapshot)
    {
        var config = SequenceModelConfig.Load(Path.Combine(runDirectory, "config.json"), new Dictionary<string, string>());
        var itemIds = JsonSerializer.Deserialize(File.ReadAllText(Path.Combine(runDirectory, "items.json")), ItemIdsJsonContext.Default.StringArray)!;
        var metrics = JsonNode.Parse(File.ReadAllText(Path.Combine(runDirectory, "metrics.json")))!.AsObject();
        metrics.Remove("curve"); // the learning curve stays in the run's report
        return new ModelManifest(version, DateTimeOffset.UtcNow, dataSnapshot, config.MaxLength,
            PolicyExporterContract.Inputs(config.UserFeatures), PolicyExporterContract.Outputs, itemIds, metrics);
    }

    /// <summary>Uploads policy.onnx and its manifest; with <paramref name="promote"/>, points current.json at it if nobody promoted in between.</summary>
    public static async Task<bool> PublishAsync(ModelRegistry registry, string runDirectory, string version, string dataSnapshot, bool promote, CancellationToken cancellationToken = default)
    {
        var manifest = Manifest(runDirectory, version, dataSnapshot);
        await registry.Container.CreateIfNotExistsAsync(cancellationToken: cancellationToken);
        var before = await registry.GetCurrentAsync(cancellationToken);
        await registry.PublishAsync(manifest, await File.ReadAllBytesAsync(Path.Combine(runDirectory, "policy.onnx"), cancellationToken), cancellationToken);
        return !promote || await registry.PromoteAsync(version, before, "published by training-job", cancellationToken);
    }
}

/// <summary>The names <see cref="PolicyExporter"/> gives the graph's inputs and outputs.</summary>
public static class PolicyExporterContract
{
    public static IReadOnlyList<string> Inputs(bool userTokens) => userTokens ? ["history", "user_tokens", "k"] : ["history", "k"];

    public static IReadOnlyList<string> Outputs { get; } = ["scores", "top_scores", "top_items"];
}
