using Recommender.EventLog;
using Recommender.Storage;

namespace Recommender.Ingestion;

/// <summary>Where a user's deletion stands: <c>purgePending</c> until every copy of their events is removed, then <c>purged</c>.</summary>
public sealed record DeletionStatus(string UserId, DateTimeOffset DeletedAt, string State, DateTimeOffset PurgeAfter, DateTimeOffset PurgedBy,
    DateTimeOffset? PurgedAt, PurgeCounts? Removed);

/// <summary>
/// Deletes a user's data: the tombstone first (so training excludes the user even if a later step
/// fails and is retried), then online state and profile. Repeating it is harmless. The copies of the user's events
/// in the log, dead letters, snapshots and rank records go later, in <see cref="UserDataPurge"/>.
/// </summary>
public sealed class UserDataDeletion(TombstoneStore tombstones, UserStateStore userStates, CatalogStore catalog, TimeProvider? time = null)
{
    public async Task<DateTimeOffset> DeleteAsync(string userId, CancellationToken cancellationToken = default)
    {
        var deletedAt = (time ?? TimeProvider.System).GetUtcNow();
        await tombstones.AddAsync(userId, deletedAt, cancellationToken);
        await userStates.DeleteAsync(userId, cancellationToken);
        await catalog.DeleteProfileAsync(userId, cancellationToken);
        return deletedAt;
    }

    public async Task<DeletionStatus?> GetStatusAsync(string userId, UserDataPurgeOptions purge, CancellationToken cancellationToken = default) =>
        await tombstones.GetAsync(userId, cancellationToken) is { } t
            ? new DeletionStatus(userId, t.DeletedAt, t.PurgedAt is null ? "purgePending" : "purged", t.DeletedAt + purge.Grace, t.DeletedAt + purge.Bound,
                t.PurgedAt, t.Removed)
            : null;
}
