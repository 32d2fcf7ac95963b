using Recommender.Data;
using Recommender.Training.Reinforcement;

namespace Recommender.Training.Tests;

/// <summary>Long-term reward against the next click: on a world with clickbait, PPO learns what the click logs cannot teach.</summary>
[Collection("Torch")]
public sealed class ClickbaitPolicyTests(Xunit.Abstractions.ITestOutputHelper output)
{
    [Fact]
    public void Ppo_learns_to_hold_back_the_clickbait_that_the_next_item_model_favours()
    {
        var world = new SyntheticWorld(new SyntheticWorldOptions { Users = 400, Items = 120, Seed = 23, ClickbaitShare = 0.15 });
        var data = world.ToDataset(world.GenerateHistory(DateTimeOffset.UnixEpoch.AddYears(50)));
        var split = LeaveOneOutSplit.Create(data);
        var config = new SequenceModelConfig { Dimension = 16, Blocks = 1, MaxLength = 15, Epochs = 10, EvaluateEvery = 10, BatchSize = 64, Negatives = 64, Seed = 2 };
        var encoder = new SequenceModelTrainer(config).Train(data, split).Model;
        encoder.eval();
        var users = Enumerable.Range(0, data.UserCount).Where(u => data.Sequences[u].Length > 0).ToList();
        var population = world.UsersAfterHistory();
        var policy = new SequenceActorCritic(encoder, config, data.UserFeatures, data.ItemFeatures, new PopularityScorer(split, data.ItemCount).LogCounts(), candidates: 20);
        var bait = Enumerable.Range(1, data.ItemCount).Where(n => world.IsClickbait[n - 1]).ToHashSet();
        double BaitShareOfSlates() => users.Take(100).Average(u => policy.TopK(SessionState.Start(u, data.Sequences[u]), 5).Count(i => bait.Contains((int)i)) / 5.0);

        // The next-item model learned from clicks, which clickbait wins: it shows more of it than the catalogue holds.
        var before = BaitShareOfSlates();
        Assert.True(before > bait.Count / (double)data.ItemCount, $"greedy slates hold {before:P0} clickbait, the catalogue {bait.Count / (double)data.ItemCount:P0}");

        new PolicyOptimizer<SessionState>(new PolicyOptimizationConfig { Iterations = 100, EpisodesPerIteration = 256, Seed = 3 }, policy,
            () => new SessionEnvironment(world, population, data, users, new RewardConfig())).Train();

        // PPO learns a negative long-term value for the "sensational" tag and shows far less clickbait.
        var after = BaitShareOfSlates();
        output.WriteLine($"head after PPO: {policy.Head}; clickbait in the most likely slates before {before:P1}, after {after:P1}");
        Assert.True(policy.Head.ContentValues!.GetValueOrDefault("tag:sensational") < 0, $"head after PPO: {policy.Head}");
        Assert.True(after < 0.6 * before, $"clickbait in the most likely slates: {before:P0} before PPO, {after:P0} after");
    }
}
