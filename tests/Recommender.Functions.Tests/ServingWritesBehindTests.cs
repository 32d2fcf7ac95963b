using System.Text;
using System.Text.Json;
using Recommender.EventLog;
using Recommender.Events;
using Recommender.Ingestion;
using Recommender.Serving;
using Recommender.TestSupport;
using Recommender.Training;
using Recommender.Training.Pipeline;

namespace Recommender.Functions.Tests;

/// <summary>
/// Serving writes what it logs behind the request (impressions, Personalizer's rank records): nothing it served is
/// lost or logged twice, under concurrent requests and through a shutdown, and its impressions cannot wear out the
/// exactly-once record of a client's deliveries.
/// </summary>
public sealed class ServingWritesBehindTests(TrainedRun run) : IClassFixture<TrainedRun>
{
    private static WireEvent Click(string user, int item) => new()
    {
        SchemaVersion = 1, EventId = $"{user}-click-{item}", UserId = user, ItemId = "item" + item, Type = "click", Timestamp = TestEvents.Start.AddMinutes(item),
    };

    private static (List<ReadOnlyMemory<byte>> Events, byte[] Body) HttpBody(IEnumerable<WireEvent> events)
    {
        var body = Encoding.UTF8.GetBytes("[" + string.Join(",", events.Select(e => Encoding.UTF8.GetString(e.ToUtf8Json()))) + "]");
        Assert.True(HttpEventBatch.TrySplit(body, 1000, out var split, out var error, out _), error);
        return (split, body);
    }

    private static async Task<List<EventLogRecord>> RawLogAsync(IngestionServices services)
    {
        var rows = new List<EventLogRecord>();
        await foreach (var blob in services.EventLog.ListBlobsAsync())
            rows.AddRange(await services.EventLog.ReadBlobAsync(blob.Name));
        return rows;
    }

    [Fact]
    public async Task A_client_batch_retried_after_a_hundred_recommendations_to_its_user_is_applied_once()
    {
        var services = await Azurite.CreateServicesAsync();
        await using var serving = await ServingFixture.CreateAsync(services);
        await RunPublisher.PublishAsync(serving.Registry, run.Directory, "v1", "test", promote: true);
        var (split, body) = HttpBody([Click("eve", 1), Click("eve", 2), Click("eve", 3)]);
        await services.Ingestor.IngestHttpAsync(split, body);

        for (var i = 0; i < 100; i++)
        {
            await serving.Recommendations.RecommendAsync("eve", 3);
            if (i % 10 == 9)
                await serving.FlushAsync(); // written as it would be under traffic: many deliveries of impressions
        }
        await services.Ingestor.IngestHttpAsync(split, body); // the client's retry of its first batch

        var stored = await new UserStateStore(services.UserStates.Table).GetAsync("eve");
        Assert.Equal(3, stored!.Counts[InteractionType.Click]);
        Assert.Equal(300, stored.Counts[InteractionType.Impression]);
        Assert.Equal(3, stored.Recent.Count);
    }

    [Fact]
    public async Task Impressions_in_the_log_equal_impressions_served_under_concurrent_requests_and_through_a_shutdown()
    {
        var services = await Azurite.CreateServicesAsync();
        var serving = await ServingFixture.CreateAsync(services);
        await RunPublisher.PublishAsync(serving.Registry, run.Directory, "v1", "test", promote: true);
        await services.Ingestor.IngestEventsAsync(Enumerable.Range(0, 20).SelectMany(u => new[] { Click($"w{u}", u + 1), Click($"w{u}", u + 2) }).ToList());
        var actions = Enumerable.Range(1, 6).Select(i => new RankableAction("item" + i)).ToList();

        long served = 0;
        var eventIds = new System.Collections.Concurrent.ConcurrentBag<string>();
        await Parallel.ForEachAsync(Enumerable.Range(0, 300), new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (n, ct) =>
        {
            if (n % 3 == 0)
            {
                var rank = await serving.Personalizer.RankAsync(new RankRequest([JsonSerializer.SerializeToElement(new { userId = $"w{n % 20}" })], actions), ct);
                Interlocked.Add(ref served, rank.Ranking.Count(r => r.Probability > 0));
                eventIds.Add(rank.EventId);
            }
            else
                Interlocked.Add(ref served, (await serving.Recommendations.RecommendAsync($"w{n % 20}", 5, ct)).Items.Count);
        });
        await serving.DisposeAsync(); // the host's shutdown: no flush asked for

        var impressions = (await RawLogAsync(services)).Where(r => r.Type == "impression").ToList();
        Assert.Equal(served, impressions.Count);
        Assert.Equal(impressions.Count, impressions.Select(r => r.EventId).Distinct().Count());
        Assert.Equal(0, serving.Impressions.Dropped);
        // Every rank's record is in the table for its reward to join.
        var records = serving.Ranks.Table.QueryAsync<Azure.Data.Tables.TableEntity>(Azure.Data.Tables.TableClient.CreateQueryFilter($"PartitionKey ge {"u"}"), select: ["RowKey"]); // the records, not their learning rows
        var stored = new HashSet<string>();
        await foreach (var record in records)
            stored.Add(record.RowKey);
        Assert.Subset(stored, eventIds.ToHashSet());
        Assert.Equal(100, stored.Count);
    }

    [Fact]
    public async Task A_reward_right_after_its_rank_joins_it_though_the_record_is_written_behind_the_rank()
    {
        var services = await Azurite.CreateServicesAsync();
        await using var serving = await ServingFixture.CreateAsync(services);
        var rank = await serving.Personalizer.RankAsync(new RankRequest(null, [new RankableAction("a"), new RankableAction("b")], EventId: "ev-now"));

        await serving.Personalizer.RewardAsync("ev-now", new RewardRequest(1));

        var record = await serving.Ranks.GetAsync("ev-now");
        Assert.Equal((1.0, rank.RewardActionId), (record!.GetDouble("Reward"), record.GetString("RewardActionId")));
    }

    [Fact]
    public async Task An_event_id_two_instances_both_ranked_keeps_the_first_rank_and_counts_the_second()
    {
        var services = await Azurite.CreateServicesAsync();
        await using var first = await ServingFixture.CreateAsync(services);
        var table = first.Ranks.Table;
        await using var second = new ServingServices(services, first.Models, table);
        var request = new RankRequest(null, [new RankableAction("a"), new RankableAction("b")], EventId: "ev-twice");

        var kept = await first.Personalizer.RankAsync(request);
        await first.FlushAsync();
        await second.Personalizer.RankAsync(request); // answered: the other instance's rank is not known here yet
        await second.FlushAsync();

        Assert.Equal(1, second.Ranks.DuplicateEventIds);
        Assert.Equal(JsonSerializer.Serialize(kept.Ranking, PersonalizerJsonContext.Default.ListRankedAction), (await first.Ranks.GetAsync("ev-twice"))!.GetString("Ranking"));
    }
}
