using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Recommender.Serving;
using Recommender.TestSupport;

namespace Recommender.Functions.Tests;

/// <summary>
/// Personalizer learning from rewards, with no sequence model served (a fresh deployment): the bandit, the reward
/// window, the learning modes and the configuration, over Azurite, through the API class the Functions app binds.
/// </summary>
public sealed class PersonalizerLearningTests
{
    private static readonly string[] TimesOfDay = ["morning", "afternoon", "evening"];
    private static readonly string[] Devices = ["mobile", "desktop"];
    private static readonly string[] Articles = ["news", "sports", "music", "films", "games", "food"];

    private static HttpRequest Request(string method, string body = "")
    {
        var context = new DefaultHttpContext();
        context.Request.Method = method;
        context.Request.Body = new MemoryStream(Encoding.UTF8.GetBytes(body));
        context.Request.ContentType = "application/json";
        return context.Request;
    }

    private static async Task<(PersonalizerApi Api, ServingServices Serving, ManualClock Clock)> FreshAsync()
    {
        var clock = new ManualClock(TestEvents.Start);
        var serving = await ServingFixture.CreateAsync(await Azurite.CreateServicesAsync(), time: clock);
        return (new PersonalizerApi(serving.Personalizer, serving.PersonalizerLog, serving.PersonalizerEvaluations, serving.PersonalizerLearningMetrics, SubscriptionKeys.From(null)), serving, clock);
    }

    private static async Task ConfigureAsync(PersonalizerApi api, string json)
    {
        var result = await api.UpdateServiceConfiguration(Request("PUT", json), default);
        Assert.Equal(200, ((ContentResult)result).StatusCode);
    }

    /// <summary>The known-truth scenario: six contexts (time of day x device), six articles, one liked per context.</summary>
    private static string Liked(int timeOfDay, int device) => Articles[(timeOfDay * 2 + device) % Articles.Length];

    private static string RankBody(int timeOfDay, int device, string eventId) => new JsonObject
    {
        ["contextFeatures"] = new JsonArray(new JsonObject { ["timeOfDay"] = TimesOfDay[timeOfDay] }, new JsonObject { ["device"] = Devices[device] }),
        ["actions"] = new JsonArray(Articles.Select(a => (JsonNode)new JsonObject { ["id"] = a, ["features"] = new JsonArray(new JsonObject { ["topic"] = a }) }).ToArray()),
        ["eventId"] = eventId,
    }.ToJsonString();

    /// <summary>Ranks and rewards <paramref name="calls"/> times; the share of them whose rewardActionId was liked.</summary>
    private static async Task<double> PlayAsync(PersonalizerApi api, int calls, int seed, string prefix)
    {
        var random = new Random(seed);
        var liked = 0;
        for (var n = 0; n < calls; n++)
        {
            var (t, d) = (random.Next(TimesOfDay.Length), random.Next(Devices.Length));
            var rank = (RankResponse)((ObjectResult)await api.PersonalizerRank(Request("POST", RankBody(t, d, $"{prefix}-{n}")), default)).Value!;
            var reward = rank.RewardActionId == Liked(t, d) ? 1 : 0;
            liked += reward;
            await api.PersonalizerReward(Request("POST", $$"""{"value": {{reward}}}"""), rank.EventId, default);
        }
        return liked / (double)calls;
    }

    [Fact]
    public async Task A_fresh_deployment_answers_rank_uniformly_then_learns_the_liked_action_of_each_context_from_rewards()
    {
        var (api, serving, clock) = await FreshAsync();

        var first = (ObjectResult)await api.PersonalizerRank(Request("POST", RankBody(0, 0, "first")), default);
        var before = await PlayAsync(api, 300, seed: 1, "day1");
        clock.Advance(TimeSpan.FromMinutes(6)); // past modelExportFrequency (PT5M): the update runs on its own schedule
        var update = await serving.PersonalizerLearner.UpdateAsync();
        clock.Advance(PersonalizerStore.CacheFor);
        var after = await PlayAsync(api, 300, seed: 2, "day1-after");

        Assert.Equal(201, first.StatusCode);
        Assert.All(((RankResponse)first.Value!).Ranking, r => Assert.Equal(1.0 / 6, r.Probability, 9)); // nothing learned: uniform
        Assert.InRange(before, 0.05, 0.35); // random: 1/6
        Assert.True(update.Ran);
        Assert.Equal(300, update.Learned); // rewarded with earliest aggregation: final at once; "first" has no reward and waits out rewardWaitTime
        Assert.True(after >= 0.75, $"reward rate after one update {after:F3} (best at 20% exploration: 0.833)");
    }

    [Fact]
    public async Task The_model_from_GET_model_is_ONNX_that_scores_every_context_as_the_bandit_does()
    {
        var (api, serving, clock) = await FreshAsync();
        var untrained = (FileContentResult)await api.GetModel(Request("GET"), default);
        await PlayAsync(api, 300, seed: 1, "export");
        clock.Advance(TimeSpan.FromMinutes(6));
        await serving.PersonalizerLearner.UpdateAsync();
        var (bandit, _, _) = await serving.PersonalizerState.GetModelAsync();
        var exported = (FileContentResult)await api.GetModel(Request("GET"), default);

        using var options = PolicyModel.NewSessionOptions();
        using var session = new InferenceSession(exported.FileContents, options);
        using var untrainedSession = new InferenceSession(untrained.FileContents, options);
        var actions = Articles.Select(a => (IReadOnlyList<Feature>)[new Feature("a.id=" + a, 1), new Feature("a.topic=" + a, 1)]).ToList();
        for (var t = 0; t < TimesOfDay.Length; t++)
        {
            for (var d = 0; d < Devices.Length; d++)
            {
                var context = PersonalizerFeatures.Flatten(JsonSerializer.Deserialize<List<JsonElement>>(
                    $$"""[{"timeOfDay": "{{TimesOfDay[t]}}"}, {"device": "{{Devices[d]}}"}]"""), "c");
                var expected = bandit.Predict(context, actions);

                var scores = Score(session, context, actions);

                Assert.Equal(expected.Length, scores.Length);
                for (var i = 0; i < scores.Length; i++)
                    Assert.Equal(expected[i], scores[i], 1e-4);
                Assert.Equal(Liked(t, d), Articles[Array.IndexOf(scores, scores.Max())]); // learned, not all zeros
                Assert.All(Score(untrainedSession, context, actions), s => Assert.Equal(0f, s));
            }
        }
        Assert.Equal("application/octet-stream", exported.ContentType);
        Assert.Equal("300", session.ModelMetadata.CustomMetadataMap["events_learned"]);
    }

    private static float[] Score(InferenceSession session, IReadOnlyList<Feature> context, IReadOnlyList<IReadOnlyList<Feature>> actions)
    {
        var (hashes, values, width) = ContextualBandit.InteractionRows(context, actions);
        int[] shape = [actions.Count, width];
        using var results = session.Run(
        [
            NamedOnnxValue.CreateFromTensor(BanditOnnxExport.HashesInput, new DenseTensor<long>(hashes, shape)),
            NamedOnnxValue.CreateFromTensor(BanditOnnxExport.ValuesInput, new DenseTensor<float>(values, shape)),
        ]);
        return results.First(r => r.Name == BanditOnnxExport.ScoresOutput).AsEnumerable<float>().ToArray();
    }

    [Fact]
    public async Task A_rank_without_a_reward_counts_as_the_default_reward_once_the_wait_is_over_and_is_learned_once()
    {
        var (api, serving, clock) = await FreshAsync();
        await ConfigureAsync(api, """{"rewardWaitTime": "PT10M", "defaultReward": 0.5, "rewardAggregation": "sum", "explorationPercentage": 0.2, "modelExportFrequency": "PT1M", "logRetentionDays": 7}""");
        clock.Advance(PersonalizerStore.CacheFor);
        await api.PersonalizerRank(Request("POST", RankBody(0, 0, "silent")), default);
        var rewarded = (RankResponse)((ObjectResult)await api.PersonalizerRank(Request("POST", RankBody(0, 0, "twice")), default)).Value!;
        await api.PersonalizerReward(Request("POST", """{"value": 0.25}"""), "twice", default);
        await api.PersonalizerReward(Request("POST", """{"value": 0.5}"""), "twice", default);

        clock.Advance(TimeSpan.FromMinutes(2));
        var early = await serving.PersonalizerLearner.UpdateAsync(); // with sum, nothing is final before the wait
        clock.Advance(TimeSpan.FromMinutes(9));
        var due = await serving.PersonalizerLearner.UpdateAsync();
        clock.Advance(TimeSpan.FromMinutes(2));
        var again = await serving.PersonalizerLearner.UpdateAsync();
        var (bandit, _, _) = await serving.PersonalizerState.GetModelAsync();
        var actions = Articles.Select(a => (IReadOnlyList<Feature>)[new Feature("a.id=" + a, 1), new Feature("a.topic=" + a, 1)]).ToList();
        var context = PersonalizerFeatures.Flatten(JsonSerializer.Deserialize<List<JsonElement>>("""[{"timeOfDay": "morning"}, {"device": "mobile"}]"""), "c");
        var predictions = bandit.Predict(context, actions);

        Assert.Equal((true, 0), (early.Ran, early.Learned));
        Assert.Equal((true, 2), (due.Ran, due.Learned));
        Assert.Equal((true, 0), (again.Ran, again.Learned));
        Assert.Equal(2, bandit.Events);
        // The summed reward 0.75 pulled the rewarded action up further than the default 0.5 pulled the silent one.
        Assert.True(predictions[Array.IndexOf(Articles, rewarded.RewardActionId)] > 0);
    }

    [Fact]
    public async Task Apprentice_mode_serves_the_baseline_every_time_while_it_learns_and_reports_how_often_it_agrees()
    {
        var (api, serving, clock) = await FreshAsync();
        await ConfigureAsync(api, """{"rewardWaitTime": "PT10M", "defaultReward": 0, "rewardAggregation": "earliest", "explorationPercentage": 0.2, "modelExportFrequency": "PT1M", "logRetentionDays": 7, "learningMode": "Apprentice"}""");
        clock.Advance(PersonalizerStore.CacheFor);

        var rate = await PlayAsync(api, 120, seed: 3, "apprentice");
        var ranks = new List<RankResponse>();
        for (var n = 0; n < 20; n++)
            ranks.Add((RankResponse)((ObjectResult)await api.PersonalizerRank(Request("POST", RankBody(n % 3, n % 2, $"more-{n}")), default)).Value!);
        clock.Advance(TimeSpan.FromMinutes(2));
        var update = await serving.PersonalizerLearner.UpdateAsync();
        var (_, model, _) = await serving.PersonalizerState.GetModelAsync();

        Assert.All(ranks, r => Assert.Equal(("news", 1.0), (r.RewardActionId, r.Ranking[0].Probability)));
        Assert.InRange(rate, 0.05, 0.35); // the baseline, the first action, is liked in one context of six
        Assert.True(update.Ran);
        Assert.Equal(120, model.ApprenticeEvents);
        Assert.InRange(model.ApprenticeAgreements, 1, 119);
    }

    [Theory]
    [InlineData("""{"rewardWaitTime": "PT10M", "defaultReward": 2, "rewardAggregation": "earliest", "explorationPercentage": 0.2, "modelExportFrequency": "PT5M", "logRetentionDays": 7}""", "defaultReward")]
    [InlineData("""{"rewardWaitTime": "PT10M", "defaultReward": 0, "rewardAggregation": "earliest", "explorationPercentage": 1.5, "modelExportFrequency": "PT5M", "logRetentionDays": 7}""", "explorationPercentage")]
    [InlineData("""{"rewardWaitTime": "ten minutes", "defaultReward": 0, "rewardAggregation": "earliest", "explorationPercentage": 0.2, "modelExportFrequency": "PT5M", "logRetentionDays": 7}""", "rewardWaitTime")]
    [InlineData("""{"rewardWaitTime": "PT10M", "defaultReward": 0, "rewardAggregation": "median", "explorationPercentage": 0.2, "modelExportFrequency": "PT5M", "logRetentionDays": 7}""", "rewardAggregation")]
    [InlineData("""{"rewardWaitTime": "PT10M", "defaultReward": 0, "rewardAggregation": "earliest", "explorationPercentage": 0.2, "modelExportFrequency": "PT5M", "logRetentionDays": 7, "learningMode": "Eager"}""", "learningMode")]
    public async Task Out_of_range_configuration_is_400_with_the_spec_error_shape_and_changes_nothing(string body, string field)
    {
        var (api, _, _) = await FreshAsync();

        var result = (ObjectResult)await api.UpdateServiceConfiguration(Request("PUT", body), default);
        var kept = (ContentResult)await api.GetServiceConfiguration(Request("GET"), default);

        Assert.Equal(400, result.StatusCode);
        var error = Assert.IsType<PersonalizerErrorResponse>(result.Value);
        Assert.Equal("BadRequest", error.Error.Code);
        Assert.Contains(field, error.Error.Message);
        Assert.Equal(0.2, JsonNode.Parse(kept.Content!)!["explorationPercentage"]!.GetValue<double>());
        Assert.Equal("earliest", (string?)JsonNode.Parse(kept.Content!)!["rewardAggregation"]);
    }

    [Fact]
    public async Task An_offline_evaluation_gives_the_online_policy_its_logged_reward_random_one_in_six_and_a_learner_more()
    {
        var (api, serving, clock) = await FreshAsync();
        var first = await PlayAsync(api, 150, seed: 5, "eval-a");
        clock.Advance(TimeSpan.FromMinutes(6));
        await serving.PersonalizerLearner.UpdateAsync();
        clock.Advance(PersonalizerStore.CacheFor);
        var second = await PlayAsync(api, 150, seed: 6, "eval-b");
        var body = new JsonObject
        {
            ["name"] = "first day", ["startTime"] = TestEvents.Start.AddHours(-1), ["endTime"] = TestEvents.Start.AddHours(1),
            ["policies"] = new JsonArray(new JsonObject { ["name"] = "greedier", ["arguments"] = "--cb_explore_adf --epsilon 0.05" }),
        }.ToJsonString();

        var created = (ContentResult)await api.CreateEvaluation(Request("POST", body), default);
        var evaluation = JsonNode.Parse(created.Content!)!;
        double Ips(string name)
        {
            var total = evaluation["policyResults"]!.AsArray().Single(p => (string?)p!["name"] == name)!["totalSummary"]!;
            return (double)total["ipsEstimatorNumerator"]! / (double)total["ipsEstimatorDenominator"]!;
        }

        Assert.Equal(201, created.StatusCode);
        Assert.Equal("completed", (string?)evaluation["status"]);
        Assert.Equal((first + second) / 2, Ips("Online"), 9); // weights of 1: exactly the logged reward
        Assert.InRange(Ips("Random"), 0.08, 0.28);
        Assert.InRange(Ips("Baseline"), 0.05, 0.35); // news, liked in one context of six
        Assert.True(Ips("greedier") > Ips("Random") + 0.2, $"a learner {Ips("greedier"):F3} against random {Ips("Random"):F3}");
        Assert.InRange(Ips("Online (doubly robust)"), (first + second) / 2 - 0.1, (first + second) / 2 + 0.1);
        var fetched = (ContentResult)await api.GetEvaluation(Request("GET"), (string)evaluation["id"]!, default);
        Assert.Equal(created.Content, fetched.Content);
    }

    [Fact]
    public async Task Delete_model_forgets_what_was_learned_and_does_not_relearn_the_old_log()
    {
        var (api, serving, clock) = await FreshAsync();
        await PlayAsync(api, 60, seed: 4, "old");
        clock.Advance(TimeSpan.FromMinutes(6));
        await serving.PersonalizerLearner.UpdateAsync();

        var reset = (StatusCodeResult)await api.ResetModel(Request("DELETE"), default);
        clock.Advance(TimeSpan.FromMinutes(6));
        var update = await serving.PersonalizerLearner.UpdateAsync();
        var (bandit, model, _) = await serving.PersonalizerState.GetModelAsync();

        Assert.Equal(204, reset.StatusCode);
        Assert.Equal((true, 0), (update.Ran, update.Learned));
        Assert.Equal((0L, 0), (bandit.Events, bandit.Size));
        Assert.True(model.CreatedAt > TestEvents.Start);
    }

    [Fact]
    public async Task An_update_reads_only_the_minutes_not_learned_yet_and_removes_them_once_learned()
    {
        var (api, serving, clock) = await FreshAsync();
        await ConfigureAsync(api, """{"rewardWaitTime": "PT10M", "defaultReward": 0, "rewardAggregation": "earliest", "explorationPercentage": 0.2, "modelExportFrequency": "PT1M", "logRetentionDays": 7}""");
        await PlayAsync(api, 20, seed: 3, "rewarded");
        clock.Advance(TimeSpan.FromMinutes(11));
        for (var n = 0; n < 5; n++)
            await api.PersonalizerRank(Request("POST", RankBody(0, 0, $"waiting-{n}")), default);
        async Task<int> LearningRowsAsync()
        {
            var rows = 0;
            await foreach (var _ in serving.Ranks.Table.QueryAsync<Azure.Data.Tables.TableEntity>(Azure.Data.Tables.TableClient.CreateQueryFilter($"PartitionKey ge {RankEventTable.LearningPrefix} and PartitionKey lt {"n"}")))
                rows++;
            return rows;
        }

        var first = await serving.PersonalizerLearner.UpdateAsync(force: true);
        var left = await LearningRowsAsync();
        clock.Advance(TimeSpan.FromMinutes(11));
        var second = await serving.PersonalizerLearner.UpdateAsync(force: true);
        var third = await serving.PersonalizerLearner.UpdateAsync(force: true);

        Assert.Equal(20, first.Learned);
        Assert.Equal(5, left); // the waiting ranks' rows; the learned minutes are gone
        Assert.Equal(5, second.Learned); // with the default reward, once the wait is over
        Assert.Equal(0, third.Learned);
        Assert.Equal(0, await LearningRowsAsync());
        await serving.Ranks.FlushAsync();
        Assert.NotNull(await serving.Ranks.GetAsync("rewarded-0")); // the records stay for rewards, evaluations and logs
    }

    [Fact]
    public async Task A_minutes_ranks_spread_over_the_shards_of_its_learning_partition_and_an_update_learns_them_all()
    {
        // One partition per minute would take every rank of that minute: Table Storage scales by partition.
        var (api, serving, clock) = await FreshAsync();
        await PlayAsync(api, 64, seed: 5, "spread");
        await serving.Ranks.FlushAsync();
        var rankedAt = clock.GetUtcNow();
        var partitions = new HashSet<string>();
        await foreach (var row in serving.Ranks.Table.QueryAsync<Azure.Data.Tables.TableEntity>(RankEventTable.LearningMinutes(rankedAt, rankedAt)))
            partitions.Add(row.PartitionKey);

        clock.Advance(TimeSpan.FromMinutes(11));
        var update = await serving.PersonalizerLearner.UpdateAsync(force: true);

        Assert.InRange(partitions.Count, 8, RankEventTable.LearningShards);
        Assert.All(partitions, p => Assert.StartsWith(RankEventTable.LearningPrefix + rankedAt.UtcDateTime.ToString("yyyyMMddHHmm"), p));
        Assert.Equal(64, update.Learned);
    }
}
