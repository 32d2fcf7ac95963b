using Azure.Data.Tables;
using Azure.Storage.Blobs;
using Microsoft.Extensions.Logging;
using Recommender.Events;
using Recommender.Ingestion;

namespace Recommender.Serving;

/// <summary>
/// Builds the serving clients over one storage account, beside <see cref="IngestionServices"/>: the model
/// registry and switcher, recommendations and the Personalizer API, and the sinks that write what serving logs
/// behind the request path. The Functions app, the local host and the tests all start here; disposing flushes
/// the sinks (the hosts do it at shutdown).
/// </summary>
public sealed class ServingServices : IAsyncDisposable
{
    public ServingServices(IngestionServices ingestion, BlobContainerClient models, TableClient rankEvents,
        RecommendationOptions? recommendation = null, TimeProvider? time = null, ILoggerFactory? logs = null, BatchingSinkOptions? sinks = null)
    {
        Models = models;
        RankEvents = rankEvents;
        Registry = new ModelRegistry(models);
        Switcher = new ModelSwitcher(Registry);
        // One slate per item, so a batch never splits a slate (the user state applies a slate once, whole).
        Impressions = new BatchingSink<IReadOnlyList<WireEvent>>("impressions",
            (slates, ct) => ingestion.Ingestor.IngestEventsAsync(slates.SelectMany(s => s).ToList(), ct), sinks, logs?.CreateLogger("Recommender.Impressions"));
        Recommendations = new RecommendationService(Switcher, ingestion.UserStates, new CatalogAvailability(ingestion.Catalog), Impressions, recommendation,
            profiles: ingestion.Catalog);
        PersonalizerState = new PersonalizerStore(models, time);
        Ranks = new RankEventTable(rankEvents, sinks, logs?.CreateLogger("Recommender.Personalizer"));
        Personalizer = new PersonalizerService(Switcher, ingestion.UserStates, Ranks, ingestion.Ingestor, Impressions, PersonalizerState, time);
        PersonalizerLearner = new PersonalizerLearner(PersonalizerState, Ranks, time);
        PersonalizerLog = new PersonalizerLog(Ranks);
        PersonalizerEvaluations = new PersonalizerEvaluations(models, Ranks, PersonalizerState, time);
    }

    /// <summary>Over the account that <paramref name="storage"/> names (see <see cref="StorageAccount.Connect"/>; <c>UseDevelopmentStorage=true</c> for Azurite).</summary>
    public static ServingServices Connect(string storage, IngestionServices ingestion, string modelContainer = "models", string rankEventTable = "RankEvents",
        ILoggerFactory? logs = null, BatchingSinkOptions? sinks = null)
    {
        var account = StorageAccount.Connect(storage);
        return new(ingestion, account.Blobs.GetBlobContainerClient(modelContainer), account.Tables.GetTableClient(rankEventTable), logs: logs, sinks: sinks);
    }

    /// <summary>The impressions of every served slate (recommendations and Personalizer's ranks), on their way into the event log.</summary>
    public BatchingSink<IReadOnlyList<WireEvent>> Impressions { get; }

    /// <summary>Writes now everything serving has logged so far: Personalizer's rank records, then the impressions.</summary>
    public async Task FlushAsync(CancellationToken cancellationToken = default)
    {
        await Ranks.FlushAsync(cancellationToken);
        await Impressions.FlushAsync(cancellationToken);
    }

    /// <summary>Stops the sinks after writing what they hold.</summary>
    public async ValueTask DisposeAsync()
    {
        await Ranks.DisposeAsync();
        await Impressions.DisposeAsync();
    }

    public BlobContainerClient Models { get; }
    public TableClient RankEvents { get; }
    public ModelRegistry Registry { get; }
    public ModelSwitcher Switcher { get; }
    public RecommendationService Recommendations { get; }
    public PersonalizerService Personalizer { get; }
    /// <summary>Personalizer's rank records, written behind the Rank requests.</summary>
    public RankEventTable Ranks { get; }
    /// <summary>Personalizer's configuration, policy and learned model, in the model container under <c>personalizer/</c>.</summary>
    public PersonalizerStore PersonalizerState { get; }
    public PersonalizerLearner PersonalizerLearner { get; }
    public PersonalizerLog PersonalizerLog { get; }
    public PersonalizerEvaluations PersonalizerEvaluations { get; }

    /// <summary>Creates the model container and the rank-event table; safe to call at every start.</summary>
    public async Task EnsureCreatedAsync(CancellationToken cancellationToken = default)
    {
        await Models.CreateIfNotExistsAsync(cancellationToken: cancellationToken);
        await RankEvents.CreateIfNotExistsAsync(cancellationToken);
    }
}
