using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Recommender.Data;
using Recommender.Events;
using Recommender.Ingestion;
using Recommender.ModelContract;
using Recommender.Serving;
using Recommender.TestSupport;
using Recommender.Training;
using Recommender.Training.Pipeline;

namespace Recommender.Functions.Tests;

/// <summary>A model trained on the synthetic world, published to a registry per test.</summary>
public sealed class TrainedRun : IAsyncLifetime
{
    public string Directory { get; } = Path.Combine(Path.GetTempPath(), "fn-run-" + Guid.NewGuid().ToString("N"));
    public SyntheticWorld World { get; } = new(new SyntheticWorldOptions { Users = 200, Items = 80, Seed = 17 });

    public async Task InitializeAsync()
    {
        var data = World.ToDataset(World.GenerateHistory(DateTimeOffset.UnixEpoch.AddYears(50)));
        var config = new SequenceModelConfig { Dimension = 16, Blocks = 1, MaxLength = 10, Epochs = 3, EvaluateEvery = 3, BatchSize = 64, Negatives = 32 };
        await new TrainingRun(config, new EvaluationProtocol()).RunAsync(data, Directory);
    }

    public Task DisposeAsync() => Task.CompletedTask;
}

/// <summary>The same, trained with few-shot user adaptation (the manifest carries it).</summary>
public sealed class TrainedRunWithUserAdaptation : IAsyncLifetime
{
    public string Directory { get; } = Path.Combine(Path.GetTempPath(), "fn-adapted-run-" + Guid.NewGuid().ToString("N"));

    public async Task InitializeAsync()
    {
        var world = new SyntheticWorld(new SyntheticWorldOptions { Users = 200, Items = 80, Seed = 17 });
        var data = world.ToDataset(world.GenerateHistory(DateTimeOffset.UnixEpoch.AddYears(50)));
        var config = new SequenceModelConfig { Dimension = 16, Blocks = 1, MaxLength = 10, Epochs = 3, EvaluateEvery = 3, BatchSize = 64, Negatives = 32, UserAdaptation = true };
        await new TrainingRun(config, new EvaluationProtocol()).RunAsync(data, Directory);
    }

    public Task DisposeAsync() => Task.CompletedTask;
}

public sealed class AdaptedRecommendationTests(TrainedRunWithUserAdaptation run) : IClassFixture<TrainedRunWithUserAdaptation>
{
    [Fact]
    public async Task A_user_with_a_short_history_is_served_the_adapted_model_and_a_longer_history_the_model_as_it_is()
    {
        var services = await Azurite.CreateServicesAsync();
        var serving = await ServingFixture.CreateAsync(services, new RecommendationOptions { Exploration = new ExplorationOptions { Mode = ExplorationMode.Greedy } });
        await RunPublisher.PublishAsync(serving.Registry, run.Directory, "v1", "test", promote: true);
        var function = new GetRecommendations(serving.Recommendations);
        static WireEvent Click(string user, int item) => new()
        {
            EventId = $"{user}-{item}", UserId = user, ItemId = "item" + item, Type = "click", Timestamp = TestEvents.Start.AddMinutes(item),
        };
        await services.Ingestor.IngestEventsAsync([Click("short", 3), Click("short", 5), Click("short", 8)]);
        await services.Ingestor.IngestEventsAsync(Enumerable.Range(10, 8).Select(i => Click("long", i)).ToList());
        var context = new DefaultHttpContext();
        context.Request.Method = "GET";

        var adapted = (Recommendations)((OkObjectResult)await function.Run(context.Request, "short", default)).Value!;
        var plain = (Recommendations)((OkObjectResult)await function.Run(context.Request, "long", default)).Value!;

        Assert.Equal(ServingPath.Adapted, adapted.Path);
        Assert.Equal(ServingPath.Sequence, plain.Path);
        Assert.Equal(10, adapted.Items.Count);
        Assert.DoesNotContain(adapted.Items, i => i.ItemId is "item3" or "item5" or "item8");
        Assert.Equal(adapted.Items.Select(i => i.Score).OrderDescending(), adapted.Items.Select(i => i.Score));
    }
}

public sealed class RecommendationFunctionTests(TrainedRun run) : IClassFixture<TrainedRun>
{
    private static HttpRequest Get(string query = "")
    {
        var context = new DefaultHttpContext();
        context.Request.Method = "GET";
        context.Request.QueryString = new QueryString(query);
        return context.Request;
    }

    /// <summary>The serving of the test: its impression sink writes behind the requests, so a test flushes it before it reads the log.</summary>
    private ServingServices? _serving;

    private async Task<(GetRecommendations Function, IngestionServices Services, ModelRegistry Registry)> ServeAsync(bool publish = true, ExplorationOptions? exploration = null)
    {
        var services = await Azurite.CreateServicesAsync();
        var serving = _serving = await ServingFixture.CreateAsync(services, new RecommendationOptions { Exploration = exploration ?? new ExplorationOptions() });
        if (publish)
            await RunPublisher.PublishAsync(serving.Registry, run.Directory, "v1", "test", promote: true);
        return (new GetRecommendations(serving.Recommendations), services, serving.Registry);
    }

    private static Task IngestAsync(IngestionServices services, params WireEvent[] events) => services.Ingestor.IngestEventsAsync(events);

    private static WireEvent Click(string user, string item, int minute) => new()
    {
        EventId = $"{user}-{item}-{minute}", UserId = user, ItemId = item, Type = "click", Timestamp = TestEvents.Start.AddMinutes(minute),
    };

    [Fact]
    public async Task A_warm_user_gets_unseen_available_items_with_propensities_and_the_impressions_are_logged()
    {
        var (function, services, _) = await ServeAsync();
        await IngestAsync(services, Click("alice", "item1", 1), Click("alice", "item2", 2), Click("alice", "item3", 3),
            new WireEvent { Kind = "item", EventId = "gone", ItemId = "item4", Available = false, Timestamp = TestEvents.Start });

        var result = Assert.IsType<OkObjectResult>(await function.Run(Get("?k=5"), "alice", default));

        var recommendations = Assert.IsType<Recommendations>(result.Value);
        Assert.Equal((ServingPath.Sequence, "v1", 5), (recommendations.Path, recommendations.ModelVersion, recommendations.Items.Count));
        Assert.DoesNotContain(recommendations.Items, i => i.ItemId is "item1" or "item2" or "item3" or "item4");
        Assert.All(recommendations.Items, i => Assert.InRange(i.Propensity, 1e-6, 1.0));
        Assert.All(recommendations.Items, i => Assert.Contains(i.BecauseOf, new[] { "item1", "item2", "item3" }));
        Assert.Equal(Enumerable.Range(0, 5), recommendations.Items.Select(i => i.Position));
        await _serving!.FlushAsync();
        var impressions = (await services.SnapshotReader.ReadAsync()).Where(r => r.Type == "impression").ToList();
        Assert.Equal(recommendations.Items.Select(i => i.ItemId), impressions.OrderBy(r => r.Position).Select(r => r.ItemId));
        Assert.All(impressions, r => Assert.Equal(recommendations.RecommendationId, r.RecommendationId));
        Assert.All(impressions, r => Assert.Contains("propensity", r.Context));
    }

    [Fact]
    public async Task A_user_without_history_is_served_popular_items()
    {
        var (function, _, _) = await ServeAsync();

        var result = Assert.IsType<OkObjectResult>(await function.Run(Get(), "newcomer", default));

        var recommendations = Assert.IsType<Recommendations>(result.Value);
        Assert.Equal(ServingPath.Popular, recommendations.Path);
        Assert.Equal(10, recommendations.Items.Count);
        Assert.All(recommendations.Items, i => Assert.Null(i.BecauseOf));
    }

    [Fact]
    public async Task Greedy_serving_has_propensity_one_and_follows_the_model()
    {
        var (function, services, _) = await ServeAsync(exploration: new ExplorationOptions { Mode = ExplorationMode.Greedy });
        await IngestAsync(services, Click("bob", "item7", 1));

        var first = (Recommendations)((OkObjectResult)await function.Run(Get("?k=8"), "bob", default)).Value!;
        var second = (Recommendations)((OkObjectResult)await function.Run(Get("?k=8"), "bob", default)).Value!;

        Assert.All(first.Items, i => Assert.Equal(1.0, i.Propensity));
        Assert.Equal(first.Items.Select(i => i.ItemId), second.Items.Select(i => i.ItemId));
        Assert.Equal(first.Items.Select(i => i.Score).OrderDescending(), first.Items.Select(i => i.Score));
    }

    [Theory]
    [InlineData("?k=0")]
    [InlineData("?k=101")]
    [InlineData("?k=ten")]
    [InlineData("?k=-3")]
    public async Task Out_of_range_k_is_a_400_problem(string query)
    {
        var (function, _, _) = await ServeAsync(publish: false);

        var result = Assert.IsType<ObjectResult>(await function.Run(Get(query), "u", default));

        Assert.Equal(StatusCodes.Status400BadRequest, result.StatusCode);
        Assert.IsType<ProblemDetails>(result.Value);
    }

    [Fact]
    public async Task Before_any_model_is_published_the_answer_is_503_with_retry_after()
    {
        var (function, _, _) = await ServeAsync(publish: false);
        var request = Get();

        var result = Assert.IsType<ObjectResult>(await function.Run(request, "u", default));

        Assert.Equal(StatusCodes.Status503ServiceUnavailable, result.StatusCode);
        Assert.Equal("60", request.HttpContext.Response.Headers.RetryAfter.ToString());
    }
}

public sealed class SlatePolicyTests
{
    [Fact]
    public void Epsilon_greedy_propensities_match_how_often_each_slate_is_drawn()
    {
        var scores = new double[] { 5, 4, 3, 2, 1 };
        var options = new ExplorationOptions { Mode = ExplorationMode.EpsilonGreedy, Epsilon = 0.3 };
        var random = new Random(1);
        var firstSlot = new int[5];
        var propensity = new double[5];
        const int draws = 40_000;
        for (var n = 0; n < draws; n++)
        {
            var slate = SlatePolicy.Draw(scores, 2, options, random);
            firstSlot[slate[0].Candidate]++;
            propensity[slate[0].Candidate] = slate[0].Propensity;
        }

        for (var i = 0; i < 5; i++)
            Assert.Equal(propensity[i], firstSlot[i] / (double)draws, 2);
        Assert.Equal(0.7 + 0.3 / 5, propensity[0], 9);
    }

    [Fact]
    public void Softmax_propensities_sum_to_one_over_the_candidates_of_a_slot()
    {
        var scores = new double[] { 2, 1, 0.5, 0 };
        var options = new ExplorationOptions { Mode = ExplorationMode.Softmax, Temperature = 0.5 };
        var seen = new Dictionary<int, double>();
        var random = new Random(3);
        for (var n = 0; n < 2000 && seen.Count < 4; n++)
        {
            var first = SlatePolicy.Draw(scores, 1, options, random)[0];
            seen[first.Candidate] = first.Propensity;
        }

        Assert.Equal(1.0, seen.Values.Sum(), 9);
        Assert.True(seen[0] > seen[1] && seen[1] > seen[2]);
    }

    [Theory]
    [InlineData(ExplorationMode.Greedy)]
    [InlineData(ExplorationMode.EpsilonGreedy)]
    [InlineData(ExplorationMode.Softmax)]
    public void A_slate_is_drawn_as_often_as_the_product_of_its_propensities_which_is_its_probability(ExplorationMode mode)
    {
        var scores = new double[] { 3, 2.5, 1, 0.2, -1 };
        var options = new ExplorationOptions { Mode = mode, Epsilon = 0.3, Temperature = 0.7 };
        var random = new Random(5);
        var counts = new Dictionary<(int, int), int>();
        var probabilities = new Dictionary<(int, int), double>();
        const int draws = 40_000;
        for (var n = 0; n < draws; n++)
        {
            var slate = SlatePolicy.Draw(scores, 2, options, random);
            var key = (slate[0].Candidate, slate[1].Candidate);
            Assert.NotEqual(key.Item1, key.Item2);
            counts[key] = counts.GetValueOrDefault(key) + 1;
            probabilities[key] = slate[0].Propensity * slate[1].Propensity;
            Assert.Equal(probabilities[key], SlatePolicy.Probability(scores, [key.Item1, key.Item2], options), 12);
        }

        // Within 4.5 standard errors of a frequency of 40,000 draws.
        foreach (var (slate, count) in counts)
            Assert.Equal(probabilities[slate], count / (double)draws, tolerance: 4.5 * Math.Sqrt(probabilities[slate] * (1 - probabilities[slate]) / draws) + 1e-9);
        Assert.Equal(0, SlatePolicy.Probability(scores, [1, 1], options));
    }
}
