using System.Collections.Concurrent;
using Azure;
using Azure.Data.Tables;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Recommender.Ingestion;

namespace Recommender.Serving;

/// <summary>
/// Personalizer's rank records, one per event id, in Table Storage (partitioned like users, by hash bucket): what a
/// reward joins on and what the learner, the evaluations and the <c>logs</c> operations read. Rank adds a record
/// without waiting for storage: a <see cref="BatchingSink{T}"/> writes them behind the requests, in entity-group
/// transactions. Every read of this process first writes what waits (a reward or an activation waits only when its
/// own rank is still unwritten), so the process reads its own ranks.
/// </summary>
/// <remarks>
/// A reused event id is refused at once while this instance still holds the first rank; otherwise it is found when the
/// record is written: the first rank keeps the id, the later one is counted (<see cref="DuplicateEventIds"/>) and logged.
/// A batch is retried whole, so a transaction that landed and whose answer was lost meets its own records: those are
/// recognised by their content and not counted.
/// </remarks>
public sealed class RankEventTable : IAsyncDisposable, IUserDataHolder
{
    private readonly BatchingSink<TableEntity> _sink;
    private readonly ConcurrentDictionary<string, TableEntity> _unwritten = new(StringComparer.Ordinal);
    private readonly ILogger _log;
    private long _duplicateEventIds;

    public RankEventTable(TableClient table, BatchingSinkOptions? sink = null, ILogger? log = null)
    {
        Table = table;
        _log = log ?? NullLogger.Instance;
        _sink = new BatchingSink<TableEntity>("personalizer-ranks", WriteAsync, sink, _log,
            dropped: records => { foreach (var r in records) _unwritten.TryRemove(EventId(r), out _); });
    }

    /// <summary>The table, for readers that have called <see cref="FlushAsync"/>.</summary>
    public TableClient Table { get; }

    /// <summary>Ranks whose event id another instance had already used when their record was written (the first rank keeps the id).</summary>
    public long DuplicateEventIds => Interlocked.Read(ref _duplicateEventIds);

    /// <summary>
    /// Adds a rank record (its <c>EventId</c> property set) to be written; false when this instance already holds one for
    /// the id. When the sink is full, the record is written now instead (false if the table has the id).
    /// </summary>
    public async Task<bool> AddAsync(string eventId, TableEntity record, CancellationToken cancellationToken = default)
    {
        if (!_unwritten.TryAdd(eventId, record))
            return false;
        if (_sink.TryAdd(record))
            return true;
        // The buffer is full: this request waits for storage rather than lose the rank its reward will join.
        _unwritten.TryRemove(eventId, out _);
        try
        {
            await Table.AddEntityAsync(record, cancellationToken);
            return true;
        }
        catch (RequestFailedException ex) when (ex.Status == 409)
        {
            return false;
        }
    }

    /// <summary>The record of an event id (null: never ranked); one this instance has not written yet is written first.</summary>
    public async Task<TableEntity?> GetAsync(string eventId, CancellationToken cancellationToken = default)
    {
        if (_unwritten.ContainsKey(eventId))
            await FlushAsync(cancellationToken);
        var response = await Table.GetEntityIfExistsAsync<TableEntity>(TableKeys.UserBucket(eventId), TableKeys.Encode(eventId), cancellationToken: cancellationToken);
        return response.HasValue ? response.Value : null;
    }

    /// <summary>Writes now the records that wait, and returns once they are written: call before reading <see cref="Table"/>.</summary>
    public Task FlushAsync(CancellationToken cancellationToken = default) => _sink.FlushAsync(cancellationToken);

    public ValueTask DisposeAsync() => _sink.DisposeAsync();

    /// <summary>Deletes the rank records of deleted users (the rank's user is its context's <c>userId</c>) made up to their deletion.</summary>
    public async Task PurgeAsync(TombstoneSet due, PurgeTally tally, CancellationToken cancellationToken)
    {
        await FlushAsync(cancellationToken);
        await foreach (var record in Table.QueryAsync<TableEntity>(select: ["PartitionKey", "RowKey", "UserId", "RankedAt"], cancellationToken: cancellationToken))
        {
            if (record.GetString("UserId") is not { } userId || due.Find(userId) is not { } tombstone)
                continue;
            var rankedAt = record.GetDateTimeOffset("RankedAt")?.UtcDateTime ?? DateTime.MinValue;
            if (!tombstone.Covers(rankedAt))
                continue;
            await Table.DeleteEntityAsync(record.PartitionKey, record.RowKey, ETag.All, cancellationToken);
            tally.Add(tombstone, "rankEvents");
        }
    }

    private static string EventId(TableEntity record) => record.GetString("EventId") ?? TableKeys.Decode(record.RowKey);

    /// <summary>Writes a batch: one entity-group transaction per partition and 100 records.</summary>
    private async Task WriteAsync(IReadOnlyList<TableEntity> records, CancellationToken cancellationToken)
    {
        var chunks = records.GroupBy(r => r.PartitionKey).SelectMany(g => g.Chunk(100)).ToList();
        await Parallel.ForEachAsync(chunks, new ParallelOptions { MaxDegreeOfParallelism = 8, CancellationToken = cancellationToken }, async (chunk, ct) =>
        {
            try
            {
                await Table.SubmitTransactionAsync(chunk.Select(r => new TableTransactionAction(TableTransactionActionType.Add, r)), ct);
            }
            catch (TableTransactionFailedException ex) when (ex.Status == 409)
            {
                // One of them exists (the transaction wrote nothing): an earlier attempt of this batch, or an id used elsewhere first.
                foreach (var record in chunk)
                    await AddOnceAsync(record, ct);
            }
            foreach (var record in chunk)
                _unwritten.TryRemove(EventId(record), out _);
        });
    }

    private async Task AddOnceAsync(TableEntity record, CancellationToken cancellationToken)
    {
        try
        {
            await Table.AddEntityAsync(record, cancellationToken);
        }
        catch (RequestFailedException ex) when (ex.Status == 409)
        {
            var existing = (await Table.GetEntityAsync<TableEntity>(record.PartitionKey, record.RowKey, cancellationToken: cancellationToken)).Value;
            if (existing.GetString("Ranking") == record.GetString("Ranking") && existing.GetDateTimeOffset("RankedAt") == record.GetDateTimeOffset("RankedAt"))
                return; // ours, from an attempt whose answer was lost
            Interlocked.Increment(ref _duplicateEventIds);
            _log.LogWarning("Rank event {EventId} reused an event id that another rank holds: the first rank keeps it, this one is not stored", EventId(record));
        }
    }
}
