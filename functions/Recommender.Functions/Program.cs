using Azure.Data.Tables;
using Azure.Identity;
using Azure.Storage.Blobs;
using Microsoft.Azure.Functions.Worker.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Azure.Monitor.OpenTelemetry.Exporter;
using Microsoft.Azure.Functions.Worker.OpenTelemetry;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using Recommender.Functions;
using Recommender.Ingestion;
using Recommender.Orchestration;
using Recommender.Serving;

// Startup wiring, in one place. Storage is the host's own account: AzureWebJobsStorage (Azurite locally) or,
// in Azure, AzureWebJobsStorage__accountName with the app's managed identity.
var builder = FunctionsApplication.CreateBuilder(args);
builder.ConfigureFunctionsWebApplication();

// Telemetry: the host's and the worker's traces and logs, and the Recommender meter (ingest rate, dead
// letters, recommendation latency by path and model version, rewards, training verdicts), to Application
// Insights with the app's identity where APPLICATIONINSIGHTS_CONNECTION_STRING is set.
var telemetry = builder.Services.AddOpenTelemetry().UseFunctionsWorkerDefaults()
    .WithMetrics(metrics => metrics.AddMeter(RecommenderMetrics.MeterName));
if (!string.IsNullOrEmpty(builder.Configuration["APPLICATIONINSIGHTS_CONNECTION_STRING"]))
    telemetry.UseAzureMonitorExporter(options => options.Credential = new DefaultAzureCredential());

string Storage(IServiceProvider sp) => StorageAccount.FromFunctionsSetting(key => sp.GetRequiredService<IConfiguration>()[key]);

builder.Services.AddSingleton(sp =>
{
    var services = IngestionServices.Connect(Storage(sp));
    services.EnsureCreatedAsync().GetAwaiter().GetResult();
    return services;
});
builder.Services.AddSingleton(sp => sp.GetRequiredService<IngestionServices>().Ingestor);
builder.Services.AddSingleton(sp =>
{
    var configuration = sp.GetRequiredService<IConfiguration>();
    var serving = ServingServices.Connect(Storage(sp), sp.GetRequiredService<IngestionServices>(),
        configuration["ModelContainer"] ?? "models", logs: sp.GetRequiredService<ILoggerFactory>());
    serving.EnsureCreatedAsync().GetAwaiter().GetResult();
    return serving;
});
builder.Services.AddHostedService<ServingLifetime>();
builder.Services.AddSingleton(sp => sp.GetRequiredService<ServingServices>().Recommendations);
builder.Services.AddSingleton(sp => sp.GetRequiredService<ServingServices>().Personalizer);
builder.Services.AddSingleton(sp => sp.GetRequiredService<ServingServices>().PersonalizerLearner);
builder.Services.AddSingleton(sp => sp.GetRequiredService<ServingServices>().PersonalizerLog);
builder.Services.AddSingleton(sp => sp.GetRequiredService<ServingServices>().PersonalizerEvaluations);
// Personalizer's keys: in Azure a Key Vault reference (infra/resources.bicep); unset is development mode.
builder.Services.AddSingleton(sp =>
{
    var keys = SubscriptionKeys.From(sp.GetRequiredService<IConfiguration>()["Personalizer:SubscriptionKeys"]);
    var log = sp.GetRequiredService<ILoggerFactory>().CreateLogger("Personalizer");
    if (keys.DevelopmentMode)
        log.LogWarning("No Personalizer:SubscriptionKeys configured: /personalizer/v1.0 accepts any Ocp-Apim-Subscription-Key (development mode)");
    if (keys.Closed)
        log.LogError("Personalizer:SubscriptionKeys is a Key Vault reference that did not resolve: every Personalizer request is refused until the secret exists");
    return keys;
});
builder.Services.AddSingleton(sp => sp.GetRequiredService<ServingServices>().Registry);

// The learning loop: the launcher named by TrainingJob:Launcher (a Container Apps job in Azure, with the
// app's managed identity), the orchestration's steps and its triggers (Retraining:* settings).
builder.Services.AddSingleton(sp =>
{
    var configuration = sp.GetRequiredService<IConfiguration>();
    var ingestion = sp.GetRequiredService<IngestionServices>();
    var launcher = RetrainingConfiguration.Launcher(configuration, Storage(sp), new DefaultAzureCredential());
    return new RetrainingSteps(ingestion.Snapshots, sp.GetRequiredService<ServingServices>().Registry, launcher);
});
builder.Services.AddSingleton(sp =>
{
    var ingestion = sp.GetRequiredService<IngestionServices>();
    return new RetrainingTrigger(RetrainingConfiguration.TriggerOptions(sp.GetRequiredService<IConfiguration>()), ingestion.EventLog, ingestion.Snapshots);
});

builder.Build().Run();
