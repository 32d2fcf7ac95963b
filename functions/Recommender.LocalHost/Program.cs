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
var serving = ServingServices.Connect(storage, ingestion, modelContainer, string.IsNullOrEmpty(tag) ? "RankEvents" : "RankEvents" + tag);
await serving.EnsureCreatedAsync();
var recommendations = serving.Recommendations;
var personalizer = new PersonalizerApi(serving.Personalizer);

// The learning loop: the same orchestration and activities as the Functions app, run by the Durable Task
// in-process host (in memory: runs do not survive a restart of this process) with the local launcher.
var retraining = new RetrainingTrigger(RetrainingConfiguration.TriggerOptions(builder.Configuration), ingestion.EventLog, ingestion.Snapshots);
builder.Services.AddSingleton(new RetrainingSteps(ingestion.Snapshots, serving.Registry, RetrainingConfiguration.Launcher(builder.Configuration, storage,
    jobSettings: ["--snapshot-container", layout.TrainingContainer, "--container", modelContainer])));
builder.Services.AddInMemoryDurableTask(tasks => tasks.AddRetraining());

var app = builder.Build();
app.MapPost("/api/events", (HttpContext http, CancellationToken ct) =>
    Execute(http, new IngestEventsOverHttp(ingestion.Ingestor).Run(http.Request, ct)));
app.MapDelete("/api/users/{userId}", (HttpContext http, string userId, CancellationToken ct) =>
    Execute(http, new DeleteUser(ingestion.Deletion).Run(http.Request, userId, ct)));
app.MapGet("/api/users/{userId}/recommendations", (HttpContext http, string userId, CancellationToken ct) =>
    Execute(http, new GetRecommendations(recommendations).Run(http.Request, userId, ct)));
foreach (var prefix in new[] { "/api", "/personalizer/v1.0" })
{
    app.MapPost(prefix + "/rank", (HttpContext http, CancellationToken ct) => Execute(http, personalizer.Rank(http.Request, ct)));
    app.MapPost(prefix + "/events/{eventId}/reward", (HttpContext http, string eventId, CancellationToken ct) => Execute(http, personalizer.Reward(http.Request, eventId, ct)));
    app.MapPost(prefix + "/events/{eventId}/activate", (HttpContext http, string eventId, CancellationToken ct) => Execute(http, personalizer.Activate(http.Request, eventId, ct)));
}
app.MapGet("/api/models/current", (HttpContext http, CancellationToken ct) => Execute(http, new GetCurrentModel(serving.Registry).Run(http.Request, ct)));
var training = new TrainingApi(retraining);
app.MapPost("/api/training", (HttpContext http, DurableTaskClient client, CancellationToken ct) => Execute(http, training.Start(http.Request, client, ct)));
app.MapGet("/api/training/{instanceId}", (HttpContext http, string instanceId, DurableTaskClient client, CancellationToken ct) => Execute(http, training.Status(http.Request, instanceId, client, ct)));
app.MapGet("/", () => Results.Text("serverless recommender (local host): POST /api/events, GET /api/users/{userId}/recommendations?k=10, DELETE /api/users/{userId}, POST /api/rank, POST /api/events/{eventId}/reward|activate (also under /personalizer/v1.0), POST /api/training, GET /api/training/{instanceId}, GET /api/models/current\n"));
app.Run();

static async Task Execute(HttpContext http, Task<IActionResult> function)
{
    var result = await function;
    await result.ExecuteResultAsync(new ActionContext(http, http.GetRouteData(), new ActionDescriptor()));
}
