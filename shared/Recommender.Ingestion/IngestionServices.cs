using Azure.Data.Tables;
using Azure.Storage.Blobs;
using Recommender.EventLog;
using Recommender.Events;
using Recommender.Storage;

namespace Recommender.Ingestion;

/// <summary>
/// Builds the ingestion clients over one storage account and creates their containers and tables.
/// The Functions app, the local host, the tests and the benchmark all start here.
/// </summary>
public sealed class IngestionServices
{
    public IngestionServices(BlobServiceClient blobs, TableServiceClient tables, StorageLayout? layout = null, EventLimits? limits = null, TimeProvider? time = null,
        UserStateStoreOptions? userStates = null)
    {
        Layout = layout ?? StorageLayout.Default;
        EventLog = new EventLogStore(blobs.GetBlobContainerClient(Layout.EventLogContainer));
        DeadLetters = new DeadLetterStore(blobs.GetBlobContainerClient(Layout.DeadLetterContainer));
        Ledger = new DeliveryLedger(blobs.GetBlobContainerClient(Layout.IngestStateContainer));
        UserStates = new UserStateStore(tables.GetTableClient(Layout.UserStateTable), userStates, time);
        Catalog = new CatalogStore(tables.GetTableClient(Layout.CatalogTable), tables.GetTableClient(Layout.UserProfileTable), time: time);
        Tombstones = new TombstoneStore(tables.GetTableClient(Layout.TombstoneTable));
        Parser = new EventParser(limits);
        Ingestor = new EventIngestor(Parser, EventLog, DeadLetters, Catalog, UserStates, Ledger, Tombstones, time);
        Deletion = new UserDataDeletion(Tombstones, UserStates, Catalog, time);
        SnapshotReader = new EventLogSnapshotReader(EventLog, Tombstones);
        Snapshots = new TrainingSnapshotStore(blobs.GetBlobContainerClient(Layout.TrainingContainer), SnapshotReader, Catalog);
        Locks = blobs.GetBlobContainerClient(Layout.IngestStateContainer);
        _blobs = blobs;
        _tables = tables;
    }

    /// <summary>Over the account that <paramref name="storage"/> names (see <see cref="StorageAccount.Connect"/>; <c>UseDevelopmentStorage=true</c> for Azurite).</summary>
    public static IngestionServices Connect(string storage, StorageLayout? layout = null, Azure.Core.Pipeline.HttpPipelinePolicy? policy = null,
        UserStateStoreOptions? userStates = null)
    {
        var account = StorageAccount.Connect(storage, policy: policy);
        return new(account.Blobs, account.Tables, layout, userStates: userStates);
    }

    private readonly BlobServiceClient _blobs;
    private readonly TableServiceClient _tables;

    public StorageLayout Layout { get; }
    public EventParser Parser { get; }
    public EventLogStore EventLog { get; }
    public DeadLetterStore DeadLetters { get; }
    public DeliveryLedger Ledger { get; }
    public UserStateStore UserStates { get; }
    public CatalogStore Catalog { get; }
    public TombstoneStore Tombstones { get; }
    public EventIngestor Ingestor { get; }
    public UserDataDeletion Deletion { get; }
    public EventLogSnapshotReader SnapshotReader { get; }
    public TrainingSnapshotStore Snapshots { get; }
    /// <summary>Where <see cref="BlobMutex"/> locks of ingestion's jobs (the purge) live: the ingest-state container.</summary>
    public BlobContainerClient Locks { get; }

    /// <summary>The stores of ingestion that keep copies of users' events, for <see cref="UserDataPurge"/>.</summary>
    public IReadOnlyList<IUserDataHolder> UserDataHolders => [EventLog, DeadLetters, Snapshots];

    /// <summary>Creates every container and table that ingestion writes to; safe to call at every start.</summary>
    public async Task EnsureCreatedAsync(CancellationToken cancellationToken = default)
    {
        foreach (var container in new[] { Layout.EventLogContainer, Layout.DeadLetterContainer, Layout.IngestStateContainer, Layout.TrainingContainer })
        {
            await _blobs.GetBlobContainerClient(container).CreateIfNotExistsAsync(cancellationToken: cancellationToken);
        }
        foreach (var table in new[] { Layout.UserStateTable, Layout.CatalogTable, Layout.UserProfileTable, Layout.TombstoneTable })
        {
            await _tables.GetTableClient(table).CreateIfNotExistsAsync(cancellationToken);
        }
    }
}
