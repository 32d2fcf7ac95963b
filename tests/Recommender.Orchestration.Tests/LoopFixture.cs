using System.Text.Json.Nodes;
using Azure.Storage.Blobs;
using Microsoft.DurableTask.Client;
using Microsoft.DurableTask.Testing;
using Microsoft.Extensions.DependencyInjection;
using Recommender.Data;
using Recommender.EventLog;
using Recommender.Ingestion;
using Recommender.ModelContract;
using Recommender.TestSupport;
using Recommender.Training;
using Recommender.TrainingJob;
using Recommender.Training.Pipeline;

namespace Recommender.Orchestration.Tests;

/// <summary>One small model really trained on the synthetic world, published as candidates by <see cref="FakeLauncher"/>.</summary>
public sealed class TrainedRunFixture : IAsyncLifetime
{
    public string Run { get; } = Path.Combine(Path.GetTempPath(), "orchestration-run-" + Guid.NewGuid().ToString("N"));

    public async Task InitializeAsync()
    {
        var world = new SyntheticWorld(new SyntheticWorldOptions { Users = 120, Items = 60, Seed = 13 });
        var config = new SequenceModelConfig { Dimension = 16, Blocks = 1, MaxLength = 10, Epochs = 1, EvaluateEvery = 1, BatchSize = 64, Negatives = 16 };
        await new TrainingRun(config, new EvaluationProtocol()).RunAsync(world.ToDataset(world.GenerateHistory(DateTimeOffset.UnixEpoch.AddYears(56))), Run);
    }

    public Task DisposeAsync() => Task.CompletedTask;
}

/// <summary>
/// A training job stand-in whose executions end as scripted per attempt; a successful one publishes the
/// fixture's model as the candidate with the given metrics (or a corrupt policy). It counts what the
/// orchestration asked of it, to show that replays do not repeat activities.
/// </summary>
public sealed class FakeLauncher(ModelRegistry registry, string run) : ITrainingJobLauncher
{
    public List<TrainingJobRequest> Started { get; } = [];
    public List<string> Stopped { get; } = [];
    public int StatusChecks;
    /// <summary>How each attempt (1-based) ends; Running means it never ends.</summary>
    public Func<int, TrainingJobState> Outcome { get; init; } = _ => TrainingJobState.Succeeded;
    public double CandidateNdcg { get; init; } = 0.5;
    /// <summary>The champion's ndcg@10 as the job would measure it on the candidate's data (null: not measured).</summary>
    public double? ChampionNdcgOnSameData { get; init; }
    public bool CorruptPolicy { get; init; }

    public async Task<string> StartAsync(TrainingJobRequest request, CancellationToken cancellationToken = default)
    {
        lock (Started) Started.Add(request);
        if (Outcome(Started.Count) == TrainingJobState.Succeeded)
            await PublishAsync(registry, run, request.CandidateVersion, CandidateNdcg, CorruptPolicy, RetrainingSteps.DataSnapshotName(request.SnapshotId), ChampionNdcgOnSameData);
        return $"execution-{Started.Count}";
    }

    public Task<TrainingJobStatus> GetStatusAsync(string executionId, CancellationToken cancellationToken = default)
    {
        var checks = Interlocked.Increment(ref StatusChecks);
        var state = Outcome(int.Parse(executionId["execution-".Length..], System.Globalization.CultureInfo.InvariantCulture));
        // Report Running at every other check first, so the orchestration really polls.
        return Task.FromResult(checks % 2 == 1 && state != TrainingJobState.Running ? new TrainingJobStatus(TrainingJobState.Running) : new TrainingJobStatus(state, state == TrainingJobState.Failed ? "exit code 1" : null));
    }

    public Task StopAsync(string executionId, CancellationToken cancellationToken = default)
    {
        lock (Stopped) Stopped.Add(executionId);
        return Task.CompletedTask;
    }

    /// <summary>Publishes the run as <paramref name="version"/> with its ndcg@10 replaced.</summary>
    public static async Task PublishAsync(ModelRegistry registry, string run, string version, double ndcg, bool corrupt = false, string snapshot = "test", double? championNdcg = null)
    {
        var manifest = RunPublisher.Manifest(run, version, snapshot);
        var metrics = (JsonObject)manifest.Metrics!.DeepClone();
        metrics["ndcg@10"] = ndcg;
        if (championNdcg is { } measured)
            metrics["champion"] = new JsonObject { ["version"] = (await registry.GetCurrentAsync())!.Pointer.Version, ["ndcg@10"] = measured };
        var policy = corrupt ? "not an onnx model"u8.ToArray() : await File.ReadAllBytesAsync(Path.Combine(run, ModelRegistry.PolicyFile));
        await registry.PublishAsync(manifest with { Metrics = metrics }, policy);
    }
}

/// <summary>Azurite storage with the synthetic world's traffic ingested, a model registry, and the Durable Task in-process host running the orchestration.</summary>
public sealed class Loop : IAsyncDisposable
{
    private Loop(IngestionServices ingestion, ModelRegistry registry, DurableTaskTestHost host, RetrainingTrigger trigger)
    {
        Ingestion = ingestion;
        Registry = registry;
        Host = host;
        Trigger = trigger;
    }

    public IngestionServices Ingestion { get; }
    public ModelRegistry Registry { get; }
    public DurableTaskTestHost Host { get; }
    public RetrainingTrigger Trigger { get; }
    public DurableTaskClient Client => Host.Client;

    /// <summary>Settings for tests: polls and backoff in fractions of a second, a small snapshot accepted.</summary>
    public static RetrainingSettings FastSettings { get; } = new()
    {
        Snapshot = new SnapshotRequirements { MinEngagements = 200, MinTrainableUsers = 10 },
        PollInterval = TimeSpan.FromMilliseconds(200),
        JobTimeout = TimeSpan.FromSeconds(2),
        RetryBackoff = TimeSpan.FromMilliseconds(200),
        MaxJobAttempts = 2,
    };

    /// <summary>The synthetic world whose catalog, profiles and organic history a loop starts with.</summary>
    public static SyntheticWorldOptions World(int users) => new() { Users = users, Items = 40, Seed = 5 };

    public static async Task<Loop> StartAsync(Func<ModelRegistry, IngestionServices, ITrainingJobLauncher> launcher, RetrainingSettings? settings = null, int users = 60)
    {
        var ingestion = await Azurite.CreateServicesAsync();
        await IngestionTraffic.SendAsync(ingestion, World(users), progress: null);
        await Watermarks.PastTheSecondAsync();
        var models = new BlobServiceClient(Azurite.ConnectionString).GetBlobContainerClient("models-" + Guid.NewGuid().ToString("N")[..12]);
        await models.CreateIfNotExistsAsync();
        var registry = new ModelRegistry(models);
        var steps = new RetrainingSteps(ingestion.Snapshots, registry, launcher(registry, ingestion));
        var host = await DurableTaskTestHost.StartAsync(tasks => tasks.AddRetraining(),
            new DurableTaskTestHostOptions { Port = InProcessSidecarPort.Free(), ConfigureServices = services => services.AddSingleton(steps) });
        var trigger = new RetrainingTrigger(new RetrainingTriggerOptions { Settings = settings ?? FastSettings, NewEventsThreshold = 100 }, ingestion.EventLog, ingestion.Snapshots);
        return new Loop(ingestion, registry, host, trigger);
    }

    /// <summary>Starts a run and waits for its outcome.</summary>
    public async Task<RetrainingOutcome> RunAsync(string trigger = "test")
    {
        var start = await Trigger.StartAsync(Client, trigger);
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        var instance = await Client.WaitForInstanceCompletionAsync(start.InstanceId, getInputsAndOutputs: true, timeout.Token);
        Assert.True(instance.RuntimeStatus == OrchestrationRuntimeStatus.Completed, $"{instance.RuntimeStatus}: {instance.FailureDetails?.ErrorMessage}");
        return instance.ReadOutputAs<RetrainingOutcome>()!;
    }

    public async ValueTask DisposeAsync() => await Host.DisposeAsync();
}
