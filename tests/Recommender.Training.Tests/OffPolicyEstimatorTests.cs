using Recommender.Training.Reinforcement;

namespace Recommender.Training.Tests;

/// <summary>Off-policy estimators on a contextual bandit whose true policy values are known exactly.</summary>
[Trait("Kind", "Unit")]
public sealed class OffPolicyEstimatorTests
{
    private const int Contexts = 3, Actions = 5;
    private static readonly double[][] ClickProbability =
    [
        [0.10, 0.30, 0.05, 0.60, 0.20],
        [0.50, 0.05, 0.40, 0.10, 0.15],
        [0.20, 0.25, 0.70, 0.05, 0.35],
    ];

    private static double[] Softmax(double[] logits)
    {
        var e = logits.Select(l => Math.Exp(l - logits.Max())).ToArray();
        return e.Select(v => v / e.Sum()).ToArray();
    }

    // The logging policy is mildly informed; the target policy is sharper and differs from it.
    private static double[] Behaviour(int x) => Softmax([.. Enumerable.Range(0, Actions).Select(a => 0.5 * ClickProbability[x][a] * 4)]);
    private static double[] Target(int x) => Softmax([.. Enumerable.Range(0, Actions).Select(a => 2.0 * ClickProbability[(x + 1) % Contexts][a] * 4)]);

    private static int Draw(double[] p, Random random)
    {
        var u = random.NextDouble();
        for (var a = 0; a < p.Length - 1; a++)
        {
            if ((u -= p[a]) < 0)
                return a;
        }
        return p.Length - 1;
    }

    [Fact]
    public void Ips_snips_and_doubly_robust_recover_the_true_value_within_their_intervals()
    {
        var truth = Enumerable.Range(0, Contexts).Average(x => Target(x).Select((p, a) => p * ClickProbability[x][a]).Sum());
        var random = new Random(5);
        var modelNoise = new Random(6);
        var logs = new List<LoggedDecision>();
        for (var n = 0; n < 20_000; n++)
        {
            var x = random.Next(Contexts);
            var a = Draw(Behaviour(x), random);
            var reward = random.NextDouble() < ClickProbability[x][a] ? 1.0 : 0.0;
            // A reward model that is close but not exact.
            var model = Enumerable.Range(0, Actions).Select(b => Math.Clamp(ClickProbability[x][b] + 0.05 * (modelNoise.NextDouble() - 0.5), 0, 1)).ToArray();
            logs.Add(new LoggedDecision(reward, Behaviour(x)[a], Target(x)[a], model[a], Target(x).Select((p, b) => p * model[b]).Sum()));
        }

        foreach (var (name, estimate) in new[] { ("IPS", OffPolicyEstimators.Ips(logs)), ("SNIPS", OffPolicyEstimators.Snips(logs)), ("DR", OffPolicyEstimators.DoublyRobust(logs)) })
        {
            Assert.True(Math.Abs(estimate.Mean - truth) <= estimate.HalfWidth, $"{name} {estimate} vs truth {truth:F4}");
            Assert.InRange(estimate.HalfWidth, 1e-4, 0.03);
        }
        // The behaviour policy's own value is far off: the estimators are not just reporting the logs.
        Assert.True(Math.Abs(logs.Average(d => d.Reward) - truth) > 0.05);
        // A good reward model narrows the interval.
        Assert.True(OffPolicyEstimators.DoublyRobust(logs).HalfWidth < OffPolicyEstimators.Ips(logs).HalfWidth);
    }

    [Fact]
    public void The_top_k_correction_recovers_the_value_of_a_slate_filled_by_k_draws()
    {
        const int k = 2;
        double Value(double[] p, int x) => Enumerable.Range(0, Actions).Sum(a => OffPolicyEstimators.TopKInclusion(p[a], k) * ClickProbability[x][a]);
        var truth = Enumerable.Range(0, Contexts).Average(x => Value(Target(x), x));
        var random = new Random(9);
        var perLog = new List<double>();
        for (var n = 0; n < 400_000; n++)
        {
            var x = random.Next(Contexts);
            var shown = Enumerable.Range(0, k).Select(_ => Draw(Behaviour(x), random)).Distinct().ToList();
            perLog.Add(shown.Sum(a =>
            {
                var click = random.NextDouble() < ClickProbability[x][a] ? 1.0 : 0.0;
                return OffPolicyEstimators.TopKInclusion(Target(x)[a], k) / OffPolicyEstimators.TopKInclusion(Behaviour(x)[a], k) * click;
            }));
        }
        var estimate = Estimate.Of(perLog);
        Assert.True(Math.Abs(estimate.Mean - truth) <= estimate.HalfWidth, $"top-K IPS {estimate} vs truth {truth:F4}");
    }

    [Fact]
    public void A_paired_gain_is_surer_than_the_two_estimates_it_compares_and_centred_on_their_ratio()
    {
        // Two policies' returns on the same sessions: each session's own level (most of the spread) is shared by both.
        var random = new Random(5);
        var level = Enumerable.Range(0, 400).Select(_ => 3 * random.NextDouble() * 2).ToArray();
        var champion = level.Select(l => l + 0.1 * (random.NextDouble() - 0.5)).ToArray();
        var candidate = level.Select(l => 1.05 * l + 0.1 * (random.NextDouble() - 0.5)).ToArray();

        var gain = Estimate.Gain(candidate, champion);

        Assert.Equal(candidate.Average() / champion.Average() - 1, gain.Mean, 12);
        Assert.InRange(gain.Mean, 0.04, 0.06);
        // Unpaired, the two means' intervals overlap (each about ±5%); paired, the gain's is a small fraction of that.
        Assert.True(gain.HalfWidth < 0.2 * Estimate.Of(champion).HalfWidth / champion.Average(), $"paired half-width {gain.HalfWidth}");
        Assert.Equal(0, Estimate.Gain(champion, champion).Mean, 12);
    }
}
