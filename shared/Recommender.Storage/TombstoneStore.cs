using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Azure;
using System.Text.Json;
using System.Text.Json.Serialization;
using Azure.Data.Tables;

namespace Recommender.Storage;

/// <summary>
/// A deleted user, known by <see cref="UserKey"/> (a hash of the id) so that the record of a deletion does not itself
/// keep the id. <see cref="PurgedAt"/> is set once <see cref="UserDataPurge"/> has removed every copy of the user's data;
/// <see cref="Removed"/> says what it removed.
/// </summary>
public sealed record Tombstone(string UserKey, DateTimeOffset DeletedAt, DateTimeOffset? PurgedAt = null, PurgeCounts? Removed = null)
{
    /// <summary>
    /// Whether an event of this user is the deleted user's: it was ingested up to the deletion. What arrives after it is
    /// the user's new history, whenever it happened (a client's late delivery of older events included), the same
    /// rule the online state follows.
    /// </summary>
    public bool Covers(DateTime ingestedAtUtc) => ingestedAtUtc <= DeletedAt.UtcDateTime;

    /// <summary>The key of a user id: the first 16 bytes of its SHA-256, in hex.</summary>
    public static string KeyOf(string userId) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(userId)).AsSpan(0, 16));
}

/// <summary>What a purge removed of one user's data: a count per kind of record (<c>logEvents</c>, <c>deadLetters</c>, <c>snapshots</c>...).</summary>
public sealed class PurgeCounts : SortedDictionary<string, long>
{
    public PurgeCounts() : base(StringComparer.Ordinal) { }
    public PurgeCounts(IDictionary<string, long> counts) : base(counts, StringComparer.Ordinal) { }
}

/// <summary>Tombstones by user, with the hash of each id looked up computed once.</summary>
public sealed class TombstoneSet(IEnumerable<Tombstone> tombstones)
{
    private readonly Dictionary<string, Tombstone> _byKey = tombstones.ToDictionary(t => t.UserKey, StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string> _keys = new(StringComparer.Ordinal);

    public IReadOnlyCollection<Tombstone> All => _byKey.Values;
    public int Count => _byKey.Count;

    /// <summary>The user's tombstone, if the user was deleted.</summary>
    public Tombstone? Find(string userId) =>
        _byKey.Count == 0 ? null : _byKey.GetValueOrDefault(_keys.GetOrAdd(userId, Tombstone.KeyOf));

    /// <summary>Whether the record of <paramref name="userId"/>, stored at <paramref name="ingestedAtUtc"/>, belongs to a deleted user's data.</summary>
    public bool Covers(string userId, DateTime ingestedAtUtc) => Find(userId) is { } tombstone && tombstone.Covers(ingestedAtUtc);

    /// <summary>The set restricted to some tombstones (those a purge is due for).</summary>
    public TombstoneSet Where(Func<Tombstone, bool> keep) => new(_byKey.Values.Where(keep));
}

/// <summary>
/// Records of deleted users, keyed by <see cref="Tombstone.KeyOf"/>. Events of a deleted user are left out of every
/// training snapshot from the deletion on, and <see cref="UserDataPurge"/> removes them from storage.
/// </summary>
public sealed class TombstoneStore(TableClient table)
{
    private const string Partition = "user";

    /// <summary>How old the set <see cref="ReadRecentAsync"/> returns may be: deletions made by other instances are seen within it.</summary>
    public static readonly TimeSpan MaxStaleness = TimeSpan.FromSeconds(10);

    private (TombstoneSet Set, long ReadAt)? _recent;

    /// <summary>Records the deletion; a user deleted again has the later time and a purge pending again.</summary>
    public async Task AddAsync(string userId, DateTimeOffset deletedAt, CancellationToken cancellationToken = default)
    {
        await table.UpsertEntityAsync(new TableEntity(Partition, Tombstone.KeyOf(userId)) { ["DeletedAt"] = deletedAt },
            TableUpdateMode.Replace, cancellationToken);
        _recent = null; // this process sees its own deletions at once
    }

    /// <summary>All tombstones as read at most <see cref="MaxStaleness"/> ago: for paths that must not read the table each time.</summary>
    public async Task<TombstoneSet> ReadRecentAsync(CancellationToken cancellationToken = default)
    {
        if (_recent is { } recent && System.Diagnostics.Stopwatch.GetElapsedTime(recent.ReadAt) < MaxStaleness)
            return recent.Set;
        var readAt = System.Diagnostics.Stopwatch.GetTimestamp();
        var set = await ReadAllAsync(cancellationToken);
        _recent = (set, readAt);
        return set;
    }

    public async Task<Tombstone?> GetAsync(string userId, CancellationToken cancellationToken = default)
    {
        var entity = await table.GetEntityIfExistsAsync<TableEntity>(Partition, Tombstone.KeyOf(userId), cancellationToken: cancellationToken);
        return entity.HasValue ? ToTombstone(entity.Value!) : null;
    }

    public async Task<TombstoneSet> ReadAllAsync(CancellationToken cancellationToken = default)
    {
        var result = new List<Tombstone>();
        await foreach (var e in table.QueryAsync<TableEntity>(e => e.PartitionKey == Partition, cancellationToken: cancellationToken))
            result.Add(ToTombstone(e));
        return new TombstoneSet(result);
    }

    /// <summary>
    /// Marks the purge of a tombstone done, unless the user was deleted again since (<paramref name="purged"/>'s
    /// <see cref="Tombstone.DeletedAt"/> no longer the stored one): that deletion needs a purge of its own.
    /// </summary>
    public async Task MarkPurgedAsync(Tombstone purged, DateTimeOffset purgedAt, PurgeCounts removed, CancellationToken cancellationToken = default)
    {
        var current = await table.GetEntityIfExistsAsync<TableEntity>(Partition, purged.UserKey, cancellationToken: cancellationToken);
        if (!current.HasValue || current.Value!.GetDateTimeOffset("DeletedAt") != purged.DeletedAt)
            return;
        var entity = current.Value;
        entity["PurgedAt"] = purgedAt;
        entity["Removed"] = JsonSerializer.Serialize(removed, PurgeJsonContext.Default.PurgeCounts);
        try
        {
            await table.UpdateEntityAsync(entity, entity.ETag, TableUpdateMode.Replace, cancellationToken);
        }
        catch (RequestFailedException ex) when (ex.Status == 412)
        {
            // Deleted again while the purge ran: left pending for the next one.
        }
    }

    private static Tombstone ToTombstone(TableEntity e) =>
        new(e.RowKey, e.GetDateTimeOffset("DeletedAt")!.Value, e.GetDateTimeOffset("PurgedAt"),
            e.GetString("Removed") is { } removed ? JsonSerializer.Deserialize(removed, PurgeJsonContext.Default.PurgeCounts) : null);
}

[JsonSerializable(typeof(PurgeCounts))]
internal sealed partial class PurgeJsonContext : JsonSerializerContext;
