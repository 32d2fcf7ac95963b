using Microsoft.DurableTask.Testing;
using Recommender.Functions;
using Recommender.LocalHost;
using Recommender.Orchestration;
using Recommender.Serving;
using Recommender.Storage;

// dotnet run --project functions/Recommender.LocalHost -- --urls http://127.0.0.1:7071
// The Functions app's HTTP functions, served by the same function classes over the same services (RecommenderComposition),
// for machines without Azure Functions Core Tools. What the Functions host does beside HTTP is done here as follows.
var builder = WebApplication.CreateBuilder(args);
builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["AzureWebJobsStorage"] = builder.Configuration["AzureWebJobsStorage"] ?? "UseDevelopmentStorage=true" });
// Started with nothing but --urls, retraining runs the training job this repository builds (Release), where it was built.
var builtJob = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "../../../../../../training-job/Recommender.TrainingJob/bin/Release/net10.0/linux-x64/training-job.dll"));
if (builder.Configuration["TrainingJob:Command"] is null && File.Exists(builtJob))
    builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["TrainingJob:Command"] = $"dotnet {builtJob}" });
else if (builder.Configuration["TrainingJob:Command"] is null)
    Console.Error.WriteLine($"warning: TrainingJob:Command is not set and {builtJob} is not built: POST /api/training will fail until one is (dotnet build -c Release training-job/Recommender.TrainingJob)");
builder.Services.AddMvcCore(); // executes the functions' IActionResults as the Functions host does
builder.Services.AddRecommender(builder.Configuration);
var routes = HttpFunctionRoutes.Of(typeof(DeleteUser).Assembly);
builder.Services.AddFunctionClasses(routes);

// The retraining and purge orchestrations with their activities, in the Durable Task in-process host (in memory: runs
// do not survive a restart of this process; the purge timer below catches a lost purge).
builder.Services.AddInMemoryDurableTask(tasks => tasks.AddRetraining().AddUserDataPurge(), new InMemoryDurableTaskOptions { Port = InProcessSidecarPort.Free() });

// The Functions app's timers: Personalizer's model updates (PersonalizerModelUpdate) and the purge of deleted users
// (PurgeDeletedUsersOnSchedule). The retraining timers are not run here: POST /api/training starts a run.
builder.Services.AddHostedService(sp => new PeriodicWork(TimeSpan.FromSeconds(5), ct => sp.GetRequiredService<ServingServices>().PersonalizerLearner.UpdateAsync(cancellationToken: ct),
    sp.GetRequiredService<ILoggerFactory>().CreateLogger("Recommender.PersonalizerModelUpdate")));
builder.Services.AddHostedService(sp => new PeriodicWork(TimeSpan.FromMinutes(15), ct => sp.GetRequiredService<ServingServices>().PurgeDeletedUsersAsync(ct),
    sp.GetRequiredService<ILoggerFactory>().CreateLogger("Recommender.Purge")));

var app = builder.Build();
// As the Functions app's StorageUnavailableMiddleware: storage down past the SDK's retries is a 503, not a 500.
app.Use(async (http, next) =>
{
    try
    {
        await next(http);
    }
    catch (Exception ex) when (StorageUnavailable.Answers(http, ex))
    {
        await StorageUnavailable.WriteAsync(http);
    }
});
app.MapFunctions(routes);
// With Storage:FaultInjection=true (the soak benchmark): POST /_faults/outage?seconds=5, POST /_faults/latency?ms=50&seconds=10.
if (app.Services.GetService<Recommender.Storage.InjectedStorageFaults>() is { } faults)
{
    app.MapPost("/_faults/outage", (double seconds) => { faults.StartOutage(TimeSpan.FromSeconds(seconds)); return Results.NoContent(); });
    app.MapPost("/_faults/latency", (int ms, double seconds) => { faults.AddLatency(TimeSpan.FromMilliseconds(ms), TimeSpan.FromSeconds(seconds)); return Results.NoContent(); });
    app.MapGet("/_faults", () => Results.Json(new { failedRequests = faults.FailedRequests, delayedRequests = faults.DelayedRequests }));
}
var index = "serverless recommender (local host):\n" + string.Concat(routes.Select(r => $"  {r.Method,-6} /{r.Template}\n"));
app.MapGet("/", () => Results.Text(index));
app.Run();

/// <summary>
/// The local stand-in for a Functions timer: the work every <paramref name="every"/>. A failure is logged and left to the
/// next tick, as the Functions host does with a timer's failed run: a storage outage past the SDK's retries must not
/// stop the host (a background service that throws stops it).
/// </summary>
sealed class PeriodicWork(TimeSpan every, Func<CancellationToken, Task> work, ILogger log) : BackgroundService
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
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                log.LogWarning(ex, "Periodic work failed; the next tick in {Every} tries again", every);
            }
        }
    }
}

namespace Recommender.LocalHost
{
    /// <summary>Names this assembly for tests that start the local host in process (WebApplicationFactory&lt;LocalHostAssembly&gt;).</summary>
    public sealed class LocalHostAssembly;
}
