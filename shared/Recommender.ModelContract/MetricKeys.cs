namespace Recommender.ModelContract;

/// <summary>
/// The keys of a model's metrics (<c>metrics.json</c>, the manifest's <c>metrics</c>) that more than one stage reads:
/// the training job writes them, the promotion gate compares them, reports and benchmarks show them.
/// </summary>
public static class MetricKeys
{
    /// <summary>Hit rate at 10 on the test split, against the evaluation protocol's sampled negatives.</summary>
    public const string HitRate = "hr@10";

    /// <summary>NDCG at 10 on the test split, against the sampled negatives.</summary>
    public const string Ndcg = "ndcg@10";

    /// <summary>Hit rate at 10 ranking every item.</summary>
    public const string FullHitRate = "hr@10_full";

    /// <summary>NDCG at 10 ranking every item.</summary>
    public const string FullNdcg = "ndcg@10_full";

    /// <summary>How many test users a metric set averages over.</summary>
    public const string Users = "users";

    /// <summary>The served model measured on the candidate's own test split: <c>{ version, hr@10, ndcg@10, ... }</c>.</summary>
    public const string Champion = "champion";

    /// <summary>The served model's version inside <see cref="Champion"/>.</summary>
    public const string ChampionVersion = "version";

    /// <summary>The doubly robust off-policy estimate of the return per session on the logged decisions.</summary>
    public const string OffPolicyReward = "rl.ope_reward";

    /// <summary>
    /// The direct-method estimate of the return per session on the same held-out sessions: the learned simulator's own
    /// rollouts, no importance weights. Low variance, and biased the same way for both policies (the simulator's
    /// optimism), so the gate reads it beside <see cref="OffPolicyReward"/>: a candidate the reward model itself
    /// finds worse is not promoted on a doubly robust gain that its weights' variance alone can produce.
    /// </summary>
    public const string RewardModelReturn = "rl.dm_reward";

    /// <summary>The effective sample size of <see cref="OffPolicyReward"/>'s importance weights.</summary>
    public const string OffPolicyEffectiveSampleSize = "rl.ope_ess";

    /// <summary>
    /// The candidate's doubly robust gain over the champion, paired on the same held-out sessions: <c>{ mean, ci95, sessions }</c>
    /// (relative; 0.05 is 5% more return per session).
    /// </summary>
    public const string OffPolicyGain = "rl.ope_gain";

    /// <summary>A metric of the users with short histories: <c>cold_users.ndcg@10</c>.</summary>
    public static string OfColdUsers(string metric) => "cold_users." + metric;
}
