using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Parquet;
using Parquet.Serialization;

namespace Recommender.Ingestion;

/// <summary>
/// The append-only event log: one Parquet blob per delivery, never overwritten. A blob's name comes
/// from its delivery, so writing the same delivery twice finds the blob there and writes nothing.
/// </summary>
public sealed class EventLog(BlobContainerClient container)
{
    private static readonly ParquetOptions Options = new() { CompressionMethod = CompressionMethod.Snappy };

    /// <summary>Blob metadata holding the number of events in the blob, so new data is counted from a listing alone.</summary>
    public const string EventCountMetadata = "events";

    public BlobContainerClient Container => container;

    /// <summary>Events in the log blobs written at or after <paramref name="since"/>, counted from blob metadata (one listing, no downloads).</summary>
    public async Task<long> CountEventsWrittenSinceAsync(DateTimeOffset since, CancellationToken cancellationToken = default)
    {
        long count = 0;
        await foreach (var blob in container.GetBlobsAsync(new GetBlobsOptions { Prefix = StorageLayout.EventLogPrefix, Traits = BlobTraits.Metadata }, cancellationToken))
        {
            if (blob.Properties.LastModified >= since && blob.Metadata.TryGetValue(EventCountMetadata, out var n) && long.TryParse(n, System.Globalization.CultureInfo.InvariantCulture, out var events))
                count += events;
        }
        return count;
    }

    /// <summary>Writes the blob unless it exists. Returns false when it was already there (a redelivery).</summary>
    public async Task<bool> AppendAsync(string blobName, IReadOnlyCollection<EventLogRecord> records, CancellationToken cancellationToken = default)
    {
        using var buffer = new MemoryStream();
        await ParquetSerializer.SerializeAsync(records, buffer, Options, cancellationToken: cancellationToken);
        return await container.GetBlobClient(blobName).UploadIfAbsentAsync(new BinaryData(buffer.GetBuffer().AsMemory(0, (int)buffer.Length)),
            new Dictionary<string, string> { [EventCountMetadata] = records.Count.ToString(System.Globalization.CultureInfo.InvariantCulture) },
            cancellationToken);
    }

    public async Task<bool> ExistsAsync(string blobName, CancellationToken cancellationToken = default) =>
        (await container.GetBlobClient(blobName).ExistsAsync(cancellationToken)).Value;

    public async Task<IList<EventLogRecord>> ReadBlobAsync(string blobName, CancellationToken cancellationToken = default)
    {
        var download = await container.GetBlobClient(blobName).DownloadContentAsync(cancellationToken);
        using var stream = download.Value.Content.ToStream();
        return await ReadParquetAsync(stream, cancellationToken);
    }

    /// <summary>The names of the log's blobs in name (and so hour) order.</summary>
    public async IAsyncEnumerable<BlobItem> ListBlobsAsync(string prefix = StorageLayout.EventLogPrefix,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await foreach (var blob in container.GetBlobsAsync(new GetBlobsOptions { Prefix = prefix }, cancellationToken))
        {
            yield return blob;
        }
    }

    public static async Task<IList<EventLogRecord>> ReadParquetAsync(Stream stream, CancellationToken cancellationToken = default) =>
        (await ParquetSerializer.DeserializeAsync<EventLogRecord>(stream, cancellationToken: cancellationToken)).Data;
}
