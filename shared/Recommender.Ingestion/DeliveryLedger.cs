using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Serialization;
using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Azure.Storage.Blobs.Specialized;
using Recommender.Storage;

namespace Recommender.Ingestion;

/// <summary>A delivery that was started but not yet committed: its effects may be partly applied.</summary>
public sealed record PendingDelivery(string DeliveryKey, string EventLogBlobName, long FirstSequenceNumber, long LastSequenceNumber);

/// <summary>
/// What one Event Hubs partition has ingested: every event up to <see cref="CommittedSequenceNumber"/>
/// is fully applied; <see cref="Pending"/> is the delivery in progress, if any.
/// </summary>
public sealed record LedgerState(long CommittedSequenceNumber, PendingDelivery? Pending)
{
    public static LedgerState Initial { get; } = new(-1, null);
}

/// <summary>Thrown when another instance holds a partition's ledger; the trigger's retry policy tries again later.</summary>
public sealed class PartitionBusyException(string message) : Exception(message);

/// <summary>
/// One small blob per Event Hubs partition (and consumer group). Event Hubs delivers at least once
/// and a redelivery can start at the last checkpoint with different batch boundaries, so the ledger
/// keeps the highest sequence number whose effects are complete, and events at or below it are
/// dropped. A blob lease makes one instance the partition's only writer while it ingests.
/// </summary>
public sealed class DeliveryLedger(BlobContainerClient container)
{
    /// <summary>Blob leases last 15 to 60 seconds; the holder renews it when it is half spent.</summary>
    public static readonly TimeSpan LeaseDuration = TimeSpan.FromSeconds(60);

    // Ledgers this instance has seen exist: the create attempt is skipped for them (one request fewer per batch).
    private readonly ConcurrentDictionary<string, bool> _known = new();

    public async Task<LedgerLease> AcquireAsync(string consumerGroup, string partitionId, CancellationToken cancellationToken = default)
    {
        var name = StorageLayout.LedgerBlobName(consumerGroup, partitionId);
        var blob = container.GetBlobClient(name);
        if (!_known.ContainsKey(name))
        {
            // A ledger that exists (or is leased, which means it exists too) is left as it is.
            await blob.UploadIfAbsentAsync(BinaryData.FromObjectAsJson(LedgerState.Initial, LedgerJsonContext.Default.LedgerState), cancellationToken: cancellationToken);
            _known[name] = true;
        }

        var leaseClient = blob.GetBlobLeaseClient();
        try
        {
            await leaseClient.AcquireAsync(LeaseDuration, cancellationToken: cancellationToken);
        }
        catch (RequestFailedException ex) when (ex.Status == 409)
        {
            throw new PartitionBusyException($"partition {partitionId} of consumer group {consumerGroup} is being ingested by another instance");
        }

        var content = await blob.DownloadContentAsync(new BlobDownloadOptions(), cancellationToken);
        var state = content.Value.Content.ToObjectFromJson(LedgerJsonContext.Default.LedgerState) ?? LedgerState.Initial;
        return new LedgerLease(blob, leaseClient, state);
    }
}

/// <summary>The exclusive right to write one partition's ledger, released on dispose.</summary>
public sealed class LedgerLease(BlobClient blob, BlobLeaseClient lease, LedgerState state) : IAsyncDisposable
{
    private long _leasedAt = Stopwatch.GetTimestamp();

    public LedgerState State { get; private set; } = state;

    public async Task WriteAsync(LedgerState next, CancellationToken cancellationToken = default)
    {
        if (Stopwatch.GetElapsedTime(_leasedAt) > DeliveryLedger.LeaseDuration / 2)
        {
            await lease.RenewAsync(cancellationToken: cancellationToken);
            _leasedAt = Stopwatch.GetTimestamp();
        }
        await blob.UploadAsync(BinaryData.FromObjectAsJson(next, LedgerJsonContext.Default.LedgerState),
            new BlobUploadOptions { Conditions = new BlobRequestConditions { LeaseId = lease.LeaseId } }, cancellationToken);
        State = next;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await lease.ReleaseAsync();
        }
        catch (RequestFailedException)
        {
            // Expired or taken over: nothing to release.
        }
    }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(LedgerState))]
internal sealed partial class LedgerJsonContext : JsonSerializerContext;
