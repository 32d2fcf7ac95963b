using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;

namespace Recommender.Storage;

/// <summary>
/// The write-once blob: uploaded with <c>If-None-Match: *</c>, so a second writer (a retry, a redelivery,
/// a concurrent instance) finds it there and writes nothing. Event-log blobs, dead letters, ledgers,
/// snapshots and model versions are all written this way.
/// </summary>
public static class BlobWriteOnce
{
    /// <summary>Uploads <paramref name="content"/> unless the blob exists. Returns false when it was already there.</summary>
    public static async Task<bool> UploadIfAbsentAsync(this BlobClient blob, BinaryData content, IDictionary<string, string>? metadata = null, CancellationToken cancellationToken = default)
    {
        try
        {
            await blob.UploadAsync(content, new BlobUploadOptions
            {
                Conditions = new BlobRequestConditions { IfNoneMatch = ETag.All },
                Metadata = metadata,
            }, cancellationToken);
            return true;
        }
        catch (RequestFailedException ex) when (ex.Status is 409 or 412)
        {
            return false; // 412: it exists; 409: it exists and is leased
        }
    }
}
