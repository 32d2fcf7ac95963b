using Azure.Storage.Blobs;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.DurableTask.Testing;
using Microsoft.Extensions.DependencyInjection;
using Recommender.ModelContract;
using Recommender.Orchestration;
using Recommender.TestSupport;

namespace Recommender.Functions.Tests;

/// <summary><c>POST /api/training</c> and <c>GET /api/training/{id}</c> against the orchestration in the Durable Task in-process host.</summary>
public sealed class TrainingApiTests
{
    /// <summary>A training job that runs until stopped.</summary>
    private sealed class EndlessJob : ITrainingJobLauncher
    {
        public Task<string> StartAsync(TrainingJobRequest request, CancellationToken cancellationToken = default) => Task.FromResult("execution-1");
        public Task<TrainingJobStatus> GetStatusAsync(string executionId, CancellationToken cancellationToken = default) => Task.FromResult(new TrainingJobStatus(TrainingJobState.Running));
        public Task StopAsync(string executionId, CancellationToken cancellationToken = default) => Task.CompletedTask;
    }

    [Fact]
    public async Task A_run_is_started_once_its_status_is_readable_and_unknown_runs_are_404()
    {
        var ingestion = await Azurite.CreateServicesAsync();
        var models = new BlobServiceClient(Azurite.ConnectionString).GetBlobContainerClient("models-" + Guid.NewGuid().ToString("N")[..12]);
        var steps = new RetrainingSteps(ingestion.Snapshots, new ModelRegistry(models), new EndlessJob());
        await using var host = await DurableTaskTestHost.StartAsync(tasks => tasks.AddRetraining(),
            new DurableTaskTestHostOptions { Port = InProcessSidecarPort.Free(), ConfigureServices = services => services.AddSingleton(steps) });
        // An empty log: the run ends at once, its snapshot refused.
        await using var serving = await ServingFixture.CreateAsync(ingestion);
        var api = new TrainingApi(new RetrainingTrigger(new RetrainingTriggerOptions(), ingestion.EventLog, ingestion.Snapshots), serving);
        var request = new DefaultHttpContext { Request = { Scheme = "http", Host = new HostString("localhost:7071") } }.Request;

        var accepted = Assert.IsType<AcceptedResult>(await api.Start(request, host.Client, default));
        var instanceId = accepted.Location!.Split('/')[^1];
        Assert.StartsWith("http://localhost:7071/api/training/retraining-", accepted.Location, StringComparison.Ordinal);
        await host.Client.WaitForInstanceCompletionAsync(instanceId);

        var status = Assert.IsType<OkObjectResult>(await api.Status(request, instanceId, host.Client, default));
        var json = System.Text.Json.JsonSerializer.Serialize(status.Value);
        Assert.Contains("\"status\":\"Completed\"", json, StringComparison.Ordinal);
        Assert.Contains("SnapshotRefused", json, StringComparison.Ordinal);

        var notFound = Assert.IsType<ObjectResult>(await api.Status(request, "retraining-nope", host.Client, default));
        Assert.Equal(StatusCodes.Status404NotFound, notFound.StatusCode);
        Assert.Equal(StatusCodes.Status404NotFound, Assert.IsType<ObjectResult>(await api.Status(request, "other-instance", host.Client, default)).StatusCode);
    }

    [Fact]
    public async Task A_second_start_while_a_run_is_in_progress_answers_409_naming_it()
    {
        var ingestion = await Azurite.CreateServicesAsync();
        await ingestion.Ingestor.IngestEventsAsync([.. Enumerable.Range(0, 20).Select(n => TestEvents.Interaction(n))]);
        await Task.Delay(1_100); // a snapshot takes the log blobs of the seconds before its watermark
        var models = new BlobServiceClient(Azurite.ConnectionString).GetBlobContainerClient("models-" + Guid.NewGuid().ToString("N")[..12]);
        await models.CreateIfNotExistsAsync();
        var steps = new RetrainingSteps(ingestion.Snapshots, new ModelRegistry(models), new EndlessJob());
        await using var host = await DurableTaskTestHost.StartAsync(tasks => tasks.AddRetraining(),
            new DurableTaskTestHostOptions { Port = InProcessSidecarPort.Free(), ConfigureServices = services => services.AddSingleton(steps) });
        var settings = new RetrainingSettings { Snapshot = new() { MinEngagements = 1, MinTrainableUsers = 1 }, PollInterval = TimeSpan.FromSeconds(30) };
        await using var serving = await ServingFixture.CreateAsync(ingestion);
        var api = new TrainingApi(new RetrainingTrigger(new RetrainingTriggerOptions { Settings = settings }, ingestion.EventLog, ingestion.Snapshots), serving);
        var request = new DefaultHttpContext { Request = { Scheme = "http", Host = new HostString("localhost") } }.Request;

        var first = Assert.IsType<AcceptedResult>(await api.Start(request, host.Client, default));
        var second = Assert.IsType<ObjectResult>(await api.Start(request, host.Client, default));

        Assert.Equal(StatusCodes.Status409Conflict, second.StatusCode);
        var problem = (ProblemDetails)second.Value!;
        Assert.Contains(first.Location!.Split('/')[^1], problem.Detail, StringComparison.Ordinal);
        Assert.Equal(first.Location!.Split('/')[^1], problem.Extensions["instanceId"]);
    }
}
