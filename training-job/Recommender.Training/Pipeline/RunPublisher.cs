using System.Text.Json;
using System.Text.Json.Nodes;
using Recommender.ModelContract;

namespace Recommender.Training.Pipeline;

/// <summary>Publishes a run folder (written by <see cref="TrainingRun"/>) as a model version, and optionally promotes it.</summary>
public static class RunPublisher
{
    public static ModelManifest Manifest(string runDirectory, string version, string dataSnapshot)
    {
        var config = SequenceModelConfig.Load(Path.Combine(runDirectory, "config.json"), new Dictionary<string, string>());
        var itemIds = JsonSerializer.Deserialize(File.ReadAllText(Path.Combine(runDirectory, "items.json")), ItemIdsJsonContext.Default.StringArray)!;
        var metrics = JsonNode.Parse(File.ReadAllText(Path.Combine(runDirectory, "metrics.json")))!.AsObject();
        metrics.Remove("curve"); // the learning curve stays in the run's report
        var popularPath = Path.Combine(runDirectory, "popular.json");
        var popular = File.Exists(popularPath) ? JsonSerializer.Deserialize(File.ReadAllText(popularPath), ItemIdsJsonContext.Default.StringArray) : null;
        var vocabularyPath = Path.Combine(runDirectory, "content-vocabulary.json");
        var vocabulary = File.Exists(vocabularyPath) ? JsonSerializer.Deserialize(File.ReadAllText(vocabularyPath), ItemIdsJsonContext.Default.StringArray) : null;
        var adaptationPath = Path.Combine(runDirectory, TrainingRun.UserAdaptationFile);
        var adaptation = File.Exists(adaptationPath) ? JsonSerializer.Deserialize(File.ReadAllText(adaptationPath), TrainingJsonContext.Default.UserAdaptationParameters) : null;
        var userVocabularyPath = Path.Combine(runDirectory, TrainingRun.UserVocabularyFile);
        var userVocabulary = File.Exists(userVocabularyPath) ? JsonSerializer.Deserialize(File.ReadAllText(userVocabularyPath), ItemIdsJsonContext.Default.StringArray) : null;
        var policyPath = Path.Combine(runDirectory, Reinforcement.ProductPolicyStage.PolicyFile);
        var policy = File.Exists(policyPath) ? JsonSerializer.Deserialize(File.ReadAllText(policyPath), TrainingJsonContext.Default.ServingPolicy) : null;
        // Input and output names as the graph itself declares them.
        var graph = Onnx.ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(runDirectory, "policy.onnx"))).Graph;
        return new ModelManifest(version, DateTimeOffset.UtcNow, dataSnapshot, config.MaxLength,
            graph.Input.Select(i => i.Name).ToList(), graph.Output.Select(o => o.Name).ToList(), itemIds, metrics, popular, vocabulary, adaptation,
            userVocabulary, policy);
    }

    /// <summary>Uploads policy.onnx and its manifest; with <paramref name="promote"/>, points current.json at it if nobody promoted in between.</summary>
    public static async Task<bool> PublishAsync(ModelRegistry registry, string runDirectory, string version, string dataSnapshot, bool promote, CancellationToken cancellationToken = default)
    {
        var manifest = Manifest(runDirectory, version, dataSnapshot);
        await registry.Container.CreateIfNotExistsAsync(cancellationToken: cancellationToken);
        var before = await registry.GetCurrentAsync(cancellationToken);
        // The weights and their settings travel with the version: the next retraining starts from them (WarmStart); and the
        // sessions its off-policy estimates read, so the gate's figures can be checked against the decisions behind them.
        var trainingFiles = new Dictionary<string, byte[]>();
        foreach (var name in WarmStart.Files.Append(Reinforcement.ProductPolicyStage.HeadFile).Append(Reinforcement.ProductPolicyStage.EvaluationSessionsFile))
        {
            if (File.Exists(Path.Combine(runDirectory, name)))
                trainingFiles[name] = await File.ReadAllBytesAsync(Path.Combine(runDirectory, name), cancellationToken);
        }
        await registry.PublishAsync(manifest, await File.ReadAllBytesAsync(Path.Combine(runDirectory, "policy.onnx"), cancellationToken), cancellationToken, trainingFiles);
        return !promote || await registry.PromoteAsync(version, before, "published by training-job", cancellationToken);
    }
}

