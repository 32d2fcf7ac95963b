using Azure;
using Azure.Data.Tables;

namespace Recommender.Serving;

/// <summary>
/// Personalizer's log as its <c>logs</c> operations see it: the rank records (with their rewards) the learner and the
/// evaluations read. The impressions and rewards already copied into the product's event log stay there: they are
/// the product's training data, erased per user by <c>DELETE /api/users/{userId}</c>.
/// </summary>
public sealed class PersonalizerLog(RankEventTable ranks)
{
    private TableClient rankEvents => ranks.Table;

    /// <summary>The first and last rank time in the log; both null when it is empty.</summary>
    public async Task<(DateTimeOffset? From, DateTimeOffset? To)> DateRangeAsync(CancellationToken cancellationToken = default)
    {
        await ranks.FlushAsync(cancellationToken);
        DateTimeOffset? from = null, to = null;
        await foreach (var record in rankEvents.QueryAsync<TableEntity>(select: ["RankedAt"], cancellationToken: cancellationToken))
        {
            if (record.GetDateTimeOffset("RankedAt") is not { } at)
                continue;
            from = from is { } f && f <= at ? f : at;
            to = to is { } t && t >= at ? t : at;
        }
        return (from, to);
    }

    /// <summary>Deletes every rank record, in transactions of up to 100 per partition; returns how many.</summary>
    public async Task<int> DeleteAllAsync(CancellationToken cancellationToken = default)
    {
        await ranks.FlushAsync(cancellationToken); // a rank written after the deletion would come back
        var keys = new List<(string Partition, string Row)>();
        await foreach (var record in rankEvents.QueryAsync<TableEntity>(select: ["PartitionKey", "RowKey"], cancellationToken: cancellationToken))
            keys.Add((record.PartitionKey, record.RowKey));
        await ranks.DeleteAllAsync(keys, cancellationToken); // the learning rows too: nothing is left to learn
        return keys.Count;
    }
}
