using Azure.Data.Tables;
using Azure.Storage.Blobs;
using Recommender.Ingestion;

namespace Recommender.Serving;

/// <summary>
/// Builds the serving clients over one storage account, beside <see cref="IngestionServices"/>: the model
/// registry and switcher, recommendations and the Personalizer API. The Functions app, the local host and
/// the tests all start here.
/// </summary>
public sealed class ServingServices
{
    public ServingServices(IngestionServices ingestion, BlobContainerClient models, TableClient rankEvents,
        RecommendationOptions? recommendation = null, TimeProvider? time = null)
    {
        Models = models;
        RankEvents = rankEvents;
        Registry = new ModelRegistry(models);
        Switcher = new ModelSwitcher(Registry);
        Recommendations = new RecommendationService(Switcher, ingestion.UserStates, new CatalogAvailability(ingestion.Catalog), ingestion.Ingestor, recommendation,
            profiles: ingestion.Catalog);
        PersonalizerState = new PersonalizerStore(models, time);
        Personalizer = new PersonalizerService(Switcher, ingestion.UserStates, rankEvents, ingestion.Ingestor, PersonalizerState, time);
        PersonalizerLearner = new PersonalizerLearner(PersonalizerState, rankEvents, time);
        PersonalizerLog = new PersonalizerLog(rankEvents);
        PersonalizerEvaluations = new PersonalizerEvaluations(models, rankEvents, PersonalizerState, time);
    }

    /// <summary>Over the account that <paramref name="storage"/> names (see <see cref="StorageAccount.Connect"/>; <c>UseDevelopmentStorage=true</c> for Azurite).</summary>
    public static ServingServices Connect(string storage, IngestionServices ingestion, string modelContainer = "models", string rankEventTable = "RankEvents")
    {
        var account = StorageAccount.Connect(storage);
        return new(ingestion, account.Blobs.GetBlobContainerClient(modelContainer), account.Tables.GetTableClient(rankEventTable));
    }

    public BlobContainerClient Models { get; }
    public TableClient RankEvents { get; }
    public ModelRegistry Registry { get; }
    public ModelSwitcher Switcher { get; }
    public RecommendationService Recommendations { get; }
    public PersonalizerService Personalizer { get; }
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
