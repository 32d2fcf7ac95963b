using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Recommender.Events;
using Recommender.Ingestion;
using Recommender.ModelContract;
using Recommender.Serving;
using Recommender.TestSupport;
using Recommender.Training;
using Recommender.Training.Pipeline;

namespace Recommender.Functions.Tests;

/// <summary>Personalizer-shaped requests and responses, against Azurite and a real model.</summary>
public sealed class PersonalizerApiTests(TrainedRun run) : IClassFixture<TrainedRun>
{
    private static HttpRequest Post(string body)
    {
        var context = new DefaultHttpContext();
        context.Request.Method = "POST";
        context.Request.Body = new MemoryStream(Encoding.UTF8.GetBytes(body));
        context.Request.ContentType = "application/json";
        return context.Request;
    }

    /// <summary>Serving with the trained model promoted; <paramref name="explorationPercentage"/> as Personalizer's configuration sets it.</summary>
    /// <summary>The serving of the test: its sinks write behind the requests, so a test flushes them before it reads the log.</summary>
    private ServingServices? _serving;

    private async Task<(PersonalizerApi Api, IngestionServices Services)> ServeAsync(double explorationPercentage = 0.2)
    {
        var services = await Azurite.CreateServicesAsync();
        var serving = _serving = await ServingFixture.CreateAsync(services);
        await serving.PersonalizerState.SetConfigurationAsync(new PersonalizerConfiguration { ExplorationPercentage = explorationPercentage });
        await RunPublisher.PublishAsync(serving.Registry, run.Directory, "v1", "test", promote: true);
        return (new PersonalizerApi(serving.Personalizer, serving.PersonalizerLog, serving.PersonalizerEvaluations, serving.PersonalizerLearningMetrics, SubscriptionKeys.From(null)), services);
    }

    private const string RankBody = """
        {
          "contextFeatures": [{"userId": "carol"}, {"timeOfDay": "morning"}],
          "actions": [
            {"id": "item1", "features": [{"genre": "a"}]},
            {"id": "item2", "features": [{"genre": "b"}]},
            {"id": "brand-new-item", "features": [{"genre": "c"}]},
            {"id": "item3"}
          ],
          "excludedActions": ["item3"],
          "eventId": "EVENT-1",
          "deferActivation": false
        }
        """;

    [Fact]
    public async Task Rank_then_reward_round_trips_and_the_reward_joins_its_impressions_in_the_log()
    {
        var (api, services) = await ServeAsync();
        await services.Ingestor.IngestEventsAsync([new WireEvent { EventId = "h1", UserId = "carol", ItemId = "item9", Type = "click", Timestamp = TestEvents.Start }]);

        var rank = Assert.IsType<ObjectResult>(await api.PersonalizerRank(Post(RankBody), default));
        var reward = Assert.IsType<StatusCodeResult>(await api.PersonalizerReward(Post("""{"value": 1.0}"""), "EVENT-1", default));

        var response = Assert.IsType<RankResponse>(rank.Value);
        var json = JsonSerializer.Serialize(response, PersonalizerJsonContext.Default.RankResponse);
        Assert.Contains("\"ranking\"", json);
        Assert.Contains("\"rewardActionId\"", json);
        Assert.Equal("EVENT-1", response.EventId);
        Assert.Equal(4, response.Ranking.Count);
        Assert.Equal(("item3", 0.0), (response.Ranking[^1].Id, response.Ranking[^1].Probability)); // excluded: last, never chosen
        Assert.Equal(1.0, response.Ranking.Sum(r => r.Probability), 9);
        Assert.Equal(response.Ranking[0].Id, response.RewardActionId);
        Assert.Equal(204, reward.StatusCode);

        await _serving!.FlushAsync();
        var log = await services.SnapshotReader.ReadAsync();
        var impressions = log.Where(r => r.Type == "impression" && r.RecommendationId == "EVENT-1").ToList();
        var rewardRow = Assert.Single(log, r => r.Type == "reward");
        Assert.Equal(3, impressions.Count);
        Assert.Equal(("EVENT-1", "carol", response.RewardActionId, 1.0), (rewardRow.RecommendationId, rewardRow.UserId, rewardRow.ItemId, rewardRow.Value));
    }

    [Fact]
    public async Task Actions_the_model_never_saw_are_ranked_from_their_features()
    {
        var (api, services) = await ServeAsync(explorationPercentage: 0);
        await services.Ingestor.IngestEventsAsync([new WireEvent { EventId = "h2", UserId = "dave", ItemId = "item9", Type = "click", Timestamp = TestEvents.Start }]);
        var category = run.World.ItemCategory[9];
        var tag = run.World.ItemTags[9][0];
        var body = $$"""
            {"contextFeatures": [{"userId": "dave"}],
             "actions": [{"id": "mystery"}, {"id": "new-release", "features": [{"category": "{{category}}"}, {"tags": ["{{tag}}"]}]}],
             "eventId": "EVENT-3"}
            """;

        var response = (RankResponse)((ObjectResult)await api.Rank(Post(body), default)).Value!;

        Assert.Equal("new-release", response.RewardActionId); // scored by the model from its content; "mystery" has nothing to score
        Assert.Equal(["new-release", "mystery"], response.Ranking.Select(r => r.Id));
    }

    [Fact]
    public void Feature_objects_become_the_content_tokens_training_used()
    {
        var features = JsonSerializer.Deserialize<List<JsonElement>>("""[{"categories": ["games", "retro"]}, {"tags": "co-op", "year": 1999, "x": null}]""");

        Assert.Equal(["category:games", "category:retro", "tag:co-op", "year:1999"], FeatureTokens.OfFeatures(features));
    }

    [Fact]
    public async Task Deferred_ranks_log_impressions_only_when_activated_and_only_once()
    {
        var (api, services) = await ServeAsync();
        var body = RankBody.Replace("\"deferActivation\": false", "\"deferActivation\": true").Replace("EVENT-1", "EVENT-2");

        await api.Rank(Post(body), default);
        await _serving!.FlushAsync();
        var before = (await services.SnapshotReader.ReadAsync()).Count(r => r.RecommendationId == "EVENT-2");
        await api.PersonalizerActivate(Post(""), "EVENT-2", default);
        await api.Activate(Post(""), "EVENT-2", default);
        await _serving.FlushAsync();
        var after = (await services.SnapshotReader.ReadAsync()).Count(r => r.RecommendationId == "EVENT-2");

        Assert.Equal((0, 3), (before, after));
    }

    [Theory]
    [InlineData("""{"actions": []}""", 400)]
    [InlineData("""{"contextFeatures": []}""", 400)]
    [InlineData("""{"actions": [{"id": "a"}, {"id": "a"}]}""", 400)]
    [InlineData("""{"actions": [{"id": ""}]}""", 400)]
    [InlineData("""{"actions": "nope"}""", 400)]
    [InlineData("""not json""", 400)]
    public async Task Invalid_rank_requests_are_400_problems(string body, int status)
    {
        var (api, _) = await ServeAsync();

        var result = Assert.IsType<ObjectResult>(await api.Rank(Post(body), default));

        Assert.Equal(status, result.StatusCode);
        Assert.IsType<ProblemDetails>(result.Value);
    }

    [Fact]
    public async Task More_than_fifty_actions_a_reused_event_id_a_bad_reward_or_an_unknown_event_are_refused()
    {
        var (api, _) = await ServeAsync();
        var tooMany = "{\"actions\": [" + string.Join(",", Enumerable.Range(0, 51).Select(i => $"{{\"id\":\"a{i}\"}}")) + "]}";
        await api.Rank(Post(RankBody), default);

        Assert.Equal(400, ((ObjectResult)await api.Rank(Post(tooMany), default)).StatusCode);
        Assert.Equal(400, ((ObjectResult)await api.Rank(Post(RankBody), default)).StatusCode); // EVENT-1 again
        Assert.Equal(400, ((ObjectResult)await api.Reward(Post("""{"value": 7}"""), "EVENT-1", default)).StatusCode);
        Assert.Equal(400, ((ObjectResult)await api.Reward(Post("""{}"""), "EVENT-1", default)).StatusCode);
        Assert.Equal(404, ((ObjectResult)await api.Reward(Post("""{"value": 1}"""), "never-ranked", default)).StatusCode);
    }

    /// <summary>
    /// 10,000 generated malformed and hostile requests across every HTTP route: each gets a 4xx in its route's error shape
    /// (Personalizer's <c>{"error":{"code","message"}}</c> under <c>/personalizer</c>, problem details elsewhere), none a
    /// 5xx, and none writes anything: no log blob, rank record, tombstone or evaluation, the configuration unchanged.
    /// </summary>
    [Fact]
    public async Task Ten_thousand_hostile_requests_to_every_route_get_4xx_in_the_route_shape_and_write_nothing()
    {
        var (api, services) = await ServeAsync();
        var serving = _serving!;
        var ingest = new IngestEventsOverHttp(services.Ingestor);
        var recommendations = new GetRecommendations(serving.Recommendations);
        var users = new DeleteUser(serving);
        var configuration = Serialized(await api.GetServiceConfiguration(Post(""), default));
        var policy = Serialized(await api.GetPolicy(Post(""), default));
        var random = new Random(12345);
        string[] fragments =
        [
            "{", "}", "[", "]", "\"actions\":", "\"contextFeatures\":", "\"eventId\":", "\"value\":", "\"id\":", "null", "true", "1e999", "-0",
            "\"\\u0000\"", "\"" + new string('x', 300) + "\"", ",", ":", "\"deferActivation\":", "\"excludedActions\":", "{\"id\":\"item1\"}", "\"\\ud800\"",
            "\"rewardWaitTime\":", "\"PT0S\"", "\"explorationPercentage\":", "2", "\"name\":", "\"arguments\":", "\"startTime\":", "\"endTime\":",
            "\"2001-01-01T00:00:00Z\"", "\"policies\":", "[{}]", "\"userId\":",
        ];
        string Garbage() => string.Concat(Enumerable.Range(0, random.Next(0, 12)).Select(_ => fragments[random.Next(fragments.Length)]));
        string HostileId() => random.Next(4) switch { 0 => new string('e', 200), 1 => "../../etc", 2 => "a%2Fb#?", _ => "\u0001" };
        string InvalidId() => random.Next(4) switch { 0 => new string('e', 200), 1 => " ", 2 => "\ud800", _ => "a\u0001b" };
        HttpRequest Get(string query) => new DefaultHttpContext { Request = { Method = "GET", QueryString = new QueryString(query) } }.Request;

        var seen = new HashSet<int>();
        for (var n = 0; n < 10_000; n++)
        {
            var route = n % 18;
            var (result, personalizerShape) = route switch
            {
                0 => (await api.Rank(Post(Garbage()), default), false),
                1 => (await api.PersonalizerRank(Post(Garbage()), default), true),
                2 => (await api.Reward(Post(Garbage()), HostileId(), default), false),
                3 => (await api.PersonalizerReward(Post(Garbage()), HostileId(), default), true),
                4 => (await api.Activate(Post(Garbage()), HostileId(), default), false),
                5 => (await api.PersonalizerActivate(Post(Garbage()), HostileId(), default), true),
                6 => (await ingest.Run(Post(Garbage()), default), false),
                7 => (await api.UpdateServiceConfiguration(Post(Garbage()), default), true),
                8 => (await api.UpdatePolicy(Post(Garbage()), default), true),
                9 => (await api.CreateEvaluation(Post(Garbage()), default), true),
                10 => (await api.GetEvaluation(Post(""), HostileId(), default), true),
                11 => (await recommendations.Run(Get(random.Next(2) == 0 ? "?k=10" : "?k=" + Garbage()), InvalidId(), default), false),
                12 => (await users.Run(Post(""), InvalidId(), null!, default), false),
                13 => (await users.Status(Post(""), InvalidId(), default), false),
                14 => (await api.MultiSlotRank(Post(Garbage()), default), true),
                15 => (await api.MultiSlotReward(Post(Garbage()), HostileId(), default), true),
                16 => (await api.MultiSlotActivate(Post(""), HostileId(), default), true),
                _ => (await api.GetLearningMetrics(Get("?" + random.GetItems(["StartDate", "EndDate", "AggregationInterval", "NumberOfRecentEvents", "AggregationEventCount"], 1)[0] + "=x" + Uri.EscapeDataString(Garbage())), default), true),
            };
            var status = result switch { ObjectResult o => o.StatusCode ?? 200, StatusCodeResult c => c.StatusCode, _ => 200 };
            var body = Assert.IsType<ObjectResult>(result).Value;
            seen.Add(route);
            // A batch that parses as an array of events is taken event by event: each refused one is named in the answer
            // (and dead-lettered with its reason), none accepted.
            if (route == 6 && body is IngestResponse batch)
            {
                Assert.Equal((202, 0), (status, batch.Accepted));
                Assert.Equal(batch.Rejected, batch.Errors.Count);
                continue;
            }
            Assert.True(status is >= 400 and < 500, $"request {n} (route {route}) got {status}");
            if (personalizerShape)
                Assert.IsType<PersonalizerErrorResponse>(body);
            else
                Assert.IsAssignableFrom<ProblemDetails>(body);
        }

        Assert.Equal(18, seen.Count);
        await serving.FlushAsync();
        Assert.Empty(await services.EventLog.ListBlobsAsync().ToListAsync());
        Assert.Empty(await serving.RankEvents.QueryAsync<Azure.Data.Tables.TableEntity>().ToListAsync());
        Assert.Equal(0, (await services.Tombstones.ReadAllAsync()).Count);
        Assert.Empty(await serving.PersonalizerEvaluations.ListAsync());
        Assert.Equal(configuration, Serialized(await api.GetServiceConfiguration(Post(""), default)));
        Assert.Equal(policy, Serialized(await api.GetPolicy(Post(""), default)));
    }

    private static string Serialized(IActionResult result) => result switch
    {
        ContentResult c => c.Content!,
        ObjectResult o => System.Text.Json.JsonSerializer.Serialize(o.Value),
        _ => throw new InvalidOperationException(result.GetType().Name),
    };
}
