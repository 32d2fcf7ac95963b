using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Recommender.Ingestion;
using Recommender.Serving;
using Recommender.Storage;

/// <summary>
/// A Personalizer user's first day on a fresh deployment, with a known truth: six contexts (time of day x device), six
/// actions with features, one liked action per context (reward 1, else 0). Rank + Reward calls go to the product's
/// PersonalizerService over Azurite (fresh storage namespace, nothing trained, no sequence model), the learner updating
/// the model on its own as the app's timer does (a check every 5 s, an update once modelExportFrequency has passed);
/// the reward rate of rewardActionId is measured over those calls (updates that fall within them count) and then, with
/// the updates stopped, with the model that learned from all of them. Then Rank's latency with 50 actions, in process,
/// and an offline evaluation over <c>--evaluation-events</c> logged ranks (50,000 by default) served by that model.
/// </summary>
internal static class PersonalizerFirstDayBenchmark
{
    private static readonly Option<int> Calls = new("--calls") { Description = "Rank calls on the first day", DefaultValueFactory = _ => 600 };
    private static readonly Option<int> After = new("--after") { Description = "Rank calls after which the learned policy is judged", DefaultValueFactory = _ => 1000 };
    private static readonly Option<int> Seed = new("--seed") { Description = "Random seed", DefaultValueFactory = _ => 1 };
    private static readonly Option<string> ExportFrequency = new("--export-frequency") { Description = "Personalizer model export frequency (ISO 8601 duration)", DefaultValueFactory = _ => "PT30S" };
    private static readonly Option<int> EvaluationEvents = new("--evaluation-events") { Description = "Events of the offline evaluation", DefaultValueFactory = _ => 50_000 };
    private static readonly Option<string> Storage = BenchmarkCommand.StorageConnection();
    private static readonly Option<string> Name = BenchmarkCommand.ResultName("personalizer-first-day");

    public static Command Command() => BenchmarkCommand.Create("personalizer-first-day", "A Personalizer user's first day on this endpoint: rank, reward, learn", RunAsync, Calls, After, Seed, ExportFrequency, EvaluationEvents, Storage, Name);

    private static readonly string[] TimesOfDay = ["morning", "afternoon", "evening"];
    private static readonly string[] Devices = ["mobile", "desktop"];
    private static readonly string[] Articles = ["news", "sports", "music", "films", "games", "food"];

    private static async Task RunAsync(ParseResult parse, string outDir)
    {
        var calls = parse.GetValue(Calls);
        var after = parse.GetValue(After);
        var seed = parse.GetValue(Seed);
        var exportFrequency = parse.GetValue(ExportFrequency)!;
        var evaluationEvents = parse.GetValue(EvaluationEvents);
        var tag = "pz" + Guid.NewGuid().ToString("N")[..8];
        var storage = parse.GetValue(Storage)!;
        var ingestion = IngestionServices.Connect(storage, StorageLayout.Default.WithNamespace(tag));
        await ingestion.EnsureCreatedAsync();
        var serving = ServingServices.Connect(storage, ingestion, "models-" + tag, "RankEvents" + tag);
        await serving.EnsureCreatedAsync();
        var configuration = await serving.PersonalizerState.SetConfigurationAsync(new PersonalizerConfiguration { ExplorationPercentage = 0.2, ModelExportFrequency = exportFrequency });

        using var stop = new CancellationTokenSource();
        var updates = new List<JsonObject>();
        var clock = Stopwatch.StartNew();
        var updater = Task.Run(async () =>
        {
            using var timer = new PeriodicTimer(TimeSpan.FromSeconds(5));
            while (await timer.WaitForNextTickAsync(stop.Token).ConfigureAwait(false))
            {
                var update = await serving.PersonalizerLearner.UpdateAsync(cancellationToken: stop.Token);
                if (update.Ran)
                    lock (updates)
                        updates.Add(new JsonObject { ["at_seconds"] = Math.Round(clock.Elapsed.TotalSeconds, 1), ["learned"] = update.Learned });
            }
        });

        var random = new Random(seed);
        Console.WriteLine($"first day: {calls} rank + reward calls on a fresh deployment (explorationPercentage 0.2, modelExportFrequency {exportFrequency})");
        var before = await PlayAsync(serving.Personalizer, calls, random, "day1");
        Console.WriteLine(FormattableString.Invariant($"  reward rate over those calls: {before:F3}; waiting for the model to learn from all of them on its own"));
        var waited = Stopwatch.StartNew();
        while (true)
        {
            var (bandit, _, _) = await serving.PersonalizerState.GetModelAsync();
            if (bandit.Events >= calls)
                break;
            if (waited.Elapsed > TimeSpan.FromMinutes(10))
                throw new TimeoutException("the model did not update within 10 minutes");
            await Task.Delay(1000);
        }
        var waitSeconds = waited.Elapsed.TotalSeconds;
        // Frozen from here: the rate after is that of the model the first calls taught, not of one still learning.
        await stop.CancelAsync();
        try { await updater; } catch (OperationCanceledException) { }
        await Task.Delay(PersonalizerStore.CacheFor);
        var rate = await PlayAsync(serving.Personalizer, after, random, "day1-after");
        Console.WriteLine(FormattableString.Invariant($"  reward rate after the update: {rate:F3} over {after} calls (best possible at 20% exploration: {0.8 + 0.2 / Articles.Length:F3})"));

        // Rank with 50 actions, in process: the whole call (features, the bandit, the rank record, activation) and the decision alone.
        var manyActions = Enumerable.Range(0, 50).Select(i => new RankableAction($"action-{i}", [JsonSerializer.SerializeToElement(new { topic = $"t{i % 7}", length = i })])).ToList();
        var context = new List<JsonElement> { JsonSerializer.SerializeToElement(new { timeOfDay = "morning" }), JsonSerializer.SerializeToElement(new { device = "mobile" }) };
        var whole = new List<double>();
        for (var n = 0; n < 1000; n++)
        {
            var started = Stopwatch.GetTimestamp();
            await serving.Personalizer.RankAsync(new RankRequest(context, manyActions, EventId: $"latency-{n}"));
            whole.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        }
        var (banditNow, _, _) = await serving.PersonalizerState.GetModelAsync();
        var contextFeatures = PersonalizerFeatures.Flatten(context, "c");
        var decision = new List<double>();
        for (var n = 0; n < 1000; n++)
        {
            var started = Stopwatch.GetTimestamp();
            var candidates = manyActions.Select(a => (IReadOnlyList<Feature>)[new Feature("a.id=" + a.Id, 1), .. PersonalizerFeatures.Flatten(a.Features, "a")]).ToList();
            ContextualBandit.Probabilities(banditNow.Predict(contextFeatures, candidates), 0.2);
            decision.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        }

        // An offline evaluation over a day's worth of logged ranks: ranked by the learned model with exploration, rewarded
        // by the truth. The rewards are written straight onto the rank records in transactions (what is timed is the
        // evaluation, not the reward route, whose cost per call is the reward event it logs).
        Console.WriteLine($"  logging {evaluationEvents:N0} ranks for an offline evaluation");
        var evaluationStart = DateTimeOffset.UtcNow;
        var logging = Stopwatch.StartNew();
        var rewards = new List<(string EventId, double Reward)>(evaluationEvents);
        for (var n = 0; n < evaluationEvents; n++)
        {
            var (t, d) = (random.Next(TimesOfDay.Length), random.Next(Devices.Length));
            var rank = await serving.Personalizer.RankAsync(new RankRequest(Context(t, d), Actions(), EventId: $"logged-{n}"));
            rewards.Add((rank.EventId, rank.RewardActionId == Articles[(t * 2 + d) % Articles.Length] ? 1 : 0));
        }
        var rankSeconds = logging.Elapsed.TotalSeconds;
        await serving.Ranks.FlushAsync();
        var flushSeconds = logging.Elapsed.TotalSeconds - rankSeconds;
        Console.WriteLine(FormattableString.Invariant($"  ranked in {rankSeconds:F1} s, their records written {flushSeconds:F1} s later; writing the rewards"));
        foreach (var chunk in rewards.GroupBy(r => TableKeys.UserBucket(r.EventId)).SelectMany(g => g.Chunk(100)))
            await serving.Ranks.Table.SubmitTransactionAsync(chunk.Select(r => new Azure.Data.Tables.TableTransactionAction(Azure.Data.Tables.TableTransactionActionType.UpdateMerge,
                new Azure.Data.Tables.TableEntity(TableKeys.UserBucket(r.EventId), TableKeys.Encode(r.EventId)) { ["Reward"] = r.Reward }, Azure.ETag.All)));
        var rewardSeconds = logging.Elapsed.TotalSeconds - rankSeconds - flushSeconds;
        var evaluationTimer = Stopwatch.StartNew();
        var evaluation = await serving.PersonalizerEvaluations.CreateAsync(new EvaluationRequest("first day", evaluationStart, DateTimeOffset.UtcNow.AddSeconds(1),
            [new EvaluationPolicy("epsilon 0.05", "--cb_explore_adf --epsilon 0.05")]));
        var evaluationSeconds = evaluationTimer.Elapsed.TotalSeconds;
        var online = evaluation.PolicyResults.Single(p => p.Name == "Online").TotalSummary!;
        var onlineEstimate = online.IpsEstimatorNumerator / online.IpsEstimatorDenominator;
        var loggedReward = rewards.Average(r => r.Reward);
        Console.WriteLine(FormattableString.Invariant($"  offline evaluation of {online.IpsEstimatorDenominator:N0} events: {evaluationSeconds:F1} s; Online estimate {onlineEstimate:F4}, logged reward {loggedReward:F4}"));

        var result = new JsonObject
        {
            ["name"] = "personalizer-first-day",
            ["created"] = DateTime.UtcNow.ToString("O", CultureInfo.InvariantCulture),
            ["machine"] = BenchmarkMachine.Describe(),
            ["protocol"] = new JsonObject
            {
                ["scenario"] = "contexts timeOfDay (3) x device (2); actions news, sports, music, films, games, food, each with a topic feature; reward 1 when rewardActionId is the context's liked action ((timeOfDay*2+device) mod 6), else 0",
                ["calls_before_update"] = calls, ["calls_after_update"] = after, ["seed"] = seed,
                ["configuration"] = JsonSerializer.SerializeToNode(configuration, PersonalizerStateJsonContext.Default.PersonalizerConfiguration),
                ["updates"] = "the learner checked every 5 s, as the local host does (the Functions app: every 30 s); an update runs once modelExportFrequency has passed since the last (the first at once); stopped once the model had learned every first call, so the calls after are served by that model alone",
                ["storage"] = "Azurite, fresh namespace; no sequence model served",
                ["latency"] = "1000 Rank calls with 50 actions and 2 context features, in process: the whole call (rank record written, impressions logged) and the decision alone (features, predictions, probabilities)",
            },
            ["reward_rate_first_calls"] = before,
            ["reward_rate_after_update"] = rate,
            ["best_possible_at_exploration"] = 0.8 + 0.2 / Articles.Length,
            ["seconds_until_the_update"] = Math.Round(waitSeconds, 1),
            ["updates"] = new JsonArray(updates.Select(u => (JsonNode)u.DeepClone()).ToArray()),
            ["rank_50_actions_ms"] = Percentiles(whole),
            ["decision_50_actions_ms"] = Percentiles(decision),
            ["evaluation"] = new JsonObject
            {
                ["logged_events"] = evaluationEvents,
                ["logging_seconds"] = new JsonObject { ["rank_calls"] = Math.Round(rankSeconds, 1), ["records_written_after"] = Math.Round(flushSeconds, 1), ["rewards_written"] = Math.Round(rewardSeconds, 1) },
                ["events_judged"] = online.IpsEstimatorDenominator,
                ["seconds"] = Math.Round(evaluationSeconds, 1),
                ["online_estimate"] = Math.Round(onlineEstimate, 4),
                ["logged_reward"] = Math.Round(loggedReward, 4),
                ["online_vs_logged"] = Math.Round(onlineEstimate / loggedReward - 1, 4),
                ["policies"] = new JsonArray(evaluation.PolicyResults.Select(p => (JsonNode)new JsonObject
                {
                    ["name"] = p.Name,
                    ["ips"] = Math.Round(p.TotalSummary!.IpsEstimatorNumerator / p.TotalSummary.IpsEstimatorDenominator, 4),
                    ["snips"] = Math.Round(p.TotalSummary.IpsEstimatorNumerator / p.TotalSummary.SnipsEstimatorDenominator, 4),
                }).ToArray()),
            },
            ["seconds"] = Math.Round(clock.Elapsed.TotalSeconds),
        };
        var path = Path.Combine(outDir, parse.GetValue(Name)! + ".json");
        await File.WriteAllTextAsync(path, result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        Console.WriteLine($"  rank with 50 actions: {result["rank_50_actions_ms"]!.ToJsonString()} ms; decision alone {result["decision_50_actions_ms"]!.ToJsonString()} ms");
        Console.WriteLine($"wrote {path}");
    }

    private static async Task<double> PlayAsync(PersonalizerService personalizer, int calls, Random random, string prefix)
    {
        var liked = 0;
        for (var n = 0; n < calls; n++)
        {
            var (t, d) = (random.Next(TimesOfDay.Length), random.Next(Devices.Length));
            var rank = await personalizer.RankAsync(new RankRequest(Context(t, d), Actions(), EventId: $"{prefix}-{n}"));
            var reward = rank.RewardActionId == Articles[(t * 2 + d) % Articles.Length] ? 1 : 0;
            liked += reward;
            await personalizer.RewardAsync(rank.EventId, new RewardRequest(reward));
        }
        return liked / (double)calls;
    }

    private static List<JsonElement> Context(int timeOfDay, int device) =>
        [JsonSerializer.SerializeToElement(new { timeOfDay = TimesOfDay[timeOfDay] }), JsonSerializer.SerializeToElement(new { device = Devices[device] })];

    private static List<RankableAction> Actions() => Articles.Select(a => new RankableAction(a, [JsonSerializer.SerializeToElement(new { topic = a })])).ToList();

    private static JsonObject Percentiles(List<double> values)
    {
        var sorted = values.Order().ToArray();
        double At(double q) => Math.Round(sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(q * sorted.Length) - 1)], 3);
        return new JsonObject { ["p50"] = At(0.5), ["p90"] = At(0.9), ["p99"] = At(0.99), ["max"] = Math.Round(sorted[^1], 3) };
    }
}
