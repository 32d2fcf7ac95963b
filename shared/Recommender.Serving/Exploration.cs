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
    public static IReadOnlyList<SlateChoice> Draw(IReadOnlyList<float> sortedScores, int k, ExplorationOptions options, Random random)
    {
        var remaining = Enumerable.Range(0, sortedScores.Count).ToList();
        var slate = new List<SlateChoice>(k);
        while (slate.Count < k && remaining.Count > 0)
        {
            int pick;
            double propensity;
            switch (options.Mode)
            {
                case ExplorationMode.Greedy:
                    (pick, propensity) = (remaining[0], 1.0);
                    break;
                case ExplorationMode.EpsilonGreedy:
                {
                    var explore = random.NextDouble() < options.Epsilon;
                    pick = explore ? remaining[random.Next(remaining.Count)] : remaining[0];
                    propensity = (pick == remaining[0] ? 1 - options.Epsilon : 0) + options.Epsilon / remaining.Count;
                    break;
                }
                case ExplorationMode.Softmax:
                {
                    var max = remaining.Max(i => sortedScores[i]);
                    var weights = remaining.Select(i => Math.Exp((sortedScores[i] - max) / options.Temperature)).ToArray();
                    var total = weights.Sum();
                    var r = random.NextDouble() * total;
                    var at = 0;
                    while (at < weights.Length - 1 && (r -= weights[at]) > 0)
                        at++;
                    (pick, propensity) = (remaining[at], weights[at] / total);
                    break;
                }
                default:
                    throw new ArgumentOutOfRangeException(nameof(options), options.Mode, "unknown exploration mode");
            }
            slate.Add(new SlateChoice(pick, propensity));
            remaining.Remove(pick);
        }
        return slate;
    }
}
