using Recommender.Data;
using Recommender.Training;
using Recommender.Training.Pipeline;

namespace Recommender.Training.Tests;

/// <summary>The sequence model on a small synthetic world: learns within seconds, is deterministic, saves and reloads.</summary>
[Collection("Torch")]
public sealed class SequenceModelTests
{
    private static readonly SequenceModelConfig Small = new()
    {
        Dimension = 32, Blocks = 1, MaxLength = 20, Dropout = 0.1, Epochs = 30, EvaluateEvery = 10, Patience = 10,
        BatchSize = 64, Negatives = 64, LearningRate = 0.003, Seed = 1,
    };

    private static (InteractionDataset Data, LeaveOneOutSplit Split) World()
    {
        var world = new SyntheticWorld(new SyntheticWorldOptions { Users = 400, Items = 120, Seed = 21 });
        var data = world.ToDataset(world.GenerateHistory(DateTimeOffset.UnixEpoch.AddYears(50)));
        return (data, LeaveOneOutSplit.Create(data));
    }

    [Theory]
    [InlineData("ce-sampled")]
    [InlineData("bce")]
    [InlineData("ce")]
    public void Loss_falls_and_the_model_beats_popularity(string loss)
    {
        var (data, split) = World();
        var config = Small with { Loss = loss };

        var outcome = new SequenceModelTrainer(config).Train(data, split);

        Assert.True(outcome.Curve[^1].Loss < outcome.Curve[0].Loss, $"loss {outcome.Curve[0].Loss:F3} -> {outcome.Curve[^1].Loss:F3}");
        var model = Evaluator.Evaluate(new SasRecScorer(outcome.Model, config, data.UserFeatures, outcome.Device), split, data.ItemCount, EvaluationStage.Test);
        var popularity = Evaluator.Evaluate(new PopularityScorer(split, data.ItemCount), split, data.ItemCount, EvaluationStage.Test);
        Assert.True(model.All.Ndcg > popularity.All.Ndcg, $"{loss}: NDCG@10 {model.All.Ndcg:F3} vs popularity {popularity.All.Ndcg:F3}");
    }

    [Theory]
    [InlineData("sampled")]
    [InlineData("full")]
    public void The_best_epoch_is_the_one_with_the_best_validation_figure_chosen(string selectBy)
    {
        var (data, split) = World();
        var config = Small with { Epochs = 6, EvaluateEvery = 1, Patience = 10, SelectBy = selectBy };

        var outcome = new SequenceModelTrainer(config).Train(data, split);

        Func<EpochRecord, double> figure = selectBy == "full" ? e => e.ValidationFullNdcg!.Value : e => e.ValidationNdcg!.Value;
        Assert.Equal(outcome.Curve.MaxBy(figure)!.Epoch, outcome.BestEpoch);
        // The weights served are that epoch's: validating them again gives its figure.
        var again = Evaluator.Evaluate(new SasRecScorer(outcome.Model, config, data.UserFeatures, outcome.Device), split, data.ItemCount, EvaluationStage.Validation,
            new EvaluationProtocol { MaxUsers = config.ValidationUsers, Seed = config.Seed });
        Assert.Equal(figure(outcome.Curve.Single(e => e.Epoch == outcome.BestEpoch)), selectBy == "full" ? again.All.FullNdcg : again.All.Ndcg, 6);
    }

    [Fact]
    public void An_unknown_selection_figure_is_refused_before_training()
    {
        var (data, split) = World();
        var error = Assert.Throws<ArgumentException>(() => new SequenceModelTrainer(Small with { SelectBy = "recall" }).Train(data, split));
        Assert.Contains("sampled, full", error.Message);
    }

    [Fact]
    public void Training_is_deterministic_for_a_seed_on_cpu()
    {
        var (data, split) = World();
        var config = Small with { Epochs = 2, EvaluateEvery = 2 };

        var a = new SequenceModelTrainer(config).Train(data, split);
        var b = new SequenceModelTrainer(config).Train(data, split);

        Assert.Equal(a.Curve.Select(e => e.Loss), b.Curve.Select(e => e.Loss));
    }

    [Fact]
    public async Task A_saved_run_reloads_and_gives_the_same_scores()
    {
        var (data, split) = World();
        var dir = Path.Combine(Path.GetTempPath(), "run-" + Guid.NewGuid().ToString("N"));
        var config = Small with { Epochs = 2, EvaluateEvery = 1 };

        var metrics = await new TrainingRun(config, new EvaluationProtocol()).RunAsync(data, dir);

        var reloaded = SavedModel.Load(dir, data, out var reloadedConfig);
        var histories = new[] { split.Train[0], split.Train[1] };
        var fromDisk = new SasRecScorer(reloaded, reloadedConfig, data.UserFeatures, TorchSharp.torch.CPU).Score([0, 1], histories);
        var again = SavedModel.Evaluate(dir, data, new EvaluationProtocol());
        Assert.Equal((double)metrics["ndcg@10"]!, again.All.Ndcg, 6);
        Assert.Equal(data.ItemCount + 1, fromDisk[0].Length);
        foreach (var file in new[] { "metrics.json", "model.bin", "policy.onnx", "config.json", "items.json", "report.html" })
            Assert.True(File.Exists(Path.Combine(dir, file)), file);
        foreach (var key in new[] { "hr@10", "ndcg@10", "hr@10_full", "ndcg@10_full", "cold_users.ndcg@10", "train_seconds", "sequences_per_second" })
            Assert.True(metrics.ContainsKey(key), key);
        Assert.Contains("<svg", await File.ReadAllTextAsync(Path.Combine(dir, "report.html")));
    }

    [Fact]
    public void The_refit_learns_the_validation_transitions_the_early_stopped_model_never_saw()
    {
        var (data, split) = World();
        var config = Small with { Loss = "ce", Epochs = 20, EvaluateEvery = 20 };
        var trainer = new SequenceModelTrainer(config);

        var outcome = trainer.Train(data, split);
        var refit = trainer.Refit(data, split, outcome.BestEpoch);

        // Validation targets are training targets for the refit only, so it ranks them higher.
        var before = Evaluator.Evaluate(new SasRecScorer(outcome.Model, config, data.UserFeatures, outcome.Device), split, data.ItemCount, EvaluationStage.Validation);
        var after = Evaluator.Evaluate(new SasRecScorer(refit, config, data.UserFeatures, outcome.Device), split, data.ItemCount, EvaluationStage.Validation);
        Assert.True(after.All.FullNdcg > before.All.FullNdcg + 0.02, $"validation full NDCG@10: refit {after.All.FullNdcg:F3} vs early-stopped {before.All.FullNdcg:F3}");
    }

    [Fact]
    public async Task A_refit_run_serves_the_refit_model_with_its_item_generator_and_keeps_the_early_stopped_metrics_beside_it()
    {
        var (data, split) = World();
        var dir = Path.Combine(Path.GetTempPath(), "run-" + Guid.NewGuid().ToString("N"));
        var config = Small with { Epochs = 3, EvaluateEvery = 1, Refit = true, ItemGenerator = true };

        var metrics = await new TrainingRun(config, new EvaluationProtocol()).RunAsync(data, dir);

        var saved = SavedModel.Evaluate(dir, data, new EvaluationProtocol());
        Assert.Equal((double)metrics["ndcg@10"]!, saved.All.Ndcg, 6);
        Assert.NotNull(SavedModel.Load(dir, data, out _).Generator);
        Assert.NotNull(metrics["early_stopped"]?["ndcg@10"]);
        Assert.Equal(["Popularity", "ItemKNN"], metrics["baselines"]!.AsObject().Select(p => p.Key));
    }

    [Fact]
    public void Config_defaults_file_and_overrides_combine()
    {
        var file = Path.GetTempFileName();
        File.WriteAllText(file, """{"dimension": 32, "loss": "bce"}""");

        var config = SequenceModelConfig.Load(file, new Dictionary<string, string> { ["epochs"] = "3", ["loss"] = "ce" });

        Assert.Equal((32, "ce", 3, 2, 42), (config.Dimension, config.Loss, config.Epochs, config.Blocks, config.Seed));
        Assert.Throws<ArgumentException>(() => SequenceModelConfig.Load(null, new Dictionary<string, string> { ["dimensions"] = "3" }));
        File.WriteAllText(file, """{"dimensions": 32}""");
        Assert.ThrowsAny<System.Text.Json.JsonException>(() => SequenceModelConfig.Load(file, new Dictionary<string, string>()));
    }
}
