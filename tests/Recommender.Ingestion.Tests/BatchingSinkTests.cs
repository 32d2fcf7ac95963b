using Azure.Core;
using Azure.Core.Pipeline;
using Microsoft.Extensions.Logging;
using Recommender.Events;
using Recommender.Ingestion;
using Recommender.TestSupport;

namespace Recommender.Ingestion.Tests;

/// <summary>The write-behind sink that takes what serving logs off the request path: batches, flushes, overload, failures, shutdown.</summary>
public sealed class BatchingSinkTests
{
    private sealed class RecordingWriter
    {
        public List<List<int>> Batches { get; } = [];
        public Task Write(IReadOnlyList<int> batch, CancellationToken _)
        {
            lock (Batches)
                Batches.Add([.. batch]);
            return Task.CompletedTask;
        }
        public List<int> Written { get { lock (Batches) return Batches.SelectMany(b => b).ToList(); } }
    }

    /// <summary>Storage that holds every write until released: the buffer fills behind the first batch.</summary>
    private sealed class SlowStorage
    {
        private readonly TaskCompletionSource _released = new();
        private readonly List<int> _written = [];
        public void Release() => _released.SetResult();
        public async Task Write(IReadOnlyList<int> batch, CancellationToken _)
        {
            await _released.Task;
            lock (_written)
                _written.AddRange(batch);
        }
        public List<int> Written { get { lock (_written) return [.. _written]; } }
    }

    [Fact]
    public async Task Items_are_written_in_order_in_batches_no_larger_than_the_limit_and_a_flush_returns_once_they_are()
    {
        var writer = new RecordingWriter();
        await using var sink = new BatchingSink<int>("test", writer.Write, new BatchingSinkOptions { MaxBatch = 3, MaxDelay = TimeSpan.FromHours(1) });

        Assert.Equal(0, sink.TryAddRange(Enumerable.Range(0, 10)));
        await sink.FlushAsync();

        Assert.Equal(Enumerable.Range(0, 10), writer.Written);
        Assert.All(writer.Batches, b => Assert.InRange(b.Count, 1, 3));
        Assert.Equal((10L, 0L, 0L), (sink.Written, sink.Pending, sink.Dropped));
    }

    [Fact]
    public async Task Without_a_flush_a_batch_is_written_once_its_delay_has_passed()
    {
        var writer = new RecordingWriter();
        await using var sink = new BatchingSink<int>("test", writer.Write, new BatchingSinkOptions { MaxDelay = TimeSpan.FromMilliseconds(50) });

        sink.TryAdd(1);
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (writer.Written.Count == 0 && waited.Elapsed < TimeSpan.FromSeconds(10))
            await Task.Delay(10);

        Assert.Equal([1], writer.Written);
    }

    [Fact]
    public async Task A_full_buffer_drops_what_it_cannot_hold_counts_it_and_says_so_in_the_log()
    {
        var storage = new SlowStorage();
        var log = new ListLogger();
        var sink = new BatchingSink<int>("test", storage.Write, new BatchingSinkOptions { Capacity = 4, MaxBatch = 1, MaxDelay = TimeSpan.Zero }, log);

        var dropped = sink.TryAddRange(Enumerable.Range(0, 20));
        storage.Release();
        await sink.DisposeAsync();

        // At most the buffer and the batch in flight are kept; every other item is counted as dropped, and logged.
        Assert.InRange(dropped, 15, 16);
        Assert.Equal(dropped, sink.Dropped);
        Assert.Equal(20 - dropped, storage.Written.Count);
        Assert.Contains(log.Lines, l => l.Contains("dropped", StringComparison.Ordinal));
    }

    [Fact]
    public async Task An_item_a_full_buffer_cannot_hold_goes_back_to_a_caller_that_asks_for_room_and_is_not_counted_as_dropped()
    {
        var storage = new SlowStorage();
        var log = new ListLogger();
        var sink = new BatchingSink<int>("test", storage.Write, new BatchingSinkOptions { Capacity = 4, MaxBatch = 1, MaxDelay = TimeSpan.Zero }, log);

        // The caller keeps what finds no room (Rank writes its record to the table itself), so nothing is lost or dropped.
        var declined = Enumerable.Range(0, 20).Where(i => !sink.TryAddIfRoom(i)).ToList();
        storage.Release();
        await sink.DisposeAsync();

        Assert.InRange(declined.Count, 15, 16);
        Assert.Equal(0, sink.Dropped);
        Assert.Equal(Enumerable.Range(0, 20).Except(declined), storage.Written.Order());
        Assert.DoesNotContain(log.Lines, l => l.Contains("dropped", StringComparison.Ordinal));
        Assert.False(sink.TryAddIfRoom(99)); // stopped: declined, still not a drop
        Assert.Equal(0, sink.Dropped);
    }

    [Fact]
    public async Task A_failed_write_is_retried_with_the_same_batch_and_one_that_fails_every_attempt_is_counted_not_lost_silently()
    {
        var attempts = new List<List<int>>();
        await using (var flaky = new BatchingSink<int>("test", (batch, _) =>
        {
            attempts.Add([.. batch]);
            return attempts.Count < 3 ? throw new IOException("storage said 503") : Task.CompletedTask;
        }, new BatchingSinkOptions { RetryDelay = TimeSpan.FromMilliseconds(1), MaxDelay = TimeSpan.FromHours(1) }))
        {
            flaky.TryAddRange([1, 2, 3]);
            await flaky.FlushAsync();
            Assert.Equal((3L, 0L), (flaky.Written, flaky.Dropped));
        }
        Assert.Equal(3, attempts.Count);
        Assert.All(attempts, a => Assert.Equal([1, 2, 3], a)); // each retry re-sends the same content: the write's key

        var told = new List<int>();
        var log = new ListLogger();
        await using var broken = new BatchingSink<int>("test", (_, _) => throw new IOException("storage is down"),
            new BatchingSinkOptions { MaxAttempts = 2, RetryDelay = TimeSpan.FromMilliseconds(1), MaxDelay = TimeSpan.FromHours(1) }, log, dropped: told.AddRange);
        broken.TryAddRange([7, 8]);
        await broken.FlushAsync();
        Assert.Equal((0L, 2L), (broken.Written, broken.Dropped));
        Assert.Equal([7, 8], told);
        Assert.Contains(log.Lines, l => l.Contains("dropped 2", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Disposing_writes_everything_buffered_and_refuses_what_comes_after()
    {
        var writer = new RecordingWriter();
        var sink = new BatchingSink<int>("test", writer.Write, new BatchingSinkOptions { MaxDelay = TimeSpan.FromHours(1) });
        sink.TryAddRange(Enumerable.Range(0, 5));

        await sink.DisposeAsync(); // the host's shutdown

        Assert.Equal(Enumerable.Range(0, 5), writer.Written);
        Assert.False(sink.TryAdd(99));
        Assert.Equal(1, sink.Dropped);
    }

    /// <summary>
    /// Slates written through the ingestion code while storage loses the answer of every third request after doing it
    /// (a crash between the write and its acknowledgement): the sink re-sends the same batch, the batch is one delivery
    /// keyed by its content, and every impression is in the log once and in its user's state once.
    /// </summary>
    [Fact]
    public async Task Impressions_written_through_ingestion_with_lost_answers_are_logged_and_applied_exactly_once()
    {
        var layout = Azurite.UniqueLayout();
        var services = await Azurite.CreateServicesAsync(layout, new LostAnswers(every: 3));
        var slates = Enumerable.Range(0, 40).Select(s => Enumerable.Range(0, 3).Select(p => new WireEvent
        {
            SchemaVersion = 1, EventId = $"r{s}-{p}", UserId = $"u{s % 5}", ItemId = $"i{(s + p) % 17}", Type = "impression",
            RecommendationId = $"r{s}", Position = p, Timestamp = TestEvents.Start.AddMinutes(s),
        }).ToList()).ToList();

        var sink = new BatchingSink<IReadOnlyList<WireEvent>>("impressions", (batch, ct) => services.Ingestor.IngestEventsAsync(batch.SelectMany(s => s).ToList(), ct),
            new BatchingSinkOptions { MaxBatch = 7, MaxDelay = TimeSpan.FromHours(1), RetryDelay = TimeSpan.FromMilliseconds(1), MaxAttempts = 20 });
        Assert.Equal(0, sink.TryAddRange(slates));
        await sink.DisposeAsync();

        Assert.Equal((40L, 0L), (sink.Written, sink.Dropped));
        await LogAssert.ExactlyAsync(await Azurite.CreateServicesAsync(layout), slates.SelectMany(s => s));
    }

    /// <summary>Passes every request to storage; the answer of every n-th is lost on its way back, as a dropped connection would lose it.</summary>
    private sealed class LostAnswers(int every) : HttpPipelinePolicy
    {
        private int _requests;

        public override void Process(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline)
        {
            ProcessNext(message, pipeline);
            Check();
        }

        public override async ValueTask ProcessAsync(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline)
        {
            await ProcessNextAsync(message, pipeline);
            Check();
        }

        private void Check()
        {
            if (Interlocked.Increment(ref _requests) % every == 0)
                throw new Azure.RequestFailedException(0, "the answer was lost (injected)");
        }
    }

    private sealed class ListLogger : ILogger
    {
        public List<string> Lines { get; } = [];
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lock (Lines)
                Lines.Add(formatter(state, exception));
        }
    }
}
