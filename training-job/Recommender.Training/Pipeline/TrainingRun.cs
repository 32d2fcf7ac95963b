using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Recommender.Data;
using TorchSharp;
using Recommender.ModelContract;

namespace Recommender.Training.Pipeline;

/// <summary>
/// One training run, start to finish: split, baselines, train, evaluate on the test targets, and write
/// the run folder: <c>metrics.json</c> (keys in DESIGN.md), <c>model.bin</c> (weights), <c>config.json</c>,
/// <c>items.json</c> (item number to id), <c>popular.json</c> (the 200 most frequent training items), <c>content-vocabulary.json</c> (content tokens, when used), <c>user-adaptation.json</c> (when meta-learned), <c>report.html</c> (learning curve and metric table).
/// </summary>
/// <param name="warmStart">The champion's weights to start from (retraining), or null for a random initialisation.</param>
/// <param name="meta">The item generator's and the user adaptation's meta-learning (default: the model's seed, first-order MAML).</param>
public sealed class TrainingRun(SequenceModelConfig config, EvaluationProtocol protocol, JobProgress? progress = null, WarmStart? warmStart = null,
    MetaLearning.MetaLearningConfig? meta = null)
{
    /// <summary>
    /// The product's meta-learning settings for a model: its seed, and first-order MAML, because the meta run found it as
    /// good as second order and faster (figures in the README's cold-start results).
    /// </summary>
    public static MetaLearning.MetaLearningConfig ProductMeta(SequenceModelConfig config) => new() { Seed = config.Seed, FirstOrder = true };

    /// <summary>The meta-learned user adaptation of the run (with <see cref="SequenceModelConfig.UserAdaptation"/>).</summary>
    public const string UserAdaptationFile = "user-adaptation.json";

    /// <summary>The user attribute tokens the model reads, numbered (index 0 is padding), when it reads any.</summary>
    public const string UserVocabularyFile = "user-vocabulary.json";

    public async Task<JsonObject> RunAsync(InteractionDataset data, string outputDirectory, CancellationToken cancellationToken = default)
    {
        Directory.CreateDirectory(outputDirectory);
        progress?.Line(data.ToString());
        progress?.Line($"protocol: {protocol}");
        var split = LeaveOneOutSplit.Create(data);

        var popularity = new PopularityScorer(split, data.ItemCount);
        EvaluationResult[] baselines =
        [
            Evaluator.Evaluate(popularity, split, data.ItemCount, EvaluationStage.Test, protocol),
            Evaluator.Evaluate(new ItemKnnScorer(split, data.ItemCount), split, data.ItemCount, EvaluationStage.Test, protocol),
        ];
        foreach (var baseline in baselines)
            progress?.Line(Describe(baseline));
        var results = new List<EvaluationResult>(baselines);

        var trainer = new SequenceModelTrainer(config, progress, warmStart);
        // From a warm start, the champion continued on train + validation for a fixed schedule; else trained afresh with early stopping.
        var outcome = warmStart is null ? trainer.Train(data, split) : trainer.FineTune(data, split, config.WarmStartEpochs);
        var model = Evaluator.Evaluate(new SasRecScorer(outcome.Model, config, data.UserFeatures, outcome.Device, warmStart is null ? "SASRec+features" : "SASRec+features, warm start"),
            split, data.ItemCount, EvaluationStage.Test, protocol);
        results.Add(model);
        progress?.Line(Describe(model));

        // The served model: the early-stopped one, or its refit on train + validation for the same epochs.
        var served = outcome.Model;
        EvaluationResult? earlyStopped = null;
        if (config.Refit && outcome.BestEpoch > 0 && warmStart is null)
        {
            served = trainer.Refit(data, split, outcome.BestEpoch);
            earlyStopped = model;
            model = Evaluator.Evaluate(new SasRecScorer(served, config, data.UserFeatures, outcome.Device, "SASRec+features refit"), split, data.ItemCount, EvaluationStage.Test, protocol);
            results.Add(model);
            progress?.Line(Describe(model));
        }

        // New items: learn to place them from content, on the served model's own training sequences.
        var servedSequences = served == outcome.Model && warmStart is null ? split.Train : split.Histories(EvaluationStage.Test);
        var metaSettings = meta ?? ProductMeta(config);
        MetaLearning.ItemGeneratorTraining.FitFor(served, config, data.UserFeatures, servedSequences, outcome.Device, metaSettings, progress);
        // Users with a short history: meta-learn their few-shot adaptation, on the same sequences.
        if (config.UserAdaptation)
        {
            var learner = new MetaLearning.UserMetaLearner(served, config, data.UserFeatures, metaSettings, progress, outcome.Device);
            var adaptation = learner.Train(learner.FirstInteractionTasks(servedSequences));
            await File.WriteAllTextAsync(Path.Combine(outputDirectory, UserAdaptationFile), JsonSerializer.Serialize(adaptation, TrainingJsonContext.Default.UserAdaptationParameters), cancellationToken);
        }

        served.save(Path.Combine(outputDirectory, "model.bin"));
        await File.WriteAllBytesAsync(Path.Combine(outputDirectory, "policy.onnx"), PolicyExporter.Export(served, config), cancellationToken);
        await File.WriteAllTextAsync(Path.Combine(outputDirectory, "config.json"), config.ToJson(), cancellationToken);
        await File.WriteAllTextAsync(Path.Combine(outputDirectory, "items.json"), JsonSerializer.Serialize(data.ItemIds.ToArray(), ItemIdsJsonContext.Default.StringArray), cancellationToken);
        var popular = popularity.MostPopular(200).Select(i => data.ItemIds[i]).ToArray();
        await File.WriteAllTextAsync(Path.Combine(outputDirectory, "popular.json"), JsonSerializer.Serialize(popular, ItemIdsJsonContext.Default.StringArray), cancellationToken);
        if (config.ItemContent && data.ItemFeatures is { VocabularySize: > 1 } content)
            await File.WriteAllTextAsync(Path.Combine(outputDirectory, "content-vocabulary.json"), JsonSerializer.Serialize(content.Vocabulary.ToArray(), ItemIdsJsonContext.Default.StringArray), cancellationToken);
        if (config.UserFeatures && data.UserFeatures is { VocabularySize: > 1 } users)
            await File.WriteAllTextAsync(Path.Combine(outputDirectory, UserVocabularyFile), JsonSerializer.Serialize(users.Vocabulary.ToArray(), ItemIdsJsonContext.Default.StringArray), cancellationToken);
        var metrics = Metrics(data, model, baselines, outcome);
        if (earlyStopped is not null)
            metrics["early_stopped"] = earlyStopped.All.ToJson();
        await File.WriteAllTextAsync(Path.Combine(outputDirectory, "metrics.json"), metrics.ToJsonString(new JsonSerializerOptions { WriteIndented = true }), cancellationToken);
        await File.WriteAllTextAsync(Path.Combine(outputDirectory, "report.html"), RunReport.Html(data.ToString(), protocol.ToString(), config, results, outcome.Curve), cancellationToken);
        progress?.Line($"wrote {outputDirectory}/metrics.json, model.bin, policy.onnx, config.json, items.json, report.html");
        return metrics;
    }

    public static string Describe(EvaluationResult r) =>
        $"{r.Model,-16} test HR@10 {r.All.HitRate:F4}  NDCG@10 {r.All.Ndcg:F4}  full HR@10 {r.All.FullHitRate:F4}  full NDCG@10 {r.All.FullNdcg:F4}  " +
        $"cold users ({r.ColdUsers.Users}) NDCG@10 {r.ColdUsers.Ndcg:F4}  [{r.All.Users:N0} users, {r.Seconds:F1} s]";


    private JsonObject Metrics(InteractionDataset data, EvaluationResult model, IEnumerable<EvaluationResult> baselines, TrainingOutcome outcome)
    {
        var metrics = new JsonObject
        {
            ["model"] = model.Model,
            [MetricKeys.HitRate] = JsonNumbers.Finite(model.All.HitRate),
            [MetricKeys.Ndcg] = JsonNumbers.Finite(model.All.Ndcg),
            [MetricKeys.FullHitRate] = JsonNumbers.Finite(model.All.FullHitRate),
            [MetricKeys.FullNdcg] = JsonNumbers.Finite(model.All.FullNdcg),
            [MetricKeys.OfColdUsers(MetricKeys.HitRate)] = JsonNumbers.Finite(model.ColdUsers.HitRate),
            [MetricKeys.OfColdUsers(MetricKeys.Ndcg)] = JsonNumbers.Finite(model.ColdUsers.Ndcg),
            ["cold_users.count"] = model.ColdUsers.Users,
            ["train_seconds"] = Math.Round(outcome.TrainSeconds, 1),
            ["sequences_per_second"] = Math.Round(outcome.SequencesPerSecond),
            ["best_epoch"] = outcome.BestEpoch,
            ["epochs_run"] = outcome.Curve.Count,
            ["peak_memory_mb"] = Process.GetCurrentProcess().PeakWorkingSet64 / (1024 * 1024),
            ["device"] = outcome.Device.type.ToString(),
            ["dataset"] = new JsonObject { ["name"] = data.Name, ["users"] = data.UserCount, ["items"] = data.ItemCount, ["interactions"] = data.InteractionCount },
            ["protocol"] = protocol.ToString(),
            ["baselines"] = new JsonObject(baselines.Select(r => KeyValuePair.Create(r.Model, (JsonNode?)r.All.ToJson()))),
            ["curve"] = new JsonArray(outcome.Curve.Select(e => (JsonNode)new JsonObject
            {
                ["epoch"] = e.Epoch, ["loss"] = JsonNumbers.Finite(Math.Round(e.Loss, 5)), ["seconds"] = Math.Round(e.Seconds, 2),
                ["valid_ndcg@10"] = e.ValidationNdcg, ["valid_hr@10"] = e.ValidationHitRate, ["valid_ndcg@10_full"] = e.ValidationFullNdcg,
            }).ToArray()),
        };
        return metrics;
    }
}

[System.Text.Json.Serialization.JsonSerializable(typeof(string[]))]
internal sealed partial class ItemIdsJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
