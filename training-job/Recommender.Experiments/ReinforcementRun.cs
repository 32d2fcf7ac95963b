using System.Text.Json.Nodes;
using Recommender.Data;
using Recommender.ModelContract;
using Recommender.Training;
using Recommender.Training.Reinforcement;
using static TorchSharp.torch;

namespace Recommender.Experiments;

/// <summary>Settings of the RL stage, with documented defaults.</summary>
public sealed record ReinforcementConfig
{
    public int SlateSize { get; init; } = 5;
    /// <summary>Items the actor chooses among (the encoder's top-M not yet consumed).</summary>
    public int Candidates { get; init; } = 50;
    /// <summary>Softmax temperature of the actor over candidate scores (low: the first policy is close to greedy).</summary>
    public double Temperature { get; init; } = 0.2;
    /// <summary>
    /// Whether PPO and A2C also fine-tune the pretrained encoder (and item vectors), or train only the actor's head and
    /// the critic on a frozen one (the default: on the synthetic world the encoder's policy gradient was noise at these
    /// sample sizes, 3.68 against 3.90 for the frozen encoder after 150 and 300 iterations of 256 sessions).
    /// </summary>
    public bool FineTuneEncoder { get; init; }
    public int MaxSessionSteps { get; init; } = 30;
    public RewardConfig Rewards { get; init; } = new();
    /// <summary>PPO: 300 iterations of 256 sessions (about 77,000 sessions; the head's weights keep moving until ~200).</summary>
    public PolicyOptimizationConfig Ppo { get; init; } = new() { Iterations = 300, EpisodesPerIteration = 256, MinibatchSize = 128 };
    public PolicyOptimizationConfig A2C { get; init; } = new() { Algorithm = "a2c", Iterations = 300, EpisodesPerIteration = 256 };
    /// <summary>Share of users whose sessions train the policies; the rest, on other seeds, judge them.</summary>
    public double TrainingUserShare { get; init; } = 0.8;
    public int[] EvaluationSeeds { get; init; } = [1001, 1002, 1003, 1004, 1005];
    public int EpisodesPerSeed { get; init; } = 400;
    /// <summary>Logged decisions for off-policy evaluation, made by the pretrained policy sampling at <see cref="BehaviourTemperature"/>.</summary>
    public int OffPolicyDecisions { get; init; } = 4000;
    /// <summary>Slates drawn from the target policy per logged decision for the doubly robust estimate's model term E_π[q̂(x, slate)].</summary>
    public int OffPolicyModelSlates { get; init; } = 8;
    public double BehaviourTemperature { get; init; } = 1.0;
    /// <summary>Fixed session heads to judge greedy with (an ablation of what the actor's head could gain); none by default.</summary>
    public PolicyHead[] HeadAblation { get; init; } = [];
    /// <summary>The learned user simulator PPO also trains in (logged from the training users by the pretrained policy).</summary>
    public SimulatorConfig Simulator { get; init; } = new();
    /// <summary>
    /// β values of <see cref="PolicyOptimizationConfig.ReferenceKlCoefficient"/> to train a PPO policy with each, besides
    /// the main one, and judge by long-term return and offline HR@10: the frontier between the two. None by default.
    /// </summary>
    public double[] KlFrontier { get; init; } = [];
}

/// <summary>
/// A PPO policy trained with a KL penalty of <paramref name="Beta"/> to the pretrained one, and what it reached: long-term
/// return, offline accuracy, its distance from the pretrained policy, and its reward per step off-policy (doubly robust)
/// against the truth. <paramref name="ReturnGain"/> and <paramref name="HitRateChange"/> are relative to greedy's.
/// </summary>
public sealed record FrontierPoint(double Beta, PolicyScore Score, EvaluationResult Offline, EvaluationResult? OfflineHonest, double KlToReference, Estimate OpeTruth, Estimate OpeDoublyRobust,
    double ReturnGain, double HitRateChange);

/// <summary>
/// The RL stage of a run on the synthetic world: fine-tune the pretrained sequence model with PPO and with
/// A2C against sessions of training users; judge PPO, A2C, the greedy pretrained policy, popularity and
/// random on held-out users and seeds of the ground truth; compare offline HR/NDCG of PPO and greedy;
/// estimate PPO's per-step reward off-policy from logs of the pretrained policy and check it against the truth.
/// </summary>
public sealed class ReinforcementRun(ReinforcementConfig config, JobProgress? progress = null)
{
    public (JsonObject Metrics, string Report) Run(SyntheticWorld world, InteractionDataset data, string pretrainedDirectory, EvaluationProtocol protocol)
    {
        var split = LeaveOneOutSplit.Create(data);
        var users = Enumerable.Range(0, data.UserCount).Where(u => data.Sequences[u].Length > 0).ToList();
        var trainUsers = users.Where(u => TrainingUser(u)).ToList();
        var heldOut = users.Where(u => !TrainingUser(u)).ToList();
        var population = world.UsersAfterHistory();
        var logPopularity = new PopularityScorer(split, data.ItemCount).LogCounts();
        SessionEnvironment Environment(IReadOnlyList<int> who) => new(world, population, data, who, config.Rewards, config.SlateSize, config.MaxSessionSteps);
        // The simulator reads the pretrained encoder; PPO trained in it shares those states when its own encoder is frozen (the same weights).
        var simulatorStates = new FrozenEncoderStates(SavedModel.Load(pretrainedDirectory, data, out var modelConfig), modelConfig, data.UserFeatures);
        // A policy from the pretrained weights, on an encoder of its own or, frozen, on the simulator's.
        SequenceActorCritic Pretrained(bool onSimulatorEncoder = false)
        {
            var shared = onSimulatorEncoder && !config.FineTuneEncoder ? simulatorStates : null;
            var encoder = shared?.Encoder ?? SavedModel.Load(pretrainedDirectory, data, out _);
            random.manual_seed(config.Ppo.Seed); // every policy's value head starts from the same seeded weights, whatever ran before
            return new(encoder, modelConfig, data.UserFeatures, data.ItemFeatures, logPopularity, config.Candidates, config.Temperature, config.FineTuneEncoder, shared);
        }

        // Fine-tune from the pretrained weights, once with PPO and once with A2C; the pretrained policy is also the
        // reference whose distance a KL penalty charges (when its β is above 0).
        var greedy = Pretrained(onSimulatorEncoder: true);
        var ppo = Pretrained();
        var ppoCurve = new PolicyOptimizer<SessionState>(config.Ppo, ppo, () => Environment(trainUsers), progress, greedy).Train();
        var a2c = Pretrained();
        var a2cCurve = new PolicyOptimizer<SessionState>(config.A2C, a2c, () => Environment(trainUsers), progress, greedy).Train();
        progress?.Line($"learned heads: PPO {ppo.Head}; A2C {a2c.Head}");

        // As on real data: learn a user simulator from logged sessions of the deployed (pretrained) policy exploring at
        // the behaviour temperature, check it against held-out sessions, and train PPO in it instead of in the world.
        var (simulator, fidelity) = LearnSimulator(Environment(trainUsers), data, split, simulatorStates, Sampled(greedy, config.BehaviourTemperature));
        Func<ISlateEnvironment<SessionState>> Simulated(IReadOnlyList<int> who) => () => new LearnedSessionEnvironment(simulator, data, who, config.Rewards, config.SlateSize, config.MaxSessionSteps);
        var ppoSimulated = Pretrained(onSimulatorEncoder: true);
        var simulatedCurve = new PolicyOptimizer<SessionState>(config.Ppo, ppoSimulated, Simulated(trainUsers), progress, greedy).Train();
        var loggingInSimulator = PolicyEvaluation.Evaluate("logging policy, simulated", Sampled(greedy, config.BehaviourTemperature), Simulated(trainUsers), config.EvaluationSeeds, config.EpisodesPerSeed);
        fidelity["session_return_simulated"] = loggingInSimulator.Return.Mean;
        fidelity["session_length_simulated"] = loggingInSimulator.SessionLength.Mean;
        progress?.Line($"learned simulator: {fidelity.ToJsonString()}");

        // Judge every policy on held-out users and seeds of the ground truth.
        var popular = new PopularityScorer(split, data.ItemCount).MostPopular(data.ItemCount).ToArray();
        var categories = new CategoryRepeats(data.ItemCount, data.ItemFeatures);
        var scores = new[]
        {
            Judge("PPO", Sampled(ppo), heldOut),
            Judge("PPO, most likely slate", (s, _) => ppo.TopK(s, config.SlateSize), heldOut),
            Judge("PPO trained in the learned simulator", Sampled(ppoSimulated), heldOut),
            Judge("A2C", Sampled(a2c), heldOut),
            Judge("greedy", (s, _) => PolicyEvaluation.TopK(greedy.Scores(s), config.SlateSize), heldOut),
            Judge("greedy, one item per category", (s, _) => PolicyEvaluation.TopK(greedy.Scores(s), data.ItemCount)
                .DistinctBy(i => categories.Category(i) is var c && c >= 0 ? c : -(int)i).Take(config.SlateSize).ToList(), heldOut),
            Judge("popularity", (s, _) => popular.Where(i => !s.History.Contains(i)).Take(config.SlateSize).Select(i => (long)i).ToList(), heldOut),
            Judge("random", (s, r) => Enumerable.Range(1, data.ItemCount).Where(i => !s.History.Contains(i)).OrderBy(_ => r.Next()).Take(config.SlateSize).Select(i => (long)i).ToList(), heldOut),
            JudgeOracle(),
        }.Concat(config.HeadAblation.Select(head =>
        {
            // Ablation: greedy re-ranked with a fixed head, to see what the head could gain.
            var fixedHead = Pretrained();
            fixedHead.SetHead(head);
            return Judge($"greedy, head {head}", (s, _) => fixedHead.TopK(s, config.SlateSize), heldOut);
        })).ToArray();

        // Offline ranking quality of PPO's policy (its encoder and head) next to the pretrained model's.
        // In a world with clickbait the logs reward it, so a policy that stops showing it loses offline hits on it by
        // design; the same measure on the users whose test item is not clickbait tells whether relevance suffered.
        var honestSplit = world.IsClickbait.Any(b => b)
            ? LeaveOneOutSplit.Create(data with { Sequences = data.Sequences.Select(s => s.Length > 0 && world.IsClickbait[s[^1] - 1] ? [] : s).ToArray() })
            : null;
        EvaluationResult Offline(SequenceActorCritic policy, string name, LeaveOneOutSplit on) => Evaluator.Evaluate(policy.OfflineRanking(name), on, data.ItemCount, EvaluationStage.Test, protocol);
        var offlinePpo = Offline(ppo, "PPO policy", split);
        var offlineGreedy = Offline(greedy, "pretrained (greedy)", split);
        progress?.Line($"offline (test split, {protocol}): PPO policy HR@10 {offlinePpo.All.HitRate:F4} NDCG@10 {offlinePpo.All.Ndcg:F4}; greedy HR@10 {offlineGreedy.All.HitRate:F4} NDCG@10 {offlineGreedy.All.Ndcg:F4}");
        JsonObject? honestTargets = null;
        EvaluationResult? greedyHonest = null;
        if (honestSplit is not null)
        {
            var policyHonest = Offline(ppo, "PPO policy", honestSplit);
            greedyHonest = Offline(greedy, "pretrained (greedy)", honestSplit);
            honestTargets = new JsonObject
            {
                ["users"] = policyHonest.All.Users, ["hr@10_policy"] = policyHonest.All.HitRate, ["ndcg@10_policy"] = policyHonest.All.Ndcg,
                ["hr@10_greedy"] = greedyHonest.All.HitRate, ["ndcg@10_greedy"] = greedyHonest.All.Ndcg,
            };
            progress?.Line($"offline, test item not clickbait ({policyHonest.All.Users} users): PPO HR@10 {policyHonest.All.HitRate:F4}, greedy {greedyHonest.All.HitRate:F4}");
        }

        // The frontier: PPO held near the pretrained policy by a KL penalty of each β, judged like the others.
        var frontier = config.KlFrontier.Select(beta =>
        {
            var policy = Pretrained();
            var curve = new PolicyOptimizer<SessionState>(config.Ppo with { ReferenceKlCoefficient = beta }, policy, () => Environment(trainUsers), progress, greedy).Train();
            var ope = OffPolicy(policy, greedy, Environment(heldOut), simulator);
            var (score, offline) = (Judge(FormattableString.Invariant($"PPO, KL penalty β = {beta}"), Sampled(policy), heldOut), Offline(policy, "PPO policy", split));
            var point = new FrontierPoint(beta, score, offline, honestSplit is null ? null : Offline(policy, "PPO policy", honestSplit), curve.TakeLast(10).Average(r => r.ReferenceKl),
                ope.Truth, ope.DoublyRobust, score.Return.Mean / Of("greedy").Return.Mean - 1, offline.All.HitRate / offlineGreedy.All.HitRate - 1);
            progress?.Line(FormattableString.Invariant($"β = {beta}: return {point.Score.Return}, offline HR@10 {point.Offline.All.HitRate:F4}, KL to the pretrained policy {point.KlToReference:F3}"));
            return point;
        }).ToList();

        var ope = OffPolicy(ppo, greedy, Environment(heldOut), simulator);
        var metrics = Metrics(scores, offlinePpo, offlineGreedy, ope, ppoCurve, a2cCurve);
        if (frontier.Count > 0)
            metrics["rl.kl_frontier"] = new JsonArray(frontier.Select(p => (JsonNode)new JsonObject
            {
                ["beta"] = p.Beta, ["return"] = JsonNumbers.Finite(p.Score.Return.Mean), ["return_ci95"] = JsonNumbers.Finite(p.Score.Return.HalfWidth),
                ["return_gain_over_greedy"] = JsonNumbers.Finite(p.ReturnGain),
                [MetricKeys.HitRate] = p.Offline.All.HitRate, [MetricKeys.Ndcg] = p.Offline.All.Ndcg, ["hr@10_change"] = JsonNumbers.Finite(p.HitRateChange),
                ["hr@10_honest_targets"] = p.OfflineHonest?.All.HitRate, ["kl_to_pretrained"] = JsonNumbers.Finite(p.KlToReference),
                ["ope_truth"] = JsonNumbers.Finite(p.OpeTruth.Mean), ["ope_dr"] = JsonNumbers.Finite(p.OpeDoublyRobust.Mean), ["ope_dr_ci95"] = JsonNumbers.Finite(p.OpeDoublyRobust.HalfWidth),
            }).ToArray());
        if (honestTargets is not null)
            metrics["rl.offline_honest_targets"] = honestTargets;
        metrics["rl.policy_head"] = new JsonObject
        {
            ["log_sharpness"] = ppo.Head.LogSharpness, ["repetition"] = ppo.Head.Repetition, ["declined"] = ppo.Head.Declined, ["popularity"] = ppo.Head.Popularity, ["declined_affinity"] = ppo.Head.DeclinedAffinity,
            ["content_values"] = new JsonObject(ppo.Head.ContentValues!.Select(t => KeyValuePair.Create(t.Key, (JsonNode?)Math.Round(t.Value, 4)))),
        };
        metrics["rl.return_policy_simulator_trained"] = Of("PPO trained in the learned simulator").Return.Mean;
        metrics["rl.simulator"] = fidelity;
        metrics["rl.curve_ppo_simulator"] = Curve(simulatedCurve);
        return (metrics, Report(scores, offlinePpo, offlineGreedy, ope, ppoCurve, a2cCurve, simulatedCurve, fidelity, frontier, greedyHonest));

        PolicyScore Of(string name) => scores.Single(p => p.Policy == name);

        PolicyScore Judge(string name, SlatePolicyFunction policy, IReadOnlyList<int> who, Func<ISlateEnvironment<SessionState>>? environment = null)
        {
            var score = PolicyEvaluation.Evaluate(name, policy, environment ?? (() => Environment(who)), config.EvaluationSeeds, config.EpisodesPerSeed);
            progress?.Line($"{name,-11} return {score.Return}  session length {score.SessionLength}");
            return score;
        }

        // A reference, not a contender: the K items of highest true appeal to the user at each step (no
        // policy can know the hidden taste), which bounds what better relevance alone could earn.
        PolicyScore JudgeOracle()
        {
            SessionEnvironment? current = null;
            return Judge("oracle (true appeal, myopic)", (s, _) => PolicyEvaluation.TopK(current!.TrueAppeal().Select((a, i) => s.History.Contains(i) ? float.NegativeInfinity : (float)a).ToArray(), config.SlateSize),
                heldOut, () => current = Environment(heldOut));
        }
    }

    /// <summary>
    /// Records sessions of the logging policy in the world on the training users, fits the simulator on most of
    /// them and measures its fidelity on the rest (decision-level) and against their returns (session-level).
    /// </summary>
    private (LearnedUserSimulator, JsonObject) LearnSimulator(ISlateEnvironment<SessionState> truth, InteractionDataset data, LeaveOneOutSplit split,
        FrozenEncoderStates states, SlatePolicyFunction logging)
    {
        var settings = config.Simulator;
        var sessions = LearnedSessionEnvironment.Record(truth, logging, settings.LoggedSessions, config.MaxSessionSteps, new Random(config.EvaluationSeeds[0] + 29));
        var fitCount = (int)(sessions.Count * (1 - settings.HeldOutShare));
        var (fitted, heldOut) = (sessions.Take(fitCount).SelectMany(s => s).ToList(), sessions.Skip(fitCount).ToList());
        var simulator = new LearnedUserSimulator(states, data, split, settings);
        simulator.Fit(fitted, engagement: config.Rewards.ReadsEngagement);
        var fidelity = simulator.Fidelity(heldOut.SelectMany(s => s).ToList(), fitted);
        fidelity["sessions_fitted"] = fitCount;
        fidelity["sessions_held_out"] = heldOut.Count;
        fidelity["session_return_logged"] = heldOut.Average(s => s.Sum(step => config.Rewards.Of(step.Engagement, step.Left)));
        fidelity["session_length_logged"] = heldOut.Average(s => s.Count);
        return (simulator, fidelity);
    }

    private bool TrainingUser(int u) => (u * 2654435761u % 1000) < config.TrainingUserShare * 1000;

    /// <summary>The trained stochastic policy: a Plackett-Luce slate from its candidates (at <paramref name="temperature"/> instead of the actor's own, to explore as a logging policy does).</summary>
    private SlatePolicyFunction Sampled(SequenceActorCritic policy, double? temperature = null) => (state, random) =>
    {
        var candidates = policy.Candidates(state);
        var slate = SlateDistribution.Sample(Logits(policy, state, candidates, temperature), Math.Min(config.SlateSize, candidates.Length), random);
        return slate.Select(i => candidates[i]).ToList();
    };

    /// <summary>A policy's logits over its candidates, at <paramref name="temperature"/> (default: the actor's own).</summary>
    private double[] Logits(SequenceActorCritic policy, SessionState state, long[] candidates, double? temperature = null)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var scale = config.Temperature / (temperature ?? config.Temperature);
        return policy.Forward([state], [candidates]).Logits[0].to(ScalarType.Float64).data<double>().Select(l => l * scale).ToArray();
    }

    private sealed record OffPolicyResult(Estimate Truth, Estimate Ips, Estimate Snips, Estimate DoublyRobust, Estimate DirectMethod,
        Estimate DoublyRobustConstant, Estimate TopKItemIps, Estimate Logged, int Decisions);

    /// <summary>
    /// Logs of the pretrained policy sampling slates at the behaviour temperature on held-out sessions, with
    /// each slate's probability; PPO's probability of the same slate gives the weight. The truth is PPO's own
    /// slate answered by a copy of the same user at the same moment. The doubly robust estimate's reward model
    /// is the learned simulator (fitted on the training users' logs): its expected reward of the logged slate,
    /// and of PPO's slates (the mean over <see cref="ReinforcementConfig.OffPolicyModelSlates"/> draws).
    /// </summary>
    private OffPolicyResult OffPolicy(SequenceActorCritic target, SequenceActorCritic behaviour, SessionEnvironment environment, LearnedUserSimulator rewardModel)
    {
        var random = new Random(config.EvaluationSeeds[0] + 17);
        var modelRandom = new Random(config.EvaluationSeeds[0] + 31); // the reward model's draws of PPO's slates, apart from the logging draws
        var logs = new List<LoggedDecision>();
        var itemLogs = new List<LoggedDecision>();
        var truth = new List<double>();
        while (logs.Count < config.OffPolicyDecisions)
        {
            var state = environment.Reset(random);
            var done = false;
            while (!done && logs.Count < config.OffPolicyDecisions)
            {
                var candidates = behaviour.Candidates(state);
                var behaviourLogits = Logits(behaviour, state, candidates, config.BehaviourTemperature);
                var slate = SlateDistribution.Sample(behaviourLogits, config.SlateSize, random);
                var shown = slate.Select(i => candidates[i]).ToList();
                var behaviourProbability = SlateProbability(behaviourLogits, slate);
                var targetCandidates = target.Candidates(state);
                var targetLogits = Logits(target, state, targetCandidates);
                var targetProbability = TargetProbability(targetCandidates, targetLogits, shown);
                long[] TargetSlate(Random r) => SlateDistribution.Sample(targetLogits, Math.Min(config.SlateSize, targetCandidates.Length), r).Select(i => targetCandidates[i]).ToArray();

                var counterfactual = environment.Respond(environment.CurrentUser, TargetSlate(random), random).Reward;
                truth.Add(counterfactual);
                var modelled = rewardModel.ExpectedRewards(state, [shown.ToArray(), .. Enumerable.Range(0, config.OffPolicyModelSlates).Select(_ => TargetSlate(modelRandom))],
                    config.Rewards);
                var before = state;
                (state, var reward, done) = environment.Step(shown, random);
                logs.Add(new LoggedDecision(reward, behaviourProbability, targetProbability, ModelReward: modelled[0], ModelValue: modelled.Skip(1).Average()));
                // Item level (Chen et al.'s top-K correction): the picked item's chance to be in each policy's slate.
                var picked = state.History.Length > before.History.Length ? state.History[^1] : -1;
                itemLogs.Add(picked < 0 ? new LoggedDecision(0, 1, 0) : new LoggedDecision(reward,
                    OffPolicyEstimators.TopKInclusion(FirstSlotProbability(behaviourLogits, candidates, picked), config.SlateSize),
                    OffPolicyEstimators.TopKInclusion(FirstSlotProbability(targetLogits, targetCandidates, picked), config.SlateSize)));
            }
        }
        // For comparison, doubly robust with the simplest reward model: the logged mean reward, for every slate.
        var baseline = logs.Average(d => d.Reward);
        var constantModel = logs.Select(d => d with { ModelReward = baseline, ModelValue = baseline }).ToList();
        var result = new OffPolicyResult(Estimate.Of(truth), OffPolicyEstimators.Ips(logs), OffPolicyEstimators.Snips(logs),
            OffPolicyEstimators.DoublyRobust(logs), Estimate.Of(logs.Select(d => d.ModelValue).ToList()), OffPolicyEstimators.DoublyRobust(constantModel),
            OffPolicyEstimators.Ips(itemLogs), Estimate.Of(logs.Select(d => d.Reward).ToList()), logs.Count);
        progress?.Line($"off-policy value of PPO per step: truth {result.Truth}  IPS {result.Ips}  SNIPS {result.Snips}  DR {result.DoublyRobust}  " +
            $"direct (simulator) {result.DirectMethod}  DR, constant model {result.DoublyRobustConstant}  top-K item IPS {result.TopKItemIps}  (logging policy {result.Logged})");
        return result;
    }

    /// <summary>π(item) of the first slot: the softmax over the candidates' logits (0 when the item is not a candidate).</summary>
    private static double FirstSlotProbability(double[] logits, long[] candidates, int item)
    {
        var position = Array.IndexOf(candidates, (long)item);
        if (position < 0)
            return 0;
        var max = logits.Max();
        return Math.Exp(logits[position] - max) / logits.Sum(l => Math.Exp(l - max));
    }

    private static double SlateProbability(double[] logits, int[] slate)
    {
        var (logProbability, _) = SlateDistribution.LogProbability(tensor(logits).unsqueeze(0), [slate]);
        return Math.Exp(logProbability.item<double>());
    }

    /// <summary>The target's probability of the logged slate: 0 when it holds an item outside the target's candidates, which it never shows.</summary>
    private static double TargetProbability(long[] candidates, double[] logits, IReadOnlyList<long> shown)
    {
        var positions = shown.Select(item => Array.IndexOf(candidates, item)).ToArray();
        return positions.Any(p => p < 0) ? 0 : SlateProbability(logits, positions);
    }

    private static JsonObject Metrics(PolicyScore[] scores, EvaluationResult offlinePpo, EvaluationResult offlineGreedy, OffPolicyResult ope,
        IReadOnlyList<PolicyIterationRecord> ppoCurve, IReadOnlyList<PolicyIterationRecord> a2cCurve)
    {
        PolicyScore Of(string name) => scores.Single(s => s.Policy == name);
        var metrics = new JsonObject
        {
            ["rl.return_policy"] = Of("PPO").Return.Mean,
            ["rl.return_policy_most_likely"] = Of("PPO, most likely slate").Return.Mean,
            ["rl.return_a2c"] = Of("A2C").Return.Mean,
            ["rl.return_greedy"] = Of("greedy").Return.Mean,
            ["rl.return_popularity"] = Of("popularity").Return.Mean,
            ["rl.return_random"] = Of("random").Return.Mean,
            ["rl.return_gain_over_greedy"] = Of("PPO").Return.Mean / Of("greedy").Return.Mean - 1,
            ["rl.hr@10_policy"] = offlinePpo.All.HitRate,
            ["rl.ndcg@10_policy"] = offlinePpo.All.Ndcg,
            ["rl.hr@10_greedy"] = offlineGreedy.All.HitRate,
            ["rl.ndcg@10_greedy"] = offlineGreedy.All.Ndcg,
            [MetricKeys.OffPolicyReward] = ope.DoublyRobust.Mean, // what the promotion gate compares: DR with the learned simulator as its reward model (the closest to the truth here)
            ["rl.ope_true_reward"] = ope.Truth.Mean,
            ["rl.ope"] = new JsonObject
            {
                ["decisions"] = ope.Decisions,
                ["truth"] = Json(ope.Truth), ["ips"] = Json(ope.Ips), ["snips"] = Json(ope.Snips), ["dr"] = Json(ope.DoublyRobust), ["direct_method"] = Json(ope.DirectMethod), ["dr_constant_model"] = Json(ope.DoublyRobustConstant), ["top_k_item_ips"] = Json(ope.TopKItemIps), ["logging_policy"] = Json(ope.Logged),
            },
            ["rl.policies"] = new JsonObject(scores.Select(s => KeyValuePair.Create(s.Policy, (JsonNode?)new JsonObject
            {
                ["return"] = Json(s.Return), ["session_length"] = Json(s.SessionLength),
            }))),
            ["rl.curve_ppo"] = Curve(ppoCurve),
            ["rl.curve_a2c"] = Curve(a2cCurve),
        };
        return metrics;

        static JsonObject Json(Estimate e) => new() { ["mean"] = e.Mean, ["ci95"] = double.IsFinite(e.HalfWidth) ? e.HalfWidth : null, ["n"] = e.Samples };
    }

    private static JsonArray Curve(IReadOnlyList<PolicyIterationRecord> curve) => new(curve.Select(r => (JsonNode)new JsonObject
    {
        ["iteration"] = r.Iteration, ["return"] = Math.Round(r.MeanReturn, 4), ["length"] = Math.Round(r.MeanLength, 2), ["value_loss"] = Math.Round(r.ValueLoss, 5),
        ["entropy"] = Math.Round(r.Entropy, 4), ["kl"] = Math.Round(r.ApproxKl, 5), ["clip_fraction"] = Math.Round(r.ClipFraction, 4),
        ["kl_to_pretrained"] = Math.Round(r.ReferenceKl, 5),
    }).ToArray());

    private string Report(PolicyScore[] scores, EvaluationResult offlinePpo, EvaluationResult offlineGreedy, OffPolicyResult ope,
        IReadOnlyList<PolicyIterationRecord> ppoCurve, IReadOnlyList<PolicyIterationRecord> a2cCurve, IReadOnlyList<PolicyIterationRecord> simulatedCurve, JsonObject fidelity,
        IReadOnlyList<FrontierPoint> frontier, EvaluationResult? greedyHonest)
    {
        string N(double value, string format = "F4") => HtmlReport.Number(value, format);
        var report = new HtmlReport("Policy optimisation",
            $"Held-out users, seeds {string.Join(", ", config.EvaluationSeeds)}, {config.EpisodesPerSeed} episodes each; slates of {config.SlateSize} from {config.Candidates} candidates; mean ± 95% interval over seeds.")
            .Table(["policy", "return per session", "session length"], scores.Select(s => (IReadOnlyList<string>)[s.Policy, s.Return.ToString(), s.SessionLength.ToString()]))
            .Heading("Offline ranking (test split)")
            .Table(["ranking", "HR@10", "NDCG@10"], [["PPO", N(offlinePpo.All.HitRate), N(offlinePpo.All.Ndcg)], ["pretrained (greedy)", N(offlineGreedy.All.HitRate), N(offlineGreedy.All.Ndcg)]])
            .Heading("Off-policy estimate of PPO's reward per step")
            .Paragraph(FormattableString.Invariant($"{ope.Decisions} decisions logged by the pretrained policy at temperature {config.BehaviourTemperature}."))
            .Table(["estimator", "value"], [
                ["truth (simulated)", ope.Truth.ToString()], ["IPS", ope.Ips.ToString()], ["SNIPS", ope.Snips.ToString()],
                ["DR (reward model: the learned simulator)", ope.DoublyRobust.ToString()], ["direct method (the learned simulator alone)", ope.DirectMethod.ToString()],
                ["DR (reward model: the logged mean)", ope.DoublyRobustConstant.ToString()], ["top-K item IPS (Chen et al.)", ope.TopKItemIps.ToString()], ["logging policy", ope.Logged.ToString()]]);
        if (frontier.Count > 0)
        {
            IReadOnlyList<string> header = ["β", "return per session", "gain over greedy", "HR@10", "HR@10 change",
                .. greedyHonest is null ? Array.Empty<string>() : ["HR@10, test item not clickbait"], "KL to pretrained (last 10 iterations)", "reward per step: truth", "doubly robust estimate"];
            report.Heading("Return against offline accuracy: PPO with a KL penalty to the pretrained policy")
                .Paragraph("Each row is a PPO policy trained with β·KL(π || π_pretrained) on the first slot; the change in HR@10 is against the pretrained model's on the same test split.")
                .Table(header, frontier.Select(p => (IReadOnlyList<string>)[N(p.Beta, "G4"), p.Score.Return.ToString(), N(p.ReturnGain, "+0.0%;-0.0%"), N(p.Offline.All.HitRate), N(p.HitRateChange, "+0.0%;-0.0%"),
                    .. greedyHonest is null || p.OfflineHonest is null ? Array.Empty<string>() : [$"{N(p.OfflineHonest.All.HitRate)} (greedy {N(greedyHonest.All.HitRate)})"],
                    N(p.KlToReference, "F3"), N(p.OpeTruth.Mean, "F3"), p.OpeDoublyRobust.ToString()]))
                .PointChart("gain in return over greedy against the change in offline HR@10, one point per β",
                    frontier.Select(p => (100 * p.HitRateChange, (double?)(100 * p.ReturnGain))), "HR@10 change (%)", "gain in return (%)");
        }
        report.Heading("Learned user simulator: fidelity to held-out logged sessions")
            .Table(["measure", "value"], fidelity.Select(f => (IReadOnlyList<string>)[f.Key,
                f.Value is JsonValue v && v.TryGetValue<double>(out var number) ? N(number, "0.####") : f.Value?.ToJsonString() ?? ""]))
            .Heading("Learning curves");
        foreach (var (name, curve) in new[] { ("PPO", ppoCurve), ("A2C", a2cCurve), ("PPO in the learned simulator", simulatedCurve) })
        {
            HtmlReport Plot(string what, Func<PolicyIterationRecord, double> value) =>
                report.LineChart($"{name}: {what}", curve.Select(r => ((double)r.Iteration, (double?)value(r))), "iteration");
            Plot("mean return per episode", r => r.MeanReturn);
            Plot("value loss", r => r.ValueLoss);
            Plot("entropy (first slot)", r => r.Entropy);
            Plot("approximate KL to the rollout policy", r => r.ApproxKl);
            Plot("KL to the pretrained policy (first slot)", r => r.ReferenceKl);
        }
        return report.ToString();
    }
}
