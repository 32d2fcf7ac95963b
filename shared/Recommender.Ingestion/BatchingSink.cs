using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Polly;
using Polly.Retry;
using Recommender.Storage;

namespace Recommender.Ingestion;

/// <summary>Tuning of a <see cref="BatchingSink{T}"/>.</summary>
public sealed record BatchingSinkOptions
{
    /// <summary>Items held in memory at most; beyond it new items are dropped, counted and logged (bounded memory under overload).</summary>
    public int Capacity { get; init; } = 100_000;

    /// <summary>Items written in one batch at most.</summary>
    public int MaxBatch { get; init; } = 2_000;

    /// <summary>
    /// How long the first item of a batch waits for others: the most a written item lags behind its request, before the
    /// write itself (and what a crash of the process can lose). Longer batches write each user's state once for several of its slates.
    /// </summary>
    public TimeSpan MaxDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Attempts at writing one batch (storage errors, throttling) before it is dropped, counted and logged.</summary>
    public int MaxAttempts { get; init; } = 8;

    /// <summary>The first retry's wait; it doubles (with jitter) up to 5 seconds.</summary>
    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromMilliseconds(200);
}

/// <summary>
/// Writes items behind the request path: a request adds its items and returns; a background loop writes them in
/// batches (by count and time) through <c>write</c>, retrying a failed batch. What cannot be kept is never lost
/// silently: items refused when the buffer is full, and batches that fail every attempt, are counted
/// (<see cref="Dropped"/>, the <c>recommender.sink.dropped</c> metric) and logged. <see cref="FlushAsync"/> returns
/// once everything added before it is written; disposing stops intake and drains the buffer (a host's shutdown).
/// </summary>
/// <remarks>
/// The write must be idempotent for a batch's content, because a retry re-sends a batch whose first attempt may
/// have landed (the ingestion code is: a batch of events is one delivery keyed by its content). Batches keep the
/// order items were added in.
/// </remarks>
public sealed class BatchingSink<T> : IAsyncDisposable
{
    private readonly string _name;
    private readonly Func<IReadOnlyList<T>, CancellationToken, Task> _write;
    private readonly BatchingSinkOptions _options;
    private readonly ILogger _log;
    private readonly Action<IReadOnlyList<T>>? _dropped;
    private readonly Channel<T> _buffer;
    private readonly ResiliencePipeline _retry;
    private readonly Task _loop;
    private readonly Lock _gate = new();
    private readonly List<(long Upto, TaskCompletionSource Done)> _flushes = [];
    private TaskCompletionSource _flushRequested = NewSignal();
    private long _added; // items accepted so far, in order: item n is done with when _processed >= n
    private long _processed; // written, or dropped with their batch
    private long _failed; // dropped with a batch that failed every attempt
    private long _refused; // dropped at intake
    private bool _stopping;

    /// <param name="name">What the sink writes, in its log lines and the <c>sink</c> tag of its metric.</param>
    /// <param name="write">Writes one batch; idempotent for its content (a retry re-sends it).</param>
    /// <param name="dropped">Told of the items of a batch that failed every attempt (after the count and the log line).</param>
    public BatchingSink(string name, Func<IReadOnlyList<T>, CancellationToken, Task> write, BatchingSinkOptions? options = null, ILogger? log = null,
        Action<IReadOnlyList<T>>? dropped = null)
    {
        _name = name;
        _dropped = dropped;
        _write = write;
        _options = options ?? new();
        _log = log ?? NullLogger.Instance;
        _buffer = Channel.CreateBounded<T>(new BoundedChannelOptions(_options.Capacity) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
        _retry = new ResiliencePipelineBuilder().AddRetry(new RetryStrategyOptions
        {
            MaxRetryAttempts = Math.Max(0, _options.MaxAttempts - 1),
            BackoffType = DelayBackoffType.Exponential,
            UseJitter = true,
            Delay = _options.RetryDelay,
            MaxDelay = TimeSpan.FromSeconds(5),
            ShouldHandle = new PredicateBuilder().Handle<Exception>(ex => ex is not OperationCanceledException),
            OnRetry = args =>
            {
                _log.LogWarning(args.Outcome.Exception, "{Sink}: writing a batch failed (attempt {Attempt}); retrying in {Delay}", _name, args.AttemptNumber + 1, args.RetryDelay);
                return ValueTask.CompletedTask;
            },
        }).Build();
        _loop = Task.Run(RunAsync);
    }

    /// <summary>Items accepted and not yet written.</summary>
    public long Pending { get { lock (_gate) return _added - _processed; } }

    /// <summary>Items written.</summary>
    public long Written { get { lock (_gate) return _processed - _failed; } }

    /// <summary>Items dropped: refused because the buffer was full or the sink had stopped, or in a batch that failed every attempt.</summary>
    public long Dropped { get { lock (_gate) return _refused + _failed; } }

    /// <summary>Adds one item to be written; false when it was dropped (counted and logged) because the buffer is full or the sink has stopped.</summary>
    public bool TryAdd(T item)
    {
        if (TryAddIfRoom(item))
            return true;
        lock (_gate)
            _refused++;
        LogDropped(1, "the buffer is full or the sink has stopped");
        return false;
    }

    /// <summary>
    /// Adds one item to be written if the buffer has room; false when it has none or the sink has stopped, and then the
    /// item is still the caller's to write some other way: nothing is counted or logged as dropped, so the drop counter
    /// stays an alarm about lost items, not about a caller that waited for storage instead.
    /// </summary>
    public bool TryAddIfRoom(T item)
    {
        lock (_gate) // the count and the buffer move together, so a flush knows which items came before it
        {
            if (!_buffer.Writer.TryWrite(item))
                return false;
            _added++;
            return true;
        }
    }

    /// <summary>Adds items in order; returns how many were dropped.</summary>
    public int TryAddRange(IEnumerable<T> items)
    {
        var dropped = 0;
        foreach (var item in items)
        {
            if (!TryAdd(item))
                dropped++;
        }
        return dropped;
    }

    /// <summary>Writes now what waits, and returns once everything added before this call is written (or dropped).</summary>
    public Task FlushAsync(CancellationToken cancellationToken = default)
    {
        Task done;
        lock (_gate)
        {
            if (_processed >= _added)
                return Task.CompletedTask;
            var flush = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _flushes.Add((_added, flush));
            _flushRequested.TrySetResult();
            done = flush.Task;
        }
        return done.WaitAsync(cancellationToken);
    }

    /// <summary>Stops intake and writes what is buffered (with the retries a batch gets).</summary>
    public async ValueTask DisposeAsync()
    {
        lock (_gate)
        {
            _buffer.Writer.TryComplete();
            _stopping = true;
            _flushRequested.TrySetResult(); // the loop stops waiting for fuller batches and drains the buffer
        }
        await _loop;
    }

    private async Task RunAsync()
    {
        var reader = _buffer.Reader;
        var batch = new List<T>(_options.MaxBatch);
        while (await reader.WaitToReadAsync())
        {
            // Wait for a fuller batch unless one is full, a flush is asked for, or intake has stopped.
            Task requested;
            lock (_gate)
                requested = _flushRequested.Task;
            if (reader.Count < _options.MaxBatch && !requested.IsCompleted && !reader.Completion.IsCompleted)
            {
                using var waited = new CancellationTokenSource();
                await Task.WhenAny(Task.Delay(_options.MaxDelay, waited.Token), requested);
                waited.Cancel(); // no timer left behind when a flush cut the wait short
            }

            batch.Clear();
            while (batch.Count < _options.MaxBatch && reader.TryRead(out var item))
                batch.Add(item);
            if (batch.Count == 0)
                continue;
            try
            {
                await _retry.ExecuteAsync(async token => await _write(batch, token), CancellationToken.None);
                Done(batch.Count);
            }
            catch (Exception ex)
            {
                // Counted, logged and told before the flushes waiting for this batch return: a flush means handled.
                lock (_gate)
                    _failed += batch.Count;
                LogDropped(batch.Count, $"writing failed {_options.MaxAttempts} times", ex);
                _dropped?.Invoke(batch);
                Done(batch.Count);
            }
        }
    }

    /// <summary>Items written or dropped: the flushes waiting for them return.</summary>
    private void Done(int count)
    {
        lock (_gate)
        {
            _processed += count;
            if (_processed >= _added && !_stopping)
                _flushRequested = NewSignal();
            for (var i = _flushes.Count - 1; i >= 0; i--)
            {
                if (_flushes[i].Upto <= _processed)
                {
                    _flushes[i].Done.TrySetResult();
                    _flushes.RemoveAt(i);
                }
            }
        }
    }

    private void LogDropped(int count, string reason, Exception? error = null)
    {
        var total = Dropped;
        RecommenderMetrics.SinkDropped.Add(count, new KeyValuePair<string, object?>("sink", _name));
        // The first drop, then one line per thousand: an overload does not flood the log, and none goes unsaid.
        if (total - count < 1 || (total - count) / 1000 != total / 1000 || error is not null)
            _log.LogError(error, "{Sink}: dropped {Count} item(s) ({Total} so far): {Reason}", _name, count, total, reason);
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
