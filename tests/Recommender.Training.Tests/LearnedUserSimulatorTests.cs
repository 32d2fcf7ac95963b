using Recommender.Data;
using Recommender.Training.Reinforcement;

namespace Recommender.Training.Tests;

/// <summary>The user simulator learned from logs: it recovers what the synthetic world's users do, and its fidelity figures mean what they say.</summary>
[Collection("Torch")]
public sealed class LearnedUserSimulatorTests
{
    [Fact]
    public void Auc_is_the_chance_a_positive_outranks_a_negative()
    {
        // Positives 0.35 and 0.8 against negatives 0.1 and 0.4: 0.8 beats both, 0.35 beats one -> 3 of 4.
        Assert.Equal(0.75, LearnedUserSimulator.Auc([0.1, 0.4, 0.35, 0.8], [false, false, true, true]), 12);
        Assert.Equal(0.5, LearnedUserSimulator.Auc([0.5, 0.5], [false, true]), 12);
    }

    [Fact]
    public void Fitted_on_logs_of_random_slates_it_learns_taste_and_predicts_held_out_sessions_better_than_a_constant()
    {
        var world = new SyntheticWorld(new SyntheticWorldOptions { Users = 300, Items = 100, Seed = 13 });
        var data = world.ToDataset(world.GenerateHistory(DateTimeOffset.UnixEpoch.AddYears(50)));
        var split = LeaveOneOutSplit.Create(data);
        var modelConfig = new SequenceModelConfig { Dimension = 32, Blocks = 1, MaxLength = 20, Dropout = 0.1, Epochs = 15, EvaluateEvery = 15, BatchSize = 64, LearningRate = 0.003, Seed = 1 };
        var encoder = new SequenceModelTrainer(modelConfig).Train(data, split).Model;
        encoder.eval();
        var users = Enumerable.Range(0, data.UserCount).Where(u => data.Sequences[u].Length > 0).ToList();
        var truth = new SessionEnvironment(world, world.UsersAfterHistory(), data, users, new RewardConfig());
        SlatePolicyFunction randomSlates = (state, random) =>
            Enumerable.Range(1, data.ItemCount).Where(i => !state.History.Contains(i)).OrderBy(_ => random.Next()).Take(5).Select(i => (long)i).ToList();
        var settings = new SimulatorConfig();

        var sessions = LearnedSessionEnvironment.Record(truth, randomSlates, 600, 30, new Random(3));
        var simulator = new LearnedUserSimulator(new FrozenEncoderStates(encoder, modelConfig, data.UserFeatures), data, split, settings);
        var fitted = sessions.Take(480).SelectMany(s => s).ToList();
        simulator.Fit(fitted, engagement: true);
        var fidelity = simulator.Fidelity(sessions.Skip(480).SelectMany(s => s).ToList(), fitted);

        var (response, _) = simulator.Weights;
        Assert.True(response[0] > 0, $"affinity weight {response[0]:F3}: users pick what the encoder predicts");
        var (model, baseline) = ((double)fidelity["log_likelihood_per_decision"]!, (double)fidelity["baseline_log_likelihood_per_decision"]!);
        Assert.True(model > baseline + 0.01, $"held-out log-likelihood per decision {model:F4} vs constant {baseline:F4}");
        Assert.InRange((double)fidelity["click_rate_predicted"]! - (double)fidelity["click_rate_observed"]!, -0.05, 0.05);
        Assert.All(sessions.SelectMany(s => s.SkipLast(1)), step => Assert.False(step.Left));
        // What users do with a pick (how much of it they watch) follows the encoder's affinity, so the engagement model explains some of it.
        Assert.True((double)fidelity["engagement_r2"]!["watched"]! > 0.1, $"held-out R² of the watched share {fidelity["engagement_r2"]!["watched"]}");
    }

    /// <summary>
    /// Logs in which no shown slate was ever clicked (a product whose clients send no responses, as the soak's do): the
    /// fidelity figures stay finite, or null where undefined, so metrics.json can be written and the run goes on.
    /// </summary>
    [Fact]
    public void Fidelity_on_logs_without_a_single_click_is_finite_json()
    {
        var world = new SyntheticWorld(new SyntheticWorldOptions { Users = 120, Items = 60, Seed = 31 });
        var data = world.ToDataset(world.GenerateHistory(DateTimeOffset.UnixEpoch.AddYears(50)));
        var split = LeaveOneOutSplit.Create(data);
        var modelConfig = new SequenceModelConfig { Dimension = 16, Blocks = 1, MaxLength = 15, Epochs = 1, EvaluateEvery = 1, BatchSize = 64, Seed = 1 };
        var encoder = new SequenceModelTrainer(modelConfig).Train(data, split).Model;
        var users = Enumerable.Range(0, data.UserCount).Where(u => data.Sequences[u].Length > 0).ToList();
        var truth = new SessionEnvironment(world, world.UsersAfterHistory(), data, users, new RewardConfig());
        SlatePolicyFunction randomSlates = (state, random) =>
            Enumerable.Range(1, data.ItemCount).Where(i => !state.History.Contains(i)).OrderBy(_ => random.Next()).Take(5).Select(i => (long)i).ToList();
        var unanswered = LearnedSessionEnvironment.Record(truth, randomSlates, 100, 10, new Random(6))
            .SelectMany(s => s).Select(step => step with { Chosen = null, Engagement = null, Left = false }).ToList();
        var simulator = new LearnedUserSimulator(new FrozenEncoderStates(encoder, modelConfig, data.UserFeatures), data, split, new SimulatorConfig { Steps = 50 });
        simulator.Fit(unanswered[..80], engagement: false);

        var fidelity = simulator.Fidelity(unanswered[80..], unanswered[..80]);

        var written = fidelity.ToJsonString(); // throws on NaN or infinity
        Assert.Contains("\"click_auc\":null", written, StringComparison.Ordinal);
        Assert.True(double.IsFinite((double)fidelity["log_likelihood_per_decision"]!));
        Assert.True((double)fidelity["baseline_log_likelihood_per_decision"]! < 0);
    }

    /// <summary>The reward model of the doubly robust estimate: for each slate, the mean reward of the simulator's own sampled answers.</summary>
    [Fact]
    public void Its_expected_reward_of_a_slate_is_what_its_sampled_answers_earn_on_average()
    {
        var world = new SyntheticWorld(new SyntheticWorldOptions { Users = 200, Items = 80, Seed = 29, ClickbaitShare = 0.1 });
        var data = world.ToDataset(world.GenerateHistory(DateTimeOffset.UnixEpoch.AddYears(50)));
        var split = LeaveOneOutSplit.Create(data);
        var modelConfig = new SequenceModelConfig { Dimension = 16, Blocks = 1, MaxLength = 15, Epochs = 3, EvaluateEvery = 3, BatchSize = 64, Seed = 1 };
        var encoder = new SequenceModelTrainer(modelConfig).Train(data, split).Model;
        var users = Enumerable.Range(0, data.UserCount).Where(u => data.Sequences[u].Length > 0).ToList();
        var truth = new SessionEnvironment(world, world.UsersAfterHistory(), data, users, new RewardConfig());
        SlatePolicyFunction randomSlates = (state, random) =>
            Enumerable.Range(1, data.ItemCount).Where(i => !state.History.Contains(i)).OrderBy(_ => random.Next()).Take(5).Select(i => (long)i).ToList();
        var settings = new SimulatorConfig { Steps = 100 };
        var sessions = LearnedSessionEnvironment.Record(truth, randomSlates, 300, 30, new Random(4));
        var simulator = new LearnedUserSimulator(new FrozenEncoderStates(encoder, modelConfig, data.UserFeatures), data, split, settings);
        simulator.Fit(sessions.SelectMany(s => s).ToList(), engagement: true);
        var rewards = new RewardConfig { Click = 1, Watch = 1, Like = 0.5, Rating = 0.2, Leave = -2 }; // every term counts

        var random = new Random(5);
        foreach (var step in sessions.Take(6).Select(s => s[^1]))
        {
            var slates = new[] { step.Slate, randomSlates(step.State, random).ToArray() };
            var expected = simulator.ExpectedRewards(step.State, slates, rewards);
            for (var s = 0; s < slates.Length; s++)
            {
                const int draws = 1500;
                var earned = Enumerable.Range(0, draws).Select(_ => simulator.Respond(step.State, slates[s], random) is var (chosen, left, engagement)
                    ? rewards.Of(chosen is null ? null : engagement, left) : 0).ToList();
                var (mean, sd) = (earned.Average(), Math.Sqrt(earned.Average(r => r * r) - earned.Average() * earned.Average()));
                Assert.True(Math.Abs(expected[s] - mean) < 4 * sd / Math.Sqrt(draws) + 1e-9, $"expected {expected[s]:F4}, sampled {mean:F4} ± {sd / Math.Sqrt(draws):F4}");
            }
        }
    }
}
