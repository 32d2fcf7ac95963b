using Azure.Storage.Blobs;
using Recommender.Data;
using Recommender.ModelContract;
using Recommender.TestSupport;
using Recommender.Training;
using Recommender.Training.Pipeline;

namespace Recommender.Serving.Tests;

/// <summary>Run folders of small models really trained on the synthetic world, shared by the tests of a class.</summary>
public sealed class ModelFixture : IAsyncLifetime
{
    public string RunA { get; } = Path.Combine(Path.GetTempPath(), "serving-run-a-" + Guid.NewGuid().ToString("N"));
    public string RunB { get; } = Path.Combine(Path.GetTempPath(), "serving-run-b-" + Guid.NewGuid().ToString("N"));
    public InteractionDataset Data { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var world = new SyntheticWorld(new SyntheticWorldOptions { Users = 200, Items = 80, Seed = 13 });
        Data = world.ToDataset(world.GenerateHistory(DateTimeOffset.UnixEpoch.AddYears(50)));
        var config = new SequenceModelConfig { Dimension = 16, Blocks = 1, MaxLength = 10, Epochs = 2, EvaluateEvery = 2, BatchSize = 64, Negatives = 32 };
        await new TrainingRun(config, new EvaluationProtocol()).RunAsync(Data, RunA);
        await new TrainingRun(config with { Seed = 7 }, new EvaluationProtocol()).RunAsync(Data, RunB);
    }

    public Task DisposeAsync() => Task.CompletedTask;

    public static async Task<ModelRegistry> NewRegistryAsync()
    {
        var container = new BlobServiceClient(Azurite.ConnectionString).GetBlobContainerClient("models-" + Guid.NewGuid().ToString("N")[..12]);
        await container.CreateIfNotExistsAsync();
        return new ModelRegistry(container);
    }
}
