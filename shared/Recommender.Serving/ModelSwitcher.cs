using Azure;
using Recommender.ModelContract;

namespace Recommender.Serving;

/// <summary>Use of the served model for one request; disposing it lets a retired model's session go.</summary>
public readonly struct ModelLease(PolicyModel model) : IDisposable
{
    public PolicyModel Model { get; } = model;

    public void Dispose() => Model.Release();
}

public enum RefreshOutcome
{
    /// <summary>The pointer did not change (one conditional request).</summary>
    Unchanged,
    /// <summary>No model is published yet.</summary>
    NoModel,
    /// <summary>A new version is serving.</summary>
    Swapped,
    /// <summary>The promoted version failed to load or its smoke check; the previous one keeps serving.</summary>
    Refused,
}

/// <summary>
/// Keeps the promoted model loaded and swaps it without downtime: <see cref="RefreshAsync"/> polls the
/// pointer cheaply (a conditional request), loads and smoke-checks a new version off the request path,
/// then swaps one reference. Requests hold a <see cref="ModelLease"/>, so the old session is disposed
/// only after its last request finishes. A version that fails to load is refused and remembered.
/// </summary>
public sealed class ModelSwitcher(ModelRegistry registry, TimeSpan? refreshInterval = null, TimeProvider? time = null) : IDisposable
{
    private readonly TimeSpan _refreshInterval = refreshInterval ?? TimeSpan.FromSeconds(15);
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private long _lastCheckTicks;

    /// <summary>While nothing is published, requests look for a model at most this often (each gets a 503 meanwhile).</summary>
    private static readonly TimeSpan NoModelRecheck = TimeSpan.FromSeconds(1);
    private PolicyModel? _current;
    private ETag? _pointerETag;
    private readonly SemaphoreSlim _refreshing = new(1, 1);
    private Task<RefreshOutcome>? _noModelCheck;

    public string? CurrentVersion => Volatile.Read(ref _current)?.Version;

    /// <summary>Why the last promoted version was refused, if it was.</summary>
    public string? LastError { get; private set; }

    /// <summary>The model to serve this request with, or null when none is published (answer 503).</summary>
    public ModelLease? Acquire()
    {
        while (true)
        {
            var model = Volatile.Read(ref _current);
            if (model is null)
                return null;
            if (model.TryAcquire())
                return new ModelLease(model);
            // Swapped and released between the read and the acquire: read the new one.
        }
    }

    /// <summary>
    /// The model for a request, checking the pointer as needed: the first request waits for a load; later
    /// ones start a background refresh when the last check is older than the refresh interval, and go on
    /// with the current model. Null when no model is published (answer 503).
    /// </summary>
    public async Task<ModelLease?> AcquireAsync(CancellationToken cancellationToken = default)
    {
        var now = _time.GetUtcNow().UtcTicks;
        var last = Interlocked.Read(ref _lastCheckTicks);
        if (Volatile.Read(ref _current) is null)
        {
            // Every request that finds no model waits for the same check, so the first requests to a fresh instance
            // wait for the load instead of answering 503 while it runs.
            var check = Volatile.Read(ref _noModelCheck);
            if (check is null || (check.IsCompleted && (now - last > NoModelRecheck.Ticks || last == 0)))
            {
                lock (_refreshing)
                {
                    if (ReferenceEquals(check, _noModelCheck))
                    {
                        Interlocked.Exchange(ref _lastCheckTicks, now);
                        _noModelCheck = RefreshAsync(CancellationToken.None);
                    }
                    check = _noModelCheck;
                }
            }
            await check!.WaitAsync(cancellationToken);
        }
        else if (now - last > _refreshInterval.Ticks && Interlocked.CompareExchange(ref _lastCheckTicks, now, last) == last)
        {
            _ = Task.Run(() => RefreshAsync(CancellationToken.None), CancellationToken.None);
        }
        return Acquire();
    }

    public async Task<RefreshOutcome> RefreshAsync(CancellationToken cancellationToken = default)
    {
        await _refreshing.WaitAsync(cancellationToken);
        try
        {
            if (!await registry.HasChangedSinceAsync(_pointerETag, cancellationToken))
                return _current is null ? RefreshOutcome.NoModel : RefreshOutcome.Unchanged;
            var pointer = await registry.GetCurrentAsync(cancellationToken);
            if (pointer is null)
                return RefreshOutcome.NoModel;
            _pointerETag = pointer.ETag;
            if (pointer.Pointer.Version == CurrentVersion)
                return RefreshOutcome.Unchanged;

            PolicyModel loaded;
            try
            {
                var (manifest, policy) = await registry.DownloadAsync(pointer.Pointer.Version, cancellationToken);
                loaded = PolicyModel.Load(manifest, policy);
            }
            catch (Exception ex) when (ex is InvalidModelException or InvalidDataException or System.Text.Json.JsonException or RequestFailedException)
            {
                LastError = $"version {pointer.Pointer.Version} refused: {ex.Message}";
                return RefreshOutcome.Refused;
            }
            Interlocked.Exchange(ref _current, loaded)?.Release();
            LastError = null;
            return RefreshOutcome.Swapped;
        }
        finally
        {
            _refreshing.Release();
        }
    }

    public void Dispose()
    {
        Interlocked.Exchange(ref _current, null)?.Release();
        _refreshing.Dispose();
    }
}
