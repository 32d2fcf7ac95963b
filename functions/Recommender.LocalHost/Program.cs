using Azure.Data.Tables;
using Azure.Storage.Blobs;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.Abstractions;
using Microsoft.AspNetCore.Routing;
using Recommender.Functions;
using Recommender.Ingestion;
using Recommender.Serving;

// dotnet run --project functions/Recommender.LocalHost -- --urls http://127.0.0.1:7071
// The routes of the Functions app (prefix api/), served by the same function classes.
var builder = WebApplication.CreateBuilder(args);
builder.Services.AddMvcCore(); // executes the functions' IActionResults as the Functions host does
var storage = builder.Configuration["AzureWebJobsStorage"] ?? "UseDevelopmentStorage=true";
var ingestion = new IngestionServices(new BlobServiceClient(storage), new TableServiceClient(storage));
await ingestion.EnsureCreatedAsync();
var serving = ServingServices.FromConnectionString(storage, ingestion, builder.Configuration["ModelContainer"] ?? "models");
await serving.EnsureCreatedAsync();
var recommendations = serving.Recommendations;
var personalizer = new PersonalizerApi(serving.Personalizer);

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
app.MapGet("/", () => Results.Text("serverless recommender (local host): POST /api/events, GET /api/users/{userId}/recommendations?k=10, DELETE /api/users/{userId}, POST /api/rank, POST /api/events/{eventId}/reward|activate (also under /personalizer/v1.0)\n"));
app.Run();

static async Task Execute(HttpContext http, Task<IActionResult> function)
{
    var result = await function;
    await result.ExecuteResultAsync(new ActionContext(http, http.GetRouteData(), new ActionDescriptor()));
}
