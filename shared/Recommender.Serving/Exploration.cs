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
        var probabilities = new double[sortedScores.Count];
        SlotProbabilities(sortedScores, new bool[sortedScores.Count], options, probabilities);
        return probabilities;
    }

    /// <summary>
    /// The next slot's probabilities over the candidates not yet <paramref name="taken"/> (0 for those taken), as
    /// <see cref="SlotProbabilities(IReadOnlyList{double}, ExplorationOptions)"/> gives them for the remaining candidates
    /// alone: the best remaining is the greedy choice, the softmax is over the remaining scores.
    /// </summary>
    private static void SlotProbabilities(IReadOnlyList<double> sortedScores, ReadOnlySpan<bool> taken, ExplorationOptions options, Span<double> probabilities)
    {
        var n = sortedScores.Count;
        int remaining = 0, best = -1;
        var max = double.NegativeInfinity;
        for (var i = 0; i < n; i++)
        {
            probabilities[i] = 0;
            if (taken[i])
                continue;
            remaining++;
            if (best < 0)
                best = i;
            max = Math.Max(max, sortedScores[i]);
        }
        if (remaining == 0)
            return;
        switch (options.Mode)
        {
            case ExplorationMode.Greedy:
                probabilities[best] = 1;
                break;
            case ExplorationMode.EpsilonGreedy:
                for (var i = 0; i < n; i++)
                {
                    if (!taken[i])
                        probabilities[i] = (i == best ? 1 - options.Epsilon : 0) + options.Epsilon / remaining;
                }
                break;
            case ExplorationMode.Softmax:
            {
                var total = 0.0;
                for (var i = 0; i < n; i++)
                {
                    if (taken[i])
                        continue;
                    probabilities[i] = Math.Exp((sortedScores[i] - max) / options.Temperature);
                    total += probabilities[i];
                }
                for (var i = 0; i < n; i++)
                    probabilities[i] /= total;
                break;
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(options), options.Mode, "unknown exploration mode");
        }
    }

    /// <summary>
    /// The probability of drawing exactly this slate (candidate indices in slot order) from candidates sorted best
    /// first: the product of each slot's probability among the candidates not yet placed, as <see cref="Draw"/> records them.
    /// </summary>
    public static double Probability(IReadOnlyList<double> sortedScores, IReadOnlyList<int> slate, ExplorationOptions options)
    {
        var n = sortedScores.Count;
        Span<bool> taken = n <= 512 ? stackalloc bool[n] : new bool[n];
        Span<double> probabilities = n <= 512 ? stackalloc double[n] : new double[n];
        var probability = 1.0;
        foreach (var candidate in slate)
        {
            if (candidate < 0 || candidate >= n || taken[candidate])
                return 0;
            SlotProbabilities(sortedScores, taken, options, probabilities);
            probability *= probabilities[candidate];
            taken[candidate] = true;
        }
        return probability;
    }

    public static IReadOnlyList<SlateChoice> Draw(IReadOnlyList<double> sortedScores, int k, ExplorationOptions options, Random random)
    {
        var n = sortedScores.Count;
        Span<bool> taken = n <= 512 ? stackalloc bool[n] : new bool[n];
        Span<double> probabilities = n <= 512 ? stackalloc double[n] : new double[n];
        var slate = new List<SlateChoice>(Math.Min(k, n));
        while (slate.Count < k && slate.Count < n)
        {
            SlotProbabilities(sortedScores, taken, options, probabilities);
            // The first remaining candidate at which the cumulative probability reaches the draw, else the last remaining.
            var at = -1;
            var r = random.NextDouble();
            for (var i = 0; i < n; i++)
            {
                if (taken[i])
                    continue;
                at = i;
                if ((r -= probabilities[i]) <= 0)
                    break;
            }
            slate.Add(new SlateChoice(at, probabilities[at]));
            taken[at] = true;
        }
        return slate;
    }
}
