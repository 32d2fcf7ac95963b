using Recommender.Training.Reinforcement;
using TorchSharp;
using static TorchSharp.torch;

namespace Recommender.Training.Tests;

[Collection("Torch")]
public sealed class PolicyOptimizationTests
{
    [Fact]
    public void Gae_matches_a_hand_computed_trajectory_and_restarts_at_episode_ends()
    {
        // Episode 1: r = [1, 0, 2], V = [0.5, 1.0, 1.5]; episode 2: r = [3], V = [2]. γ = 0.9, λ = 0.8.
        double[] rewards = [1, 0, 2, 3], values = [0.5, 1.0, 1.5, 2.0];
        bool[] done = [false, false, true, true];
        var a = Advantages.Gae(rewards, values, done, 0.9, 0.8);
        // δ2 = 2 - 1.5 = 0.5; δ1 = 0 + 0.9*1.5 - 1 = 0.35; δ0 = 1 + 0.9*1 - 0.5 = 1.4; episode 2: δ = 3 - 2 = 1.
        var d2 = 0.5; var d1 = 0.35; var d0 = 1.4;
        Assert.Equal(d2, a[2], 12);
        Assert.Equal(d1 + 0.72 * d2, a[1], 12);
        Assert.Equal(d0 + 0.72 * (d1 + 0.72 * d2), a[0], 12);
        Assert.Equal(1.0, a[3], 12);
        // λ = 1: advantages are discounted returns minus values (A2C's n-step advantage over the episode).
        var mc = Advantages.Gae(rewards, values, done, 0.9, 1.0);
        Assert.Equal(1 + 0.9 * 0 + 0.81 * 2 - 0.5, mc[0], 12);
    }

    [Fact]
    public void The_clipped_surrogate_takes_the_pessimistic_term_on_known_numbers()
    {
        // ratios 1.5, 0.5, 1.1 with advantages +1, +1, -2; ε = 0.2.
        var oldLp = tensor(new[] { 0f, 0f, 0f });
        var newLp = tensor(new[] { (float)Math.Log(1.5), (float)Math.Log(0.5), (float)Math.Log(1.1) });
        var adv = tensor(new[] { 1f, 1f, -2f });
        var loss = Losses.ClippedSurrogate(newLp, oldLp, adv, 0.2);
        // min(1.5, 1.2) = 1.2; min(0.5, 0.8) = 0.5; min(-2.2, -2.2) = -2.2 -> mean = -0.1667 -> loss 0.1667.
        Assert.Equal((1.2 + 0.5 - 2.2) / -3, loss.item<float>(), 5);
        var unclipped = Losses.ClippedSurrogate(newLp, oldLp, adv, double.PositiveInfinity);
        Assert.Equal((1.5 + 0.5 - 2.2) / -3, unclipped.item<float>(), 5);
    }

    [Fact]
    public void Slate_probabilities_are_plackett_luce_and_sum_to_one()
    {
        double[] logits = [0.3, -1.0, 1.2];
        var p = logits.Select(Math.Exp).ToArray();
        var total = 0.0;
        foreach (var first in Enumerable.Range(0, 3))
        {
            foreach (var second in Enumerable.Range(0, 3).Where(s => s != first))
            {
                var (lp, _) = SlateDistribution.LogProbability(tensor(logits).unsqueeze(0), [[first, second]]);
                var expected = p[first] / p.Sum() * p[second] / (p.Sum() - p[first]);
                Assert.Equal(expected, Math.Exp(lp.item<double>()), 10);
                total += expected;
            }
        }
        Assert.Equal(1.0, total, 10);
    }

    /// <summary>
    /// State 0: "take" pays 1 and ends; "wait" pays 0 and moves to state 1, where anything pays 2 and ends.
    /// Greedy takes (1 > 0); the long-term optimum waits (0 + 0.95 * 2 = 1.9).
    /// </summary>
    private sealed class TwoStepMdp : ISlateEnvironment<int>
    {
        private int _state;
        public int SlateSize => 1;
        public int Reset(Random random) => _state = 0;

        public (int Next, double Reward, bool Done) Step(IReadOnlyList<long> slate, Random random)
        {
            if (_state == 1)
                return (1, 2.0, true);
            if (slate[0] == 0)
                return (0, 1.0, true);
            _state = 1;
            return (1, 0.0, false);
        }
    }

    private sealed class TabularActorCritic : nn.Module, IActorCritic<int>
    {
        public readonly TorchSharp.Modules.Parameter Logits = nn.Parameter(zeros(2, 2));
        public readonly TorchSharp.Modules.Parameter Values = nn.Parameter(zeros(2));

        public TabularActorCritic() : base(nameof(TabularActorCritic)) => RegisterComponents();

        public long[][] Candidates(IReadOnlyList<int> observations) => observations.Select(_ => new long[] { 0, 1 }).ToArray();

        public (Tensor Logits, Tensor Values) Forward(IReadOnlyList<int> observations, IReadOnlyList<long[]> candidates)
        {
            var states = tensor(observations.Select(o => (long)o).ToArray());
            return (Logits.index_select(0, states), Values.index_select(0, states));
        }

        public IEnumerable<TorchSharp.Modules.Parameter> Parameters() => parameters();
        public void Train(bool on) => train(on);
    }

    /// <param name="referenceKl">β of a KL penalty to a reference that prefers "take" 3 to 1 (the greedy choice).</param>
    private static (double WaitProbability, IReadOnlyList<PolicyIterationRecord> Curve) Learn(string algorithm, int seed, double referenceKl = 0)
    {
        var policy = new TabularActorCritic();
        var config = new PolicyOptimizationConfig
        {
            Algorithm = algorithm, Iterations = 30, EpisodesPerIteration = 32, Gamma = 0.95, LearningRate = 0.05,
            EntropyCoefficient = 0.0, MinibatchSize = 16, TargetKl = 0, Seed = seed, ReferenceKlCoefficient = referenceKl,
        };
        var greedy = new TabularActorCritic();
        using (no_grad())
            greedy.Logits[0, 0] = Math.Log(3);
        var curve = new PolicyOptimizer<int>(config, policy, () => new TwoStepMdp(), reference: greedy).Train();
        var probabilities = policy.Logits[0].softmax(0);
        return (probabilities[1].item<float>(), curve);
    }

    [Theory]
    [InlineData("ppo")]
    [InlineData("a2c")]
    public void Policy_optimisation_learns_to_wait_where_greedy_takes(string algorithm)
    {
        var (wait, curve) = Learn(algorithm, seed: 3);
        Assert.True(wait > 0.9, $"{algorithm}: P(wait) = {wait:F3}");
        Assert.True(curve[^1].MeanReturn > 1.7, $"{algorithm}: last mean return {curve[^1].MeanReturn:F3}");
    }

    [Fact]
    public void The_kl_divergence_of_the_first_slot_matches_known_numbers()
    {
        // p = (1/4, 3/4) against (1/2, 1/2): 1/4 ln(1/2) + 3/4 ln(3/2).
        var kl = Losses.KlDivergence(tensor(new[] { 0.0, Math.Log(3) }).unsqueeze(0), tensor(new[] { 5.0, 5.0 }).unsqueeze(0));
        Assert.Equal(0.25 * Math.Log(0.5) + 0.75 * Math.Log(1.5), kl.item<double>(), 10);
        // The same distribution, its logits shifted: 0.
        Assert.Equal(0.0, Losses.KlDivergence(tensor(new[] { 0.3, -1.0, 2.0 }).unsqueeze(0), tensor(new[] { 1.3, 0.0, 3.0 }).unsqueeze(0)).item<double>(), 10);
    }

    /// <summary>
    /// The penalty's knob: without it PPO leaves the greedy reference for the long-term optimum; a strong one holds it
    /// near the reference (P(wait) near the reference's 1/4), a mild one lets it move part of the way; the curve reports the distance.
    /// </summary>
    [Fact]
    public void A_kl_penalty_holds_the_policy_near_the_reference_as_strongly_as_its_beta()
    {
        var free = Learn("ppo", seed: 3);
        var mild = Learn("ppo", seed: 3, referenceKl: 0.5);
        var strong = Learn("ppo", seed: 3, referenceKl: 20);

        Assert.True(free.WaitProbability > 0.9, $"β = 0: P(wait) = {free.WaitProbability:F3}");
        Assert.InRange(strong.WaitProbability, 0.1, 0.45);
        Assert.InRange(mild.WaitProbability, strong.WaitProbability, free.WaitProbability);
        Assert.True(strong.Curve[^1].ReferenceKl < mild.Curve[^1].ReferenceKl, $"KL to the reference: β = 20 {strong.Curve[^1].ReferenceKl:F4}, β = 0.5 {mild.Curve[^1].ReferenceKl:F4}");
        Assert.Equal(0, free.Curve[^1].ReferenceKl);
    }

    [Fact]
    public void A_kl_penalty_without_a_reference_policy_is_refused() =>
        Assert.Throws<ArgumentException>(() => new PolicyOptimizer<int>(new PolicyOptimizationConfig { ReferenceKlCoefficient = 0.1 }, new TabularActorCritic(), () => new TwoStepMdp()));

    [Fact]
    public void Training_is_deterministic_for_a_seed()
    {
        var a = Learn("ppo", seed: 11);
        var b = Learn("ppo", seed: 11);
        Assert.Equal(a.WaitProbability, b.WaitProbability);
        Assert.Equal(a.Curve.Select(r => r.MeanReturn), b.Curve.Select(r => r.MeanReturn));
    }
}
