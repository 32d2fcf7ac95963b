using System.Collections.Concurrent;
using Azure;

namespace Recommender.Storage;

/// <summary>Tuning of a <see cref="StaleBoundedCache{T}"/>.</summary>
public sealed record StaleBoundedCacheOptions
{
    /// <summary>
    /// The oldest a value may be when it is served: what another process wrote reaches this one's reads within it.
    /// What this process writes is in its cache at once (write-through).
    /// </summary>
    public TimeSpan MaxStaleness { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Past <see cref="MaxStaleness"/>, how long a read waits for storage to answer before it serves the value it has
    /// (counted in <c>recommender.cache.stale_served</c>): a storage account that is slow or failing for a moment
    /// makes a read a little staler, not a request seconds slower.
    /// </summary>
    public TimeSpan StorageWait { get; init; } = TimeSpan.FromMilliseconds(50);

    /// <summary>The oldest a value is ever served: past it, a read waits for storage however long it takes (or fails with it).</summary>
    public TimeSpan MaxStalenessWhileStorageLags { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Approximate memory the cache may hold (each entry's size as its owner estimates it); beyond it the longest unread go.</summary>
    public long SizeLimitBytes { get; init; } = 256L << 20;
}

/// <summary>
/// Values read from storage, kept in memory with their ETag and the time they were read, and served for at most
/// <see cref="StaleBoundedCacheOptions.MaxStaleness"/>: older than three quarters of it, the value is still served and
/// re-read in the background (so a steadily read key never waits for storage); older than all of it, the
/// read waits for storage, but only <see cref="StaleBoundedCacheOptions.StorageWait"/>: if storage has not answered by
/// then the cached value is served (and counted) while the re-read goes on, up to
/// <see cref="StaleBoundedCacheOptions.MaxStalenessWhileStorageLags"/>. A re-read that finds the same ETag keeps the value it has. Writers of this process put
/// what they wrote (write-through), and use the cached ETag for their optimistic-concurrency writes.
/// Absent keys are cached too (a null value), so a user with no state costs one read per bound, not one per request.
/// </summary>
/// <remarks>
/// Not Microsoft.Extensions.Caching.Memory: the training job loads this assembly from the directories of hosts that
/// carry ASP.NET Core's shared framework, where that package's assembly is not copied, and the eviction needed here
/// (the entries read longest ago, when over the size) is a few lines.
/// </remarks>
public sealed class StaleBoundedCache<T> where T : class
{
    /// <summary>A cached value (null: the key does not exist in storage), its ETag and when storage was read or written.</summary>
    public sealed record Entry(T? Value, ETag ETag, DateTimeOffset At)
    {
        internal long Size { get; init; }
    }

    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly Lock _evicting = new();
    private long _size;
    private readonly StaleBoundedCacheOptions _options;
    private readonly TimeProvider _time;
    private readonly Func<T?, long> _sizeOf;
    private readonly ConcurrentDictionary<string, Task<Entry?>> _refreshing = new(StringComparer.Ordinal);
    private long _staleServed;

    private readonly string _name;

    /// <param name="size">An estimate of an entry's bytes (for the size limit).</param>
    /// <param name="name">What the cache holds, the <c>cache</c> tag of its metric.</param>
    public StaleBoundedCache(Func<T?, long> size, StaleBoundedCacheOptions? options = null, TimeProvider? time = null, string name = "cache")
    {
        _name = name;
        _options = options ?? new();
        _time = time ?? TimeProvider.System;
        _sizeOf = size;
    }

    public TimeSpan MaxStaleness => _options.MaxStaleness;

    /// <summary>
    /// The value for <paramref name="key"/> no older than the bound; <paramref name="load"/> reads storage (value and
    /// ETag; a null value when absent) when the cached one is too old or missing.
    /// </summary>
    public async ValueTask<T?> GetAsync(string key, Func<CancellationToken, Task<(T? Value, ETag ETag)>> load, CancellationToken cancellationToken = default)
    {
        if (_entries.TryGetValue(key, out var entry))
        {
            var age = _time.GetUtcNow() - entry.At;
            if (age < _options.MaxStaleness)
            {
                if (age >= _options.MaxStaleness * 0.75)
                    _ = RefreshInBackground(key, load);
                return entry.Value;
            }
            if (age < _options.MaxStalenessWhileStorageLags)
            {
                var refresh = RefreshInBackground(key, load);
                // A re-read that failed (storage down) counts as one that has not answered: the value it has is served.
                if (await Task.WhenAny(refresh, Task.Delay(_options.StorageWait, _time, cancellationToken)) == refresh && refresh.IsCompletedSuccessfully && refresh.Result is { } fresh)
                    return fresh.Value;
                cancellationToken.ThrowIfCancellationRequested();
                Interlocked.Increment(ref _staleServed);
                RecommenderMetrics.StaleServed.Add(1, new KeyValuePair<string, object?>("cache", _name));
                return entry.Value;
            }
        }
        return (await ReadAsync(key, load, cancellationToken)).Value;
    }

    /// <summary>Reads served past <see cref="StaleBoundedCacheOptions.MaxStaleness"/> because storage was slow or failing (this instance's count).</summary>
    public long StaleServed => Interlocked.Read(ref _staleServed);

    /// <summary>The cached entry, however old (writers use its ETag and re-read on a conflict).</summary>
    public Entry? Peek(string key) => _entries.TryGetValue(key, out var entry) ? entry : null;

    /// <summary>What this process just wrote (or read) for <paramref name="key"/>.</summary>
    public void Put(string key, T? value, ETag etag) => Put(key, new Entry(value, etag, _time.GetUtcNow()));

    public void Remove(string key)
    {
        if (_entries.TryRemove(key, out var removed))
            Interlocked.Add(ref _size, -removed.Size);
    }

    public int Count => _entries.Count;

    private async Task<Entry> ReadAsync(string key, Func<CancellationToken, Task<(T? Value, ETag ETag)>> load, CancellationToken cancellationToken)
    {
        var at = _time.GetUtcNow(); // the value read is at least this fresh
        var (value, etag) = await load(cancellationToken);
        var entry = Peek(key) is { } cached && cached.ETag == etag && etag != default ? cached with { At = at } : new Entry(value, etag, at);
        Put(key, entry);
        return entry;
    }

    /// <summary>Re-reads the key behind the request, once at a time per key; the task gives the entry read, or null when storage failed.</summary>
    private Task<Entry?> RefreshInBackground(string key, Func<CancellationToken, Task<(T? Value, ETag ETag)>> load)
    {
        if (_refreshing.TryGetValue(key, out var running))
            return running;
        var refresh = new Task<Task<Entry?>>(async () =>
        {
            try
            {
                return await ReadAsync(key, load, CancellationToken.None);
            }
            catch (RequestFailedException)
            {
                // Storage unavailable for a moment: the value ages on, and past the longest bound a read waits for storage.
                return null;
            }
            finally
            {
                _refreshing.TryRemove(key, out _);
            }
        });
        var unwrapped = refresh.Unwrap();
        if (!_refreshing.TryAdd(key, unwrapped))
            return RefreshInBackground(key, load); // another request started one meanwhile (or it has already ended): that one, or a new one
        refresh.Start(TaskScheduler.Default);
        return unwrapped;
    }

    private void Put(string key, Entry entry)
    {
        entry = entry with { Size = 64 + key.Length * 2 + _sizeOf(entry.Value) };
        while (true)
        {
            if (_entries.TryGetValue(key, out var cached))
            {
                // A write racing a slower read: the later of the two wins.
                if (cached.At > entry.At)
                    return;
                if (!_entries.TryUpdate(key, entry, cached))
                    continue;
                Interlocked.Add(ref _size, entry.Size - cached.Size);
            }
            else
            {
                if (!_entries.TryAdd(key, entry))
                    continue;
                Interlocked.Add(ref _size, entry.Size);
            }
            break;
        }
        if (Interlocked.Read(ref _size) > _options.SizeLimitBytes)
            Evict();
    }

    /// <summary>Over the size: the entries read or written longest ago go, down to nine tenths of it.</summary>
    private void Evict()
    {
        lock (_evicting)
        {
            var target = _options.SizeLimitBytes * 9 / 10;
            foreach (var (key, entry) in _entries.ToArray().OrderBy(e => e.Value.At))
            {
                if (Interlocked.Read(ref _size) <= target)
                    break;
                if (_entries.TryRemove(KeyValuePair.Create(key, entry)))
                    Interlocked.Add(ref _size, -entry.Size);
            }
        }
    }
}
