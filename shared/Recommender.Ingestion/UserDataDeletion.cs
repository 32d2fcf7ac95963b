namespace Recommender.Ingestion;

/// <summary>
/// Deletes a user's data: the tombstone first (so training excludes the user even if a later step
/// fails and is retried), then online state and profile. Repeating it is harmless.
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
}
