using Azure.Core;
using Azure.Core.Pipeline;
using Azure.Data.Tables;
using Azure.Storage.Blobs;
using Recommender.Events;
using Recommender.Ingestion;
using Recommender.Storage;

namespace Recommender.TestSupport;

/// <summary>
/// Tests talk to a real Azurite on 127.0.0.1 (started by <c>scripts/azurite.sh start</c>). Each test
/// gets containers and tables of its own, so tests run in parallel without seeing each other.
/// </summary>
public static class Azurite
{
    public const string ConnectionString = "UseDevelopmentStorage=true";

    public static StorageLayout UniqueLayout()
    {
        var id = Guid.NewGuid().ToString("N")[..12];
        return new StorageLayout
        {
            EventLogContainer = $"eventlog-{id}",
            DeadLetterContainer = $"deadletter-{id}",
            IngestStateContainer = $"ingest-{id}",
            UserStateTable = $"UserState{id}",
            UserProfileTable = $"UserProfiles{id}",
            CatalogTable = $"Catalog{id}",
            TombstoneTable = $"Tombstones{id}",
            TrainingContainer = $"training-{id}",
        };
    }

    /// <summary>
    /// Ingestion over Azurite, with its containers and tables created. <paramref name="fault"/> (if any)
    /// sits in the pipeline of every request the returned services make (not of the set-up), and SDK
    /// retries are off so that a fault surfaces.
    /// </summary>
    public static async Task<IngestionServices> CreateServicesAsync(StorageLayout? layout = null, HttpPipelinePolicy? fault = null, TimeProvider? time = null,
        UserStateStoreOptions? userStates = null)
    {
        layout ??= UniqueLayout();
        var healthy = new IngestionServices(new BlobServiceClient(ConnectionString), new TableServiceClient(ConnectionString), layout, EventLimits.Default, time, userStates);
        try
        {
            await healthy.EnsureCreatedAsync();
        }
        catch (Exception ex) when (ex is Azure.RequestFailedException or AggregateException or HttpRequestException)
        {
            throw new InvalidOperationException("Azurite is not reachable on 127.0.0.1:10000-10002; run scripts/azurite.sh start", ex);
        }
        if (fault is null)
            return healthy;

        var blobOptions = new BlobClientOptions();
        var tableOptions = new TableClientOptions();
        blobOptions.Retry.MaxRetries = 0;
        tableOptions.Retry.MaxRetries = 0;
        blobOptions.AddPolicy(fault, HttpPipelinePosition.PerRetry);
        tableOptions.AddPolicy(fault, HttpPipelinePosition.PerRetry);
        return new IngestionServices(new BlobServiceClient(ConnectionString, blobOptions), new TableServiceClient(ConnectionString, tableOptions), layout, EventLimits.Default, time, userStates);
    }

    /// <summary>Ends an Event Hubs partition's ledger lease now, as its expiry would after a crashed instance's 60 seconds.</summary>
    public static async Task ExpireLedgerLeaseAsync(StorageLayout layout, string consumerGroup, string partitionId)
    {
        var blob = new BlobServiceClient(ConnectionString).GetBlobContainerClient(layout.IngestStateContainer)
            .GetBlobClient(StorageLayout.LedgerBlobName(consumerGroup, partitionId));
        try
        {
            await Azure.Storage.Blobs.Specialized.SpecializedBlobExtensions.GetBlobLeaseClient(blob).BreakAsync(TimeSpan.Zero);
        }
        catch (Azure.RequestFailedException ex) when (ex.Status is 404 or 409)
        {
            // No ledger yet, or not leased: nothing to expire.
        }
    }
}

/// <summary>
/// Makes storage unreachable after a number of requests, as a dropped connection would: the request
/// never reaches Azurite and the caller gets a transport error.
/// </summary>
public sealed class StorageOutage(int failAfterRequests) : HttpPipelinePolicy
{
    private int _requests;

    public bool Down => Volatile.Read(ref _requests) > failAfterRequests;

    public override void Process(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline)
    {
        Check();
        ProcessNext(message, pipeline);
    }

    public override async ValueTask ProcessAsync(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline)
    {
        Check();
        await ProcessNextAsync(message, pipeline);
    }

    private void Check()
    {
        if (Interlocked.Increment(ref _requests) > failAfterRequests)
            throw new Azure.RequestFailedException(0, "storage unreachable (injected outage)");
    }
}
