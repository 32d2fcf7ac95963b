using Azure.Data.Tables;
using Azure.Storage.Blobs;
using Microsoft.Azure.Functions.Worker.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Recommender.Ingestion;
using Recommender.Serving;

// Startup wiring, in one place. Storage uses the AzureWebJobsStorage connection (Azurite locally).
var builder = FunctionsApplication.CreateBuilder(args);
builder.ConfigureFunctionsWebApplication();

builder.Services.AddSingleton(sp =>
{
    var connection = sp.GetRequiredService<IConfiguration>()["AzureWebJobsStorage"]
        ?? throw new InvalidOperationException("AzureWebJobsStorage is not set");
    var services = new IngestionServices(new BlobServiceClient(connection), new TableServiceClient(connection));
    services.EnsureCreatedAsync().GetAwaiter().GetResult();
    return services;
});
builder.Services.AddSingleton(sp => sp.GetRequiredService<IngestionServices>().Ingestor);
builder.Services.AddSingleton(sp => sp.GetRequiredService<IngestionServices>().Deletion);
builder.Services.AddSingleton(sp =>
{
    var connection = sp.GetRequiredService<IConfiguration>()["AzureWebJobsStorage"]!;
    var models = new BlobContainerClient(connection, sp.GetRequiredService<IConfiguration>()["ModelContainer"] ?? "models");
    models.CreateIfNotExists();
    return new ModelSwitcher(new ModelRegistry(models));
});
builder.Services.AddSingleton(sp =>
{
    var ingestion = sp.GetRequiredService<IngestionServices>();
    return new RecommendationService(sp.GetRequiredService<ModelSwitcher>(), ingestion.UserStates,
        new CatalogAvailability(ingestion.Catalog), ingestion.Ingestor);
});

builder.Services.AddSingleton(sp =>
{
    var connection = sp.GetRequiredService<IConfiguration>()["AzureWebJobsStorage"]!;
    var rankEvents = new TableClient(connection, "RankEvents");
    rankEvents.CreateIfNotExists();
    var ingestion = sp.GetRequiredService<IngestionServices>();
    return new PersonalizerService(sp.GetRequiredService<ModelSwitcher>(), ingestion.UserStates, rankEvents, ingestion.Ingestor);
});

builder.Build().Run();
