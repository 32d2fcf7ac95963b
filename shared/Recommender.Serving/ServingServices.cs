using Azure.Data.Tables;
using Azure.Storage.Blobs;
using Microsoft.Extensions.Logging;
using Recommender.Events;
using Recommender.Ingestion;
using Recommender.ModelContract;
using Recommender.Storage;

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
        RecommendationOptions? recommendation = null, TimeProvider? time = null, ILoggerFactory? logs = null, BatchingSinkOptions? sinks = null,
        UserDataPurgeOptions? purge = null)
    {
        Models = models;
        RankEvents = rankEvents;
        Registry = new ModelRegistry(models);
        Switcher = new ModelSwitcher(Registry);
        // A slate is one entry, its events built when its batch is written; the slates reach the users' state through the
        // shown-slates writer (several per row write), so the batch leaves their impressions out of the state.
        Impressions = new BatchingSink<ServingLogEntry>("impressions",
            (entries, ct) => ingestion.Ingestor.IngestEventsAsync(entries.SelectMany(e => e.ToEvents()), ct, impressionsNotedAsShown: true),
            sinks, logs?.CreateLogger("Recommender.Impressions"));
        ShownSlates = new ShownSlatesWriter(ingestion.UserStates, logs?.CreateLogger("Recommender.ShownSlates"));
        Recommendations = new RecommendationService(Switcher, ingestion.UserStates, new CatalogAvailability(ingestion.Catalog), Impressions, recommendation,
            profiles: ingestion.Catalog);
        PersonalizerState = new PersonalizerStore(models, time);
        Ranks = new RankEventTable(rankEvents, sinks, logs?.CreateLogger("Recommender.Personalizer"));
        Personalizer = new PersonalizerService(Switcher, ingestion.UserStates, Ranks, ingestion.Ingestor, Impressions, PersonalizerState, time);
        PersonalizerLearner = new PersonalizerLearner(PersonalizerState, Ranks, time);
        PersonalizerLog = new PersonalizerLog(Ranks);
        PersonalizerEvaluations = new PersonalizerEvaluations(models, Ranks, PersonalizerState, time);
        PersonalizerLearningMetrics = new PersonalizerLearningMetrics(PersonalizerState, Ranks, time);
        // Snapshots before the registry: the registry marks the models trained on the snapshots the purge deleted.
        _purge = new UserDataPurge(ingestion.Tombstones, [.. ingestion.UserDataHolders, Ranks, Registry], ingestion.Locks, purge, time,
            logs?.CreateLogger("Recommender.Purge"));
        _deletion = ingestion.Deletion;
    }

    private readonly UserDataPurge _purge;
    private readonly UserDataDeletion _deletion;

    /// <summary>When purges run and the bound on how long a deleted user's data stays in storage.</summary>
    public UserDataPurgeOptions PurgeOptions => _purge.Options;

    /// <summary>
    /// Removes from storage the data of users deleted at least the grace period ago (see <see cref="UserDataPurge"/>), after
    /// writing what this process still holds in its sinks.
    /// </summary>
    public async Task<PurgeRun> PurgeDeletedUsersAsync(CancellationToken cancellationToken = default)
    {
        await FlushAsync(cancellationToken);
        return await _purge.RunAsync(cancellationToken);
    }

    /// <summary>
    /// Deletes a user (<see cref="UserDataDeletion"/>) after writing what this process still holds in its sinks, so the
    /// slates it showed the user a moment ago are ingested before the deletion and go with the rest. Another instance's
    /// sinks write within their delay; what they write after the deletion counts as the user's new history.
    /// </summary>
    public async Task<DateTimeOffset> DeleteUserAsync(string userId, CancellationToken cancellationToken = default)
    {
        await FlushAsync(cancellationToken);
        return await _deletion.DeleteAsync(userId, cancellationToken);
    }

    /// <summary>Where the deletion of a user stands: null when the user was never deleted.</summary>
    public async Task<DeletionStatus?> GetDeletionStatusAsync(string userId, CancellationToken cancellationToken = default) =>
        await _deletion.GetStatusAsync(userId, _purge.Options, cancellationToken);

    /// <summary>Over the account that <paramref name="storage"/> names (see <see cref="StorageAccount.Connect"/>; <c>UseDevelopmentStorage=true</c> for Azurite).</summary>
    public static ServingServices Connect(string storage, IngestionServices ingestion, string modelContainer = "models", string rankEventTable = "RankEvents",
        ILoggerFactory? logs = null, BatchingSinkOptions? sinks = null, UserDataPurgeOptions? purge = null, Azure.Core.Pipeline.HttpPipelinePolicy? policy = null)
    {
        var account = StorageAccount.Connect(storage, policy: policy);
        return new(ingestion, account.Blobs.GetBlobContainerClient(modelContainer), account.Tables.GetTableClient(rankEventTable), logs: logs, sinks: sinks, purge: purge);
    }

    /// <summary>The impressions of every served slate (recommendations and Personalizer's ranks) and Personalizer's rewards, on their way into the event log.</summary>
    public BatchingSink<ServingLogEntry> Impressions { get; }

    /// <summary>Writes the slates served into the users' state, several per row write.</summary>
    public ShownSlatesWriter ShownSlates { get; }

    /// <summary>Writes now everything serving has logged so far: Personalizer's rank records, the impressions, the slates shown into the users' state.</summary>
    public async Task FlushAsync(CancellationToken cancellationToken = default)
    {
        await Ranks.FlushAsync(cancellationToken);
        await Impressions.FlushAsync(cancellationToken);
        await ShownSlates.FlushAsync(cancellationToken);
    }

    /// <summary>Stops the sinks after writing what they hold.</summary>
    public async ValueTask DisposeAsync()
    {
        await Ranks.DisposeAsync();
        await Impressions.DisposeAsync();
        await ShownSlates.DisposeAsync();
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
    public PersonalizerLearningMetrics PersonalizerLearningMetrics { get; }

    /// <summary>Creates the model container and the rank-event table; safe to call at every start.</summary>
    public async Task EnsureCreatedAsync(CancellationToken cancellationToken = default)
    {
        await Models.CreateIfNotExistsAsync(cancellationToken: cancellationToken);
        await RankEvents.CreateIfNotExistsAsync(cancellationToken);
    }
}
