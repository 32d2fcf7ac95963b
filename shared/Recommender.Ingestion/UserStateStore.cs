using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Azure;
using Azure.Data.Tables;
using Recommender.Events;
using Recommender.Storage;

namespace Recommender.Ingestion;

/// <summary>Tuning of <see cref="UserStateStore"/>.</summary>
public sealed record UserStateStoreOptions
{
    /// <summary>
    /// Users' state (and ETag) kept in memory: serving reads it from there, no staler than its bound, and writers
    /// of this process write through it; a stale entry costs a writer one retry.
    /// </summary>
    public StaleBoundedCacheOptions Cache { get; init; } = new();

    /// <summary>Table requests in flight at once.</summary>
    public int MaxConcurrency { get; init; } = 16;

    /// <summary>Attempts at a transaction that loses an optimistic-concurrency race before giving up.</summary>
    public int MaxConflictRetries { get; init; } = 20;

    /// <summary>
    /// How long a slate this process showed waits in memory (read back at once all the same) before
    /// <see cref="ShownSlatesWriter"/> writes it into the user's row with every other slate shown to the user since: under
    /// load one row write per user per delay instead of one per impression batch. What another instance reads of this
    /// one's slates lags by up to this much more; a crash loses up to this much of them from the online state (the event
    /// log has them).
    /// </summary>
    public TimeSpan ShownSlatesDelay { get; init; } = TimeSpan.FromSeconds(5);
}

/// <summary>
/// Per-user online state in Table Storage. Writes use ETags (optimistic concurrency): two writers
/// never overwrite each other's update; the loser reloads and re-applies. Users share a partition
/// by hash bucket, so up to 100 of them are written in one entity-group transaction. Reads are served from memory
/// (<see cref="StaleBoundedCache{T}"/>): what this process applies is read back at once, what another process
/// applied within <see cref="StaleBoundedCacheOptions.MaxStaleness"/>.
/// </summary>
public sealed class UserStateStore(TableClient table, UserStateStoreOptions? options = null, TimeProvider? time = null)
{
    private const int TransactionLimit = 100;
    private readonly UserStateStoreOptions _options = options ?? new();
    private readonly StaleBoundedCache<UserState> _cache = new(EstimatedBytes, (options ?? new()).Cache, time, "user-state");

    public TableClient Table => table;

    /// <summary>
    /// The user's state, no staler than the cache's bound (null: none), with the slates this process showed the user
    /// and has not stored yet (<see cref="NoteShown"/>): serving reads its own writes.
    /// </summary>
    public async Task<UserState?> GetAsync(string userId, CancellationToken cancellationToken = default)
    {
        var state = await _cache.GetAsync(userId, ct => ReadAsync(TableKeys.UserBucket(userId), userId, ct), cancellationToken);
        if (!_shownNotStored.TryGetValue(userId, out var shown))
            return state;
        ShownSlate[] pending;
        lock (shown)
        {
            // A slate the sink had to drop is never stored: it stops counting after a while.
            shown.RemoveAll(s => s.ShownAt < _time.GetUtcNow() - MaxShownNotStoredAge);
            pending = [.. shown];
        }
        if (pending.Length == 0)
            _shownNotStored.TryRemove(KeyValuePair.Create(userId, shown));
        return pending.Length == 0 ? state : (state ?? UserState.Empty(userId)).WithShown(pending);
    }

    /// <summary>How long a slate noted as shown counts while it is not stored (it is stored within the sink's delay and write).</summary>
    public static readonly TimeSpan MaxShownNotStoredAge = TimeSpan.FromMinutes(1);

    private readonly ConcurrentDictionary<string, List<ShownSlate>> _shownNotStored = new(StringComparer.Ordinal);
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    /// <summary>
    /// A slate this process just showed the user: reads include it at once, and <see cref="StoreShownAsync"/> writes it into
    /// the user's row (with the slate's impressions left out of the state by the delivery that logs them:
    /// <see cref="EventIngestor.IngestEventsAsync"/>).
    /// </summary>
    public void NoteShown(string userId, ShownSlate slate)
    {
        var shown = _shownNotStored.GetOrAdd(userId, _ => []);
        lock (shown)
            shown.Add(slate);
    }

    public UserStateStoreOptions Options => _options;

    /// <summary>Users with slates noted as shown and not stored yet, and how many slates.</summary>
    public (int Users, int Slates) ShownNotStored
    {
        get
        {
            int users = 0, slates = 0;
            foreach (var (_, shown) in _shownNotStored)
            {
                lock (shown)
                {
                    users += shown.Count > 0 ? 1 : 0;
                    slates += shown.Count;
                }
            }
            return (users, slates);
        }
    }

    private readonly SemaphoreSlim _storing = new(1, 1);

    /// <summary>
    /// Writes into their users' rows the slates noted as shown (<see cref="NoteShown"/>) of every user whose oldest such
    /// slate was shown at least <paramref name="olderThan"/> ago, all of that user's at once, as the impressions they are
    /// (the counts, the last seen time, the slates kept). Safe to repeat and to race with other writers: a slate already
    /// in the row is not applied again. Returns how many slates it wrote.
    /// </summary>
    public async Task<int> StoreShownAsync(TimeSpan olderThan, CancellationToken cancellationToken = default)
    {
        await _storing.WaitAsync(cancellationToken);
        try
        {
            var due = _time.GetUtcNow() - olderThan;
            // Applied as slates (UserState.ApplyShown), not as one impression event each: this runs every few seconds over
            // every slate served since, and what it builds lives until the table answers, long enough to be promoted.
            var updates = new List<(string UserId, Func<UserState, UserState> Update)>();
            var slates = 0;
            foreach (var (userId, shown) in _shownNotStored)
            {
                lock (shown)
                {
                    if (shown.Count == 0 || shown.Min(s => s.ShownAt) > due)
                        continue;
                    ShownSlate[] dueSlates = [.. shown];
                    slates += dueSlates.Length;
                    updates.Add((userId, state => state.ApplyShown(dueSlates)));
                }
            }
            if (updates.Count > 0)
                await UpdateAsync(updates, cancellationToken);
            return slates;
        }
        finally
        {
            _storing.Release();
        }
    }

    private void Stored(UserState state)
    {
        if (!_shownNotStored.TryGetValue(state.UserId, out var shown))
            return;
        lock (shown)
            shown.RemoveAll(s => state.Slates.Any(kept => kept.RecommendationId == s.RecommendationId) || (state.Slates.Count >= UserState.MaxRecentSlates && s.ShownAt < state.Slates[0].ShownAt));
    }

    private async Task<(UserState? State, ETag ETag)> ReadAsync(string bucket, string userId, CancellationToken cancellationToken)
    {
        var response = await table.GetEntityIfExistsAsync<TableEntity>(bucket, TableKeys.Encode(userId), cancellationToken: cancellationToken);
        if (!response.HasValue)
            return (null, default);
        // The row as this process last wrote or read it (the usual case: the cache re-reads every row it serves, and this
        // process writes the rows of the users it serves): the state it has is kept, not decoded again.
        var etag = response.Value!.ETag;
        return _cache.Peek(userId) is { Value: { } cached } entry && entry.ETag == etag && etag != default ? (cached, etag) : (FromEntity(response.Value), etag);
    }

    private static long EstimatedBytes(UserState? state) =>
        state is null ? 0 : 256 + state.Recent.Sum(r => 48 + r.ItemId.Length * 2) + state.Slates.Sum(s => 96 + s.Items.Sum(i => 32 + i.Length * 2)) + state.AppliedDeliveries.Count * 56;

    /// <summary>
    /// Applies one delivery's interactions to every user they name. Idempotent per delivery key:
    /// users that already applied it are left as they are.
    /// </summary>
    public Task ApplyAsync(string deliveryKey, IEnumerable<Interaction> interactions, CancellationToken cancellationToken = default) =>
        UpdateAsync(interactions.GroupBy(e => e.UserId, StringComparer.Ordinal)
            .Select(user => (user.Key, (Func<UserState, UserState>)(state => state.Apply(deliveryKey, user.OrderBy(e => e.Timestamp))))).ToList(), cancellationToken);

    /// <summary>
    /// Writes each user's state as <c>Update</c> makes it from the stored one (one row each, up to 100 users of a bucket in
    /// a transaction), re-reading and re-applying on a conflict; an update that returns the state it was given writes nothing.
    /// </summary>
    private async Task UpdateAsync(IReadOnlyList<(string UserId, Func<UserState, UserState> Update)> users, CancellationToken cancellationToken)
    {
        var chunks = users
            .GroupBy(u => TableKeys.UserBucket(u.UserId))
            .SelectMany(bucket => bucket.Chunk(TransactionLimit).Select(chunk => (Bucket: bucket.Key, Users: chunk)))
            .ToList();

        await Parallel.ForEachAsync(chunks,
            new ParallelOptions { MaxDegreeOfParallelism = _options.MaxConcurrency, CancellationToken = cancellationToken },
            async (chunk, ct) => await UpdateChunkAsync(chunk.Bucket, chunk.Users, ct));
    }

    /// <summary>Removes the user's state now (user deletion).</summary>
    public async Task DeleteAsync(string userId, CancellationToken cancellationToken = default)
    {
        _cache.Remove(userId);
        await table.DeleteEntityAsync(TableKeys.UserBucket(userId), TableKeys.Encode(userId), ETag.All, cancellationToken);
    }

    private async Task UpdateChunkAsync(string bucket, (string UserId, Func<UserState, UserState> Update)[] users, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            var current = await LoadAsync(bucket, users.Select(u => u.UserId), cancellationToken);
            var actions = new List<TableTransactionAction>(users.Length);
            var next = new List<UserState>(users.Length);
            foreach (var (userId, update) in users)
            {
                var (state, etag) = current[userId];
                var updated = update(state);
                if (ReferenceEquals(updated, state))
                    continue; // applied already (a delivery by its key, slates by their recommendation ids: see UserState.Apply)
                var entity = ToEntity(updated);
                actions.Add(etag == default
                    ? new TableTransactionAction(TableTransactionActionType.Add, entity)
                    : new TableTransactionAction(TableTransactionActionType.UpdateReplace, entity, etag));
                next.Add(updated);
            }
            if (actions.Count == 0)
                return;

            try
            {
                var response = await table.SubmitTransactionAsync(actions, cancellationToken);
                for (var i = 0; i < next.Count; i++)
                {
                    _cache.Put(next[i].UserId, next[i], response.Value[i].Headers.ETag ?? default);
                    Stored(next[i]);
                }
                return;
            }
            catch (TableTransactionFailedException ex) when (ex.Status is 404 or 409 or 412 && attempt < _options.MaxConflictRetries)
            {
                // Another writer got there first, or deleted the user, and our cache was stale: reload and re-apply.
                foreach (var (userId, _) in users)
                    _cache.Remove(userId);
                await Task.Delay(TimeSpan.FromMilliseconds(Random.Shared.Next(5, 20 * attempt)), cancellationToken);
            }
        }
    }

    private async Task<Dictionary<string, (UserState State, ETag ETag)>> LoadAsync(string bucket, IEnumerable<string> userIds, CancellationToken cancellationToken)
    {
        var result = new Dictionary<string, (UserState, ETag)>(StringComparer.Ordinal);
        var missing = new List<string>();
        foreach (var id in userIds)
        {
            if (_cache.Peek(id) is { } cached)
                result[id] = (cached.Value ?? UserState.Empty(id), cached.ETag);
            else
                missing.Add(id);
        }
        var loaded = await Task.WhenAll(missing.Select(id => ReadAsync(bucket, id, cancellationToken)));
        for (var i = 0; i < missing.Count; i++)
        {
            _cache.Put(missing[i], loaded[i].State, loaded[i].ETag);
            result[missing[i]] = (loaded[i].State ?? UserState.Empty(missing[i]), loaded[i].ETag);
        }
        return result;
    }

    private const string CountPrefix = "n_";

    internal static TableEntity ToEntity(UserState state)
    {
        var entity = new TableEntity(TableKeys.UserBucket(state.UserId), TableKeys.Encode(state.UserId))
        {
            ["UserId"] = state.UserId,
            ["Recent"] = EncodeRecent(state.Recent),
            ["LastSeen"] = state.LastSeen,
            ["AppliedDeliveries"] = string.Join('\n', state.AppliedDeliveries),
            ["Slates"] = EncodeSlates(state.Slates),
        };
        foreach (var (type, count) in state.Counts)
        {
            entity[CountPrefix + EventParser.WireName(type)] = count;
        }
        return entity;
    }

    internal static UserState FromEntity(TableEntity entity)
    {
        var counts = new Dictionary<InteractionType, long>();
        foreach (var (key, value) in entity)
        {
            if (key.StartsWith(CountPrefix, StringComparison.Ordinal) && EventParser.TryParseType(key[CountPrefix.Length..], out var type))
                counts[type] = Convert.ToInt64(value, CultureInfo.InvariantCulture);
        }
        var applied = entity.GetString("AppliedDeliveries");
        return new UserState(
            entity.GetString("UserId") ?? TableKeys.Decode(entity.RowKey),
            DecodeRecent(entity.GetString("Recent")),
            counts,
            entity.GetDateTimeOffset("LastSeen"),
            string.IsNullOrEmpty(applied) ? [] : applied.Split('\n'),
            DecodeSlates(entity.GetString("Slates")));
    }

    /// <summary>A table string holds at most 32K characters: the oldest slates give way first.</summary>
    private const int MaxSlatesCharacters = 30_000;

    // "unixMillis\trecommendationId\tsessionId\titem\titem..." per line, newest last (ids hold no control characters).
    private static string EncodeSlates(IReadOnlyList<ShownSlate> slates)
    {
        var lines = slates.Select(s => string.Join('\t', [s.ShownAt.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture), s.RecommendationId, s.SessionId ?? "", .. s.Items])).ToList();
        var length = lines.Sum(l => l.Length + 1);
        var skip = 0;
        while (length > MaxSlatesCharacters && skip < lines.Count)
            length -= lines[skip++].Length + 1;
        return string.Join('\n', lines.Skip(skip));
    }

    private static List<ShownSlate> DecodeSlates(string? text)
    {
        var slates = new List<ShownSlate>();
        if (string.IsNullOrEmpty(text))
            return slates;
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = line.Split('\t');
            slates.Add(new ShownSlate(parts[1], parts[2].Length == 0 ? null : parts[2],
                DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(parts[0], CultureInfo.InvariantCulture)), parts[3..]));
        }
        return slates;
    }

    // "unixMillis\titemId" per line: ids cannot hold control characters (validation), so tab and newline are safe separators.
    private static string EncodeRecent(IReadOnlyList<RecentItem> recent)
    {
        var text = new StringBuilder(recent.Count * 24);
        foreach (var item in recent)
        {
            text.Append(item.Timestamp.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture)).Append('\t').Append(item.ItemId).Append('\n');
        }
        return text.ToString();
    }

    private static List<RecentItem> DecodeRecent(string? text)
    {
        var recent = new List<RecentItem>();
        if (string.IsNullOrEmpty(text))
            return recent;
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var tab = line.IndexOf('\t');
            recent.Add(new RecentItem(line[(tab + 1)..],
                DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(line.AsSpan(0, tab), CultureInfo.InvariantCulture))));
        }
        return recent;
    }
}
