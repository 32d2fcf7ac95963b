using Microsoft.Extensions.Hosting;
using Recommender.Serving;

namespace Recommender.Functions;

/// <summary>
/// Serving's start and end with the host's: at start, loads the promoted model (so the first requests do not wait
/// for it); at shutdown (a scale-in, a deployment, Ctrl-C), writes what serving's sinks still hold (rank records and
/// impressions) before the process ends, within the host's shutdown timeout.
/// </summary>
public sealed class ServingLifetime(ServingServices serving) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            await serving.Switcher.RefreshAsync(cancellationToken);
        }
        catch (Azure.RequestFailedException)
        {
            // Storage not reachable yet: the first request loads the model.
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken) => await serving.DisposeAsync();
}
