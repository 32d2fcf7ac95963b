using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Recommender.Serving;
using Recommender.TestSupport;

namespace Recommender.Functions.Tests;

/// <summary>
/// Personalizer's multi-slot Rank, Reward and Activate (v1.1-preview.1) and v1.1's learning metrics, over Azurite,
/// through the API class the Functions app binds, with no sequence model served.
/// </summary>
public sealed class PersonalizerMultiSlotTests
{
    private static readonly string[] Articles = ["news", "sports", "music", "films"];

    private static HttpRequest Request(string method, string body = "", string query = "")
    {
        var context = new DefaultHttpContext();
        context.Request.Method = method;
        context.Request.Body = new MemoryStream(Encoding.UTF8.GetBytes(body));
        context.Request.ContentType = "application/json";
        context.Request.QueryString = new QueryString(query);
        return context.Request;
    }

    private static async Task<(PersonalizerApi Api, ServingServices Serving, ManualClock Clock)> FreshAsync()
    {
        var clock = new ManualClock(TestEvents.Start);
        var serving = await ServingFixture.CreateAsync(await Azurite.CreateServicesAsync(), time: clock);
        return (new PersonalizerApi(serving.Personalizer, serving.PersonalizerLog, serving.PersonalizerEvaluations, serving.PersonalizerLearningMetrics, SubscriptionKeys.From(null)), serving, clock);
    }

    private static async Task ConfigureAsync(PersonalizerApi api, string learningMode)
    {
        var result = await api.UpdateServiceConfiguration(Request("PUT", $$"""{"rewardWaitTime": "PT10M", "defaultReward": 0, "rewardAggregation": "earliest", "explorationPercentage": 0.2, "modelExportFrequency": "PT1M", "logRetentionDays": 7, "learningMode": "{{learningMode}}"}"""), default);
        Assert.Equal(200, ((ContentResult)result).StatusCode);
    }

    /// <summary>Two slots over the four articles; the top slot excludes films, the baselines are news (top) and sports (side).</summary>
    private static string RankBody(string eventId, bool defer = false) => new JsonObject
    {
        ["contextFeatures"] = new JsonArray(new JsonObject { ["device"] = "mobile" }),
        ["actions"] = new JsonArray(Articles.Select(a => (JsonNode)new JsonObject { ["id"] = a, ["features"] = new JsonArray(new JsonObject { ["topic"] = a }) }).ToArray()),
        ["slots"] = new JsonArray(
            new JsonObject { ["id"] = "top", ["features"] = new JsonArray(new JsonObject { ["size"] = "large" }), ["excludedActions"] = new JsonArray("films"), ["baselineAction"] = "news" },
            new JsonObject { ["id"] = "side", ["features"] = new JsonArray(new JsonObject { ["size"] = "small" }), ["baselineAction"] = "sports" }),
        ["eventId"] = eventId,
        ["deferActivation"] = defer,
    }.ToJsonString();

    private static async Task<(int Status, JsonNode? Body)> CallAsync(Task<IActionResult> call)
    {
        var result = await call;
        return result switch
        {
            ContentResult c => (c.StatusCode ?? 200, c.Content is { Length: > 0 } text ? JsonNode.Parse(text) : null),
            ObjectResult o => (o.StatusCode ?? 200, JsonNode.Parse(System.Text.Json.JsonSerializer.Serialize(o.Value, o.Value!.GetType(), new System.Text.Json.JsonSerializerOptions(System.Text.Json.JsonSerializerDefaults.Web)))),
            StatusCodeResult s => (s.StatusCode, null),
            _ => throw new InvalidOperationException(result.GetType().Name),
        };
    }

    private static Dictionary<string, string?> Chosen(JsonNode response) =>
        response["slots"]!.AsArray().ToDictionary(s => (string)s!["id"]!, s => (string?)s!["rewardActionId"]);

    [Fact]
    public async Task Each_slot_gets_an_action_of_its_own_never_one_it_excludes_and_apprentice_mode_fills_each_with_its_baseline()
    {
        var (api, _, _) = await FreshAsync();
        var choices = new List<Dictionary<string, string?>>();
        for (var n = 0; n < 40; n++)
        {
            var (status, body) = await CallAsync(api.MultiSlotRank(Request("POST", RankBody($"online-{n}")), default));
            Assert.Equal(201, status);
            Assert.Equal($"online-{n}", (string?)body!["eventId"]);
            choices.Add(Chosen(body));
        }
        await ConfigureAsync(api, "Apprentice");
        var (_, apprentice) = await CallAsync(api.MultiSlotRank(Request("POST", RankBody("apprentice")), default));

        Assert.All(choices, c => Assert.NotEqual(c["top"], c["side"]));
        Assert.All(choices, c => Assert.NotEqual("films", c["top"]));
        Assert.True(choices.Select(c => c["top"]).Distinct().Count() > 1, "a fresh deployment explores every slot uniformly");
        Assert.Equal(new Dictionary<string, string?> { ["top"] = "news", ["side"] = "sports" }, Chosen(apprentice!));
    }

    [Fact]
    public async Task Rewards_join_each_slots_rank_and_the_bandit_learns_what_suits_each_slot()
    {
        var (api, serving, clock) = await FreshAsync();
        // The truth: music wins at the top, news at the side; nothing else is rewarded.
        async Task<double> PlayAsync(string prefix, int calls)
        {
            var hits = 0;
            for (var n = 0; n < calls; n++)
            {
                var (_, body) = await CallAsync(api.MultiSlotRank(Request("POST", RankBody($"{prefix}-{n}")), default));
                var chosen = Chosen(body!);
                var (top, side) = (chosen["top"] == "music" ? 1 : 0, chosen["side"] == "news" ? 1 : 0);
                hits += top + side;
                var (status, _) = await CallAsync(api.MultiSlotReward(Request("POST", $$"""{"reward": [{"slotId": "top", "value": {{top}}}, {"slotId": "side", "value": {{side}}}]}"""), $"{prefix}-{n}", default));
                Assert.Equal(204, status);
            }
            return hits / (2.0 * calls);
        }

        var before = await PlayAsync("learn", 150);
        clock.Advance(TimeSpan.FromMinutes(2));
        var update = await serving.PersonalizerLearner.UpdateAsync();
        clock.Advance(PersonalizerStore.CacheFor);
        var after = await PlayAsync("serve", 60);

        Assert.Equal(300, update.Learned); // one event per slot; the event's own record is not one
        Assert.Equal(0, update.Dropped);
        Assert.InRange(before, 0, 0.5);
        Assert.True(after >= 0.75, $"the share of rewarded slots went from {before:F2} to {after:F2} (best at 20% exploration: about 0.87)");
    }

    [Fact]
    public async Task A_reward_naming_an_unknown_slot_is_refused_whole_and_single_slot_operations_refuse_a_multi_slot_event()
    {
        var (api, serving, _) = await FreshAsync();
        await CallAsync(api.MultiSlotRank(Request("POST", RankBody("e1", defer: true)), default));
        var (_, single) = await CallAsync(api.PersonalizerRank(Request("POST", """{"actions": [{"id": "a"}], "eventId": "s1"}"""), default));

        var (unknownSlot, error) = await CallAsync(api.MultiSlotReward(Request("POST", """{"reward": [{"slotId": "top", "value": 1}, {"slotId": "footer", "value": 1}]}"""), "e1", default));
        var (outOfRange, _) = await CallAsync(api.MultiSlotReward(Request("POST", """{"reward": [{"slotId": "top", "value": 2}]}"""), "e1", default));
        var (singleOnMulti, _) = await CallAsync(api.PersonalizerReward(Request("POST", """{"value": 1}"""), "e1", default));
        var (multiOnSingle, _) = await CallAsync(api.MultiSlotActivate(Request("POST"), "s1", default));
        var (unknownEvent, notFound) = await CallAsync(api.MultiSlotReward(Request("POST", """{"reward": [{"slotId": "top", "value": 1}]}"""), "never", default));
        var topBeforeActivation = await serving.Ranks.GetAsync("e1/0");
        var (activated, _) = await CallAsync(api.MultiSlotActivate(Request("POST"), "e1", default));
        var top = await serving.Ranks.GetAsync("e1/0");
        var side = await serving.Ranks.GetAsync("e1/1");

        Assert.Equal((400, "BadRequest"), (unknownSlot, (string?)error!["error"]!["code"]));
        Assert.Equal(400, outOfRange);
        Assert.Equal(400, singleOnMulti);
        Assert.Equal(400, multiOnSingle);
        Assert.Equal((404, "ResourceNotFound"), (unknownEvent, (string?)notFound!["error"]!["code"]));
        Assert.Null(top!.GetDouble("Reward")); // the refused rewards kept nothing, not even the valid entry
        Assert.False(topBeforeActivation!.GetBoolean("Activated"));
        Assert.Equal(204, activated);
        Assert.True(top.GetBoolean("Activated") == true && side!.GetBoolean("Activated") == true);
        Assert.NotNull(single);
    }

    [Theory]
    [InlineData("""{"actions": [{"id": "a"}, {"id": "b"}], "slots": [{"id": "x"}]}""", "baselineAction")]
    [InlineData("""{"actions": [{"id": "a"}, {"id": "b"}], "slots": [{"id": "x", "baselineAction": "c"}]}""", "baselineAction")]
    [InlineData("""{"actions": [{"id": "a"}, {"id": "b"}], "slots": [{"id": "x", "baselineAction": "a", "excludedActions": ["a"]}]}""", "excluded")]
    [InlineData("""{"actions": [{"id": "a"}, {"id": "b"}], "slots": [{"id": "x", "baselineAction": "a"}, {"id": "y", "baselineAction": "a"}]}""", "its own")]
    [InlineData("""{"actions": [{"id": "a"}, {"id": "b"}], "slots": [{"id": "x", "baselineAction": "a"}, {"id": "x", "baselineAction": "b"}]}""", "unique")]
    [InlineData("""{"actions": [{"id": "a"}], "slots": []}""", "slots")]
    [InlineData("""{"actions": [{"id": "a"}]}""", "slots")]
    public async Task A_multi_slot_rank_breaking_the_specs_slot_rules_is_400_with_the_reason_and_writes_nothing(string body, string reason)
    {
        var (api, serving, _) = await FreshAsync();

        var (status, error) = await CallAsync(api.MultiSlotRank(Request("POST", body), default));
        await serving.Ranks.FlushAsync();

        Assert.Equal((400, "BadRequest"), (status, (string?)error!["error"]!["code"]));
        Assert.Contains(reason, (string)error["error"]!["message"]!, StringComparison.Ordinal);
        Assert.Empty(serving.Ranks.Table.Query<Azure.Data.Tables.TableEntity>());
    }

    [Fact]
    public async Task Learning_metrics_count_final_rewards_per_window_and_match_in_each_learning_mode_period()
    {
        var (api, _, clock) = await FreshAsync();
        async Task RankAndRewardAsync(string eventId, double reward)
        {
            await CallAsync(api.PersonalizerRank(Request("POST", $$"""{"actions": [{"id": "a"}, {"id": "b"}], "eventId": "{{eventId}}"}"""), default));
            await CallAsync(api.PersonalizerReward(Request("POST", $$"""{"value": {{reward}}}"""), eventId, default));
        }
        // Online: two events in the first hour, one in the second; then Apprentice: two in the third hour.
        await RankAndRewardAsync("o1", 1);
        clock.Advance(TimeSpan.FromMinutes(30));
        await RankAndRewardAsync("o2", 0.5);
        clock.Advance(TimeSpan.FromMinutes(40));
        await RankAndRewardAsync("o3", 0);
        await ConfigureAsync(api, "Apprentice");
        clock.Advance(TimeSpan.FromMinutes(60));
        await RankAndRewardAsync("a1", 1);
        await RankAndRewardAsync("a2", 1);
        await CallAsync(api.PersonalizerRank(Request("POST", """{"actions": [{"id": "a"}, {"id": "b"}], "eventId": "pending"}"""), default)); // no reward yet, not final

        var (status, body) = await CallAsync(api.GetLearningMetrics(Request("GET", query: "?AggregationInterval=PT1H"), default));
        var (_, recent) = await CallAsync(api.GetLearningMetrics(Request("GET", query: "?NumberOfRecentEvents=2&AggregationEventCount=1"), default));
        var (invalid, error) = await CallAsync(api.GetLearningMetrics(Request("GET", query: "?AggregationEventCount=zero"), default));

        Assert.Equal(200, status);
        var periods = body!.AsArray();
        Assert.Equal(["Online", "Apprentice"], periods.Select(p => (string)p![0]!["learningMode"]!));
        var online = periods[0]!.AsArray();
        Assert.Equal([2L, 1L], online.Select(w => (long)w!["numberOfEvents"]!));
        Assert.Equal([1.5, 0.0], online.Select(w => (double)w!["sumOfRewards"]!));
        Assert.Equal([2L, 3L], online.Select(w => (long)w!["cumulativeNumberOfEvents"]!));
        Assert.Equal(TestEvents.Start.AddHours(1), DateTimeOffset.Parse((string)online[1]!["startDate"]!) - TimeSpan.Zero);
        var apprentice = periods[1]!.AsArray().Single()!;
        Assert.Equal(2L, (long)apprentice["cumulativeNumberOfEvents"]!); // cumulative from the period's start
        // A fresh bandit predicts a tie, and the first action is the baseline: every event is matched.
        Assert.Equal((2L, 2.0), ((long)apprentice["numberOfMatchedEvents"]!, (double)apprentice["sumOfImitatedRewards"]!));
        Assert.Equal(2, recent!.AsArray().Sum(p => p!.AsArray().Count));
        Assert.Equal((400, "BadRequest"), (invalid, (string?)error!["error"]!["code"]));
    }
}
