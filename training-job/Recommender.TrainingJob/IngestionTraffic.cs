using Recommender.Data;
using Recommender.Events;
using Recommender.Ingestion;

namespace Recommender.TrainingJob;

/// <summary>
/// Sends data through the product's ingestion code (the same path as <c>POST /api/events</c>), in batches
/// of 1,000, so a local run has an event log to train on: the synthetic world's catalog, profiles and
/// history, or any data source's interactions (e.g. a MovieLens folder) with its item features as categories.
/// Event ids are derived from the data, so sending the same data again adds nothing.
/// </summary>
public static class IngestionTraffic
{
    private static readonly DateTimeOffset Start = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    public static Task<(int Accepted, int Rejected)> SendAsync(IngestionServices services, SyntheticWorldOptions options, TextWriter? progress, CancellationToken cancellationToken = default)
    {
        var world = new SyntheticWorld(options);
        var events = world.CatalogAndProfileEvents(Start.AddDays(-1)).Concat(world.GenerateHistory(Start).Select(WireEvent.From));
        return SendEventsAsync(services, events.ToList(), $"the synthetic world (seed {options.Seed})", progress, cancellationToken);
    }

    /// <summary>
    /// A data set's interactions as clicks, one minute apart in each user's order (the sources carry order,
    /// not always time), and its items with their feature tokens as categories.
    /// </summary>
    public static Task<(int Accepted, int Rejected)> SendDatasetAsync(IngestionServices services, InteractionDataset data, TextWriter? progress, CancellationToken cancellationToken = default)
    {
        var items = Enumerable.Range(1, data.ItemCount).Select(i => WireEvent.From(new CatalogItem(
            $"{data.Name}-item-{i}", data.ItemIds[i],
            data.ItemFeatures is null ? [] : data.ItemFeatures.Tokens[i].Select(t => data.ItemFeatures.Vocabulary[t]).ToList(),
            [], null, null, true, Start.AddDays(-1))));
        var interactions = data.Sequences.SelectMany((sequence, u) => sequence.Select((item, position) => WireEvent.From(new Interaction(
            $"{data.Name}-{u}-{position}", data.UserIds[u], data.ItemIds[item], InteractionType.Click, null, Start.AddMinutes(position)))));
        return SendEventsAsync(services, items.Concat(interactions).ToList(), data.Name, progress, cancellationToken);
    }

    private static async Task<(int Accepted, int Rejected)> SendEventsAsync(IngestionServices services, IReadOnlyList<WireEvent> events, string what, TextWriter? progress, CancellationToken cancellationToken)
    {
        await services.EnsureCreatedAsync(cancellationToken);
        int accepted = 0, rejected = 0;
        foreach (var batch in events.Chunk(HttpIngestLimits.Default.MaxEvents))
        {
            var result = await services.Ingestor.IngestEventsAsync(batch, cancellationToken);
            accepted += result.Accepted;
            rejected += result.Rejected.Count;
        }
        progress?.WriteLine($"sent {events.Count:N0} events of {what}: {accepted:N0} accepted, {rejected:N0} rejected");
        return (accepted, rejected);
    }
}
