using Azure.Data.Tables;

namespace Recommender.Ingestion;

/// <summary>
/// Records of deleted users. Events of a deleted user that were ingested up to the deletion are
/// excluded from every later training snapshot (the log itself is append-only).
/// </summary>
public sealed class TombstoneStore(TableClient table)
{
    private const string Partition = "user";

    public async Task AddAsync(string userId, DateTimeOffset deletedAt, CancellationToken cancellationToken = default) =>
        await table.UpsertEntityAsync(new TableEntity(Partition, TableKeys.Encode(userId))
        {
            ["UserId"] = userId,
            ["DeletedAt"] = deletedAt,
        }, TableUpdateMode.Replace, cancellationToken);

    /// <summary>All tombstones: user id to the time of deletion.</summary>
    public async Task<IReadOnlyDictionary<string, DateTimeOffset>> ReadAllAsync(CancellationToken cancellationToken = default)
    {
        var result = new Dictionary<string, DateTimeOffset>(StringComparer.Ordinal);
        await foreach (var e in table.QueryAsync<TableEntity>(e => e.PartitionKey == Partition, cancellationToken: cancellationToken))
        {
            result[e.GetString("UserId")!] = e.GetDateTimeOffset("DeletedAt")!.Value;
        }
        return result;
    }
}
