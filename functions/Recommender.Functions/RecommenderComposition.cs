using Azure.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Recommender.Ingestion;
using Recommender.ModelContract;
using Recommender.Orchestration;
using Recommender.Serving;
using Recommender.Storage;

namespace Recommender.Functions;

/// <summary>
/// The one composition root: every service the functions use, wired from configuration. The Functions app and the
/// local host both call <see cref="AddRecommender"/>; only what differs between them (telemetry, the Durable backend,
/// how timers run) stays in their own Program.
/// </summary>
/// <remarks>
/// Settings: <c>AzureWebJobsStorage</c> (or <c>AzureWebJobsStorage__accountName</c>, with the app's identity);
/// <c>Storage:Namespace</c> (a tag on every container and table, for a product of its own in a shared account);
/// <c>ModelContainer</c>; <c>Serving:Sinks:*</c> (<see cref="BatchingSinkOptions"/>); <c>UserState:*</c> (<see cref="UserStateStoreOptions"/>); <c>Purge:*</c> (<see cref="UserDataPurgeOptions"/>); <c>Personalizer:SubscriptionKeys</c>;
/// <c>TrainingJob:*</c> and <c>Retraining:*</c> (<see cref="RetrainingConfiguration"/>).
/// </remarks>
public static class RecommenderComposition
{
    public static IServiceCollection AddRecommender(this IServiceCollection services, IConfiguration configuration, TokenCredential? credential = null)
    {
        var storage = StorageAccount.FromFunctionsSetting(key => configuration[key]);
        var tag = configuration["Storage:Namespace"];
        var layout = string.IsNullOrEmpty(tag) ? StorageLayout.Default : StorageLayout.Default.WithNamespace(tag);
        var modelContainer = configuration["ModelContainer"] ?? (string.IsNullOrEmpty(tag) ? "models" : "models-" + tag);
        var rankEventTable = string.IsNullOrEmpty(tag) ? "RankEvents" : "RankEvents" + tag;
        // Storage:FaultInjection=true: outages and latency on demand in every storage request (the soak benchmark's host only).
        var faults = configuration.GetValue<bool>("Storage:FaultInjection") ? new InjectedStorageFaults() : null;
        if (faults is not null)
            services.AddSingleton(faults);

        services.AddSingleton(_ =>
        {
            var ingestion = IngestionServices.Connect(storage, layout, faults, configuration.GetSection("UserState").Get<UserStateStoreOptions>());
            ingestion.EnsureCreatedAsync().GetAwaiter().GetResult();
            return ingestion;
        });
        services.AddSingleton(sp => sp.GetRequiredService<IngestionServices>().Ingestor);
        services.AddSingleton(sp =>
        {
            var serving = ServingServices.Connect(storage, sp.GetRequiredService<IngestionServices>(), modelContainer, rankEventTable,
                sp.GetRequiredService<ILoggerFactory>(), configuration.GetSection("Serving:Sinks").Get<BatchingSinkOptions>(),
                configuration.GetSection("Purge").Get<UserDataPurgeOptions>(), faults);
            serving.EnsureCreatedAsync().GetAwaiter().GetResult();
            return serving;
        });
        services.AddHostedService<ServingLifetime>();
        services.AddSingleton(sp => sp.GetRequiredService<ServingServices>().Recommendations);
        services.AddSingleton(sp => sp.GetRequiredService<ServingServices>().Personalizer);
        services.AddSingleton(sp => sp.GetRequiredService<ServingServices>().PersonalizerLearner);
        services.AddSingleton(sp => sp.GetRequiredService<ServingServices>().PersonalizerLog);
        services.AddSingleton(sp => sp.GetRequiredService<ServingServices>().PersonalizerEvaluations);
        services.AddSingleton(sp => sp.GetRequiredService<ServingServices>().PersonalizerLearningMetrics);
        services.AddSingleton(sp => sp.GetRequiredService<ServingServices>().Registry);
        // Personalizer's keys: in Azure a Key Vault reference (infra/resources.bicep); unset is development mode.
        services.AddSingleton(sp =>
        {
            var keys = SubscriptionKeys.From(configuration["Personalizer:SubscriptionKeys"]);
            var log = sp.GetRequiredService<ILoggerFactory>().CreateLogger("Personalizer");
            if (keys.DevelopmentMode)
                log.LogWarning("No Personalizer:SubscriptionKeys configured: /personalizer/v1.0 accepts any Ocp-Apim-Subscription-Key (development mode)");
            if (keys.Closed)
                log.LogError("Personalizer:SubscriptionKeys is a Key Vault reference that did not resolve: every Personalizer request is refused until the secret exists");
            return keys;
        });

        // The learning loop: the launcher named by TrainingJob:Launcher (a Container Apps job in Azure, with the app's
        // identity; a local process here), told where this product's snapshots and models are; the orchestration's steps and its triggers.
        services.AddSingleton(sp => new RetrainingSteps(sp.GetRequiredService<IngestionServices>().Snapshots, sp.GetRequiredService<ModelRegistry>(),
            RetrainingConfiguration.Launcher(configuration, storage, credential, jobSettings: ["--snapshot-container", layout.TrainingContainer, "--container", modelContainer])));
        services.AddSingleton(sp =>
        {
            var ingestion = sp.GetRequiredService<IngestionServices>();
            return new RetrainingTrigger(RetrainingConfiguration.TriggerOptions(configuration), ingestion.EventLog, ingestion.Snapshots);
        });
        return services;
    }
}
