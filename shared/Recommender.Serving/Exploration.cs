namespace Recommender.Serving;

public enum ExplorationMode
{
    /// <summary>The model's ranking, as is (every shown item has propensity 1).</summary>
    Greedy,
    /// <summary>At each slot, the best remaining candidate with probability 1-epsilon, else a uniformly random remaining one.</summary>
    EpsilonGreedy,
    /// <summary>Each slot drawn from a softmax of the remaining candidates' scores at a temperature (Plackett-Luce).</summary>
    Softmax,
}

/// <summary>How recommendations explore. The propensity recorded for a shown item is the probability that
/// the policy put it in its slot given the slots before it, which is what off-policy estimators need.</summary>
public sealed record ExplorationOptions
{
    public ExplorationMode Mode { get; init; } = ExplorationMode.EpsilonGreedy;
    public double Epsilon { get; init; } = 0.1;
    public double Temperature { get; init; } = 1.0;
    /// <summary>The best this many candidates are explored among.</summary>
    public int Candidates { get; init; } = 50;
}

/// <summary>One slot of a slate: the chosen candidate (index into the candidate list) and its propensity.</summary>
public readonly record struct SlateChoice(int Candidate, double Propensity);

/// <summary>Draws a slate of k from candidates sorted best first, recording each choice's propensity.</summary>
public static class SlatePolicy
{
    /// <summary>
    /// The policy's probability of putting each candidate (sorted best first) in the next slot: the one
    /// distribution both drawing a slate and reporting Personalizer's ranking probabilities use.
    /// </summary>
    public static double[] SlotProbabilities(IReadOnlyList<double> sortedScores, ExplorationOptions options)
    {
        var n = sortedScores.Count;
        var probabilities = new double[n];
        if (n == 0)
            return probabilities;
        switch (options.Mode)
        {
            case ExplorationMode.Greedy:
                probabilities[0] = 1;
                break;
            case ExplorationMode.EpsilonGreedy:
                for (var i = 0; i < n; i++)
                    probabilities[i] = (i == 0 ? 1 - options.Epsilon : 0) + options.Epsilon / n;
                break;
            case ExplorationMode.Softmax:
            {
                var max = sortedScores.Max();
                for (var i = 0; i < n; i++)
                    probabilities[i] = Math.Exp((sortedScores[i] - max) / options.Temperature);
                var total = probabilities.Sum();
                for (var i = 0; i < n; i++)
                    probabilities[i] /= total;
                break;
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(options), options.Mode, "unknown exploration mode");
        }
        return probabilities;
    }

    /// <summary>
    /// The probability of drawing exactly this slate (candidate indices in slot order) from candidates sorted best
    /// first: the product of each slot's probability among the candidates not yet placed, as <see cref="Draw"/> records them.
    /// </summary>
    public static double Probability(IReadOnlyList<double> sortedScores, IReadOnlyList<int> slate, ExplorationOptions options)
    {
        var remaining = Enumerable.Range(0, sortedScores.Count).ToList();
        var probability = 1.0;
        foreach (var candidate in slate)
        {
            var at = remaining.IndexOf(candidate);
            if (at < 0)
                return 0;
            probability *= SlotProbabilities(remaining.Select(i => sortedScores[i]).ToList(), options)[at];
            remaining.RemoveAt(at);
        }
        return probability;
    }

    public static IReadOnlyList<SlateChoice> Draw(IReadOnlyList<double> sortedScores, int k, ExplorationOptions options, Random random)
    {
        var remaining = Enumerable.Range(0, sortedScores.Count).ToList();
        var slate = new List<SlateChoice>(k);
        while (slate.Count < k && remaining.Count > 0)
        {
            var probabilities = SlotProbabilities(remaining.Select(i => sortedScores[i]).ToList(), options);
            var at = 0;
            for (var r = random.NextDouble(); at < probabilities.Length - 1 && (r -= probabilities[at]) > 0;)
                at++;
            slate.Add(new SlateChoice(remaining[at], probabilities[at]));
            remaining.RemoveAt(at);
        }
        return slate;
    }
}
