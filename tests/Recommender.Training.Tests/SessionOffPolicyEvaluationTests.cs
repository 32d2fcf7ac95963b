using Recommender.Data;
using Recommender.Serving;
using Recommender.Training;
using Recommender.Training.Reinforcement;
using Recommender.Training.Pipeline;

namespace Recommender.Training.Tests;

/// <summary>
/// Off-policy estimates of return per session where the truth is known: the sessions are logged in a learned user
/// simulator, which is then also the estimators' model, so the logging policy's and another policy's true values can
/// be computed by running them in it.
/// </summary>
[Collection("Torch")]
public sealed class SessionOffPolicyEvaluationTests(Xunit.Abstractions.ITestOutputHelper output)
{
    [Fact]
    public async Task Doubly_robust_recovers_the_logging_policys_own_return_and_another_policys_true_return()
    {
        var world = new SyntheticWorld(new SyntheticWorldOptions { Users = 150, Items = 60, Seed = 8, ClickbaitShare = 0.15 });
        var data = world.ToDataset(world.GenerateHistory(DateTimeOffset.UnixEpoch.AddYears(50)));
        var run = Path.Combine(Path.GetTempPath(), "ope-" + Guid.NewGuid().ToString("N"));
        await new TrainingRun(new SequenceModelConfig { Dimension = 16, Blocks = 1, MaxLength = 15, Epochs = 2, EvaluateEvery = 2, BatchSize = 64, Negatives = 32 }, new EvaluationProtocol())
            .RunAsync(data, run);
        var encoder = SavedModel.Load(run, data, out var config);
        var states = new FrozenEncoderStates(encoder, config, data.UserFeatures);
        var split = LeaveOneOutSplit.Create(data);
        var popularity = new PopularityScorer(split, data.ItemCount).LogCounts();
        SequenceActorCritic Actor(string head)
        {
            var actor = new SequenceActorCritic(encoder, config, data.UserFeatures, data.ItemFeatures, popularity, candidates: 20, temperature: 0.5, frozenStates: states);
            actor.SetHead(PolicyHead.Parse(head));
            return actor;
        }
        var (logger, target, far) = (Actor(""), Actor("popularity=-0.3;tag:sensational=-0.5"), Actor("sharpness=1.5;popularity=-3"));
        static Func<SessionState, SlateDistributionAt> Distribution(SequenceActorCritic actor) => state =>
        {
            var candidates = actor.Candidates(state);
            using var scope = TorchSharp.torch.NewDisposeScope();
            var logits = actor.Forward([state], [candidates]).Logits[0].to(TorchSharp.torch.ScalarType.Float64).data<double>().ToArray();
            return new SlateDistributionAt(candidates, logits, new ExplorationOptions { Mode = ExplorationMode.Softmax, Temperature = 1, Candidates = candidates.Length });
        };

        // The simulator: any fitted one will do, it is the truth here. Fitted on sessions in the world.
        var users = Enumerable.Range(0, data.UserCount).Where(u => data.Sequences[u].Length > 0).ToList();
        var rewards = new RewardConfig();
        var simulator = new LearnedUserSimulator(states, data, split, new SimulatorConfig { Steps = 100 });
        simulator.Fit(LearnedSessionEnvironment.Record(new SessionEnvironment(world, world.UsersAfterHistory(), data, users, rewards, slateSize: 3, maxSteps: 10),
            (s, r) => Distribution(logger)(s).Sample(3, r), 200, 10, new Random(1)).SelectMany(s => s).ToList());
        ISlateEnvironment<SessionState> Simulated() => new LearnedSessionEnvironment(simulator, data, users, rewards, slateSize: 3, maxSteps: 10);

        // Logs of the logging policy in the simulator, with the probability of each slate it showed.
        var random = new Random(2);
        var sessions = new List<LoggedSession>();
        var environment = Simulated();
        for (var s = 0; s < 120; s++)
        {
            var state = environment.Reset(random);
            var steps = new List<LoggedSlate>();
            for (var done = false; !done;)
            {
                var distribution = Distribution(logger)(state);
                var slate = distribution.Sample(3, random);
                (var next, _, done) = environment.Step(slate, random);
                int? chosen = next.History.Length > state.History.Length ? Array.IndexOf(slate, (long)next.History[^1]) : null;
                steps.Add(new LoggedSlate(state, slate, distribution.Probability(slate), chosen, next.Responses[^1].Engagement, done && next.Step < 10, "logger", default));
                state = next;
            }
            sessions.Add(new LoggedSession($"s{s}", state.User, steps, Closed: true));
        }
        double Truth(SequenceActorCritic actor) =>
            PolicyEvaluation.Evaluate("truth", (s, r) => Distribution(actor)(s).Sample(3, r), Simulated, [11, 12, 13, 14], 300).Return.Mean;

        var evaluation = new SessionOffPolicyEvaluation(simulator, rewards, slateSize: 3, horizon: 10, rollouts: 4, seed: 5);
        var onPolicy = evaluation.Evaluate(Distribution(logger), sessions);
        var offPolicy = evaluation.Evaluate(Distribution(target), sessions);
        var farPolicy = evaluation.Evaluate(Distribution(far), sessions);
        // The reward model scaled by 1 is the estimate itself; scaled by 0, only the weighted rewards remain, which on the
        // logger's own logs (every weight 1) are what was logged.
        Assert.Equal(offPolicy.DoublyRobust.Mean, offPolicy.DoublyRobustWithModelScaled(1).Average(), 9);
        Assert.Equal(onPolicy.Logged.Mean, onPolicy.DoublyRobustWithModelScaled(0).Average(), 9);
        Assert.NotEqual(offPolicy.DoublyRobust.Mean, offPolicy.DoublyRobustWithModelScaled(0.8).Average());
        // Weighted as sets against the logger recomputed from each state: the logger's ordered probability of each slate
        // is the propensity logged with it, to the last bit (the states are the ones it served from).
        var asSets = evaluation.Evaluate(Distribution(target), sessions, Distribution(logger));
        Assert.Equal(1.0, (double)asSets.LoggedPropensityCheck!["share_within_1pct"]!);
        Assert.Equal(asSets.Decisions, (int)asSets.LoggedPropensityCheck["decisions"]!);
        // Sessions judged on two threads draw the same random numbers as on one: the same figures to the last bit.
        var onTwoThreads = new SessionOffPolicyEvaluation(simulator, rewards, slateSize: 3, horizon: 10, rollouts: 4, seed: 5, threads: 2).Evaluate(Distribution(target), sessions);
        Assert.Equal(offPolicy.DoublyRobustPerSession, onTwoThreads.DoublyRobustPerSession);
        Assert.Equal((offPolicy.Ips.Mean, offPolicy.Snips, offPolicy.EffectiveSampleSize, offPolicy.TrajectoryEffectiveSampleSize),
            (onTwoThreads.Ips.Mean, onTwoThreads.Snips, onTwoThreads.EffectiveSampleSize, onTwoThreads.TrajectoryEffectiveSampleSize));
        var (loggerTruth, targetTruth) = (Truth(logger), Truth(target));
        output.WriteLine($"logger: truth {loggerTruth:F3}, logged {onPolicy.Logged}, DR {onPolicy.DoublyRobust}, DM {onPolicy.DirectMethod}, ESS {onPolicy.EffectiveSampleSize:F0}");
        output.WriteLine($"target: truth {targetTruth:F3}, DR {offPolicy.DoublyRobust}, DM {offPolicy.DirectMethod}, IPS {offPolicy.Ips}, SNIPS {offPolicy.Snips:F3}, ESS {offPolicy.EffectiveSampleSize:F0} of {offPolicy.Decisions}");

        // On its own logs every weight is 1, and DR differs from what was logged only by the model's zero-mean corrections.
        Assert.Equal(onPolicy.Decisions, onPolicy.EffectiveSampleSize, 6);
        Assert.Equal(1, onPolicy.MeanWeight, 9);
        Assert.Equal(onPolicy.Logged.Mean, onPolicy.Ips.Mean, 9);
        Assert.InRange(onPolicy.DoublyRobust.Mean, onPolicy.Logged.Mean - 0.1 * loggerTruth, onPolicy.Logged.Mean + 0.1 * loggerTruth);
        // With the simulator as the truth, the direct method is right up to its rollouts, and DR up to its weights' noise.
        Assert.InRange(loggerTruth, onPolicy.DirectMethod.Mean - onPolicy.DirectMethod.HalfWidth - 0.03 * loggerTruth, onPolicy.DirectMethod.Mean + onPolicy.DirectMethod.HalfWidth + 0.03 * loggerTruth);
        Assert.InRange(targetTruth, offPolicy.DirectMethod.Mean - offPolicy.DirectMethod.HalfWidth - 0.03 * targetTruth, offPolicy.DirectMethod.Mean + offPolicy.DirectMethod.HalfWidth + 0.03 * targetTruth);
        Assert.InRange(offPolicy.DoublyRobust.Mean, targetTruth - offPolicy.DoublyRobust.HalfWidth - 0.05 * targetTruth, targetTruth + offPolicy.DoublyRobust.HalfWidth + 0.05 * targetTruth);
        Assert.True(offPolicy.EffectiveSampleSize < offPolicy.Decisions, "another policy's weights are not all equal");
        // A policy far from the logger rests on a few of its decisions: what the gate's floor refuses to judge.
        output.WriteLine($"far: ESS {farPolicy.EffectiveSampleSize:F0}, mean weight {farPolicy.MeanWeight:F3}");
        Assert.True(farPolicy.EffectiveSampleSize < offPolicy.EffectiveSampleSize / 3, $"ESS {farPolicy.EffectiveSampleSize:F0} far, {offPolicy.EffectiveSampleSize:F0} near");
    }
}
