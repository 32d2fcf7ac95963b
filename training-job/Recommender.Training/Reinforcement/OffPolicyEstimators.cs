namespace Recommender.Training.Reinforcement;

/// <summary>
/// One logged decision: the reward observed, the probability the logging (behaviour) policy and the target
/// policy give the logged action, and a reward model's prediction for that action and its expectation
/// under the target policy (for the doubly robust estimator).
/// </summary>
public sealed record LoggedDecision(double Reward, double BehaviourProbability, double TargetProbability, double ModelReward = 0, double ModelValue = 0)
{
    public double Weight => TargetProbability / BehaviourProbability;
}

/// <summary>
/// Off-policy estimates of a target policy's expected reward per decision from logs with propensities, each
/// with a 95% interval (normal approximation): inverse propensity scoring, its self-normalised form (biased,
/// lower variance), and doubly robust (a reward model corrected by weighted residuals).
/// </summary>
public static class OffPolicyEstimators
{
    /// <summary>V = mean(w r).</summary>
    public static Estimate Ips(IReadOnlyList<LoggedDecision> logs) => Estimate.Of(logs.Select(d => d.Weight * d.Reward).ToList());

    /// <summary>V = Σ w r / Σ w; interval from the linearisation w (r - V) / mean(w).</summary>
    public static Estimate Snips(IReadOnlyList<LoggedDecision> logs)
    {
        var weights = logs.Sum(d => d.Weight);
        if (weights == 0)
            return new Estimate(0, double.NaN, logs.Count);
        var value = logs.Sum(d => d.Weight * d.Reward) / weights;
        var meanWeight = weights / logs.Count;
        var spread = Estimate.Of(logs.Select(d => d.Weight * (d.Reward - value) / meanWeight).ToList());
        return new Estimate(value, spread.HalfWidth, logs.Count);
    }

    /// <summary>V = mean(q̂(x, π) + w (r - q̂(x, a))).</summary>
    public static Estimate DoublyRobust(IReadOnlyList<LoggedDecision> logs) =>
        Estimate.Of(logs.Select(d => d.ModelValue + d.Weight * (d.Reward - d.ModelReward)).ToList());

    /// <summary>
    /// The top-K correction of Chen et al. (2019): a policy that fills a slate of K by K draws from π shows
    /// item a with probability α = 1 - (1 - π(a))^K, so an item-level reward is weighted by α_π(a) / α_β(a).
    /// </summary>
    public static double TopKInclusion(double probability, int k) => 1 - Math.Pow(1 - probability, k);
}
