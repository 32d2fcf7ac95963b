using Recommender.Events;
using Recommender.Ingestion;
using Recommender.TestSupport;

namespace Recommender.Ingestion.Tests;

/// <summary>
/// Event Hubs delivers at least once: the same batch again, or a batch that overlaps one already
/// ingested. Against a real Azurite, the log and the user state must come out count-exact.
/// </summary>
public sealed class EventHubsIngestionTests
{
    private const string ConsumerGroup = "$Default";

    internal static EventHubsDelivery Delivery(string partition, int fromSequence, int toSequence, Func<int, WireEvent>? make = null) =>
        new(ConsumerGroup, partition, Events(fromSequence, toSequence, make)
            .Select(e => new EventHubsMessage(e.Event.ToUtf8Json(), e.Sequence, TestEvents.Start.AddSeconds(e.Sequence)))
            .ToList());

    private static IEnumerable<(int Sequence, WireEvent Event)> Events(int from, int to, Func<int, WireEvent>? make = null) =>
        Enumerable.Range(from, to - from + 1).Select(n => (n, (make ?? (i => TestEvents.Interaction(i)))(n)));

    private static IEnumerable<WireEvent> Interactions(int from, int to, Func<int, WireEvent>? make = null) =>
        Events(from, to, make).Select(e => e.Event).Where(e => e.Kind is null && e.Type != "teleport");

    [Fact]
    public async Task The_same_batch_delivered_twice_is_ingested_once()
    {
        var services = await Azurite.CreateServicesAsync();
        var batch = Delivery("0", 0, 99);

        var first = await services.Ingestor.IngestAsync(batch);
        var second = await services.Ingestor.IngestAsync(batch);

        Assert.Equal(100, first.Accepted);
        Assert.Equal((0, 100), (second.Accepted, second.AlreadyIngested));
        await LogAssert.ExactlyAsync(services, Interactions(0, 99));
    }

    [Fact]
    public async Task Overlapping_batches_add_only_the_new_events()
    {
        var services = await Azurite.CreateServicesAsync();

        await services.Ingestor.IngestAsync(Delivery("0", 0, 99));
        var overlap = await services.Ingestor.IngestAsync(Delivery("0", 50, 149));
        await services.Ingestor.IngestAsync(Delivery("1", 1000, 1009)); // another partition has its own sequence

        Assert.Equal((50, 50), (overlap.Accepted, overlap.AlreadyIngested));
        await LogAssert.ExactlyAsync(services, Interactions(0, 149).Concat(Interactions(1000, 1009)));
    }

    [Fact]
    public async Task A_restarted_instance_with_a_cold_cache_still_applies_each_event_once()
    {
        var layout = Azurite.UniqueLayout();
        var first = await Azurite.CreateServicesAsync(layout);
        await first.Ingestor.IngestAsync(Delivery("0", 0, 59));

        var restarted = await Azurite.CreateServicesAsync(layout);
        await restarted.Ingestor.IngestAsync(Delivery("0", 30, 119));

        await LogAssert.ExactlyAsync(restarted, Interactions(0, 119));
    }

    [Fact]
    public async Task Invalid_events_are_dead_lettered_with_reasons_and_the_rest_is_ingested()
    {
        var services = await Azurite.CreateServicesAsync();
        var raw = new[]
        {
            """{"eventId":"ok1","userId":"u1","itemId":"i1","type":"click","timestamp":"2026-11-01T12:00:00Z"}""",
            """{"eventId":"bad1","userId":"u1","itemId":"i1","type":"teleport"}""",
            """not json at all""",
            """{"kind":"item","eventId":"c1","itemId":"i1","title":"Item one","timestamp":"2026-11-01T12:00:00Z"}""",
            """{"eventId":"bad2","itemId":"i1","type":"click"}""",
            """{"kind":"user","eventId":"p1","userId":"u1","attributes":{"age":"25-34"},"timestamp":"2026-11-01T12:00:00Z"}""",
        };
        var delivery = new EventHubsDelivery(ConsumerGroup, "0",
            raw.Select((json, i) => new EventHubsMessage(TestEvents.Bytes(json), i, TestEvents.Start)).ToList());

        var result = await services.Ingestor.IngestAsync(delivery);
        await services.Ingestor.IngestAsync(delivery); // a redelivery adds no dead letters either

        var deadLetters = await services.DeadLetters.ReadAllAsync();
        Assert.Equal(3, result.Accepted);
        Assert.Equal(raw.Length, result.Accepted + deadLetters.Count);
        Assert.Equal([1, 2, 4], deadLetters.Select(d => d.Index).Order());
        Assert.All(deadLetters, d => Assert.False(string.IsNullOrWhiteSpace(d.Reason)));
        Assert.Contains(deadLetters, d => d.Payload == "not json at all" && d.Reason.StartsWith("malformed JSON", StringComparison.Ordinal));
        Assert.Equal("Item one", (await services.Catalog.GetItemAsync("i1"))!.Title);
        Assert.Equal("25-34", (await services.Catalog.GetProfileAsync("u1"))!.Attributes["age"]);
        Assert.Equal(["ok1"], (await services.SnapshotReader.ReadAsync()).Select(r => r.EventId));
    }

    /// <summary>Every fifth event is invalid, every ninth other one is a catalog update.</summary>
    private static WireEvent Mixed(int n) =>
        n % 5 == 0 ? new WireEvent { EventId = $"e{n}", UserId = $"u{n % 7}", ItemId = "i", Type = "teleport" }
        : n % 9 == 0 ? new WireEvent { Kind = "item", EventId = $"c{n}", ItemId = $"i{n % 13}", Title = $"v{n}", Timestamp = TestEvents.Start.AddSeconds(n) }
        : TestEvents.Interaction(n);

    /// <summary>
    /// Storage becomes unreachable after n requests, for every n at which the batch can be cut off.
    /// The function fails (so the host retries it); the retry comes on a new instance, after the dead
    /// one's lease expired, and with other batch boundaries. Counts stay exact every time.
    /// </summary>
    [Fact]
    public async Task An_outage_at_any_point_of_a_batch_is_repaired_by_the_retry_without_double_counting()
    {
        var interruptions = 0;
        for (var failAfter = 0; failAfter < 500; failAfter++)
        {
            var layout = Azurite.UniqueLayout();
            var healthy = await Azurite.CreateServicesAsync(layout);
            await healthy.Ingestor.IngestAsync(Delivery("0", 0, 19));

            var outage = new StorageOutage(failAfter);
            var flaky = await Azurite.CreateServicesAsync(layout, outage);
            var interrupted = false;
            try
            {
                await flaky.Ingestor.IngestAsync(Delivery("0", 10, 59, Mixed));
            }
            catch (Exception) when (outage.Down)
            {
                interrupted = true;
                interruptions++;
            }

            await Azurite.ExpireLedgerLeaseAsync(layout, ConsumerGroup, "0");
            var retry = await Azurite.CreateServicesAsync(layout);
            await retry.Ingestor.IngestAsync(Delivery("0", 10, 79, Mixed));

            await LogAssert.ExactlyAsync(retry, Interactions(0, 19).Concat(Interactions(20, 79, Mixed)));
            var deadLetters = await retry.DeadLetters.ReadAllAsync();
            Assert.Equal(Enumerable.Range(20, 60).Count(n => n % 5 == 0), deadLetters.Count);
            Assert.Equal("v72", (await retry.Catalog.GetItemAsync("i7"))!.Title); // 72 % 13 == 7, the newest update of i7

            if (!interrupted)
                break;
        }
        Assert.True(interruptions > 5, $"the batch was cut off at only {interruptions} points");
    }

    [Fact]
    public async Task A_second_instance_is_kept_out_of_a_partition_while_the_first_holds_it()
    {
        var layout = Azurite.UniqueLayout();
        var first = await Azurite.CreateServicesAsync(layout);
        await using (await first.Ledger.AcquireAsync(ConsumerGroup, "0"))
        {
            var second = await Azurite.CreateServicesAsync(layout);
            await Assert.ThrowsAsync<PartitionBusyException>(() => second.Ingestor.IngestAsync(Delivery("0", 0, 9)));
        }
        var afterRelease = await Azurite.CreateServicesAsync(layout);
        Assert.Equal(10, (await afterRelease.Ingestor.IngestAsync(Delivery("0", 0, 9))).Accepted);
    }

    /// <summary>Two instances get overlapping batches of one partition at once (a lease hand-over); both retry until done.</summary>
    [Fact]
    public async Task Concurrent_instances_on_one_partition_ingest_each_event_once()
    {
        var layout = Azurite.UniqueLayout();
        var a = await Azurite.CreateServicesAsync(layout);
        var b = await Azurite.CreateServicesAsync(layout);

        await Task.WhenAll(
            Task.Run(async () =>
            {
                for (var start = 0; start < 400; start += 100)
                    await RetryWhileBusyAsync(() => a.Ingestor.IngestAsync(Delivery("0", start, start + 99)));
            }),
            Task.Run(async () =>
            {
                for (var start = 0; start < 400; start += 70)
                    await RetryWhileBusyAsync(() => b.Ingestor.IngestAsync(Delivery("0", start, Math.Min(start + 69, 399))));
            }));

        await LogAssert.ExactlyAsync(a, Interactions(0, 399));
    }

    private static async Task RetryWhileBusyAsync(Func<Task> ingest)
    {
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                await ingest();
                return;
            }
            catch (PartitionBusyException) when (attempt < 500)
            {
                await Task.Delay(Random.Shared.Next(5, 30));
            }
        }
    }
}
