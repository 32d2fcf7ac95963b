using System.Text.Json;
using System.Text.Json.Nodes;
using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Recommender.Storage;

namespace Recommender.ModelContract;

/// <summary>The promoted version and the ETag it was read with (for the next conditional write).</summary>
public sealed record CurrentModel(CurrentModelPointer Pointer, ETag ETag);

/// <summary>
/// Models in Blob Storage: <c>models/{version}/policy.onnx</c> and <c>manifest.json</c>, written once per
/// version; <c>models/current.json</c> names the promoted version and changes only by a conditional
/// write, so two promoters cannot overwrite each other unseen.
/// </summary>
public sealed class ModelRegistry(BlobContainerClient container) : IUserDataHolder
{
    public const string PolicyFile = "policy.onnx";
    public const string ManifestFile = "manifest.json";
    public const string CurrentPointer = "models/current.json";

    public BlobContainerClient Container => container;

    public static string PolicyBlob(string version) => $"models/{version}/{PolicyFile}";

    public static string ManifestBlob(string version) => $"models/{version}/{ManifestFile}";

    public static string TrainingFileBlob(string version, string name) => $"models/{version}/training/{name}";

    /// <summary>A training artifact of a version (<see cref="PublishAsync"/>), or null when it was published without it.</summary>
    public async Task<byte[]?> DownloadTrainingFileAsync(string version, string name, CancellationToken cancellationToken = default)
    {
        try
        {
            return (await container.GetBlobClient(TrainingFileBlob(version, name)).DownloadContentAsync(cancellationToken)).Value.Content.ToArray();
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            return null;
        }
    }

    /// <summary>
    /// Uploads a version, with the training artifacts the next training starts from (<paramref name="trainingFiles"/>,
    /// e.g. the weights, under <c>models/{version}/training/</c>). A version is immutable: publishing an existing one fails.
    /// </summary>
    public async Task PublishAsync(ModelManifest manifest, ReadOnlyMemory<byte> policy, CancellationToken cancellationToken = default,
        IReadOnlyDictionary<string, byte[]>? trainingFiles = null)
    {
        if (!await container.GetBlobClient(PolicyBlob(manifest.Version)).UploadIfAbsentAsync(BinaryData.FromBytes(policy), cancellationToken: cancellationToken))
            throw new InvalidOperationException($"model version {manifest.Version} is already published; versions are immutable");
        foreach (var (name, content) in trainingFiles ?? new Dictionary<string, byte[]>())
            await container.GetBlobClient(TrainingFileBlob(manifest.Version, name)).UploadIfAbsentAsync(BinaryData.FromBytes(content), cancellationToken: cancellationToken);
        // The manifest goes last: a version without one is incomplete and is never promoted.
        if (!await container.GetBlobClient(ManifestBlob(manifest.Version)).UploadIfAbsentAsync(BinaryData.FromBytes(manifest.ToUtf8Json()), cancellationToken: cancellationToken))
            throw new InvalidOperationException($"model version {manifest.Version} is already published; versions are immutable");
    }

    public async Task<CurrentModel?> GetCurrentAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            var content = await container.GetBlobClient(CurrentPointer).DownloadContentAsync(cancellationToken);
            var pointer = JsonSerializer.Deserialize(content.Value.Content.ToMemory().Span, ModelContractJsonContext.Default.CurrentModelPointer)!;
            return new CurrentModel(pointer, content.Value.Details.ETag);
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            return null;
        }
    }

    /// <summary>
    /// Whether the pointer still has <paramref name="etag"/>: one cheap conditional request (304 when unchanged).
    /// </summary>
    public async Task<bool> HasChangedSinceAsync(ETag? etag, CancellationToken cancellationToken = default)
    {
        if (etag is null)
            return (await container.GetBlobClient(CurrentPointer).ExistsAsync(cancellationToken)).Value;
        try
        {
            await container.GetBlobClient(CurrentPointer).GetPropertiesAsync(new BlobRequestConditions { IfNoneMatch = etag }, cancellationToken);
            return true;
        }
        catch (RequestFailedException ex) when (ex.Status == 304)
        {
            return false;
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            return true;
        }
    }

    /// <summary>
    /// Points <c>current.json</c> at <paramref name="version"/> if the pointer is still what the caller last
    /// read (<paramref name="expected"/>; null: there must be no pointer yet). Returns false when someone
    /// else promoted in between.
    /// </summary>
    public async Task<bool> PromoteAsync(string version, CurrentModel? expected, string? reason = null, CancellationToken cancellationToken = default)
    {
        if (!(await container.GetBlobClient(ManifestBlob(version)).ExistsAsync(cancellationToken)).Value)
            throw new InvalidOperationException($"model version {version} is not (completely) published");
        var pointer = new CurrentModelPointer(version, DateTimeOffset.UtcNow, reason);
        var conditions = expected is null ? new BlobRequestConditions { IfNoneMatch = ETag.All } : new BlobRequestConditions { IfMatch = expected.ETag };
        try
        {
            await container.GetBlobClient(CurrentPointer).UploadAsync(
                BinaryData.FromBytes(JsonSerializer.SerializeToUtf8Bytes(pointer, ModelContractJsonContext.Default.CurrentModelPointer)),
                new BlobUploadOptions { Conditions = conditions }, cancellationToken);
            return true;
        }
        catch (RequestFailedException ex) when (ex.Status is 409 or 412)
        {
            return false;
        }
    }

    /// <summary>A version's manifest alone (its metrics, data snapshot, item map), without the policy.</summary>
    public async Task<ModelManifest> GetManifestAsync(string version, CancellationToken cancellationToken = default)
    {
        var manifest = await container.GetBlobClient(ManifestBlob(version)).DownloadContentAsync(cancellationToken);
        return ModelManifest.FromUtf8Json(manifest.Value.Content.ToMemory().Span);
    }

    public async Task<(ModelManifest Manifest, byte[] Policy)> DownloadAsync(string version, CancellationToken cancellationToken = default)
    {
        var manifest = await container.GetBlobClient(ManifestBlob(version)).DownloadContentAsync(cancellationToken);
        var policy = await container.GetBlobClient(PolicyBlob(version)).DownloadContentAsync(cancellationToken);
        return (ModelManifest.FromUtf8Json(manifest.Value.Content.ToMemory().Span), policy.Value.Content.ToArray());
    }

    /// <summary>The mark on a version trained on a training snapshot that was later deleted because it held a deleted user's data.</summary>
    public static string PurgedDataMarkBlob(string version) => $"models/{version}/purged-data.json";

    /// <summary>
    /// Marks every version whose data snapshot a purge deleted (<see cref="PurgeTally.DeletedSnapshots"/>): the model was
    /// trained on a deleted user's data. It is not withdrawn (its weights hold no user id, and the next retraining replaces
    /// it); the mark says which snapshot, and when, for whoever must answer for it.
    /// </summary>
    public async Task PurgeAsync(TombstoneSet due, PurgeTally tally, CancellationToken cancellationToken)
    {
        if (tally.DeletedSnapshots.Count == 0)
            return;
        var versions = new HashSet<string>(StringComparer.Ordinal);
        await foreach (var blob in container.GetBlobsAsync(new GetBlobsOptions { Prefix = "models/" }, cancellationToken))
        {
            if (blob.Name.EndsWith("/" + ManifestFile, StringComparison.Ordinal))
                versions.Add(blob.Name["models/".Length..^(ManifestFile.Length + 1)]);
        }
        foreach (var version in versions)
        {
            var manifest = await GetManifestAsync(version, cancellationToken);
            if (!tally.DeletedSnapshots.TryGetValue(manifest.DataSnapshot, out var users))
                continue;
            var mark = new JsonObject { ["dataSnapshot"] = manifest.DataSnapshot, ["markedAt"] = DateTimeOffset.UtcNow, ["reason"] = "it held the data of a deleted user" };
            await container.GetBlobClient(PurgedDataMarkBlob(version)).UploadAsync(BinaryData.FromString(mark.ToJsonString()), overwrite: true, cancellationToken);
            foreach (var key in users)
                tally.Add(due.All.First(t => t.UserKey == key), "modelsMarked");
        }
    }

    /// <summary>Whether <paramref name="version"/> was trained on a snapshot since deleted by a purge (see <see cref="PurgeAsync"/>).</summary>
    public async Task<bool> IsTrainedOnPurgedDataAsync(string version, CancellationToken cancellationToken = default) =>
        (await container.GetBlobClient(PurgedDataMarkBlob(version)).ExistsAsync(cancellationToken)).Value;
}
