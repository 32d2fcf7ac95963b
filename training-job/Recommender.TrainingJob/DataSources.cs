using Recommender.Data;
using Recommender.Events;
using Recommender.Ingestion;

namespace Recommender.TrainingJob;

/// <summary>
/// Opens a data source named on the command line:
/// <c>sasrec:&lt;file&gt;</c>, <c>movielens:&lt;dir&gt;</c>, <c>synthetic:&lt;options&gt;</c> (e.g. <c>synthetic:users=1000,items=500,seed=7</c>),
/// <c>eventlog:&lt;connection&gt;</c> (the product's event log in Blob Storage, "dev" for Azurite, deleted users excluded).
/// </summary>
public static class DataSources
{
    public static async Task<InteractionDataset> OpenAsync(string source, CancellationToken cancellationToken = default)
    {
        var colon = source.IndexOf(':');
        if (colon < 0)
            throw new ArgumentException($"data source '{source}' needs a kind: sasrec:<file>, movielens:<dir>, synthetic:<options>, eventlog:<connection>");
        var (kind, argument) = (source[..colon], source[(colon + 1)..]);
        return kind switch
        {
            "sasrec" => SasRecFile.Load(argument),
            "movielens" => MovieLens.Load(argument),
            "synthetic" => OpenSynthetic(argument),
            "eventlog" => await OpenEventLogAsync(argument.Length == 0 || argument == "dev" ? "UseDevelopmentStorage=true" : argument, cancellationToken),
            _ => throw new ArgumentException($"unknown data source kind '{kind}' (sasrec, movielens, synthetic, eventlog)"),
        };
    }

    private static InteractionDataset OpenSynthetic(string options)
    {
        var world = new SyntheticWorld(SyntheticWorldOptions.Parse(options));
        return world.ToDataset(world.GenerateHistory(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero)));
    }

    /// <summary>The event log's engagements (what enters a user's history), with catalog content as item features.</summary>
    private static Task<InteractionDataset> OpenEventLogAsync(string connection, CancellationToken cancellationToken) =>
        OpenEventLogAsync(IngestionServices.FromConnectionString(connection), cancellationToken);

    internal static async Task<InteractionDataset> OpenEventLogAsync(IngestionServices services, CancellationToken cancellationToken = default)
    {
        var records = await services.SnapshotReader.ReadAsync(cancellationToken: cancellationToken);
        var engagements = records
            .Where(r => r.ItemId is not null && EventParser.TryParseType(r.Type, out var type) && type.IsEngagement())
            .Select(r => (r.UserId, r.ItemId!, r.Timestamp.Ticks));
        var data = InteractionDataset.FromInteractions("eventlog", engagements);
        var catalog = new Dictionary<string, IReadOnlyList<string>>();
        await foreach (var item in services.Catalog.ListItemsAsync(cancellationToken))
            catalog[item.ItemId] = [.. item.Categories.Select(c => "category:" + c), .. item.Tags.Select(t => "tag:" + t)];
        return data with
        {
            ItemFeatures = FeatureTable.FromStrings(data.ItemIds.Select(id => catalog.GetValueOrDefault(id) ?? []).ToList()),
        };
    }
}
