using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Recommender.Data;
using Recommender.ModelContract;
using static TorchSharp.torch;

namespace Recommender.Training.Reinforcement;

/// <summary>
/// Settings of the RL stage of <c>retrain</c> (<see cref="ProductPolicyStage"/>), with documented defaults; set from the
/// command line as <c>--policy.name value</c>.
/// </summary>
public sealed record PolicyStageConfig
{
    /// <summary>Whether the stage runs (else the candidate is the pretrained model, sampled at <see cref="Temperature"/>).</summary>
    public bool Enabled { get; init; } = true;
    /// <summary>Fewest logged recommendation decisions worth learning a user simulator from; with fewer the stage is skipped, saying so.</summary>
    public int MinDecisions { get; init; } = 1000;
    /// <summary>"ppo" or "a2c".</summary>
    public string Algorithm { get; init; } = "ppo";
    /// <summary>Share of logged sessions, the most recent, kept out of the simulator's fit: its fidelity and the off-policy estimates are measured on them.</summary>
    public double HeldOutShare { get; init; } = 0.3;
    /// <summary>
    /// Sessions held out at least, up to half of the logs, whatever <see cref="HeldOutShare"/> says: while the logs are few
    /// (the first retraining has one round's), the estimates' own sampling error, not the estimator's, is what keeps the
    /// gate's figure from the truth, and the simulator's few weights fit on fewer sessions as well.
    /// </summary>
    public int MinHeldOutSessions { get; init; } = 500;
    /// <summary>
    /// Held-out sessions the off-policy estimates read at most (the most recent closed ones): each decision costs simulator
    /// rollouts, and the estimates' sampling error shrinks as the square root of their number.
    /// </summary>
    public int MaxEvaluationSessions { get; init; } = 1000;
    /// <summary>Sessions the off-policy evaluation judges at once (0: one per processor).</summary>
    public int EvaluationThreads { get; init; }
    /// <summary>Items the policy chooses among (the sequence model's top not yet consumed).</summary>
    public int Candidates { get; init; } = 50;
    /// <summary>
    /// Softmax temperature over the candidates' scores. The pretrained model served at this temperature is both the
    /// reference of PPO's KL penalty and what serves when the stage is skipped, so the logs it writes cover the
    /// policies the next round will judge.
    /// </summary>
    public double Temperature { get; init; } = 0.2;
    /// <summary>Slates per session at most: a logged session that reaches it was cut there, not left.</summary>
    public int MaxSessionSteps { get; init; } = 30;
    /// <summary>What a session's events are worth (<see cref="RewardConfig.Parse"/>): clicks by default.</summary>
    public string Rewards { get; init; } = "click=1";
    public int Iterations { get; init; } = 150;
    public int EpisodesPerIteration { get; init; } = 256;
    /// <summary>
    /// β of PPO's penalty β·KL(π || π_champion): how far one round may move from the policy that logged the data. Smaller
    /// steps leave the effective sample size of the next estimate higher and gain less per round (README, closed loop).
    /// </summary>
    public double KlCoefficient { get; init; } = 0.05;
    public double HeadLearningRate { get; init; } = 3e-3;
    /// <summary>
    /// How the estimates weight a logged slate: "set" (π and μ of the slate as a set of items, for users whose answer does
    /// not depend on the order; μ recomputed from the champion, which logged the held-out sessions) or "ordered" (the
    /// exact slate, with its logged propensities).
    /// </summary>
    public string SlateWeights { get; init; } = "set";
    /// <summary>
    /// Whether the gate's doubly robust estimate scales the reward model by what the champion's held-out sessions realized
    /// over what the model expected of them (<c>rl.ope.model_scale</c>; the estimate with the model as fitted is <c>rl.ope.dr</c>).
    /// </summary>
    public bool CalibrateRewardModel { get; init; } = true;
    /// <summary>Where the doubly robust estimate clips a decision's importance weight (the unclipped estimate is reported beside it).</summary>
    public double MaxWeight { get; init; } = 5;
    /// <summary>Simulator rollouts per value the doubly robust estimate needs (two per logged decision).</summary>
    public int ValueRollouts { get; init; } = 4;
    /// <summary>The learned user simulator's fit: full-batch Adam steps for each of its models (<see cref="SimulatorConfig.Steps"/>).</summary>
    public int SimulatorSteps { get; init; } = Simulator.Steps;
    /// <summary>The simulator fit's Adam learning rate.</summary>
    public double SimulatorLearningRate { get; init; } = Simulator.LearningRate;
    /// <summary>How fast the leave model forgets the session's clicks (<see cref="SimulatorConfig.RecentClickDecay"/>).</summary>
    public double SimulatorRecentClickDecay { get; init; } = Simulator.RecentClickDecay;
    public int Seed { get; init; } = 42;

    public RewardConfig RewardWeights => RewardConfig.Parse(Rewards);

    private static readonly SimulatorConfig Simulator = new();

    /// <summary>The simulator's settings these name.</summary>
    public SimulatorConfig SimulatorSettings => new() { Steps = SimulatorSteps, LearningRate = SimulatorLearningRate, RecentClickDecay = SimulatorRecentClickDecay };

    public static PolicyStageConfig Load(IReadOnlyDictionary<string, string> overrides, System.Text.Json.Nodes.JsonObject? file = null) =>
        Settings.Load(new PolicyStageConfig(), file, overrides, ReinforcementJsonContext.Default.PolicyStageConfig);
}

/// <summary>A held-out session an off-policy estimate read: the user's id and the session's (the client's <c>sessionId</c>, else its first recommendation's id).</summary>
public sealed record EvaluatedSession(string UserId, string SessionId);

/// <summary>What the RL stage learned, for the evaluation that follows it: the simulator and the held-out sessions it is judged on.</summary>
public sealed record PolicyStageResult(JsonObject Metrics, ServingPolicy Policy, LearnedUserSimulator? Simulator, IReadOnlyList<LoggedSession> EvaluationSessions, int SlateSize);

/// <summary>
/// The RL stage of the product's own retraining, on its own logs, top to bottom:
/// <list type="number">
/// <item>enough logged decisions, or skip (the candidate is the pretrained model, sampled);</item>
/// <item>split the logged sessions: the most recent <see cref="PolicyStageConfig.HeldOutShare"/> held out;</item>
/// <item>fit the learned user simulator on the rest, and measure its fidelity on the held-out decisions;</item>
/// <item>fine-tune the policy with PPO (or A2C) in the simulator, from the pretrained model, with a KL penalty to it;</item>
/// <item>export it: the head into the ONNX graph and the manifest's policy (<see cref="SequenceActorCritic.Export"/>).</item>
/// </list>
/// Off-policy evaluation of the exported candidate, and of the champion on the same decisions, follows in
/// <see cref="Evaluate"/> once the candidate is an ONNX model serving code can run.
/// </summary>
public sealed class ProductPolicyStage(PolicyStageConfig config, JobProgress? progress = null)
{
    /// <summary>The run folder's serving policy (<see cref="ServingPolicy"/>), which the manifest carries.</summary>
    public const string PolicyFile = "policy.json";

    /// <summary>The learned head in full (<see cref="PolicyHead"/>), which the next retraining continues from.</summary>
    public const string HeadFile = "policy-head.json";

    /// <summary>
    /// The held-out sessions the off-policy estimates read (<see cref="EvaluatedSession"/>: user and session ids), published
    /// with the version so whoever audits the gate's figures can find the decisions they rest on.
    /// </summary>
    public const string EvaluationSessionsFile = "ope-sessions.json";

    /// <param name="championHead">
    /// The head of the policy being served, when it has one: PPO starts from it and is held near it, so each round is one
    /// trust-region step from the policy that logged the data (conservative policy iteration), steps add up over rounds,
    /// and the next off-policy estimate's weights stay usable. Without it, from the pretrained model (a head of zeros).
    /// </param>
    public PolicyStageResult Train(ProductLogs logs, InteractionDataset data, string runDirectory, PolicyHead? championHead = null)
    {
        var pretrainedPolicy = new ServingPolicy(config.Temperature, config.Candidates);
        var metrics = new JsonObject { ["rl.decisions"] = logs.Counts.DeepClone() };
        PolicyStageResult Skip(string reason)
        {
            progress?.Line($"RL stage skipped: {reason}");
            metrics["rl.stage"] = "skipped";
            metrics["rl.skipped_because"] = reason;
            WritePolicy(runDirectory, pretrainedPolicy);
            return new PolicyStageResult(metrics, pretrainedPolicy, null, [], logs.SlateSize);
        }

        // 1. Enough data?
        if (!config.Enabled)
            return Skip("the stage is turned off (policy.enabled false)");
        if (logs.Decisions < config.MinDecisions)
            return Skip($"{logs.Decisions} logged recommendation decisions, fewer than the {config.MinDecisions} required (policy.minDecisions)");
        var clock = Stopwatch.StartNew();

        // 2. Split: the latest sessions are held out (they come from the model now serving, as the future will).
        var heldOutCount = HeldOutCount(logs.Sessions.Count);
        var fitted = logs.Sessions.Take(logs.Sessions.Count - heldOutCount).ToList();
        var heldOut = logs.Sessions.Skip(logs.Sessions.Count - heldOutCount).ToList();

        // 3. The learned user simulator, on the pretrained encoder's frozen states.
        var encoder = SavedModel.Load(runDirectory, data, out var modelConfig);
        var states = new FrozenEncoderStates(encoder, modelConfig, data.UserFeatures);
        var split = LeaveOneOutSplit.Create(data);
        var rewards = config.RewardWeights;
        var simulator = new LearnedUserSimulator(states, data, split, config.SimulatorSettings);
        var fitSteps = fitted.SelectMany(s => s.Decisions).Select(d => d.ToStep()).ToList();
        simulator.Fit(fitSteps, engagement: rewards.ReadsEngagement);
        var fidelity = simulator.Fidelity(heldOut.SelectMany(s => s.Decisions).Select(d => d.ToStep()).ToList(), fitSteps);
        fidelity["sessions_fitted"] = fitted.Count;
        fidelity["sessions_held_out"] = heldOut.Count;
        var simulatorSeconds = clock.Elapsed.TotalSeconds;
        progress?.Line($"learned simulator from {fitSteps.Count:N0} logged decisions: {fidelity.ToJsonString()}");

        // 4. PPO (or A2C) in the simulator from the pretrained policy (with the champion's head, when it has one), held near it by the KL penalty.
        var logPopularity = new PopularityScorer(split, data.ItemCount).LogCounts();
        SequenceActorCritic Pretrained()
        {
            random.manual_seed(config.Seed);
            var actor = new SequenceActorCritic(encoder, modelConfig, data.UserFeatures, data.ItemFeatures, logPopularity, config.Candidates, config.Temperature, fineTuneEncoder: false, states);
            if (championHead is not null)
                actor.SetHead(championHead, ignoreUnknownTokens: true);
            return actor;
        }
        var reference = Pretrained();
        var policy = Pretrained();
        var users = Enumerable.Range(0, data.UserCount).Where(u => data.Sequences[u].Length > 0).ToList();
        var optimization = new PolicyOptimizationConfig
        {
            Algorithm = config.Algorithm, Iterations = config.Iterations, EpisodesPerIteration = config.EpisodesPerIteration, MinibatchSize = 128,
            ReferenceKlCoefficient = config.KlCoefficient, HeadLearningRate = config.HeadLearningRate, Seed = config.Seed,
        };
        var curve = new PolicyOptimizer<SessionState>(optimization, policy,
            () => new LearnedSessionEnvironment(simulator, data, users, rewards, logs.SlateSize, config.MaxSessionSteps), progress, reference).Train();
        var policySeconds = clock.Elapsed.TotalSeconds - simulatorSeconds;
        progress?.Line($"learned head: {policy.Head}");

        // 5. Export: the graph with the head's per-item terms, and the manifest's policy with its session terms.
        var (graph, servingPolicy) = policy.Export();
        File.WriteAllBytes(Path.Combine(runDirectory, "policy.onnx"), PolicyExporter.Export(encoder, modelConfig, graph));
        WritePolicy(runDirectory, servingPolicy);
        File.WriteAllText(Path.Combine(runDirectory, HeadFile), JsonSerializer.Serialize(policy.HeadWeights(), ReinforcementJsonContext.Default.PolicyHead));

        metrics["rl.stage"] = "trained";
        metrics["rl.started_from"] = championHead is null ? "the pretrained model" : "the champion's head";
        metrics["rl.algorithm"] = config.Algorithm;
        metrics["rl.kl_coefficient"] = config.KlCoefficient;
        metrics["rl.simulator"] = fidelity;
        metrics["rl.policy_head"] = new JsonObject
        {
            ["log_sharpness"] = policy.Head.LogSharpness, ["repetition"] = policy.Head.Repetition, ["declined"] = policy.Head.Declined,
            ["declined_affinity"] = policy.Head.DeclinedAffinity, ["popularity"] = policy.Head.Popularity,
            ["content_values"] = new JsonObject(policy.Head.ContentValues!.Select(t => KeyValuePair.Create(t.Key, (JsonNode?)Math.Round(t.Value, 4)))),
        };
        metrics["rl.curve"] = new JsonArray(curve.Select(r => (JsonNode)new JsonObject
        {
            ["iteration"] = r.Iteration, ["return"] = Math.Round(r.MeanReturn, 4), ["length"] = Math.Round(r.MeanLength, 2), ["value_loss"] = Math.Round(r.ValueLoss, 5),
            ["entropy"] = Math.Round(r.Entropy, 4), ["kl"] = Math.Round(r.ApproxKl, 5), ["kl_to_pretrained"] = Math.Round(r.ReferenceKl, 5),
        }).ToArray());
        metrics["rl.return_simulated"] = curve.TakeLast(10).Average(r => r.MeanReturn);
        metrics["rl.seconds"] = new JsonObject { ["simulator"] = Math.Round(simulatorSeconds, 1), ["policy"] = Math.Round(policySeconds, 1) };

        // The held-out sessions the estimates can read: closed, with the logging policy's probabilities.
        var evaluation = heldOut.Where(s => s.Closed && s.Decisions.All(d => d.LoggedProbability is > 0)).TakeLast(config.MaxEvaluationSessions).ToList();
        return new PolicyStageResult(metrics, servingPolicy, simulator, evaluation, logs.SlateSize);
    }

    /// <summary>How many of <paramref name="sessions"/> logged sessions, the latest, are held out of the simulator's fit (<see cref="PolicyStageConfig.MinHeldOutSessions"/>).</summary>
    public int HeldOutCount(int sessions) =>
        Math.Clamp(Math.Max((int)(sessions * config.HeldOutShare), Math.Min(config.MinHeldOutSessions, sessions / 2)), 1, Math.Max(1, sessions - 1));

    /// <summary>
    /// The off-policy estimates of a published policy's return per session on the stage's held-out sessions
    /// (<see cref="SessionOffPolicyEvaluation"/>), with the same simulator and random numbers for every policy judged.
    /// </summary>
    /// <param name="logger">The policy that logged the held-out sessions (the champion); the estimates read only the sessions it logged.</param>
    public SessionValueEstimates? Evaluate(PolicyStageResult stage, PublishedPolicy policy, PublishedPolicy logger)
    {
        var sessions = SessionsLoggedBy(stage, logger);
        if (stage.Simulator is null || sessions.Count == 0)
            return null;
        var clock = Stopwatch.StartNew();
        var estimates = new SessionOffPolicyEvaluation(stage.Simulator, config.RewardWeights, stage.SlateSize, config.MaxSessionSteps, config.ValueRollouts, config.Seed, config.MaxWeight,
                config.EvaluationThreads > 0 ? config.EvaluationThreads : Environment.ProcessorCount)
            .Evaluate(policy.At, sessions, config.SlateWeights switch
            {
                "set" => logger.At,
                "ordered" => null,
                var other => throw new ArgumentException($"policy.slateWeights is set or ordered, not '{other}'"),
            });
        progress?.Line($"off-policy return per session of {policy.Model.Version} on {estimates.Sessions} held-out sessions ({estimates.Decisions} decisions): " +
            $"DR {estimates.DoublyRobust} (unclipped {estimates.DoublyRobustUnclipped})  direct {estimates.DirectMethod}  IPS {estimates.Ips}  SNIPS {estimates.Snips:F3}  logged {estimates.Logged}  " +
            $"ESS {estimates.EffectiveSampleSize:F0} (mean weight {estimates.MeanWeight:F3})  [{clock.Elapsed.TotalSeconds:F0} s]");
        return estimates;
    }

    /// <summary>The held-out sessions <see cref="Evaluate"/> reads: those the policy judged against logged alone.</summary>
    public static IReadOnlyList<LoggedSession> SessionsLoggedBy(PolicyStageResult stage, PublishedPolicy logger) =>
        stage.EvaluationSessions.Where(s => s.Decisions.All(d => d.ModelVersion == logger.Model.Version)).ToList();

    /// <summary>The policy head <paramref name="version"/> was published with (<see cref="HeadFile"/>): null when it was not trained by RL.</summary>
    public static async Task<PolicyHead?> PublishedHeadAsync(ModelRegistry registry, string version, CancellationToken cancellationToken = default) =>
        await registry.DownloadTrainingFileAsync(version, HeadFile, cancellationToken) is { } json ? JsonSerializer.Deserialize(json, ReinforcementJsonContext.Default.PolicyHead) : null;

    /// <summary>Writes <see cref="EvaluationSessionsFile"/>: the sessions <see cref="Evaluate"/> read, by user and session id.</summary>
    public static void WriteEvaluatedSessions(string runDirectory, IEnumerable<LoggedSession> sessions, InteractionDataset data) =>
        File.WriteAllText(Path.Combine(runDirectory, EvaluationSessionsFile), JsonSerializer.Serialize(
            sessions.Select(s => new EvaluatedSession(data.UserIds[s.User], s.Key)).ToArray(), ReinforcementJsonContext.Default.EvaluatedSessionArray));

    private static void WritePolicy(string runDirectory, ServingPolicy policy) =>
        File.WriteAllText(Path.Combine(runDirectory, PolicyFile), JsonSerializer.Serialize(policy, TrainingJsonContext.Default.ServingPolicy));
}
