using Azure.Data.Tables;
using Recommender.EventLog;
using Recommender.Events;
using Recommender.Serving;
using Recommender.TestSupport;

namespace Recommender.Orchestration.Tests;

/// <summary>The learning loop end to end on a tiny configuration, with the real training job as a child process.</summary>
public sealed class WholeLoopTests
{
    [Fact]
    public async Task Events_in_model_trained_and_promoted_recommendations_out_and_a_reward_joined_to_its_recommendation()
    {
        // 1. Events in: the synthetic world's traffic through the ingestion code (done by Loop).
        await using var loop = await Loop.StartAsync((registry, ingestion) => new LocalProcessJobLauncher(new LocalJobOptions
        {
            Command = ["dotnet", Path.Combine(AppContext.BaseDirectory, "training-job.dll")],
            Storage = Azurite.ConnectionString,
            Settings = ["--snapshot-container", ingestion.Layout.TrainingContainer, "--container", registry.Container.Name,
                "--epochs", "2", "--evaluateEvery", "2", "--dimension", "16", "--blocks", "1", "--maxLength", "10", "--negatives", "16"],
        }), Loop.FastSettings with { JobTimeout = TimeSpan.FromMinutes(3) }, users: 120);

        // 2. The orchestration snapshots, runs training-job retrain, gates and promotes.
        var outcome = await loop.RunAsync();
        Assert.True(outcome.Result == RetrainingResult.Promoted, $"{outcome.Result}: {outcome.Reason} {string.Join("; ", outcome.JobAttempts ?? [])}");
        var (manifest, _) = await loop.Registry.DownloadAsync(outcome.CandidateVersion!);
        Assert.Equal(RetrainingSteps.DataSnapshotName(outcome.Snapshot!.Id), manifest.DataSnapshot);
        Assert.True(manifest.Metrics!["ndcg@10"]!.GetValue<double>() > 0);

        // 3. Recommendations out, from the promoted model, for a user with history.
        var rankEvents = new TableClient(Azurite.ConnectionString, "RankEvents" + Guid.NewGuid().ToString("N")[..8]);
        var serving = new ServingServices(loop.Ingestion, loop.Registry.Container, rankEvents);
        await serving.EnsureCreatedAsync();
        var user = Data.SyntheticWorld.UserId(3);
        var recommendations = await serving.Recommendations.RecommendAsync(user, 5);
        Assert.Equal(outcome.CandidateVersion, recommendations.ModelVersion);
        Assert.Equal(ServingPath.Sequence, recommendations.Path);
        Assert.Equal(5, recommendations.Items.Count);

        // 4. The user buys the second recommended item; the reward carries the recommendation's id, and the
        //    log joins it to the impression that the recommendation wrote.
        var bought = recommendations.Items[1];
        var reward = WireEvent.From(new Interaction("reward-1", user, bought.ItemId, InteractionType.Purchase, 1.0, DateTimeOffset.UtcNow,
            RecommendationId: recommendations.RecommendationId, Position: bought.Position));
        Assert.Equal(1, (await loop.Ingestion.Ingestor.IngestEventsAsync([reward])).Accepted);
        await serving.FlushAsync(); // the impressions are written behind the request
        var log = await loop.Ingestion.SnapshotReader.ReadAsync();
        var joined = log.Where(r => r.RecommendationId == recommendations.RecommendationId && r.ItemId == bought.ItemId).Select(r => r.Type).ToList();
        Assert.Contains("impression", joined);
        Assert.Contains("purchase", joined);
    }

    [Fact]
    public async Task The_loop_learns_from_what_it_serves_the_second_round_trains_a_policy_on_the_logged_decisions_and_it_serves_on_path_policy()
    {
        const int users = 120;
        var settings = Loop.FastSettings with
        {
            Snapshot = Loop.FastSettings.Snapshot with { Decisions = new DecisionJoinOptions { SessionIdle = TimeSpan.FromSeconds(1) } },
            JobTimeout = TimeSpan.FromMinutes(4),
            MinEffectiveSampleSize = 0, // a tiny run: judge whatever the weights say
        };
        await using var loop = await Loop.StartAsync((registry, ingestion) => new LocalProcessJobLauncher(new LocalJobOptions
        {
            Command = ["dotnet", Path.Combine(AppContext.BaseDirectory, "training-job.dll")],
            Storage = Azurite.ConnectionString,
            Settings = ["--snapshot-container", ingestion.Layout.TrainingContainer, "--container", registry.Container.Name,
                "--epochs", "2", "--evaluateEvery", "2", "--dimension", "16", "--blocks", "1", "--maxLength", "10", "--negatives", "16",
                "--policy.minDecisions", "150", "--policy.iterations", "8", "--policy.episodesPerIteration", "64", "--policy.maxEvaluationSessions", "40", "--policy.valueRollouts", "2"],
        }), settings, users);
        var rankEvents = new TableClient(Azurite.ConnectionString, "RankEvents" + Guid.NewGuid().ToString("N")[..8]);
        var serving = new ServingServices(loop.Ingestion, loop.Registry.Container, rankEvents);
        await serving.EnsureCreatedAsync();

        // Round 1: nothing served yet, so no decisions: the RL stage is skipped, and the supervised model serves, sampled.
        var first = await loop.RunAsync();
        Assert.True(first.Result == RetrainingResult.Promoted, $"{first.Result}: {first.Reason} {string.Join("; ", first.JobAttempts ?? [])}");
        var (firstManifest, _) = await loop.Registry.DownloadAsync(first.CandidateVersion!);
        Assert.Equal("skipped", (string?)firstManifest.Metrics!["rl.stage"]);
        Assert.Null(firstManifest.Policy!.Head);

        // Traffic: the world's users answer what is served, with clicks that carry the recommendation id.
        var world = new Data.SyntheticWorld(Loop.World(users));
        var people = world.UsersAfterHistory();
        var random = new Random(4);
        for (var session = 0; session < 120; session++)
        {
            var user = people[random.Next(users)];
            user.Satisfaction = 1;
            for (var step = 0; step < 10; step++)
            {
                var served = await serving.Recommendations.RecommendAsync(Data.SyntheticWorld.UserId(user.Index), 3, $"s{session}");
                Assert.Contains(served.Path, new[] { ServingPath.Sequence, ServingPath.Adapted });
                var (chosen, left, _) = world.Respond(user, served.Items.Select(i => Data.SyntheticWorld.ItemIndex(i.ItemId)).ToList(), random);
                if (chosen is { } item)
                    await loop.Ingestion.Ingestor.IngestEventsAsync([WireEvent.From(new Interaction($"click-{served.RecommendationId}", served.UserId, Data.SyntheticWorld.ItemId(item),
                        InteractionType.Click, null, DateTimeOffset.UtcNow, $"s{session}", served.RecommendationId))]);
                if (left)
                    break;
            }
        }
        await serving.FlushAsync(); // the impressions are written behind the requests
        await Task.Delay(TimeSpan.FromSeconds(2)); // the sessions close, and the log's seconds pass the next watermark

        // Round 2: a simulator fitted on those decisions, PPO in it, the candidate exported with its head and judged off-policy.
        var second = await loop.RunAsync();
        Assert.True(second.Result is RetrainingResult.Promoted or RetrainingResult.ChampionKept, $"{second.Result}: {second.Reason} {string.Join("; ", second.JobAttempts ?? [])}");
        Assert.True(second.Snapshot!.Statistics.Decisions!.Decisions > 150, $"{second.Snapshot.Statistics.Decisions.Decisions} decisions");
        var (candidate, _) = await loop.Registry.DownloadAsync(second.CandidateVersion!);
        Assert.Equal("trained", (string?)candidate.Metrics!["rl.stage"]);
        Assert.NotNull(candidate.Policy!.Head);
        Assert.Contains("rl.ope_reward", second.Verdict!.Candidate.Keys);
        Assert.Contains("rl.dm_reward", second.Verdict.Champion.Keys); // the reward model's estimate, judged like with like
        // The champion logged the held-out sessions: recomputing its probabilities of what it served gives every weight 1.
        var championEstimates = candidate.Metrics["champion"]!["rl.ope"]!;
        Assert.Equal((double)championEstimates["decisions"]!, (double)championEstimates["ess"]!, 6);
        // Those probabilities, recomputed by the training job from the states it rebuilt out of the log, are the propensities
        // serving logged: the importance weights rest on the states serving saw.
        Assert.Equal(1.0, (double)championEstimates["logged_propensity_check"]!["share_within_1pct"]!);

        // The policy serves on path policy: promoted by the gate, or here by hand when the gate kept the champion.
        if (second.Result == RetrainingResult.ChampionKept)
            Assert.True(await loop.Registry.PromoteAsync(second.CandidateVersion!, await loop.Registry.GetCurrentAsync(), "test: the candidate as it would serve"));
        await serving.Switcher.RefreshAsync();
        var policy = await serving.Recommendations.RecommendAsync(Data.SyntheticWorld.UserId(3), 3, "after");
        Assert.Equal((second.CandidateVersion, ServingPath.Policy), (policy.ModelVersion, policy.Path));
    }
}
