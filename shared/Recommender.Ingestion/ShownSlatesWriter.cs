using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Recommender.Ingestion;

/// <summary>
/// Writes the slates serving noted as shown into the users' rows (<see cref="UserStateStore.StoreShownAsync"/>) every
/// half <see cref="UserStateStoreOptions.ShownSlatesDelay"/>, those noted at least that delay ago, and everything left
/// when disposed (a host's shutdown). A failed write is logged and tried again at the next tick: the slates stay noted,
/// and reads keep including them meanwhile.
/// </summary>
public sealed class ShownSlatesWriter : IAsyncDisposable
{
    private readonly UserStateStore _store;
    private readonly ILogger _log;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private readonly Lazy<Task> _stopping;

    public ShownSlatesWriter(UserStateStore store, ILogger? log = null)
    {
        _store = store;
        _log = log ?? NullLogger.Instance;
        _loop = Task.Run(RunAsync);
        _stopping = new Lazy<Task>(StopAsync);
    }

    private async Task RunAsync()
    {
        var delay = _store.Options.ShownSlatesDelay;
        using var timer = new PeriodicTimer(delay / 2 > TimeSpan.Zero ? delay / 2 : TimeSpan.FromMilliseconds(100));
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token))
                await StoreAsync(delay, _stop.Token);
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
        }
    }

    private async Task StoreAsync(TimeSpan olderThan, CancellationToken cancellationToken)
    {
        try
        {
            await _store.StoreShownAsync(olderThan, cancellationToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            _log.LogWarning(ex, "Writing the slates shown into the users' state failed; trying again in {Delay}", _store.Options.ShownSlatesDelay / 2);
        }
    }

    /// <summary>Writes every slate noted so far, whatever its age (a flush before a deletion or a snapshot).</summary>
    public Task FlushAsync(CancellationToken cancellationToken = default) => _store.StoreShownAsync(TimeSpan.Zero, cancellationToken);

    /// <summary>Stops the timer and writes what is left; a second call (a host disposes its services after stopping them) waits for the first.</summary>
    public async ValueTask DisposeAsync() => await _stopping.Value;

    private async Task StopAsync()
    {
        await _stop.CancelAsync();
        await _loop;
        await StoreAsync(TimeSpan.Zero, CancellationToken.None);
    }
}
