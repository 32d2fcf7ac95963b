namespace Recommender.Training.Reinforcement;

/// <summary>A policy as the judge sees it: a slate for a session state.</summary>
public delegate IReadOnlyList<long> SlatePolicyFunction(SessionState state, Random random);

/// <summary>Mean and 95% confidence half-width (Student's t over seeds).</summary>
public sealed record Estimate(double Mean, double HalfWidth, int Samples)
{
    public static Estimate Of(IReadOnlyList<double> values)
    {
        var mean = values.Average();
        if (values.Count < 2)
            return new Estimate(mean, double.NaN, values.Count);
        var sd = Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (values.Count - 1));
        return new Estimate(mean, StudentT975(values.Count - 1) * sd / Math.Sqrt(values.Count), values.Count);
    }

    /// <summary>
    /// The relative gain mean(a) / mean(b) - 1 of paired samples (the same sessions, the same random numbers for both),
    /// its interval from the ratio linearised over the pairs, (a_i - r b_i) / mean(b): the pairing removes what the two share.
    /// </summary>
    public static Estimate Gain(IReadOnlyList<double> a, IReadOnlyList<double> b)
    {
        var (meanA, meanB) = (a.Average(), b.Average());
        var ratio = meanA / meanB;
        var linearised = Of(a.Zip(b, (x, y) => (x - ratio * y) / meanB).ToList());
        return new Estimate(ratio - 1, linearised.HalfWidth, a.Count);
    }

    /// <summary>The 97.5% quantile of Student's t (two-sided 95%); the normal 1.96 beyond 30 degrees of freedom.</summary>
    private static double StudentT975(int df) => df switch
    {
        1 => 12.706, 2 => 4.303, 3 => 3.182, 4 => 2.776, 5 => 2.571, 6 => 2.447, 7 => 2.365, 8 => 2.306, 9 => 2.262,
        < 15 => 2.2, < 30 => 2.1, _ => 1.96,
    };

    public override string ToString() => $"{Mean:F3} ± {HalfWidth:F3}";
}

/// <summary>Long-term return and session length of a policy on held-out episodes of the ground-truth world.</summary>
public sealed record PolicyScore(string Policy, Estimate Return, Estimate SessionLength);

public static class PolicyEvaluation
{
    /// <summary>
    /// Runs <paramref name="episodesPerSeed"/> episodes for each seed (the environment's and the policy's
    /// randomness) and reports the mean over seeds of each seed's mean, with a 95% interval over seeds.
    /// </summary>
    public static PolicyScore Evaluate(string name, SlatePolicyFunction policy, Func<ISlateEnvironment<SessionState>> environment, IReadOnlyList<int> seeds, int episodesPerSeed)
    {
        var returns = new List<double>();
        var lengths = new List<double>();
        foreach (var seed in seeds)
        {
            var random = new Random(seed);
            var env = environment();
            double total = 0, steps = 0;
            for (var episode = 0; episode < episodesPerSeed; episode++)
            {
                var state = env.Reset(random);
                while (true)
                {
                    var (next, reward, done) = env.Step(policy(state, random), random);
                    total += reward;
                    steps++;
                    state = next;
                    if (done)
                        break;
                }
            }
            returns.Add(total / episodesPerSeed);
            lengths.Add(steps / episodesPerSeed);
        }
        return new PolicyScore(name, Estimate.Of(returns), Estimate.Of(lengths));
    }

    /// <summary>The K highest-scoring items not yet consumed (scores with consumed items at -inf).</summary>
    public static IReadOnlyList<long> TopK(float[] scores, int k) =>
        Enumerable.Range(1, scores.Length - 1).Where(i => float.IsFinite(scores[i])).OrderByDescending(i => scores[i]).Take(k).Select(i => (long)i).ToList();
}
