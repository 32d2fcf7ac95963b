using Azure.Identity;
using Microsoft.Azure.Functions.Worker.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Azure.Monitor.OpenTelemetry.Exporter;
using Microsoft.Azure.Functions.Worker.OpenTelemetry;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using Recommender.Functions;
using Recommender.Storage;

// Startup wiring, in one place. Storage is the host's own account: AzureWebJobsStorage (Azurite locally) or,
// in Azure, AzureWebJobsStorage__accountName with the app's managed identity.
var builder = FunctionsApplication.CreateBuilder(args);
builder.ConfigureFunctionsWebApplication();
// Storage down past the SDK's retries: 503 with Retry-After in the route's error shape, not a 500.
builder.UseMiddleware<StorageUnavailableMiddleware>();

// Telemetry: the host's and the worker's traces and logs, and the Recommender meter (ingest rate, dead
// letters, recommendation latency by path and model version, rewards, training verdicts), to Application
// Insights with the app's identity where APPLICATIONINSIGHTS_CONNECTION_STRING is set.
var telemetry = builder.Services.AddOpenTelemetry().UseFunctionsWorkerDefaults()
    .WithMetrics(metrics => metrics.AddMeter(RecommenderMetrics.MeterName));
if (!string.IsNullOrEmpty(builder.Configuration["APPLICATIONINSIGHTS_CONNECTION_STRING"]))
    telemetry.UseAzureMonitorExporter(options => options.Credential = new DefaultAzureCredential());

// Every service the functions use (the local host wires the same, RecommenderComposition); in Azure the training job's
// launcher uses the app's managed identity.
builder.Services.AddRecommender(builder.Configuration, new DefaultAzureCredential());

builder.Build().Run();
