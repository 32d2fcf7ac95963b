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
}
