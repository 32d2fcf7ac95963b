using Azure.Storage.Blobs;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Recommender.Storage;

/// <summary>A store that keeps copies of users' data and can remove those of deleted users.</summary>
public interface IUserDataHolder
{
    /// <summary>Removes what it holds of the users in <paramref name="due"/> (each event the tombstone covers), counting it in <paramref name="tally"/>.</summary>
    Task PurgeAsync(TombstoneSet due, PurgeTally tally, CancellationToken cancellationToken);
}

/// <summary>What one purge removed, per deleted user, and the training snapshots it deleted (with the users that were in each).</summary>
public sealed class PurgeTally
{
    private readonly Dictionary<string, PurgeCounts> _byUser = new(StringComparer.Ordinal);

    public Dictionary<string, List<string>> DeletedSnapshots { get; } = new(StringComparer.Ordinal);

    public void Add(Tombstone user, string kind, long count = 1)
    {
        lock (_byUser)
        {
            if (!_byUser.TryGetValue(user.UserKey, out var counts))
                _byUser[user.UserKey] = counts = new PurgeCounts();
            counts[kind] = counts.GetValueOrDefault(kind) + count;
        }
    }

    public PurgeCounts Of(Tombstone user)
    {
        lock (_byUser)
            return new PurgeCounts(_byUser.GetValueOrDefault(user.UserKey) ?? new PurgeCounts());
    }
}

/// <summary>When a deletion's purge runs and the bound it promises.</summary>
public sealed record UserDataPurgeOptions
{
    /// <summary>
    /// How long after a deletion its purge waits: events of the user on their way at the deletion (a sink's buffer, an
    /// Event Hubs batch being retried, a training job reading a snapshot) land or finish first.
    /// </summary>
    public TimeSpan Grace { get; init; } = TimeSpan.FromHours(1);

    /// <summary>Deletions whose grace periods end in the same slot share one scheduled purge, at the slot's end.</summary>
    public TimeSpan ScheduleSlot { get; init; } = TimeSpan.FromMinutes(15);

    /// <summary>The promise: no blob or table holds a deleted user's events later than this after the deletion.</summary>
    public TimeSpan Bound { get; init; } = TimeSpan.FromHours(24);
}

/// <summary>What <see cref="UserDataPurge.RunAsync"/> did.</summary>
public sealed record PurgeRun(int Users, PurgeCounts Removed, IReadOnlyList<string> DeletedSnapshots);

/// <summary>
/// Removes deleted users' data from every store that holds a copy (the event log, dead letters, training snapshots,
/// Personalizer's rank records, and marks on the models trained on a deleted snapshot), once each deletion's grace
/// period has passed; then marks the tombstones purged. Run by a timer and after each deletion; one run at a time
/// (a <see cref="BlobMutex"/>), and repeating it is harmless: a store that finds nothing rewrites nothing.
/// </summary>
public sealed class UserDataPurge(TombstoneStore tombstones, IReadOnlyList<IUserDataHolder> holders, BlobContainerClient locks,
    UserDataPurgeOptions? options = null, TimeProvider? time = null, ILogger? log = null)
{
    public const string LockBlob = "locks/user-data-purge";
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly ILogger _log = log ?? NullLogger.Instance;

    public UserDataPurgeOptions Options { get; } = options ?? new();

    public async Task<PurgeRun> RunAsync(CancellationToken cancellationToken = default)
    {
        var now = _time.GetUtcNow();
        var due = (await tombstones.ReadAllAsync(cancellationToken)).Where(t => t.PurgedAt is null && t.DeletedAt + Options.Grace <= now);
        if (due.Count == 0)
            return new PurgeRun(0, new PurgeCounts(), []);

        // A purge takes minutes on a large log: the lock waits for one in progress rather than rewrite the same blobs beside it.
        await locks.CreateIfNotExistsAsync(cancellationToken: cancellationToken);
        await using var purgeLock = await BlobMutex.AcquireAsync(locks, LockBlob, TimeSpan.FromMinutes(30), cancellationToken);
        var tally = new PurgeTally();
        foreach (var holder in holders)
            await holder.PurgeAsync(due, tally, cancellationToken);

        var total = new PurgeCounts();
        foreach (var tombstone in due.All)
        {
            var removed = tally.Of(tombstone);
            foreach (var (kind, count) in removed)
                total[kind] = total.GetValueOrDefault(kind) + count;
            await tombstones.MarkPurgedAsync(tombstone, _time.GetUtcNow(), removed, cancellationToken);
        }
        _log.LogInformation("Purged the data of {Users} deleted user(s): {Removed}", due.Count, string.Join(", ", total.Select(kv => $"{kv.Value} {kv.Key}")));
        return new PurgeRun(due.Count, total, tally.DeletedSnapshots.Keys.Order(StringComparer.Ordinal).ToList());
    }
}
