using Recommender.Data;
using Recommender.EventLog;
using Recommender.Events;
using Recommender.Ingestion;
using Recommender.Storage;

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

    /// <summary>The event log as it is now: its engagements (what enters a user's history), with catalog content as item features and profiles as user features.</summary>
    internal static async Task<InteractionDataset> OpenEventLogAsync(IngestionServices services, CancellationToken cancellationToken = default)
    {
        var records = await services.SnapshotReader.ReadAsync(cancellationToken: cancellationToken);
        var catalog = new Dictionary<string, string[]>();
        await foreach (var item in services.Catalog.ListItemsAsync(cancellationToken))
            catalog[item.ItemId] = FeatureTokens.OfItem(item);
        var profiles = new Dictionary<string, string[]>();
        await foreach (var profile in services.Catalog.ListProfilesAsync(cancellationToken))
            profiles[profile.UserId] = FeatureTokens.OfProfile(profile.Attributes);
        return ToDataset("eventlog", records.Where(r => r.IsEngagement()).ToList(), catalog, profiles);
    }

    /// <summary>A frozen training snapshot (<c>[container/]id</c>, the layout's training container by default): the same data however often it is read.</summary>
    private static async Task<InteractionDataset> OpenSnapshotAsync(string storage, string argument, CancellationToken cancellationToken) =>
        (await OpenProductSnapshotAsync(storage, argument, horizon: 30, cancellationToken)).Data;

    /// <summary>
    /// A frozen training snapshot as the product's retraining reads it: the dataset (engagements, item content, user
    /// profiles) and the decisions served with their responses, as RL sessions in the dataset's numbering.
    /// </summary>
    /// <param name="horizon">Slates per session at most (the RL stage's): a logged session that reaches it was cut, not left.</param>
    public static async Task<(InteractionDataset Data, Recommender.Training.Reinforcement.ProductLogs Logs)> OpenProductSnapshotAsync(string storage, string argument, int horizon,
        CancellationToken cancellationToken = default)
    {
        var slash = argument.LastIndexOf('/');
        var layout = slash < 0 ? StorageLayout.Default : StorageLayout.Default with { TrainingContainer = argument[..slash] };
        var id = argument[(slash + 1)..];
        var snapshot = await IngestionServices.Connect(storage, layout).Snapshots.ReadAsync(id, cancellationToken);
        // Items shown but never engaged with join the item table after the engaged ones (whose numbers stay as they were),
        // so the slates that showed them are still decisions RL can read.
        var shownOnly = snapshot.Decisions.SelectMany(d => d.Items).Distinct().Except(snapshot.Engagements.Select(r => r.ItemId!)).Order(StringComparer.Ordinal).ToList();
        var data = ToDataset("snapshot:" + id, snapshot.Engagements, snapshot.ItemContent, snapshot.UserProfiles, shownOnly);
        var users = data.UserIds.Select((user, u) => (user, u)).ToDictionary(x => x.user, x => x.u, StringComparer.Ordinal);
        var ticks = snapshot.Engagements.GroupBy(r => r.UserId).ToDictionary(g => g.Key, g => g.Select(r => r.Timestamp.Ticks).Order().ToArray());
        var engagementTicks = data.UserIds.Select(user => ticks.GetValueOrDefault(user) ?? []).ToList();
        return (data, Recommender.Training.Reinforcement.ProductLogs.From(data, engagementTicks, snapshot.Decisions, horizon));
    }

    private static InteractionDataset ToDataset(string name, IList<EventLogRecord> engagements, IReadOnlyDictionary<string, string[]> itemContent, IReadOnlyDictionary<string, string[]> profiles,
        IReadOnlyList<string>? moreItems = null)
    {
        var data = InteractionDataset.FromInteractions(name, engagements.Select(r => (r.UserId, r.ItemId!, r.Timestamp.Ticks)));
        if (moreItems is { Count: > 0 })
            data = data with { ItemIds = [.. data.ItemIds, .. moreItems] };
        return data with
        {
            ItemFeatures = FeatureTable.FromStrings(data.ItemIds.Select(id => (IReadOnlyList<string>)(itemContent.GetValueOrDefault(id) ?? [])).ToList()),
            UserFeatures = profiles.Count == 0 ? null : FeatureTable.FromStrings(data.UserIds.Select(id => (IReadOnlyList<string>)(profiles.GetValueOrDefault(id) ?? [])).ToList()),
        };
    }
}
