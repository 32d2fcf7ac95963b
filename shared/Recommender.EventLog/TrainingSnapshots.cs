using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Parquet;
using Parquet.Serialization;
using Recommender.Events;
using Recommender.Storage;

namespace Recommender.EventLog;

/// <summary>What a training snapshot holds and whether it is fit to train on.</summary>
public sealed record SnapshotStatistics(
    int LogBlobs,
    long Events,
    long Engagements,
    int Users,
    int Items,
    int TrainableUsers,
    long DeletedUserEvents,
    long DuplicateEvents,
    IReadOnlyList<string> UnreadableBlobs,
    DecisionStatistics? Decisions = null,
    int Profiles = 0);

/// <summary>
/// A frozen copy of the event log up to <see cref="Watermark"/>. <see cref="Id"/> is a hash of the training
/// data it holds (deleted users' events already removed), so the same data gives the same id (and a
/// second snapshot of unchanged data is recognised as such).
/// </summary>
public sealed record TrainingSnapshot(string Id, DateTimeOffset Watermark, SnapshotStatistics Statistics, bool Accepted, string? RefusedBecause);

/// <summary>When a snapshot is too small or too broken to train on.</summary>
public sealed record SnapshotRequirements
{
    /// <summary>Fewest engagements (events that enter a user's history) worth a training run.</summary>
    public long MinEngagements { get; init; } = 1_000;
    /// <summary>Fewest users with at least 3 engagements (leave-one-out needs a training item, a validation item and a test item).</summary>
    public int MinTrainableUsers { get; init; } = 50;
    /// <summary>How served decisions are joined to their responses and cut into sessions.</summary>
    public DecisionJoinOptions Decisions { get; init; } = new();
}

/// <summary>What a snapshot holds for training: engagements, item content, the decisions served with their responses, user profiles.</summary>
public sealed record SnapshotContents(
    IList<EventLogRecord> Engagements,
    IReadOnlyDictionary<string, string[]> ItemContent,
    IReadOnlyList<ServedDecision> Decisions,
    IReadOnlyDictionary<string, string[]> UserProfiles);

/// <summary>
/// Training snapshots in Blob Storage: <c>snapshots/{id}/events.parquet</c> (the engagements of the log up
/// to a watermark, deleted users' events removed, each event id once), <c>catalog.json</c> (item content
/// tokens), <c>decisions.json</c> (every slate served, with its propensities and the responses joined to it,
/// <see cref="ServedDecisions"/>), <c>profiles.json</c> (user attribute tokens) and <c>snapshot.json</c>
/// (watermark and statistics). Written once per id; the training job
/// reads exactly these blobs, so a run is reproducible whatever arrives in the log afterwards.
/// </summary>
public sealed class TrainingSnapshotStore(BlobContainerClient container, EventLogSnapshotReader reader, CatalogStore catalog) : IUserDataHolder
{
    public const string Prefix = "snapshots/";
    private static readonly ParquetOptions Parquet = new() { CompressionMethod = CompressionMethod.Snappy };

    public BlobContainerClient Container => container;

    /// <summary>A copy of the description of the latest accepted snapshot; a hint, overwritten each time.</summary>
    public const string LatestBlob = Prefix + "latest.json";

    public static string EventsBlob(string id) => $"{Prefix}{id}/events.parquet";
    public static string CatalogBlob(string id) => $"{Prefix}{id}/catalog.json";
    public static string DecisionsBlob(string id) => $"{Prefix}{id}/decisions.json";
    public static string ProfilesBlob(string id) => $"{Prefix}{id}/profiles.json";
    public static string DescriptionBlob(string id) => $"{Prefix}{id}/snapshot.json";

    /// <summary>
    /// Freezes the log blobs written before <paramref name="watermark"/> (to the whole second). A refused snapshot (too little
    /// data, unreadable blobs) is described but its events are not written.
    /// </summary>
    public async Task<TrainingSnapshot> CreateAsync(DateTimeOffset watermark, SnapshotRequirements requirements, CancellationToken cancellationToken = default)
    {
        await container.CreateIfNotExistsAsync(cancellationToken: cancellationToken);
        // Blob times have whole seconds: the snapshot takes the blobs of the seconds before the watermark's,
        // and everything of its second or later belongs to the next snapshot.
        watermark = new DateTimeOffset(watermark.UtcTicks - watermark.UtcTicks % TimeSpan.TicksPerSecond, TimeSpan.Zero);
        var log = await reader.ReadAsync(watermark, cancellationToken);
        var engagements = log.Records.Where(r => r.IsEngagement()).ToList();
        var items = new SortedDictionary<string, string[]>(StringComparer.Ordinal);
        await foreach (var item in catalog.ListItemsAsync(cancellationToken))
            items[item.ItemId] = FeatureTokens.OfItem(item);
        var (decisions, decisionStatistics) = ServedDecisions.Join(log.Records, watermark, requirements.Decisions);
        var profiles = new SortedDictionary<string, string[]>(StringComparer.Ordinal);
        await foreach (var profile in catalog.ListProfilesAsync(cancellationToken))
            profiles[profile.UserId] = FeatureTokens.OfProfile(profile.Attributes);
        var id = SnapshotId(engagements, items, decisions, profiles);

        var perUser = engagements.GroupBy(r => r.UserId).Select(g => g.Count()).ToList();
        var statistics = new SnapshotStatistics(log.Blobs, log.Events, engagements.Count, perUser.Count,
            engagements.Select(r => r.ItemId).Distinct().Count(), perUser.Count(n => n >= 3), log.DeletedUserEvents, log.DuplicateEvents, log.UnreadableBlobs,
            decisionStatistics, profiles.Count);
        var refusal = log.UnreadableBlobs.Count > 0 ? $"{log.UnreadableBlobs.Count} log blob(s) could not be read, first {log.UnreadableBlobs[0]}"
            : statistics.Engagements < requirements.MinEngagements ? $"{statistics.Engagements} engagements, fewer than the {requirements.MinEngagements} required"
            : statistics.TrainableUsers < requirements.MinTrainableUsers ? $"{statistics.TrainableUsers} users with 3 or more engagements, fewer than the {requirements.MinTrainableUsers} required"
            : null;
        var snapshot = new TrainingSnapshot(id, watermark, statistics, refusal is null, refusal);
        if (snapshot.Accepted && !await ExistsAsync(id, cancellationToken))
        {
            using var buffer = new MemoryStream();
            await ParquetSerializer.SerializeAsync(engagements, buffer, Parquet, cancellationToken: cancellationToken);
            await UploadOnceAsync(EventsBlob(id), new BinaryData(buffer.ToArray()), cancellationToken);
            await UploadOnceAsync(CatalogBlob(id), BinaryData.FromBytes(JsonSerializer.SerializeToUtf8Bytes(items, SnapshotJsonContext.Default.SortedDictionaryStringStringArray)), cancellationToken);
            await UploadOnceAsync(DecisionsBlob(id), BinaryData.FromBytes(JsonSerializer.SerializeToUtf8Bytes(decisions, SnapshotJsonContext.Default.ListServedDecision)), cancellationToken);
            await UploadOnceAsync(ProfilesBlob(id), BinaryData.FromBytes(JsonSerializer.SerializeToUtf8Bytes(profiles, SnapshotJsonContext.Default.SortedDictionaryStringStringArray)), cancellationToken);
            // The description goes last: a snapshot without one is incomplete and is never read.
            await UploadOnceAsync(DescriptionBlob(id), BinaryData.FromBytes(JsonSerializer.SerializeToUtf8Bytes(snapshot, SnapshotJsonContext.Default.TrainingSnapshot)), cancellationToken);
        }
        if (snapshot.Accepted)
            await container.GetBlobClient(LatestBlob).UploadAsync(BinaryData.FromBytes(JsonSerializer.SerializeToUtf8Bytes(snapshot, SnapshotJsonContext.Default.TrainingSnapshot)), overwrite: true, cancellationToken);
        return snapshot;
    }

    /// <summary>The most recent accepted snapshot (null before the first), to count what arrived since.</summary>
    public async Task<TrainingSnapshot?> GetLatestAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            var content = await container.GetBlobClient(LatestBlob).DownloadContentAsync(cancellationToken);
            return JsonSerializer.Deserialize(content.Value.Content.ToMemory().Span, SnapshotJsonContext.Default.TrainingSnapshot);
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            return null;
        }
    }

    public async Task<bool> ExistsAsync(string id, CancellationToken cancellationToken = default) =>
        (await container.GetBlobClient(DescriptionBlob(id)).ExistsAsync(cancellationToken)).Value;

    /// <summary>What the snapshot holds (a snapshot written before decisions and profiles were kept reads as having none).</summary>
    public async Task<SnapshotContents> ReadAsync(string id, CancellationToken cancellationToken = default)
    {
        if (!await ExistsAsync(id, cancellationToken))
            throw new InvalidOperationException($"training snapshot {id} does not exist or is incomplete");
        var events = await container.GetBlobClient(EventsBlob(id)).DownloadContentAsync(cancellationToken);
        using var stream = events.Value.Content.ToStream();
        var records = await EventLogStore.ReadParquetAsync(stream, cancellationToken);
        var items = await container.GetBlobClient(CatalogBlob(id)).DownloadContentAsync(cancellationToken);
        var decisions = await ReadIfPresentAsync(DecisionsBlob(id), SnapshotJsonContext.Default.ListServedDecision, cancellationToken) ?? [];
        var profiles = await ReadIfPresentAsync(ProfilesBlob(id), SnapshotJsonContext.Default.DictionaryStringStringArray, cancellationToken) ?? [];
        return new SnapshotContents(records, JsonSerializer.Deserialize(items.Value.Content.ToMemory().Span, SnapshotJsonContext.Default.DictionaryStringStringArray)!,
            decisions, profiles);
    }

    private async Task<T?> ReadIfPresentAsync<T>(string name, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type, CancellationToken cancellationToken) where T : class
    {
        try
        {
            var content = await container.GetBlobClient(name).DownloadContentAsync(cancellationToken);
            return JsonSerializer.Deserialize(content.Value.Content.ToMemory().Span, type);
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            return null;
        }
    }

    /// <summary>
    /// Deletes every snapshot that holds data of the deleted users: an event or a served decision the tombstone covers, or
    /// the profile of a user deleted after the snapshot was taken. The description goes first, so a reader finds the
    /// snapshot incomplete rather than half there; the next snapshot, taken without the users, replaces it. The deleted
    /// ids go into the tally (the models trained on them are marked by the model registry).
    /// </summary>
    public async Task PurgeAsync(TombstoneSet due, PurgeTally tally, CancellationToken cancellationToken)
    {
        var ids = new List<string>();
        await foreach (var blob in container.GetBlobsAsync(new GetBlobsOptions { Prefix = Prefix }, cancellationToken))
        {
            if (blob.Name.EndsWith("/snapshot.json", StringComparison.Ordinal))
                ids.Add(blob.Name[Prefix.Length..^"/snapshot.json".Length]);
        }
        foreach (var id in ids)
        {
            var description = await ReadIfPresentAsync(DescriptionBlob(id), SnapshotJsonContext.Default.TrainingSnapshot, cancellationToken);
            if (description is null)
                continue;
            var contents = await ReadAsync(id, cancellationToken);
            var users = new HashSet<Tombstone>();
            foreach (var record in contents.Engagements.Where(r => due.Covers(r.UserId, r.IngestedAt)))
                users.Add(due.Find(record.UserId)!);
            foreach (var decision in contents.Decisions)
            {
                if (due.Find(decision.UserId) is { } t && t.Covers(decision.ShownAt))
                    users.Add(t);
            }
            foreach (var user in contents.UserProfiles.Keys)
            {
                if (due.Find(user) is { } t && description.Watermark <= t.DeletedAt)
                    users.Add(t);
            }
            if (users.Count == 0)
                continue;
            foreach (var name in new[] { DescriptionBlob(id), EventsBlob(id), CatalogBlob(id), DecisionsBlob(id), ProfilesBlob(id) })
                await container.GetBlobClient(name).DeleteIfExistsAsync(cancellationToken: cancellationToken);
            foreach (var user in users)
                tally.Add(user, "snapshots");
            tally.DeletedSnapshots[id] = users.Select(u => u.UserKey).ToList();
        }
    }

    /// <summary>A hash of what training will read (the engagements in order, the items' content, the decisions with their
    /// responses, the profiles), so events that train nothing and redeliveries leave it unchanged.</summary>
    private static string SnapshotId(IEnumerable<EventLogRecord> engagements, IReadOnlyDictionary<string, string[]> items,
        IEnumerable<ServedDecision> decisions, IReadOnlyDictionary<string, string[]> profiles)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var record in engagements)
            hash.AppendData(Encoding.UTF8.GetBytes($"{record.EventId}\n"));
        foreach (var (item, tokens) in items)
            hash.AppendData(Encoding.UTF8.GetBytes($"item:{item}={string.Join(',', tokens)}\n"));
        foreach (var d in decisions)
            hash.AppendData(Encoding.UTF8.GetBytes(FormattableString.Invariant($"decision:{d.RecommendationId}={d.PickedPosition},{d.Reward},{d.Watched},{d.Stars},{d.Liked},{d.Purchased},{d.SessionEnded}\n")));
        foreach (var (user, tokens) in profiles)
            hash.AppendData(Encoding.UTF8.GetBytes($"profile:{user}={string.Join(',', tokens)}\n"));
        return Convert.ToHexStringLower(hash.GetHashAndReset())[..16];
    }

    // Another snapshotter may have written the same id: same inputs, same content.
    private Task<bool> UploadOnceAsync(string name, BinaryData content, CancellationToken cancellationToken) =>
        container.GetBlobClient(name).UploadIfAbsentAsync(content, cancellationToken: cancellationToken);
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = true)]
[JsonSerializable(typeof(TrainingSnapshot))]
[JsonSerializable(typeof(Dictionary<string, string[]>))]
[JsonSerializable(typeof(SortedDictionary<string, string[]>))]
[JsonSerializable(typeof(List<ServedDecision>))]
internal sealed partial class SnapshotJsonContext : JsonSerializerContext;
