using System.Collections.Concurrent;
using Azure;
using Azure.Data.Tables;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Recommender.Ingestion;
using Recommender.Storage;

namespace Recommender.Serving;

/// <summary>
/// Personalizer's rank records, one per event id, in Table Storage (partitioned like users, by hash bucket): what a
/// reward joins on and what the learner, the evaluations and the <c>logs</c> operations read. Rank adds a record
/// without waiting for storage: a <see cref="BatchingSink{T}"/> writes them behind the requests, in entity-group
/// transactions. Every read of this process first writes what waits (a reward or an activation waits only when its
/// own rank is still unwritten), so the process reads its own ranks.
/// <para>
/// Beside each learnable record the table keeps a <b>learning row</b> in a partition named by the rank's minute and a shard
/// of it (<c>m{yyyyMMddHHmm}-{shard}</c>; records are in <c>u..</c> partitions), and a reward or an activation adds a row there too. The
/// learner reads the minutes it has not learned by a key range, however large the table grows, and removes them once
/// learned (<see cref="PersonalizerLearner"/>). Learning rows carry <c>At</c>, not <c>RankedAt</c>, so the readers of
/// records (evaluations, metrics, log properties) never see them.
/// </para>
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
        if (_sink.TryAddIfRoom(record))
            return true;
        // The buffer is full: this request waits for storage rather than lose the rank its reward will join.
        _unwritten.TryRemove(eventId, out _);
        try
        {
            await Table.AddEntityAsync(record, cancellationToken);
            if (LearningRowOf(record) is { } learning)
                await Table.UpsertEntityAsync(learning, TableUpdateMode.Replace, cancellationToken);
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
        await foreach (var record in Table.QueryAsync<TableEntity>(select: ["PartitionKey", "RowKey", "UserId", "RankedAt", "At"], cancellationToken: cancellationToken))
        {
            if (record.GetString("UserId") is not { } userId || due.Find(userId) is not { } tombstone)
                continue;
            // A record, or the learning row of one not learned yet (it holds the same context).
            var rankedAt = (record.GetDateTimeOffset("RankedAt") ?? record.GetDateTimeOffset("At"))?.UtcDateTime ?? DateTime.MinValue;
            if (!tombstone.Covers(rankedAt))
                continue;
            await Table.DeleteEntityAsync(record.PartitionKey, record.RowKey, ETag.All, cancellationToken);
            if (!record.PartitionKey.StartsWith(LearningPrefix, StringComparison.Ordinal))
                tally.Add(tombstone, "rankEvents");
        }
    }

    private static string EventId(TableEntity record) => record.GetString("EventId") ?? TableKeys.Decode(record.RowKey);

    /// <summary>
    /// The learning partition of a rank made at <paramref name="rankedAt"/>: its minute, which sorts by time, then one of
    /// <see cref="LearningShards"/> shards by the event id. One partition per minute would take every rank of that
    /// minute, and a partition is the unit Table Storage scales by (Azure's target is 2,000 entities/s per partition;
    /// Azurite's transactions slow down as a partition grows).
    /// </summary>
    public static string LearningPartition(DateTimeOffset rankedAt, string eventId) =>
        MinutePrefix(rankedAt) + "-" + (TableKeys.StableHash(eventId) % LearningShards).ToString("D2", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Shards of each minute's learning partition.</summary>
    public const int LearningShards = 16;

    /// <summary>The filter of the learning partitions of the minutes from <paramref name="from"/>'s to <paramref name="to"/>'s, both included.</summary>
    public static string LearningMinutes(DateTimeOffset from, DateTimeOffset to) =>
        TableClient.CreateQueryFilter($"PartitionKey ge {MinutePrefix(from)} and PartitionKey lt {MinutePrefix(to.AddMinutes(1))}");

    /// <summary>The filter of the learning partitions of the minutes before <paramref name="before"/>'s.</summary>
    public static string LearningMinutesBefore(DateTimeOffset before) =>
        TableClient.CreateQueryFilter($"PartitionKey ge {LearningPrefix} and PartitionKey lt {MinutePrefix(before)}");

    private static string MinutePrefix(DateTimeOffset at) =>
        LearningPrefix + at.UtcDateTime.ToString("yyyyMMddHHmm", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Every learning partition starts with it (and sorts before the records' <c>u..</c> partitions).</summary>
    public const string LearningPrefix = "m";

    /// <summary>Row kinds of the learning partitions, each followed by the record's row key (a reward's by its count too).</summary>
    public const string RankRow = "rank|", RewardRow = "reward|", ActivatedRow = "activated|";

    /// <summary>The learning row of a record that can be learned from (something was chosen); null otherwise.</summary>
    private static TableEntity? LearningRowOf(TableEntity record)
    {
        if (record.GetString("Chosen") is null || record.GetDateTimeOffset("RankedAt") is not { } rankedAt)
            return null;
        var row = new TableEntity(LearningPartition(rankedAt, EventId(record)), RankRow + record.RowKey)
        {
            ["EventId"] = EventId(record),
            ["UserId"] = record.GetString("UserId"), // so the purge finds it
            ["At"] = rankedAt,
            ["Context"] = record.GetString("Context"),
            ["Chosen"] = record.GetString("Chosen"),
            ["Activated"] = record.GetBoolean("Activated"),
        };
        if (record.GetString("Candidates") is { } candidates)
            row["Candidates"] = candidates;
        return row;
    }

    /// <summary>
    /// Notes a reward in the learning partition of <paramref name="record"/>'s rank: the reward kept on the record after it
    /// (<c>rewardAggregation</c> applied) and how many rewards that is; the learner takes the row with the highest count.
    /// An upsert: a retry writes the same row again.
    /// </summary>
    public Task AddRewardRowAsync(TableEntity record, double rewardKept, int rewardCount, CancellationToken cancellationToken = default)
    {
        var row = LearningRow(record, RewardRow, "|" + rewardCount.ToString("D6", System.Globalization.CultureInfo.InvariantCulture));
        row["Reward"] = rewardKept;
        row["RewardCount"] = rewardCount;
        return Table.UpsertEntityAsync(row, TableUpdateMode.Replace, cancellationToken);
    }

    /// <summary>Notes in the learning partition that a deferred rank was activated (shown).</summary>
    public Task AddActivatedRowAsync(TableEntity record, CancellationToken cancellationToken = default) =>
        Table.UpsertEntityAsync(LearningRow(record, ActivatedRow, ""), TableUpdateMode.Replace, cancellationToken);

    private static TableEntity LearningRow(TableEntity record, string kind, string suffix) =>
        new(LearningPartition(record.GetDateTimeOffset("RankedAt") ?? DateTimeOffset.UnixEpoch, EventId(record)), kind + record.RowKey + suffix) { ["EventId"] = EventId(record) };

    /// <summary>Writes a batch: one entity-group transaction per partition and 100 records, then their learning rows likewise.</summary>
    private async Task WriteAsync(IReadOnlyList<TableEntity> records, CancellationToken cancellationToken)
    {
        await WriteRecordsAsync(records, cancellationToken);
        await UpsertAllAsync(records.Select(LearningRowOf).OfType<TableEntity>().ToList(), cancellationToken);
    }

    /// <summary>Upserts rows, in transactions of up to 100 per partition (idempotent: a retried batch writes the same rows).</summary>
    private async Task UpsertAllAsync(IReadOnlyList<TableEntity> rows, CancellationToken cancellationToken = default)
    {
        var chunks = rows.GroupBy(r => r.PartitionKey).SelectMany(g => g.Chunk(100)).ToList();
        await Parallel.ForEachAsync(chunks, new ParallelOptions { MaxDegreeOfParallelism = 8, CancellationToken = cancellationToken }, async (chunk, ct) =>
            await Table.SubmitTransactionAsync(chunk.Select(r => new TableTransactionAction(TableTransactionActionType.UpsertReplace, r)), ct));
    }

    /// <summary>Deletes rows by key, in transactions of up to 100 per partition; rows already gone are skipped.</summary>
    public async Task DeleteAllAsync(IReadOnlyList<(string Partition, string Row)> keys, CancellationToken cancellationToken = default)
    {
        foreach (var chunk in keys.GroupBy(k => k.Partition).SelectMany(g => g.Chunk(100)))
        {
            try
            {
                await Table.SubmitTransactionAsync(chunk.Select(k => new TableTransactionAction(TableTransactionActionType.Delete, new TableEntity(k.Partition, k.Row), ETag.All)), cancellationToken);
            }
            catch (TableTransactionFailedException)
            {
                // One of them went meanwhile (a concurrent delete): the rest one by one.
                foreach (var (p, r) in chunk)
                    await Table.DeleteEntityAsync(p, r, ETag.All, cancellationToken);
            }
        }
    }

    private async Task WriteRecordsAsync(IReadOnlyList<TableEntity> records, CancellationToken cancellationToken)
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
