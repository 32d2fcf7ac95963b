using Recommender.Events;
using Recommender.Ingestion;
using Recommender.Storage;
using Recommender.TestSupport;

namespace Recommender.Ingestion.Tests;

/// <summary>Serving reads users' state from memory: its own writes at once, other instances' within the stated bound, never later.</summary>
public sealed class UserStateCacheTests
{
    private static WireEvent Click(string user, string item, int minute) => new()
    {
        SchemaVersion = 1, EventId = $"{user}-{item}-{minute}", UserId = user, ItemId = item, Type = "click", Timestamp = TestEvents.Start.AddMinutes(minute),
    };

    [Fact]
    public async Task A_write_by_another_instance_is_read_within_the_bound_and_never_after_it()
    {
        var layout = Azurite.UniqueLayout();
        var clock = new ManualClock(TestEvents.Start.AddDays(1));
        var serving = await Azurite.CreateServicesAsync(layout, time: clock); // reads, as a serving instance does
        var other = await Azurite.CreateServicesAsync(layout, time: clock);   // an instance that ingests
        var bound = new StaleBoundedCacheOptions().MaxStaleness;

        Assert.Null(await serving.UserStates.GetAsync("ann")); // read (absent) and cached
        await other.Ingestor.IngestEventsAsync([Click("ann", "i1", 1)]);

        clock.Advance(bound * 0.5);
        Assert.Null(await serving.UserStates.GetAsync("ann")); // within the bound: the cached answer may be served
        clock.Advance(bound * 0.5 + TimeSpan.FromMilliseconds(1));
        // Past it, storage is asked again and its answer served: at once when it answers within StorageWait, else on the
        // read after its answer lands (StaleBoundedCacheTests pins that timing without storage).
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (await serving.UserStates.GetAsync("ann") is null && waited.Elapsed < TimeSpan.FromSeconds(10))
            await Task.Delay(20);
        Assert.Equal(["i1"], (await serving.UserStates.GetAsync("ann"))!.Recent.Select(r => r.ItemId));

        // Past the longest bound a read waits for storage, however slow: never served older than that.
        await other.Ingestor.IngestEventsAsync([Click("ann", "i2", 2)]);
        clock.Advance(new StaleBoundedCacheOptions().MaxStalenessWhileStorageLags);
        Assert.Equal(["i1", "i2"], (await serving.UserStates.GetAsync("ann"))!.Recent.Select(r => r.ItemId));
    }

    [Fact]
    public async Task Older_than_three_quarters_of_the_bound_a_read_is_served_from_memory_and_refreshed_behind_it()
    {
        var layout = Azurite.UniqueLayout();
        var clock = new ManualClock(TestEvents.Start.AddDays(1));
        var serving = await Azurite.CreateServicesAsync(layout, time: clock);
        var other = await Azurite.CreateServicesAsync(layout, time: clock);
        var bound = new StaleBoundedCacheOptions().MaxStaleness;
        await serving.Ingestor.IngestEventsAsync([Click("bo", "i1", 1)]);

        await other.Ingestor.IngestEventsAsync([Click("bo", "i2", 2)]);
        clock.Advance(bound * 0.8);
        Assert.Single((await serving.UserStates.GetAsync("bo"))!.Recent); // served at once, a refresh started

        var waited = System.Diagnostics.Stopwatch.StartNew();
        while ((await serving.UserStates.GetAsync("bo"))!.Recent.Count < 2 && waited.Elapsed < TimeSpan.FromSeconds(10))
            await Task.Delay(20);
        Assert.Equal(["i1", "i2"], (await serving.UserStates.GetAsync("bo"))!.Recent.Select(r => r.ItemId));
    }

    [Fact]
    public async Task What_this_instance_ingests_or_deletes_is_read_back_at_once()
    {
        var services = await Azurite.CreateServicesAsync(time: new ManualClock(TestEvents.Start.AddDays(1)));
        Assert.Null(await services.UserStates.GetAsync("cy"));

        await services.Ingestor.IngestEventsAsync([Click("cy", "i1", 1)]);
        Assert.Equal(["i1"], (await services.UserStates.GetAsync("cy"))!.Recent.Select(r => r.ItemId));

        await services.Deletion.DeleteAsync("cy");
        Assert.Null(await services.UserStates.GetAsync("cy"));
    }

    [Fact]
    public async Task A_slate_noted_as_shown_is_in_the_state_read_until_it_is_stored_and_then_once()
    {
        var services = await Azurite.CreateServicesAsync();
        await services.Ingestor.IngestEventsAsync([Click("di", "i1", 1)]);
        var shown = new ShownSlate("r1", "s1", DateTimeOffset.UtcNow, ["i2", "i3"]);

        services.UserStates.NoteShown("di", shown);
        Assert.Equal(["r1"], (await services.UserStates.GetAsync("di"))!.Slates.Select(s => s.RecommendationId));

        await services.Ingestor.IngestEventsAsync(new[] { "i2", "i3" }.Select((item, p) => new WireEvent
        {
            SchemaVersion = 1, EventId = $"r1-{p}", UserId = "di", ItemId = item, Type = "impression", RecommendationId = "r1", SessionId = "s1", Position = p,
            Timestamp = shown.ShownAt,
        }).ToList());
        Assert.Equal(["r1"], (await services.UserStates.GetAsync("di"))!.Slates.Select(s => s.RecommendationId));
    }
    private static IReadOnlyList<WireEvent> ImpressionsOf(string user, ShownSlate slate) => slate.Items.Select((item, p) => new WireEvent
    {
        SchemaVersion = 1, EventId = $"{slate.RecommendationId}-{p}", UserId = user, ItemId = item, Type = "impression", RecommendationId = slate.RecommendationId,
        SessionId = slate.SessionId, Position = p, Timestamp = slate.ShownAt,
    }).ToList();

    [Fact]
    public async Task Slates_noted_as_shown_reach_the_users_row_together_once_due_and_each_once()
    {
        var layout = Azurite.UniqueLayout();
        var clock = new ManualClock(TestEvents.Start.AddDays(1));
        var serving = await Azurite.CreateServicesAsync(layout, time: clock);
        var slates = Enumerable.Range(0, 3).Select(n => new ShownSlate($"r{n}", "s1", clock.GetUtcNow().AddSeconds(n), [$"i{n}", $"j{n}"])).ToList();
        foreach (var slate in slates)
        {
            serving.UserStates.NoteShown("eve", slate);
            // The log's delivery leaves the slate to the store: nothing of it is in the row after the delivery.
            await serving.Ingestor.IngestEventsAsync(ImpressionsOf("eve", slate), impressionsNotedAsShown: true);
        }
        async Task<UserState?> Stored() => await (await Azurite.CreateServicesAsync(layout)).UserStates.GetAsync("eve");
        Assert.Null(await Stored());
        Assert.Equal(3, (await serving.UserStates.GetAsync("eve"))!.Slates.Count); // read back at once all the same

        var delay = serving.UserStates.Options.ShownSlatesDelay;
        clock.Advance(delay - TimeSpan.FromSeconds(1));
        Assert.Equal(0, await serving.UserStates.StoreShownAsync(delay)); // the oldest is not due yet
        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(3, await serving.UserStates.StoreShownAsync(delay)); // due: all three in one write
        var row = await Stored();
        Assert.Equal(["r0", "r1", "r2"], row!.Slates.Select(s => s.RecommendationId));
        Assert.Equal(6, row.Counts[InteractionType.Impression]);
        Assert.Equal((0, 0), serving.UserStates.ShownNotStored);

        // Noted again (a retried write, a second instance that served the same slate): still once.
        serving.UserStates.NoteShown("eve", slates[1]);
        Assert.Equal(1, await serving.UserStates.StoreShownAsync(TimeSpan.Zero));
        row = await Stored();
        Assert.Equal(["r0", "r1", "r2"], row!.Slates.Select(s => s.RecommendationId));
        Assert.Equal(6, row.Counts[InteractionType.Impression]);
    }

    [Fact]
    public async Task The_shown_slates_writer_stores_what_is_due_on_its_own_and_everything_when_disposed()
    {
        var layout = Azurite.UniqueLayout();
        var services = await Azurite.CreateServicesAsync(layout, userStates: new UserStateStoreOptions { ShownSlatesDelay = TimeSpan.FromMilliseconds(200) });
        var writer = new ShownSlatesWriter(services.UserStates);
        services.UserStates.NoteShown("fay", new ShownSlate("r1", null, DateTimeOffset.UtcNow, ["i1"]));
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (services.UserStates.ShownNotStored.Slates > 0 && waited.Elapsed < TimeSpan.FromSeconds(10))
            await Task.Delay(20);
        Assert.Equal(["r1"], (await (await Azurite.CreateServicesAsync(layout)).UserStates.GetAsync("fay"))!.Slates.Select(s => s.RecommendationId));

        services.UserStates.NoteShown("fay", new ShownSlate("r2", null, DateTimeOffset.UtcNow, ["i2"]));
        await writer.DisposeAsync();
        await writer.DisposeAsync(); // a host stops its services, then disposes them
        Assert.Equal(["r1", "r2"], (await (await Azurite.CreateServicesAsync(layout)).UserStates.GetAsync("fay"))!.Slates.Select(s => s.RecommendationId));
    }
}
