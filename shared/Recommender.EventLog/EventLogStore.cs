using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Parquet;
using Parquet.Serialization;
using Recommender.Storage;

namespace Recommender.EventLog;

/// <summary>
/// The append-only event log: one Parquet blob per delivery. A blob's name comes from its delivery, so writing the
/// same delivery twice finds the blob there and writes nothing. The one rewrite is the purge of deleted users
/// (<see cref="PurgeAsync"/>): the blob is replaced in place, whole, so a reader sees the old rows or the new ones, and
/// a redelivery still finds its blob and writes nothing.
/// </summary>
public sealed class EventLogStore(BlobContainerClient container) : IUserDataHolder
{
    private static readonly ParquetOptions Options = new() { CompressionMethod = CompressionMethod.Snappy };
    private static readonly Microsoft.IO.RecyclableMemoryStreamManager Buffers = new();

    /// <summary>Blob metadata holding the number of events in the blob, so new data is counted from a listing alone.</summary>
    public const string EventCountMetadata = "events";

    /// <summary>Blob metadata holding when a rewritten blob was first written (its last-modified time is the rewrite's).</summary>
    public const string WrittenMetadata = "written";

    public BlobContainerClient Container => container;

    /// <summary>When the blob's events were ingested: its first write, which a purge's rewrite keeps.</summary>
    public static DateTimeOffset WrittenAt(BlobItem blob) =>
        blob.Metadata is { } metadata && metadata.TryGetValue(WrittenMetadata, out var written)
            && DateTimeOffset.TryParse(written, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.RoundtripKind, out var at)
            ? at
            : blob.Properties.LastModified!.Value;

    /// <summary>Events in the log blobs written at or after <paramref name="since"/>, counted from blob metadata (one listing, no downloads).</summary>
    public async Task<long> CountEventsWrittenSinceAsync(DateTimeOffset since, CancellationToken cancellationToken = default)
    {
        long count = 0;
        await foreach (var blob in container.GetBlobsAsync(new GetBlobsOptions { Prefix = StorageLayout.EventLogPrefix, Traits = BlobTraits.Metadata }, cancellationToken))
        {
            if (WrittenAt(blob) >= since && blob.Metadata.TryGetValue(EventCountMetadata, out var n) && long.TryParse(n, System.Globalization.CultureInfo.InvariantCulture, out var events))
                count += events;
        }
        return count;
    }

    /// <summary>
    /// Writes the blob unless it exists: the rows of one delivery, those added from events with its key and ingestion time.
    /// Returns false when it was already there (a redelivery).
    /// </summary>
    public async Task<bool> AppendAsync(string blobName, EventLogColumns rows, string deliveryKey, DateTimeOffset ingestedAt, CancellationToken cancellationToken = default)
    {
        using var buffer = await SerializeAsync(rows, deliveryKey, ingestedAt, cancellationToken);
        return await container.GetBlobClient(blobName).UploadIfAbsentAsync(new BinaryData(buffer.GetBuffer().AsMemory(0, (int)buffer.Length)),
            new Dictionary<string, string> { [EventCountMetadata] = rows.Count.ToString(System.Globalization.CultureInfo.InvariantCulture) },
            cancellationToken);
    }

    /// <summary>Rows as a Parquet blob, in a pooled buffer: a blob is a megabyte or more, and a fresh MemoryStream doubling up to
    /// it would put a new large object on the collector's large-object heap at every write (full collections under serving's load).</summary>
    public static async Task<Microsoft.IO.RecyclableMemoryStream> SerializeAsync(EventLogColumns rows, string? deliveryKey, DateTimeOffset ingestedAt, CancellationToken cancellationToken)
    {
        var buffer = Buffers.GetStream("event-log-blob");
        try
        {
            await rows.WriteAsync(buffer, Options, deliveryKey, ingestedAt, cancellationToken);
            return buffer;
        }
        catch
        {
            await buffer.DisposeAsync();
            throw;
        }
    }

    public async Task<bool> ExistsAsync(string blobName, CancellationToken cancellationToken = default) =>
        (await container.GetBlobClient(blobName).ExistsAsync(cancellationToken)).Value;

    public async Task<IList<EventLogRecord>> ReadBlobAsync(string blobName, CancellationToken cancellationToken = default) =>
        (await ReadBlobVersionAsync(blobName, cancellationToken)).Records;

    private async Task<(IList<EventLogRecord> Records, ETag ETag)> ReadBlobVersionAsync(string blobName, CancellationToken cancellationToken)
    {
        var download = await container.GetBlobClient(blobName).DownloadContentAsync(cancellationToken);
        using var stream = download.Value.Content.ToStream();
        return (await ReadParquetAsync(stream, cancellationToken), download.Value.Details.ETag);
    }

    /// <summary>
    /// Rewrites every log blob that holds events of the deleted users without them, in place and only if unchanged since
    /// it was read; a blob left with no rows stays, empty, as the mark that its delivery was ingested.
    /// </summary>
    public async Task PurgeAsync(TombstoneSet due, PurgeTally tally, CancellationToken cancellationToken)
    {
        var blobs = new List<BlobItem>();
        await foreach (var blob in ListBlobsAsync(cancellationToken: cancellationToken))
            blobs.Add(blob);
        await Parallel.ForEachAsync(blobs, new ParallelOptions { MaxDegreeOfParallelism = EventLogSnapshotReader.ConcurrentReads, CancellationToken = cancellationToken },
            async (blob, ct) =>
            {
                var (records, etag) = await ReadBlobVersionAsync(blob.Name, ct);
                var kept = records.Where(r => !due.Covers(r.UserId, r.IngestedAt)).ToList();
                if (kept.Count == records.Count)
                    return;
                using var rows = new EventLogColumns(kept.Count);
                foreach (var record in kept)
                    rows.Add(record);
                using var buffer = await SerializeAsync(rows, null, default, ct);
                var metadata = new Dictionary<string, string>(blob.Metadata ?? new Dictionary<string, string>())
                {
                    [EventCountMetadata] = kept.Count.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    [WrittenMetadata] = WrittenAt(blob).ToString("O", System.Globalization.CultureInfo.InvariantCulture),
                };
                // If-Match: purges run one at a time, so the blob cannot have changed; a failure here is a bug to see, not to retry.
                await container.GetBlobClient(blob.Name).UploadAsync(new BinaryData(buffer.GetBuffer().AsMemory(0, (int)buffer.Length)),
                    new BlobUploadOptions { Metadata = metadata, Conditions = new BlobRequestConditions { IfMatch = etag } }, ct);
                foreach (var record in records.Where(r => due.Covers(r.UserId, r.IngestedAt)))
                    tally.Add(due.Find(record.UserId)!, "logEvents");
            });
    }

    /// <summary>The log's blobs (with their metadata) in name (and so hour) order.</summary>
    public async IAsyncEnumerable<BlobItem> ListBlobsAsync(string prefix = StorageLayout.EventLogPrefix,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await foreach (var blob in container.GetBlobsAsync(new GetBlobsOptions { Prefix = prefix, Traits = BlobTraits.Metadata }, cancellationToken))
        {
            yield return blob;
        }
    }

    public static async Task<IList<EventLogRecord>> ReadParquetAsync(Stream stream, CancellationToken cancellationToken = default) =>
        (await ParquetSerializer.DeserializeAsync<EventLogRecord>(stream, cancellationToken: cancellationToken)).Data;
}
