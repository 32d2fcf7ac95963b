using System.Text.Json.Nodes;

namespace Recommender.Training.Reinforcement;

/// <summary>
/// A policy's return per session estimated from logged sessions, by several estimators, with the effective sample
/// size of the importance weights that say how far the policy is from the one that logged them.
/// </summary>
/// <param name="EffectiveSampleSize">
/// (Σ w)² / Σ w² over the one-step weights the doubly robust estimate uses, w = min(π(slate) / μ(slate), M): how many logged
/// decisions its corrections rest on. A policy far from the logger has a few large weights and the rest near 0: clipped
/// or not, few decisions count.
/// </param>
/// <param name="EffectiveSampleSizeUnclipped">The same over the weights as they are.</param>
/// <param name="MeanWeight">The mean one-step weight: near 1 when the logs cover the policy's slates, well below when it shows slates the logger never did.</param>
/// <param name="TrajectoryEffectiveSampleSize">The same over whole sessions' weights Π w (what per-decision importance sampling rests on).</param>
/// <param name="DoublyRobust">With the one-step weights clipped at the evaluation's maximum (the gate's estimate).</param>
/// <param name="DoublyRobustUnclipped">The same with the weights as they are.</param>
public sealed record SessionValueEstimates(
    Estimate DoublyRobust,
    Estimate DoublyRobustUnclipped,
    Estimate DirectMethod,
    Estimate Ips,
    double Snips,
    Estimate Logged,
    double EffectiveSampleSize,
    double EffectiveSampleSizeUnclipped,
    double MeanWeight,
    double TrajectoryEffectiveSampleSize,
    int Sessions,
    int Decisions,
    IReadOnlyList<double>? WeightQuantiles = null)
{
    /// <summary>Each session's doubly robust return, in the order of the sessions evaluated (for paired comparisons of two policies).</summary>
    public IReadOnlyList<double> DoublyRobustPerSession => DoublyRobustWithModelScaled(1);

    /// <summary>Each session's doubly robust return taken apart, so that it can be recomputed with the reward model scaled (<see cref="DoublyRobustWithModelScaled"/>).</summary>
    public IReadOnlyList<DoublyRobustParts> Parts { get; init; } = [];

    /// <summary>
    /// Each session's doubly robust return with the reward model's values multiplied by <paramref name="scale"/>:
    /// c·V̂(x_0) + Σ_t min(w_t, M) (r_t + c·V̂(x_{t+1}) - c·Q̂(x_t, a_t)). Any model leaves the unclipped estimate unbiased;
    /// a better-calibrated one leaves less of its error in what the clipped weights hand to it.
    /// </summary>
    public IReadOnlyList<double> DoublyRobustWithModelScaled(double scale) => Parts.Select(p => scale * (p.ModelStart + p.WeightedModelSteps) + p.WeightedRewards).ToList();

    /// <summary>
    /// How well the logger's slate probabilities, recomputed from each logged state, match the propensities logged when the
    /// slate was served (exact slate order), as quantiles of |ln(recomputed / logged)|: near 0 when the training job
    /// rebuilds the states serving saw; weights that rest on wrong states would not be importance weights.
    /// </summary>
    public JsonObject? LoggedPropensityCheck { get; init; }

    public JsonObject ToJson() => new()
    {
        ["dr"] = Json(DoublyRobust), ["dr_unclipped"] = Json(DoublyRobustUnclipped), ["direct_method"] = Json(DirectMethod), ["ips"] = Json(Ips), ["snips"] = JsonNumbers.Finite(Snips), ["logged"] = Json(Logged),
        ["ess"] = JsonNumbers.Finite(EffectiveSampleSize), ["ess_unclipped"] = JsonNumbers.Finite(EffectiveSampleSizeUnclipped), ["ess_share"] = Decisions == 0 ? null : JsonNumbers.Finite(EffectiveSampleSize / Decisions), ["mean_weight"] = JsonNumbers.Finite(MeanWeight),
        ["trajectory_ess"] = JsonNumbers.Finite(TrajectoryEffectiveSampleSize), ["sessions"] = Sessions, ["decisions"] = Decisions,
        ["logged_propensity_check"] = LoggedPropensityCheck?.DeepClone(),
        ["weight_quantiles"] = WeightQuantiles is null ? null : new JsonObject(new[] { "p10", "p50", "p90", "p99", "max" }.Zip(WeightQuantiles, (name, w) => KeyValuePair.Create(name, (JsonNode?)JsonNumbers.Finite(w)))),
    };

    private static JsonObject Json(Estimate e) => new() { ["mean"] = JsonNumbers.Finite(e.Mean), ["ci95"] = JsonNumbers.Finite(e.HalfWidth), ["n"] = e.Samples };
}

/// <summary>
/// A session's doubly robust return in three parts: the model's value of its start V̂(x_0), the clipped-weighted rewards
/// Σ_t min(w_t, M) r_t, and the clipped-weighted model terms Σ_t min(w_t, M) (V̂(x_{t+1}) - Q̂(x_t, a_t)).
/// </summary>
public readonly record struct DoublyRobustParts(double ModelStart, double WeightedRewards, double WeightedModelSteps);

/// <summary>
/// Off-policy evaluation of a slate policy's long-term value on the product's logged sessions, with the learned
/// user simulator as the model of what happens next. For session s with decisions t = 0..T-1 (state x, logged slate a,
/// reward r, logging probability μ) and a target policy π:
/// <code>
/// w_t   = π(a_t | x_t) / μ_t                                       one-step importance weight
/// V̂(x)  = E[return from x | π]          Q̂(x, a) = E[return from x | a first, then π]     (simulator rollouts)
/// DR    = mean_s [ V̂(x_0) + Σ_t min(w_t, M) (r_t + V̂(x_{t+1}) - Q̂(x_t, a_t)) ]      V̂(x_T) = 0
/// DR_c  = the same with V̂ and Q̂ multiplied by c                  (the gate's: c = the logger's logged return / its DM)
/// DM    = mean_s V̂(x_0)
/// IPS   = mean_s Σ_t ρ_t r_t,   ρ_t = Π_{i≤t} w_i                 (per-decision importance sampling)
/// SNIPS = Σ_t Σ_s ρ_{s,t} r_{s,t} / Σ_s ρ_{s,t}                   (weighted per-decision IS)
/// </code>
/// The doubly robust estimate corrects the model at every logged step, weighting the step's own slate only: this is
/// the per-decision DR of Jiang and Li (2016) with the weights of earlier steps dropped (Thomas and Brunskill's
/// one-step estimator), which keeps its variance at that of single-slate weights, at the cost of taking the states the
/// logger reached as those the policy would reach; the few weights above M are clipped to it (Bottou et al. 2013), which
/// trades a little bias for much less variance (the unclipped estimate is reported beside it). Whole-session weights ρ
/// (IPS, SNIPS) are reported too: over sessions of several slates they degenerate unless π is the logger.
/// </summary>
/// <remarks>
/// A rollout weights each step's expected reward by the simulated chance that the user is still there (the product of
/// 1 - P(leave) so far) instead of drawing the leave, which removes the largest source of noise; it stops when that
/// chance falls under <see cref="SurvivalFloor"/> or at the horizon. Rollouts draw from seeds fixed by the decision, so
/// two policies are judged on the same random numbers.
/// </remarks>
/// <param name="maxWeight">M, where the doubly robust estimate clips the one-step weights.</param>
/// <param name="threads">Sessions judged at once (the policy and the simulator are read concurrently; both are safe for it).</param>
public sealed class SessionOffPolicyEvaluation(LearnedUserSimulator simulator, RewardConfig rewards, int slateSize, int horizon, int rollouts, int seed, double maxWeight = double.PositiveInfinity, int threads = 1)
{
    public const double SurvivalFloor = 0.01;

    /// <param name="logger">
    /// With the policy that logged the sessions, slates are weighted as sets (π(set) / μ(set), each the sum over the
    /// set's orderings; μ recomputed from the logger): right when the user's answer does not depend on the order of
    /// the slate, and much less variable than ordered slates. Without it, the ordered slate's logged propensities.
    /// </param>
    public SessionValueEstimates Evaluate(Func<SessionState, SlateDistributionAt> policy, IReadOnlyList<LoggedSession> sessions, Func<SessionState, SlateDistributionAt>? logger = null)
    {
        // Sessions are independent and each draws from seeds fixed by its index, so they are judged in parallel and the
        // figures do not depend on the number of threads (most of a retraining's RL stage is these rollouts).
        var judged = new SessionFigures[sessions.Count];
        Parallel.For(0, sessions.Count, new ParallelOptions { MaxDegreeOfParallelism = threads }, s => judged[s] = Judge(policy, sessions[s], s, logger));
        var weights = judged.SelectMany(j => j.Weights).ToList();
        var sorted = weights.Order().ToArray();
        double Quantile(double q) => sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)(q * sorted.Length))];
        var dr = judged.Select(j => j.Parts.ModelStart + j.Parts.WeightedModelSteps + j.Parts.WeightedRewards).ToList();
        return new SessionValueEstimates(Estimate.Of(dr), Estimate.Of(judged.Select(j => j.DoublyRobustUnclipped).ToList()), Estimate.Of(judged.Select(j => j.DirectMethod).ToList()),
            Estimate.Of(judged.Select(j => j.PerStep.Sum(x => x.Rho * x.Reward)).ToList()), WeightedPerDecision(judged.Select(j => j.PerStep).ToList()), Estimate.Of(judged.Select(j => j.Logged).ToList()),
            Kish(weights.Select(w => Math.Min(w, maxWeight)).ToList()), Kish(weights), weights.Count == 0 ? double.NaN : weights.Average(),
            Kish(judged.Select(j => j.PerStep.Length == 0 ? 1.0 : j.PerStep[^1].Rho).ToList()), sessions.Count, weights.Count,
            [Quantile(0.1), Quantile(0.5), Quantile(0.9), Quantile(0.99), sorted.Length == 0 ? double.NaN : sorted[^1]])
        {
            Parts = judged.Select(j => j.Parts).ToList(),
            LoggedPropensityCheck = PropensityCheck(judged.SelectMany(j => j.PropensityLogRatios).ToList()),
        };
    }

    /// <summary>
    /// One session's part of every estimate: its DR's parts, unclipped DR, DM and logged returns, its one-step weights, per
    /// step the whole-session weight so far ρ_t with the reward, and ln(recomputed / logged propensity) of its slates.
    /// </summary>
    private sealed record SessionFigures(DoublyRobustParts Parts, double DoublyRobustUnclipped, double DirectMethod, double Logged, double[] Weights, (double Rho, double Reward)[] PerStep,
        double[] PropensityLogRatios);

    private static JsonObject? PropensityCheck(IReadOnlyList<double> logRatios)
    {
        if (logRatios.Count == 0)
            return null;
        var sorted = logRatios.Select(Math.Abs).Order().ToArray();
        return new JsonObject
        {
            ["decisions"] = sorted.Length,
            ["median_abs_log_ratio"] = JsonNumbers.Finite(sorted[sorted.Length / 2]),
            ["p90_abs_log_ratio"] = JsonNumbers.Finite(sorted[Math.Min(sorted.Length - 1, (int)(0.9 * sorted.Length))]),
            ["share_within_1pct"] = sorted.Count(r => r <= Math.Log(1.01)) / (double)sorted.Length,
        };
    }

    /// <summary>Session <paramref name="s"/> (its index, which fixes its random numbers) judged: the formulas of the class, for one session.</summary>
    private SessionFigures Judge(Func<SessionState, SlateDistributionAt> policy, LoggedSession session, int s, Func<SessionState, SlateDistributionAt>? logger)
    {
        var steps = session.Decisions;
        var rewardsLogged = steps.Select(d => d.Reward(rewards)).ToArray();
        var loggerAt = logger is null ? null : steps.Select(d => logger(d.State)).ToArray();
        var w = steps.Select((d, t) => loggerAt is null
            ? policy(d.State).Probability(d.Slate) / d.LoggedProbability!.Value
            : policy(d.State).Probability(d.Slate, ordered: false) / loggerAt[t].Probability(d.Slate, ordered: false)).ToArray();
        // A slate the recomputed logger would never show (probability 0) is the worst mismatch: its ratio is infinite, not left out.
        var propensityLogRatios = loggerAt is null ? [] : steps.Select((d, t) => (Logged: d.LoggedProbability ?? 0, Recomputed: loggerAt[t].Probability(d.Slate)))
            .Where(p => p.Logged > 0).Select(p => p.Recomputed > 0 ? Math.Log(p.Recomputed / p.Logged) : double.PositiveInfinity).ToArray();
        var v = steps.Select((d, t) => Value(policy, d.State, null, Seed(s, t, 0))).Append(0).ToArray();
        var q = steps.Select((d, t) => Value(policy, d.State, d.Slate, Seed(s, t, 1))).ToArray();
        double weightedRewards = 0, weightedModelSteps = 0, unclippedCorrection = 0;
        for (var t = 0; t < steps.Count; t++)
        {
            weightedRewards += Math.Min(w[t], maxWeight) * rewardsLogged[t];
            weightedModelSteps += Math.Min(w[t], maxWeight) * (v[t + 1] - q[t]);
            unclippedCorrection += w[t] * (rewardsLogged[t] + v[t + 1] - q[t]);
        }
        var rho = 1.0;
        var perStep = new (double Rho, double Reward)[steps.Count];
        for (var t = 0; t < steps.Count; t++)
        {
            rho *= w[t];
            perStep[t] = (rho, rewardsLogged[t]);
        }
        return new SessionFigures(new DoublyRobustParts(v[0], weightedRewards, weightedModelSteps), v[0] + unclippedCorrection, v[0], rewardsLogged.Sum(), w, perStep, propensityLogRatios);
    }

    /// <summary>The expected return from <paramref name="state"/> under the policy (after <paramref name="firstSlate"/>, when given), over the rollouts.</summary>
    private double Value(Func<SessionState, SlateDistributionAt> policy, SessionState state, long[]? firstSlate, int rolloutSeed)
    {
        var random = new Random(rolloutSeed);
        var total = 0.0;
        for (var r = 0; r < rollouts; r++)
            total += Rollout(policy, state, firstSlate, random);
        return total / rollouts;
    }

    private double Rollout(Func<SessionState, SlateDistributionAt> policy, SessionState state, long[]? firstSlate, Random random)
    {
        double value = 0, survival = 1;
        for (var step = state.Step; step < horizon && survival >= SurvivalFloor; step++)
        {
            var slate = firstSlate ?? policy(state).Sample(slateSize, random);
            firstSlate = null;
            if (slate.Length == 0)
                break;
            var (pick, leave, engaged) = simulator.Outcomes(state, slate);
            var expected = 0.0;
            for (var j = 0; j <= slate.Length; j++)
                expected += pick[j] * ((j < slate.Length ? rewards.Click + (engaged is null ? 0 : rewards.Engaged(engaged[j])) : 0) + rewards.Leave * leave[j]);
            value += survival * expected;
            var outcome = Draw(pick, random);
            survival *= 1 - leave[outcome];
            state = state.After(slate, outcome < slate.Length ? (int)slate[outcome] : null, outcome < slate.Length ? engaged?[outcome] : null);
        }
        return value;
    }

    private int Seed(int session, int step, int kind) => HashCode.Combine(seed, session, step, kind);

    private static int Draw(double[] probabilities, Random random)
    {
        var u = random.NextDouble();
        for (var i = 0; i < probabilities.Length - 1; i++)
        {
            if ((u -= probabilities[i]) < 0)
                return i;
        }
        return probabilities.Length - 1;
    }

    /// <summary>Σ_t Σ_s ρ_{s,t} r_{s,t} / Σ_s ρ_{s,t}, a session that ended keeping its last weight with reward 0.</summary>
    private static double WeightedPerDecision(IReadOnlyList<(double Rho, double Reward)[]> sessions)
    {
        var longest = sessions.Count == 0 ? 0 : sessions.Max(s => s.Length);
        var value = 0.0;
        for (var t = 0; t < longest; t++)
        {
            double weighted = 0, total = 0;
            foreach (var s in sessions)
            {
                var (rho, reward) = t < s.Length ? s[t] : (s[^1].Rho, 0);
                weighted += rho * reward;
                total += rho;
            }
            value += total > 0 ? weighted / total : 0;
        }
        return value;
    }

    /// <summary>Kish's effective sample size, (Σ w)² / Σ w².</summary>
    public static double Kish(IReadOnlyList<double> weights)
    {
        var sum = weights.Sum();
        var squares = weights.Sum(w => w * w);
        return squares > 0 ? sum * sum / squares : 0;
    }
}
