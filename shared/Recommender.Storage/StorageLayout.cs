using System.Globalization;

namespace Recommender.Storage;

/// <summary>
/// Where everything lives in the storage account. One place, so the training job, the functions and
/// the tests agree on names.
/// </summary>
/// <remarks>
/// Blob containers:
/// <list type="bullet">
/// <item><c>eventlog</c>: <c>events/{yyyy}/{MM}/{dd}/{HH}/{deliveryKey}.parquet</c>, append-only interactions;
/// the hour is that of the batch's earliest event, so the name depends only on the delivery.</item>
/// <item><c>deadletter</c>: <c>{source}/{deliveryKey}.jsonl</c>, one refused event per line with the reason.</item>
/// <item><c>ingest-state</c>: <c>eventhubs/{consumerGroup}/{partition}.json</c>, the delivery ledger of each partition.</item>
/// <item><c>training</c>: <c>snapshots/{id}/...</c>, frozen training data (see <see cref="TrainingSnapshotStore"/>).</item>
/// </list>
/// Tables: <c>UserState</c> (online features), <c>UserProfiles</c>, <c>CatalogItems</c>, <c>Tombstones</c>.
/// </remarks>
public sealed record StorageLayout
{
    public static StorageLayout Default { get; } = new();

    public string EventLogContainer { get; init; } = "eventlog";
    public string DeadLetterContainer { get; init; } = "deadletter";
    public string IngestStateContainer { get; init; } = "ingest-state";
    public string TrainingContainer { get; init; } = "training";
    public string UserStateTable { get; init; } = "UserState";
    public string UserProfileTable { get; init; } = "UserProfiles";
    public string CatalogTable { get; init; } = "CatalogItems";
    public string TombstoneTable { get; init; } = "Tombstones";

    public const string EventLogPrefix = "events/";

    /// <summary>
    /// Every container and table of this layout with a tag of its own (<c>eventlog-{tag}</c>, <c>UserState{tag}</c>), so
    /// several products (a benchmark beside the demo, a test beside another) share one storage account untouched.
    /// </summary>
    public StorageLayout WithNamespace(string tag)
    {
        if (tag.Length is 0 or > 20 || !tag.All(c => c is >= 'a' and <= 'z' or >= '0' and <= '9'))
            throw new ArgumentException($"a storage namespace is 1 to 20 lower-case letters and digits, not '{tag}'", nameof(tag));
        return new StorageLayout
        {
            EventLogContainer = $"{EventLogContainer}-{tag}",
            DeadLetterContainer = $"{DeadLetterContainer}-{tag}",
            IngestStateContainer = $"{IngestStateContainer}-{tag}",
            TrainingContainer = $"{TrainingContainer}-{tag}",
            UserStateTable = UserStateTable + tag,
            UserProfileTable = UserProfileTable + tag,
            CatalogTable = CatalogTable + tag,
            TombstoneTable = TombstoneTable + tag,
        };
    }

    public static string EventLogBlobName(DateTimeOffset partitionTime, string deliveryKey) =>
        string.Create(CultureInfo.InvariantCulture,
            $"{EventLogPrefix}{partitionTime.UtcDateTime:yyyy'/'MM'/'dd'/'HH}/{deliveryKey}.parquet");

    public static string DeadLetterBlobName(string source, string deliveryKey) => $"{source}/{deliveryKey}.jsonl";

    public static string LedgerBlobName(string consumerGroup, string partitionId) =>
        $"eventhubs/{TableKeys.Encode(consumerGroup)}/{TableKeys.Encode(partitionId)}.json";
}

/// <summary>
/// Table keys: ids go into PartitionKey/RowKey, which forbid '/', '\', '#', '?' (and control
/// characters, which validation already refuses). Users are spread over a fixed number of partitions
/// by a stable hash so that writes to many users can be grouped into entity-group transactions.
/// </summary>
public static class TableKeys
{
    public const int UserBuckets = 16;

    public static string Encode(string id)
    {
        if (id.AsSpan().IndexOfAny("%/\\#?") < 0)
            return id;
        return id.Replace("%", "%25").Replace("/", "%2F").Replace("\\", "%5C").Replace("#", "%23").Replace("?", "%3F");
    }

    public static string Decode(string key) =>
        key.Contains('%')
            ? key.Replace("%2F", "/").Replace("%5C", "\\").Replace("%23", "#").Replace("%3F", "?").Replace("%25", "%")
            : key;

    /// <summary>The partition of a user's rows: a stable FNV-1a hash, independent of process and platform.</summary>
    public static string UserBucket(string userId) =>
        "u" + (StableHash(userId) % UserBuckets).ToString("D2", CultureInfo.InvariantCulture);

    /// <summary>FNV-1a over the UTF-16 code units: the same value in every process, unlike string.GetHashCode.</summary>
    public static uint StableHash(string key)
    {
        uint hash = 2166136261;
        foreach (var c in key)
        {
            hash = (hash ^ c) * 16777619;
        }
        return hash;
    }
}
