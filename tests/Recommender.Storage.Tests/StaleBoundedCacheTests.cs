using Azure;
using Recommender.Storage;
using Recommender.TestSupport;

namespace Recommender.Storage.Tests;

/// <summary>The cache's timing against a storage that answers when the test says so: how long a read past the bound waits.</summary>
[Trait("Kind", "Unit")]
public sealed class StaleBoundedCacheTests
{
    private static readonly StaleBoundedCacheOptions Options = new() { MaxStaleness = TimeSpan.FromSeconds(10), StorageWait = TimeSpan.FromMilliseconds(50), MaxStalenessWhileStorageLags = TimeSpan.FromSeconds(60) };

    /// <summary>A storage read that completes only when <see cref="Answer"/> is called.</summary>
    private sealed class SlowStorage
    {
        private TaskCompletionSource<(string?, ETag)> _pending = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public int Reads { get; private set; }

        public Task<(string? Value, ETag ETag)> Load(CancellationToken _)
        {
            Reads++;
            return _pending.Task;
        }

        public void Answer(string value, string etag)
        {
            var answered = _pending;
            _pending = new(TaskCreationOptions.RunContinuationsAsynchronously);
            answered.SetResult((value, new ETag(etag)));
        }
    }

    /// <summary>A cache holding "v1" for key "u", read from storage at the clock's start.</summary>
    private static async Task<(ManualClock Clock, StaleBoundedCache<string> Cache, SlowStorage Storage)> HoldingV1Async(StaleBoundedCacheOptions options)
    {
        var clock = new ManualClock(DateTimeOffset.UnixEpoch);
        var cache = new StaleBoundedCache<string>(v => v?.Length ?? 0, options, clock);
        var storage = new SlowStorage();
        var first = cache.GetAsync("u", storage.Load).AsTask();
        storage.Answer("v1", "e1");
        Assert.Equal("v1", await first);
        return (clock, cache, storage);
    }

    [Fact]
    public async Task Past_the_bound_a_read_waits_for_storage_only_a_moment_then_serves_what_it_has_and_counts_it()
    {
        var (clock, cache, storage) = await HoldingV1Async(Options);

        clock.Advance(TimeSpan.FromSeconds(20)); // past the bound, within the longest
        var waited = System.Diagnostics.Stopwatch.StartNew();
        Assert.Equal("v1", await cache.GetAsync("u", storage.Load)); // storage silent: what the cache has, after StorageWait
        Assert.InRange(waited.Elapsed, Options.StorageWait * 0.8, TimeSpan.FromSeconds(5));
        Assert.Equal(1, cache.StaleServed);
        Assert.Equal("v1", await cache.GetAsync("u", storage.Load)); // the same re-read still in flight: not a second one
        Assert.Equal(2, storage.Reads);

        storage.Answer("v2", "e2"); // storage answers at last: the next read has it, fresh
        var fresh = System.Diagnostics.Stopwatch.StartNew();
        while (await cache.GetAsync("u", storage.Load) != "v2" && fresh.Elapsed < TimeSpan.FromSeconds(5))
            await Task.Delay(10);
        Assert.Equal("v2", await cache.GetAsync("u", storage.Load));
        Assert.Equal(2, storage.Reads);
    }

    [Fact]
    public async Task Past_the_bound_a_read_storage_answers_in_time_is_served_fresh()
    {
        var (clock, cache, storage) = await HoldingV1Async(Options with { StorageWait = TimeSpan.FromSeconds(30) });

        clock.Advance(TimeSpan.FromSeconds(20));
        var read = cache.GetAsync("u", storage.Load).AsTask();
        await Task.Delay(100);
        Assert.False(read.IsCompleted); // within StorageWait it waits for storage
        storage.Answer("v2", "e2");
        Assert.Equal("v2", await read);
        Assert.Equal(0, cache.StaleServed);
    }

    [Fact]
    public async Task Past_the_longest_bound_a_read_waits_for_storage_however_long_it_takes()
    {
        var (clock, cache, storage) = await HoldingV1Async(Options);

        clock.Advance(Options.MaxStalenessWhileStorageLags);
        var read = cache.GetAsync("u", storage.Load).AsTask();
        await Task.Delay(Options.StorageWait * 4);
        Assert.False(read.IsCompleted);
        storage.Answer("v2", "e2");
        Assert.Equal("v2", await read);
        Assert.Equal(0, cache.StaleServed);
    }
}
