using Azure.Data.Tables;
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
        var log = await loop.Ingestion.SnapshotReader.ReadAsync();
        var joined = log.Where(r => r.RecommendationId == recommendations.RecommendationId && r.ItemId == bought.ItemId).Select(r => r.Type).ToList();
        Assert.Contains("impression", joined);
        Assert.Contains("purchase", joined);
    }
}
