using Azure.Data.Tables;
using Azure.Storage.Blobs;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.Abstractions;
using Microsoft.AspNetCore.Routing;
using Recommender.Functions;
using Microsoft.DurableTask;
using Microsoft.DurableTask.Client;
using Microsoft.DurableTask.Testing;
using Recommender.Ingestion;
using Recommender.Orchestration;
using Recommender.Serving;

// dotnet run --project functions/Recommender.LocalHost -- --urls http://127.0.0.1:7071
// The routes of the Functions app (prefix api/), served by the same function classes.
var builder = WebApplication.CreateBuilder(args);
builder.Services.AddMvcCore(); // executes the functions' IActionResults as the Functions host does
var storage = builder.Configuration["AzureWebJobsStorage"] ?? "UseDevelopmentStorage=true";
// Storage:Namespace gives every container and table a tag of its own (a benchmark's product beside the demo's in one Azurite).
var tag = builder.Configuration["Storage:Namespace"];
var layout = string.IsNullOrEmpty(tag) ? StorageLayout.Default : StorageLayout.Default.WithNamespace(tag);
var ingestion = IngestionServices.Connect(storage, layout);
await ingestion.EnsureCreatedAsync();
var modelContainer = builder.Configuration["ModelContainer"] ?? (string.IsNullOrEmpty(tag) ? "models" : "models-" + tag);
var serving = ServingServices.Connect(storage, ingestion, modelContainer, string.IsNullOrEmpty(tag) ? "RankEvents" : "RankEvents" + tag,
    LoggerFactory.Create(logging => logging.AddConfiguration(builder.Configuration.GetSection("Logging")).AddConsole()),
    builder.Configuration.GetSection("Serving:Sinks").Get<BatchingSinkOptions>());
await serving.EnsureCreatedAsync();
builder.Services.AddHostedService(_ => new ServingLifetime(serving));
var recommendations = serving.Recommendations;
// Personalizer's keys (Ocp-Apim-Subscription-Key): none configured is development mode, any key accepted.
var subscriptionKeys = SubscriptionKeys.From(builder.Configuration["Personalizer:SubscriptionKeys"]);
if (subscriptionKeys.DevelopmentMode)
    Console.Error.WriteLine("warning: no Personalizer:SubscriptionKeys configured: /personalizer/v1.0 accepts any Ocp-Apim-Subscription-Key (development mode)");
var personalizer = new PersonalizerApi(serving.Personalizer, serving.PersonalizerLog, serving.PersonalizerEvaluations, subscriptionKeys);

// The learning loop: the same orchestration and activities as the Functions app, run by the Durable Task
// in-process host (in memory: runs do not survive a restart of this process) with the local launcher.
var retraining = new RetrainingTrigger(RetrainingConfiguration.TriggerOptions(builder.Configuration), ingestion.EventLog, ingestion.Snapshots);
builder.Services.AddSingleton(new RetrainingSteps(ingestion.Snapshots, serving.Registry, RetrainingConfiguration.Launcher(builder.Configuration, storage,
    jobSettings: ["--snapshot-container", layout.TrainingContainer, "--container", modelContainer])));
builder.Services.AddSingleton(serving); // the purge activity's
builder.Services.AddInMemoryDurableTask(tasks => tasks.AddRetraining().AddUserDataPurge());

// Personalizer's model updates on its own, as the Functions app's PersonalizerModelUpdate timer does; and the purge of
// deleted users, as its PurgeDeletedUsersOnSchedule timer does (deletions here are in-memory Durable runs, lost on restart).
builder.Services.AddHostedService(_ => new PeriodicWork(TimeSpan.FromSeconds(5), ct => serving.PersonalizerLearner.UpdateAsync(cancellationToken: ct)));
builder.Services.AddHostedService(_ => new PeriodicWork(TimeSpan.FromMinutes(15), ct => serving.PurgeDeletedUsersAsync(ct)));

var app = builder.Build();
app.MapPost("/api/events", (HttpContext http, CancellationToken ct) =>
    Execute(http, new IngestEventsOverHttp(ingestion.Ingestor).Run(http.Request, ct)));
var deleteUser = new DeleteUser(serving);
app.MapDelete("/api/users/{userId}", (HttpContext http, string userId, DurableTaskClient client, CancellationToken ct) =>
    Execute(http, deleteUser.Run(http.Request, userId, client, ct)));
app.MapGet("/api/users/{userId}/deletion", (HttpContext http, string userId, CancellationToken ct) => Execute(http, deleteUser.Status(http.Request, userId, ct)));
app.MapGet("/api/users/{userId}/recommendations", (HttpContext http, string userId, CancellationToken ct) =>
    Execute(http, new GetRecommendations(recommendations).Run(http.Request, userId, ct)));
app.MapPost("/api/rank", (HttpContext http, CancellationToken ct) => Execute(http, personalizer.Rank(http.Request, ct)));
app.MapPost("/api/events/{eventId}/reward", (HttpContext http, string eventId, CancellationToken ct) => Execute(http, personalizer.Reward(http.Request, eventId, ct)));
app.MapPost("/api/events/{eventId}/activate", (HttpContext http, string eventId, CancellationToken ct) => Execute(http, personalizer.Activate(http.Request, eventId, ct)));
var p = app.MapGroup("/personalizer/v1.0");
p.MapPost("/rank", (HttpContext http, CancellationToken ct) => Execute(http, personalizer.PersonalizerRank(http.Request, ct)));
p.MapPost("/events/{eventId}/reward", (HttpContext http, string eventId, CancellationToken ct) => Execute(http, personalizer.PersonalizerReward(http.Request, eventId, ct)));
p.MapPost("/events/{eventId}/activate", (HttpContext http, string eventId, CancellationToken ct) => Execute(http, personalizer.PersonalizerActivate(http.Request, eventId, ct)));
p.MapGet("/configurations/service", (HttpContext http, CancellationToken ct) => Execute(http, personalizer.GetServiceConfiguration(http.Request, ct)));
p.MapPut("/configurations/service", (HttpContext http, CancellationToken ct) => Execute(http, personalizer.UpdateServiceConfiguration(http.Request, ct)));
p.MapGet("/configurations/policy", (HttpContext http, CancellationToken ct) => Execute(http, personalizer.GetPolicy(http.Request, ct)));
p.MapPut("/configurations/policy", (HttpContext http, CancellationToken ct) => Execute(http, personalizer.UpdatePolicy(http.Request, ct)));
p.MapDelete("/configurations/policy", (HttpContext http, CancellationToken ct) => Execute(http, personalizer.ResetPolicy(http.Request, ct)));
p.MapGet("/model", (HttpContext http, CancellationToken ct) => Execute(http, personalizer.GetModel(http.Request, ct)));
p.MapDelete("/model", (HttpContext http, CancellationToken ct) => Execute(http, personalizer.ResetModel(http.Request, ct)));
p.MapGet("/logs/properties", (HttpContext http, CancellationToken ct) => Execute(http, personalizer.GetLogProperties(http.Request, ct)));
p.MapDelete("/logs", (HttpContext http, CancellationToken ct) => Execute(http, personalizer.DeleteLogs(http.Request, ct)));
p.MapPost("/evaluations", (HttpContext http, CancellationToken ct) => Execute(http, personalizer.CreateEvaluation(http.Request, ct)));
p.MapGet("/evaluations", (HttpContext http, CancellationToken ct) => Execute(http, personalizer.ListEvaluations(http.Request, ct)));
p.MapGet("/evaluations/{evaluationId}", (HttpContext http, string evaluationId, CancellationToken ct) => Execute(http, personalizer.GetEvaluation(http.Request, evaluationId, ct)));
p.MapDelete("/evaluations/{evaluationId}", (HttpContext http, string evaluationId, CancellationToken ct) => Execute(http, personalizer.DeleteEvaluation(http.Request, evaluationId, ct)));
p.MapGet("/model/properties", (HttpContext http, CancellationToken ct) => Execute(http, personalizer.GetModelProperties(http.Request, ct)));
app.MapGet("/api/models/current", (HttpContext http, CancellationToken ct) => Execute(http, new GetCurrentModel(serving.Registry).Run(http.Request, ct)));
var training = new TrainingApi(retraining);
// What this process served a moment ago goes into the log before the snapshot is taken (one process here; in Azure the
// sinks of every instance write within their MaxDelay).
app.MapPost("/api/training", async (HttpContext http, DurableTaskClient client, CancellationToken ct) =>
{
    await serving.FlushAsync(ct);
    await Execute(http, training.Start(http.Request, client, ct));
});
app.MapGet("/api/training/{instanceId}", (HttpContext http, string instanceId, DurableTaskClient client, CancellationToken ct) => Execute(http, training.Status(http.Request, instanceId, client, ct)));
app.MapGet("/", () => Results.Text("serverless recommender (local host): POST /api/events, GET /api/users/{userId}/recommendations?k=10, DELETE /api/users/{userId}, GET /api/users/{userId}/deletion, POST /api/rank, POST /api/events/{eventId}/reward|activate, Personalizer v1.0 under /personalizer/v1.0, POST /api/training, GET /api/training/{instanceId}, GET /api/models/current\n"));
app.Run();

static async Task Execute(HttpContext http, Task<IActionResult> function)
{
    var result = await function;
    await result.ExecuteResultAsync(new ActionContext(http, http.GetRouteData(), new ActionDescriptor()));
}

/// <summary>The local stand-in for a Functions timer: the work every <paramref name="every"/>, a storage error left to the next tick.</summary>
sealed class PeriodicWork(TimeSpan every, Func<CancellationToken, Task> work) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(every);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                await work(stoppingToken);
            }
            catch (Azure.RequestFailedException)
            {
                // Storage unavailable for a moment: the next tick tries again.
            }
        }
    }
}
