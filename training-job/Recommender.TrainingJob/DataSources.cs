using Recommender.Data;
using Recommender.Events;
using Recommender.Ingestion;

namespace Recommender.TrainingJob;

/// <summary>
/// Opens a data source named on the command line:
/// <c>sasrec:&lt;file&gt;</c>, <c>movielens:&lt;dir&gt;</c>, <c>synthetic:&lt;options&gt;</c> (e.g. <c>synthetic:users=1000,items=500,seed=7</c>),
/// <c>eventlog:&lt;connection&gt;</c> (the product's event log in Blob Storage, "dev" for Azurite, deleted users excluded),
/// <c>snapshot:[&lt;container&gt;/]&lt;id&gt;</c> (a training snapshot frozen by the orchestration, in the storage account of <paramref name="storage"/>).
/// </summary>
public static class DataSources
{
    public const string DevelopmentStorage = "UseDevelopmentStorage=true";

    public static async Task<InteractionDataset> OpenAsync(string source, string storage = DevelopmentStorage, CancellationToken cancellationToken = default)
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
            "eventlog" => await OpenEventLogAsync(IngestionServices.Connect(argument.Length == 0 || argument == "dev" ? DevelopmentStorage : argument), cancellationToken),
            "snapshot" => await OpenSnapshotAsync(storage, argument, cancellationToken),
            _ => throw new ArgumentException($"unknown data source kind '{kind}' (sasrec, movielens, synthetic, eventlog, snapshot)"),
        };
    }

    private static InteractionDataset OpenSynthetic(string options)
    {
        var world = new SyntheticWorld(SyntheticWorldOptions.Parse(options));
        return world.ToDataset(world.GenerateHistory(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero)));
    }

    /// <summary>The event log as it is now: its engagements (what enters a user's history), with catalog content as item features.</summary>
    internal static async Task<InteractionDataset> OpenEventLogAsync(IngestionServices services, CancellationToken cancellationToken = default)
    {
        var records = await services.SnapshotReader.ReadAsync(cancellationToken: cancellationToken);
        var catalog = new Dictionary<string, string[]>();
        await foreach (var item in services.Catalog.ListItemsAsync(cancellationToken))
            catalog[item.ItemId] = TrainingSnapshotStore.ContentTokens(item);
        return ToDataset("eventlog", records.Where(r => r.IsEngagement()), catalog);
    }

    /// <summary>A frozen training snapshot (<c>[container/]id</c>, the layout's training container by default): the same data however often it is read.</summary>
    private static async Task<InteractionDataset> OpenSnapshotAsync(string storage, string argument, CancellationToken cancellationToken)
    {
        var slash = argument.LastIndexOf('/');
        var layout = slash < 0 ? StorageLayout.Default : StorageLayout.Default with { TrainingContainer = argument[..slash] };
        var id = argument[(slash + 1)..];
        var (engagements, catalog) = await IngestionServices.Connect(storage, layout).Snapshots.ReadAsync(id, cancellationToken);
        return ToDataset("snapshot:" + id, engagements, catalog);
    }

    private static InteractionDataset ToDataset(string name, IEnumerable<EventLogRecord> engagements, IReadOnlyDictionary<string, string[]> itemContent)
    {
        var data = InteractionDataset.FromInteractions(name, engagements.Select(r => (r.UserId, r.ItemId!, r.Timestamp.Ticks)));
        return data with
        {
            ItemFeatures = FeatureTable.FromStrings(data.ItemIds.Select(id => (IReadOnlyList<string>)(itemContent.GetValueOrDefault(id) ?? [])).ToList()),
        };
    }
}
