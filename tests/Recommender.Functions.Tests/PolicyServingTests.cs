using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Recommender.Data;
using Recommender.Events;
using Recommender.Serving;
using Recommender.TestSupport;
using Recommender.Training;
using Recommender.Training.Reinforcement;
using Recommender.Training.Pipeline;

namespace Recommender.Functions.Tests;

/// <summary>
/// A model with a policy head, exported as the RL stage exports one: nearly greedy (a high sharpness), and with a
/// strong weight against showing again what the user passed over in this session.
/// </summary>
public sealed class TrainedPolicyRun : IAsyncLifetime
{
    public string Directory { get; } = Path.Combine(Path.GetTempPath(), "fn-policy-run-" + Guid.NewGuid().ToString("N"));

    public async Task InitializeAsync()
    {
        var world = new SyntheticWorld(new SyntheticWorldOptions { Users = 200, Items = 80, Seed = 17 });
        var data = world.ToDataset(world.GenerateHistory(DateTimeOffset.UnixEpoch.AddYears(50)));
        var config = new SequenceModelConfig { Dimension = 16, Blocks = 1, MaxLength = 10, Epochs = 3, EvaluateEvery = 3, BatchSize = 64, Negatives = 32 };
        await new TrainingRun(config, new EvaluationProtocol()).RunAsync(data, Directory);
        var encoder = SavedModel.Load(Directory, data, out var modelConfig);
        var actor = new SequenceActorCritic(encoder, modelConfig, data.UserFeatures, data.ItemFeatures, new float[data.ItemCount + 1], candidates: 30, temperature: 0.2);
        actor.SetHead(PolicyHead.Parse("sharpness=4;declined=-200"));
        var (graph, policy) = actor.Export();
        await File.WriteAllBytesAsync(Path.Combine(Directory, "policy.onnx"), PolicyExporter.Export(encoder, modelConfig, graph));
        await File.WriteAllTextAsync(Path.Combine(Directory, ProductPolicyStage.PolicyFile), JsonSerializer.Serialize(policy, TrainingJsonContext.Default.ServingPolicy));
    }

    public Task DisposeAsync() => Task.CompletedTask;
}

public sealed class PolicyServingTests(TrainedPolicyRun policyRun, TrainedRun plainRun) : IClassFixture<TrainedPolicyRun>, IClassFixture<TrainedRun>
{
    private static HttpRequest Get(string query = "")
    {
        var context = new DefaultHttpContext();
        context.Request.Method = "GET";
        context.Request.QueryString = new QueryString(query);
        return context.Request;
    }

    private static WireEvent Click(string user, int item) => new()
    {
        EventId = $"{user}-{item}", UserId = user, ItemId = "item" + item, Type = "click", Timestamp = TestEvents.Start.AddMinutes(item),
    };

    [Fact]
    public async Task A_policy_reads_this_sessions_slates_from_the_online_state_and_does_not_show_again_what_was_passed_over()
    {
        var services = await Azurite.CreateServicesAsync();
        var serving = await ServingFixture.CreateAsync(services);
        await RunPublisher.PublishAsync(serving.Registry, policyRun.Directory, "v-policy", "test", promote: true);
        var function = new GetRecommendations(serving.Recommendations);
        await services.Ingestor.IngestEventsAsync(Enumerable.Range(1, 8).Select(i => Click("u1", i)).ToList());

        async Task<Recommendations> RecommendAsync(string session) => (Recommendations)((OkObjectResult)await function.Run(Get($"?k=5&sessionId={session}"), "u1", default)).Value!;
        var first = await RecommendAsync("s1");
        var second = await RecommendAsync("s1"); // the user took nothing from the first
        var otherSession = await RecommendAsync("s2");

        Assert.Equal(ServingPath.Policy, first.Path);
        Assert.Empty(first.Items.Select(i => i.ItemId).Intersect(second.Items.Select(i => i.ItemId)));
        Assert.Equal(first.Items.Select(i => i.ItemId).Order(), otherSession.Items.Select(i => i.ItemId).Order()); // a new session starts afresh
        var state = await services.UserStates.GetAsync("u1");
        Assert.Equal([first.RecommendationId, second.RecommendationId], state!.SessionSlates("s1", DateTimeOffset.UtcNow, TimeSpan.FromMinutes(30)).Select(s => s.RecommendationId));
        var log = await services.SnapshotReader.ReadAsync();
        Assert.All(log.Where(r => r.RecommendationId == second.RecommendationId), r => Assert.Equal("s1", r.SessionId));
    }

    [Fact]
    public async Task A_profile_sent_through_ingestion_changes_the_scores_the_user_is_served()
    {
        var services = await Azurite.CreateServicesAsync();
        var serving = await ServingFixture.CreateAsync(services, new RecommendationOptions { Exploration = new ExplorationOptions { Mode = ExplorationMode.Greedy } });
        await RunPublisher.PublishAsync(serving.Registry, plainRun.Directory, "v1", "test", promote: true);
        var function = new GetRecommendations(serving.Recommendations);
        await services.Ingestor.IngestEventsAsync(Enumerable.Range(1, 6).Select(i => Click("u2", i)).ToList());
        async Task<Dictionary<string, float>> ScoresAsync() =>
            ((Recommendations)((OkObjectResult)await function.Run(Get("?k=30"), "u2", default)).Value!).Items.ToDictionary(i => i.ItemId, i => i.Score);

        var before = await ScoresAsync();
        await services.Ingestor.IngestEventsAsync([WireEvent.From(new UserProfile("p1", "u2", new Dictionary<string, string> { ["region"] = "3", ["age"] = "young" }, TestEvents.Start))]);
        var after = await ScoresAsync();

        var common = before.Keys.Intersect(after.Keys).ToList();
        Assert.NotEmpty(common);
        Assert.Contains(common, item => Math.Abs(before[item] - after[item]) > 1e-3);
    }
}
