using System.Collections.Concurrent;
using Azure;

namespace Recommender.Ingestion;

/// <summary>Tuning of a <see cref="StaleBoundedCache{T}"/>.</summary>
public sealed record StaleBoundedCacheOptions
{
    /// <summary>
    /// The oldest a value may be when it is served: what another process wrote reaches this one's reads within it.
    /// What this process writes is in its cache at once (write-through).
    /// </summary>
    public TimeSpan MaxStaleness { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Approximate memory the cache may hold (each entry's size as its owner estimates it); beyond it the longest unread go.</summary>
    public long SizeLimitBytes { get; init; } = 256L << 20;
}

/// <summary>
/// Values read from storage, kept in memory with their ETag and the time they were read, and served for at most
/// <see cref="StaleBoundedCacheOptions.MaxStaleness"/>: older than three quarters of it, the value is still served and
/// re-read in the background (so a steadily read key never waits for storage); older than all of it, the
/// read waits for storage. A re-read that finds the same ETag keeps the value it has. Writers of this process put
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
    private readonly ConcurrentDictionary<string, Task> _refreshing = new(StringComparer.Ordinal);

    /// <param name="size">An estimate of an entry's bytes (for the size limit).</param>
    public StaleBoundedCache(Func<T?, long> size, StaleBoundedCacheOptions? options = null, TimeProvider? time = null)
    {
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
                    RefreshInBackground(key, load);
                return entry.Value;
            }
        }
        return (await ReadAsync(key, load, cancellationToken)).Value;
    }

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

    private void RefreshInBackground(string key, Func<CancellationToken, Task<(T? Value, ETag ETag)>> load)
    {
        if (_refreshing.ContainsKey(key))
            return;
        var refresh = new Task<Task>(async () =>
        {
            try
            {
                await ReadAsync(key, load, CancellationToken.None);
            }
            catch (RequestFailedException)
            {
                // Storage unavailable for a moment: the value ages out and the next read waits for storage.
            }
            finally
            {
                _refreshing.TryRemove(key, out _);
            }
        });
        if (_refreshing.TryAdd(key, refresh))
            refresh.Start(TaskScheduler.Default);
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
