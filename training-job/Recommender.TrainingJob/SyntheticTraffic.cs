using Recommender.Data;
using Recommender.Events;
using Recommender.Ingestion;

namespace Recommender.TrainingJob;

/// <summary>
/// Sends the synthetic world's catalog, profiles and history through the product's ingestion code (the
/// same path as <c>POST /api/events</c>), in batches of 1,000, so a local run has an event log to train on.
/// </summary>
public static class SyntheticTraffic
{
    public static async Task<(int Accepted, int Rejected)> SendAsync(IngestionServices services, SyntheticWorldOptions options, TextWriter? progress, CancellationToken cancellationToken = default)
    {
        await services.EnsureCreatedAsync(cancellationToken);
        var world = new SyntheticWorld(options);
        var start = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
        var events = world.CatalogAndProfileEvents(start.AddDays(-1))
            .Concat(world.GenerateHistory(start).Select(WireEvent.From))
            .ToList();
        int accepted = 0, rejected = 0;
        foreach (var batch in events.Chunk(HttpIngestLimits.Default.MaxEvents))
        {
            var result = await services.Ingestor.IngestEventsAsync(batch, cancellationToken);
            accepted += result.Accepted;
            rejected += result.Rejected.Count;
        }
        progress?.WriteLine($"sent {events.Count:N0} events of the synthetic world (seed {options.Seed}): {accepted:N0} accepted, {rejected:N0} rejected");
        return (accepted, rejected);
    }
}
