using System.Text.Json.Nodes;
using Azure.Storage.Blobs;
using Recommender.Data;
using Recommender.ModelContract;
using Recommender.TestSupport;
using Recommender.Training.Pipeline;

namespace Recommender.Training.Tests;

/// <summary>The served champion measured on a candidate's data, through its ONNX policy and an item map by id.</summary>
[Collection("Torch")]
public sealed class ChampionEvaluationTests
{
    [Fact]
    public async Task The_champion_scores_on_its_own_data_as_its_run_recorded_whatever_the_item_numbering()
    {
        var world = new SyntheticWorld(new SyntheticWorldOptions { Users = 150, Items = 60, Seed = 23 });
        var history = world.GenerateHistory(DateTimeOffset.UnixEpoch.AddYears(56));
        var data = world.ToDataset(history);
        var run = Path.Combine(Path.GetTempPath(), "champion-" + Guid.NewGuid().ToString("N"));
        var protocol = new EvaluationProtocol();
        var recorded = await new TrainingRun(new SequenceModelConfig { Dimension = 16, Blocks = 1, MaxLength = 10, Epochs = 2, EvaluateEvery = 2, BatchSize = 64, Negatives = 16, UserFeatures = false }, protocol)
            .RunAsync(data, run);
        var container = new BlobServiceClient(Azurite.ConnectionString).GetBlobContainerClient("models-" + Guid.NewGuid().ToString("N")[..12]);
        await container.CreateIfNotExistsAsync();
        var registry = new ModelRegistry(container);
        Assert.Null(await ChampionEvaluation.MeasureAsync(registry, data, protocol));
        await RunPublisher.PublishAsync(registry, run, "champion", "test", promote: true);

        var same = await ChampionEvaluation.MeasureAsync(registry, data, protocol);
        // The same interactions numbered the other way round: the map by id gives the same ranking.
        var renumbered = InteractionDataset.FromInteractions("renumbered", history.Select(e => (e.UserId, e.ItemId!, e.Timestamp.UtcTicks)),
            Enumerable.Range(0, 60).Reverse().Select(SyntheticWorld.ItemId).ToList());
        var other = await ChampionEvaluation.MeasureAsync(registry, renumbered, protocol);

        Assert.Equal("champion", (string?)same!["version"]);
        Assert.Equal(recorded["ndcg@10_full"]!.GetValue<double>(), same["ndcg@10_full"]!.GetValue<double>(), 3);
        Assert.Equal(recorded["hr@10_full"]!.GetValue<double>(), same["hr@10_full"]!.GetValue<double>(), 3);
        Assert.Equal(same["ndcg@10_full"]!.GetValue<double>(), other!["ndcg@10_full"]!.GetValue<double>(), 3);
    }
}
