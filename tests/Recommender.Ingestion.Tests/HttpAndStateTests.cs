using CsCheck;
using System.Text;
using Recommender.Events;
using Recommender.Ingestion;
using Recommender.TestSupport;

namespace Recommender.Ingestion.Tests;

public sealed class HttpAndStateTests
{
    private static (List<ReadOnlyMemory<byte>> Events, byte[] Body) HttpBody(IEnumerable<WireEvent> events)
    {
        var body = Encoding.UTF8.GetBytes("[" + string.Join(",", events.Select(e => Encoding.UTF8.GetString(e.ToUtf8Json()))) + "]");
        Assert.True(HttpEventBatch.TrySplit(body, 1000, out var split, out var error, out _), error);
        return (split, body);
    }

    [Fact]
    public async Task A_retried_http_body_is_ingested_once()
    {
        var services = await Azurite.CreateServicesAsync();
        var events = Enumerable.Range(0, 50).Select(n => TestEvents.Interaction(n)).ToList();
        var (split, body) = HttpBody(events);

        await services.Ingestor.IngestHttpAsync(split, body);
        await services.Ingestor.IngestHttpAsync(split, body);

        await LogAssert.ExactlyAsync(services, events);
    }

    [Fact]
    public async Task Events_the_product_built_are_the_same_delivery_as_the_same_events_posted_in_one_body()
    {
        var services = await Azurite.CreateServicesAsync();
        var events = Enumerable.Range(0, 50).Select(n => TestEvents.Interaction(n)).Append(new WireEvent { SchemaVersion = 1, EventId = "bad", Type = "click" }).ToList();
        var (split, body) = HttpBody(events);

        var built = await services.Ingestor.IngestEventsAsync(events);
        var posted = await services.Ingestor.IngestHttpAsync(split, body);

        Assert.Equal(posted.DeliveryKey, built.DeliveryKey);
        Assert.Equal((50, 50), (built.Accepted, posted.Accepted));
        Assert.Equal([50], built.Rejected.Select(r => r.Index));
        await LogAssert.ExactlyAsync(services, events.Take(50));
    }

    /// <summary>
    /// Many writers update the same few users at once (HTTP batches on several instances, each with
    /// its own cache): optimistic concurrency makes every update land exactly once.
    /// </summary>
    [Fact]
    public async Task Concurrent_writers_to_the_same_users_lose_no_update()
    {
        var layout = Azurite.UniqueLayout();
        var writers = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Azurite.CreateServicesAsync(layout)));
        var batches = Enumerable.Range(0, 16)
            .Select(b => Enumerable.Range(b * 40, 40).Select(n => TestEvents.Interaction(n, userId: $"u{n % 3}")).ToList())
            .ToList();

        await Task.WhenAll(batches.Select((batch, i) => Task.Run(async () =>
        {
            var (split, body) = HttpBody(batch);
            await writers[i % writers.Length].Ingestor.IngestHttpAsync(split, body);
        })));

        await LogAssert.ExactlyAsync(writers[0], batches.SelectMany(b => b));
    }

    [Fact]
    public async Task Catalog_updates_are_latest_wins_whatever_order_they_arrive_in()
    {
        var services = await Azurite.CreateServicesAsync();
        CatalogItem Version(int minute, string title) =>
            new($"c{minute}", "i1", ["c"], [], title, null, true, TestEvents.Start.AddMinutes(minute));

        await services.Catalog.UpsertItemsAsync([Version(2, "new")]);
        await services.Catalog.UpsertItemsAsync([Version(1, "old")]);
        await services.Catalog.UpsertItemsAsync([Version(3, "newest"), Version(0, "oldest")]);

        Assert.Equal("newest", (await services.Catalog.GetItemAsync("i1"))!.Title);
    }

    [Fact]
    public async Task Deleting_a_user_removes_state_and_profile_and_snapshots_skip_their_logged_events()
    {
        var clock = new ManualClock(TestEvents.Start.AddDays(1));
        var services = await Azurite.CreateServicesAsync(time: clock);
        var before = Enumerable.Range(0, 20).Select(n => TestEvents.Interaction(n, userId: n % 2 == 0 ? "gone" : "stays")).ToList();
        var (split, body) = HttpBody(before.Append(new WireEvent { Kind = "user", EventId = "p", UserId = "gone", Attributes = new() { ["a"] = "b" }, Timestamp = TestEvents.Start }));
        await services.Ingestor.IngestHttpAsync(split, body);

        clock.Advance(TimeSpan.FromMinutes(1));
        await services.Deletion.DeleteAsync("gone");
        clock.Advance(TimeSpan.FromMinutes(1));
        var after = TestEvents.Interaction(100, userId: "gone");
        var (split2, body2) = HttpBody([after]);
        await services.Ingestor.IngestHttpAsync(split2, body2);

        Assert.Equal(1, (await services.UserStates.GetAsync("gone"))!.TotalInteractions); // only what came after the deletion
        Assert.Null(await services.Catalog.GetProfileAsync("gone"));
        var snapshot = await services.SnapshotReader.ReadAsync();
        Assert.Equal(before.Where(e => e.UserId == "stays").Select(e => e.EventId).Append("e100").Order(), snapshot.Select(r => r.EventId).Order());
    }

    [Fact]
    public async Task An_instance_whose_cache_still_holds_a_deleted_user_starts_them_afresh()
    {
        var layout = Azurite.UniqueLayout();
        var ingesting = await Azurite.CreateServicesAsync(layout);
        var deleting = await Azurite.CreateServicesAsync(layout);
        var (split, body) = HttpBody(Enumerable.Range(0, 5).Select(n => TestEvents.Interaction(n, userId: "gone")));
        await ingesting.Ingestor.IngestHttpAsync(split, body);

        await deleting.Deletion.DeleteAsync("gone");
        var (split2, body2) = HttpBody([TestEvents.Interaction(9, userId: "gone")]);
        await ingesting.Ingestor.IngestHttpAsync(split2, body2);

        Assert.Equal(1, (await deleting.UserStates.GetAsync("gone"))!.TotalInteractions);
    }

    [Fact]
    public async Task Deleting_a_user_twice_or_one_never_seen_is_harmless()
    {
        var services = await Azurite.CreateServicesAsync();

        await services.Deletion.DeleteAsync("nobody");
        await services.Deletion.DeleteAsync("nobody");

        Assert.NotNull((await services.Tombstones.ReadAllAsync()).Find("nobody"));
    }

    [Fact]
    public async Task Ids_with_characters_table_keys_forbid_are_stored_and_read_back()
    {
        var services = await Azurite.CreateServicesAsync();
        var e = TestEvents.Interaction(1, userId: "mail/x#y?z\\w%2F", itemId: "https://shop/item?id=1");
        var (split, body) = HttpBody([e]);

        await services.Ingestor.IngestHttpAsync(split, body);

        var state = await services.UserStates.GetAsync("mail/x#y?z\\w%2F");
        Assert.Equal(["https://shop/item?id=1"], state!.Recent.Select(r => r.ItemId));
    }
}

/// <summary>Whatever a batch holds, ingestion accepts or dead-letters each event; none is lost, none throws.</summary>
public sealed class IngestionProperties
{
    [Fact]
    public async Task Every_event_of_an_arbitrary_batch_is_accepted_or_dead_lettered()
    {
        var services = await Azurite.CreateServicesAsync();
        var parser = new EventParser();
        var valid = Gen.Int[0, 1000].Select(n => TestEvents.Interaction(n).ToUtf8Json());
        var garbage = Gen.Byte.Array[0, 40];
        var batches = Gen.OneOf(valid, garbage).Array[1, 30];
        var sequence = 0L;

        await batches.SampleAsync(async raw =>
        {
            var delivery = new EventHubsDelivery("$Default", "0",
                raw.Select(b => new EventHubsMessage(b, sequence++, TestEvents.Start)).ToList());
            var deadBefore = (await services.DeadLetters.ReadAllAsync()).Count;

            var result = await services.Ingestor.IngestAsync(delivery);

            var deadAfter = (await services.DeadLetters.ReadAllAsync()).Count;
            Assert.Equal(raw.Length, result.Accepted + result.AlreadyIngested + (deadAfter - deadBefore));
            Assert.Equal(result.Rejected.Count, deadAfter - deadBefore);
        }, iter: 25, threads: 1);
    }
}
