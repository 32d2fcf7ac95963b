using TorchSharp;
using static TorchSharp.torch;

namespace Recommender.Training.Reinforcement;

/// <summary>
/// Hyper-parameters of policy optimisation, with documented defaults (those of the PPO paper's Atari and
/// MuJoCo settings where they apply). <see cref="Algorithm"/> "a2c" turns the same loop into A2C: one pass
/// over each rollout, no clipping, no KL stop.
/// </summary>
public sealed record PolicyOptimizationConfig
{
    /// <summary>"ppo" (clipped surrogate, several epochs of minibatches) or "a2c" (one full-batch step per rollout).</summary>
    public string Algorithm { get; init; } = "ppo";
    public int Iterations { get; init; } = 40;
    /// <summary>Episodes collected with the current policy per iteration (one rollout).</summary>
    public int EpisodesPerIteration { get; init; } = 32;
    /// <summary>Episodes run side by side, each in an environment of its own, so the policy acts on them in one batch.</summary>
    public int ParallelEpisodes { get; init; } = 32;
    public double Gamma { get; init; } = 0.95;
    /// <summary>GAE(λ); A2C uses λ = 1 (n-step returns over the rollout).</summary>
    public double Lambda { get; init; } = 0.95;
    /// <summary>PPO's ε: the ratio is clipped to [1 - ε, 1 + ε].</summary>
    public double ClipRange { get; init; } = 0.2;
    public double ValueCoefficient { get; init; } = 0.5;
    public double EntropyCoefficient { get; init; } = 0.01;
    /// <summary>PPO passes over each rollout.</summary>
    public int Epochs { get; init; } = 4;
    public int MinibatchSize { get; init; } = 256;
    /// <summary>Stop the epochs of an iteration once the approximate KL to the rollout policy exceeds this (0: never).</summary>
    public double TargetKl { get; init; } = 0.05;
    /// <summary>
    /// β of the penalty β·KL(π || π_ref) on the first slot's distribution, π_ref the policy optimisation started from
    /// (the pretrained ranking): how far the policy may move from what the logs taught, as in RLHF (Ziegler et al.
    /// 2019). 0 (the default): no penalty. It trades long-term return for offline accuracy, and keeps the
    /// importance weights of off-policy evaluation on the pretrained policy's logs from degenerating.
    /// </summary>
    public double ReferenceKlCoefficient { get; init; }
    /// <summary>Adam's learning rate for the pretrained parts of the policy (the sequence encoder).</summary>
    public double LearningRate { get; init; } = 3e-4;
    /// <summary>Adam's learning rate for the parts that start new: the actor's head and the critic (<see cref="IActorCritic{T}.NewParameters"/>).</summary>
    public double HeadLearningRate { get; init; } = 3e-3;
    public double MaxGradNorm { get; init; } = 0.5;
    public int Seed { get; init; } = 42;

    public bool IsA2C => string.Equals(Algorithm, "a2c", StringComparison.OrdinalIgnoreCase);
}

/// <summary>An episodic environment that shows a slate per step. Observations are whatever the actor reads.</summary>
public interface ISlateEnvironment<TObservation>
{
    int SlateSize { get; }
    TObservation Reset(Random random);
    /// <summary>Shows the slate (action ids); returns the reward and whether the episode ended.</summary>
    (TObservation Next, double Reward, bool Done) Step(IReadOnlyList<long> slate, Random random);
}

/// <summary>
/// Actor and critic over a batch of observations: candidate actions per observation (the actor's own
/// shortlist), the logits over those candidates [B, M] and the state values [B].
/// </summary>
public interface IActorCritic<TObservation>
{
    /// <summary>Each observation's candidate actions (the same number for every one).</summary>
    long[][] Candidates(IReadOnlyList<TObservation> observations);
    (Tensor Logits, Tensor Values) Forward(IReadOnlyList<TObservation> observations, IReadOnlyList<long[]> candidates);
    /// <summary>Everything policy optimisation trains.</summary>
    IEnumerable<TorchSharp.Modules.Parameter> Parameters();
    /// <summary>Of those, the ones that start new rather than pretrained (trained at the head's learning rate).</summary>
    IEnumerable<TorchSharp.Modules.Parameter> NewParameters() => [];
    void Train(bool on);
}

/// <summary>One step of a rollout.</summary>
/// <param name="ReferenceLogits">The reference policy's logits over the candidates, when the update penalises the distance to it.</param>
public sealed record Transition<TObservation>(TObservation Observation, long[] Candidates, int[] Slate, double LogProbability, double Value, double Reward, bool Done, float[]? ReferenceLogits = null);

/// <summary>One iteration's learning-curve point.</summary>
/// <param name="ReferenceKl">KL(π || π_ref) of the first slot, over the rollout (0 without a reference).</param>
public sealed record PolicyIterationRecord(int Iteration, double MeanReturn, double MeanLength, double PolicyLoss, double ValueLoss, double Entropy, double ApproxKl, double ClipFraction, double ReferenceKl = 0);

/// <summary>
/// PPO (Schulman et al. 2017) and A2C (Mnih et al. 2016) for slate recommendation, top to bottom:
/// collect episodes with the current policy; compute advantages with GAE(λ); then improve the clipped
/// surrogate (PPO) or the plain policy gradient (A2C) plus the value loss and an entropy bonus, and, when
/// its β is above 0, a KL penalty to the policy training started from (the loss in step 3 is all of it).
/// A slate of K is drawn without replacement from softmax(logits) over the actor's M candidates
/// (Plackett-Luce), so its log-probability is the sum of the K sequential choices.
/// </summary>
/// <param name="environments">Makes one environment per parallel episode (<see cref="PolicyOptimizationConfig.ParallelEpisodes"/>).</param>
/// <param name="reference">π_ref of <see cref="PolicyOptimizationConfig.ReferenceKlCoefficient"/> (not trained): needed when that is above 0.</param>
public sealed class PolicyOptimizer<TObservation>(PolicyOptimizationConfig config, IActorCritic<TObservation> policy, Func<ISlateEnvironment<TObservation>> environments,
    JobProgress? progress = null, IActorCritic<TObservation>? reference = null)
{
    private readonly IActorCritic<TObservation>? _reference = config.ReferenceKlCoefficient > 0
        ? reference ?? throw new ArgumentException("a KL penalty needs the reference policy", nameof(reference))
        : null;
    private readonly int slateSize = environments().SlateSize;

    public IReadOnlyList<PolicyIterationRecord> Train()
    {
        var random = new Random(config.Seed);
        torch.random.manual_seed(config.Seed);
        // The pretrained parameters learn at LearningRate, the new head and critic at HeadLearningRate.
        var fresh = policy.NewParameters().ToHashSet();
        var optimizer = optim.Adam(new[]
        {
            (Parameters: policy.Parameters().Where(p => !fresh.Contains(p)).ToList(), Rate: config.LearningRate),
            (Parameters: fresh.ToList(), Rate: config.HeadLearningRate),
        }.Where(g => g.Parameters.Count > 0).Select(g => new TorchSharp.Modules.Adam.ParamGroup(g.Parameters, g.Rate, 0.9, 0.999, 1e-8, 0, false, false)), config.LearningRate);
        var curve = new List<PolicyIterationRecord>();
        var lambda = config.IsA2C ? 1.0 : config.Lambda;
        using var stage = progress?.Begin($"{config.Algorithm} iteration", config.Iterations, lineEvery: 10);
        using Scalar valueCoefficient = config.ValueCoefficient, entropyCoefficient = config.EntropyCoefficient, klCoefficient = config.ReferenceKlCoefficient; // held for the run (see TorchScalars)

        for (var iteration = 1; iteration <= config.Iterations; iteration++)
        {
            // 1. Rollout: episodes with the current (stochastic) policy.
            var (rollout, returns, lengths) = Collect(random);

            // 2. Advantages: GAE(λ) over each episode; the critic's targets are advantage + value.
            var advantages = Advantages.Gae(rollout.Select(t => t.Reward).ToArray(), rollout.Select(t => t.Value).ToArray(),
                rollout.Select(t => t.Done).ToArray(), config.Gamma, lambda);
            var targets = advantages.Select((a, i) => a + rollout[i].Value).ToArray();
            var normalized = Advantages.Normalize(advantages);

            // 3. Improve: PPO several epochs of minibatches with a KL stop; A2C one step on the whole rollout.
            var epochs = config.IsA2C ? 1 : config.Epochs;
            var minibatch = config.IsA2C ? rollout.Count : config.MinibatchSize;
            var clip = config.IsA2C ? double.PositiveInfinity : config.ClipRange;
            using Scalar clipRange = clip;
            double policyLoss = 0, valueLoss = 0, entropy = 0, kl = 0, clipped = 0, referenceKl = 0;
            var steps = 0;
            policy.Train(true);
            for (var epoch = 0; epoch < epochs; epoch++)
            {
                foreach (var batch in Enumerable.Range(0, rollout.Count).OrderBy(_ => random.Next()).Chunk(minibatch))
                {
                    using var scope = NewDisposeScope();
                    var items = batch.Select(i => rollout[i]).ToList();
                    var (logits, values) = policy.Forward(items.Select(t => t.Observation).ToList(), items.Select(t => t.Candidates).ToList());
                    var (logProbability, slateEntropy) = SlateDistribution.LogProbability(logits, items.Select(t => t.Slate).ToList());
                    var oldLogProbability = tensor(items.Select(t => t.LogProbability).ToArray(), ScalarType.Float32);
                    var advantage = tensor(batch.Select(i => normalized[i]).ToArray(), ScalarType.Float32);
                    var target = tensor(batch.Select(i => targets[i]).ToArray(), ScalarType.Float32);

                    var lossPolicy = Losses.ClippedSurrogate(logProbability, oldLogProbability, advantage, clip);
                    var klToReference = _reference is null ? zeros(1) : Losses.KlDivergence(logits, TorchArrays.Copy(items.SelectMany(t => t.ReferenceLogits!).ToArray(), logits.shape));
                    // L_clip + c_v L_value - c_e H + β KL(π || π_ref), in that order (Plus is + with a held Scalar: TorchScalars)
                    var loss = (lossPolicy.Plus(valueCoefficient * (values - target).pow(TorchScalars.Two).mean()) - entropyCoefficient * slateEntropy.mean())
                        .Plus(klCoefficient * klToReference.mean());

                    optimizer.zero_grad();
                    loss.backward();
                    nn.utils.clip_grad_norm_(policy.Parameters(), config.MaxGradNorm);
                    optimizer.StepWithoutCollection();

                    using var _ = no_grad();
                    var logRatio = logProbability - oldLogProbability;
                    kl += ((logRatio.exp() - TorchScalars.One) - logRatio).mean().item<float>(); // the low-variance estimator k3 (Schulman 2020)
                    clipped += (logRatio.exp() - TorchScalars.One).abs().gt(clipRange).to(ScalarType.Float32).mean().item<float>();
                    policyLoss += lossPolicy.item<float>();
                    valueLoss += (values - target).pow(TorchScalars.Two).mean().item<float>();
                    entropy += slateEntropy.mean().item<float>();
                    referenceKl += klToReference.mean().item<float>();
                    steps++;
                }
                if (!config.IsA2C && config.TargetKl > 0 && kl / steps > config.TargetKl)
                    break;
            }
            policy.Train(false);

            var record = new PolicyIterationRecord(iteration, returns.Average(), lengths.Average(), policyLoss / steps, valueLoss / steps, entropy / steps, kl / steps, clipped / steps, referenceKl / steps);
            curve.Add(record);
            stage?.Step(iteration, $"return {record.MeanReturn,7:F3}  length {record.MeanLength,5:F1}  " +
                $"value loss {record.ValueLoss:F4}  entropy {record.Entropy:F3}  KL {record.ApproxKl:F4}{(_reference is null ? "" : $"  KL to reference {record.ReferenceKl:F3}")}");
        }
        return curve;
    }

    /// <summary>
    /// Runs <see cref="PolicyOptimizationConfig.EpisodesPerIteration"/> episodes, sampling slates from the policy,
    /// <see cref="PolicyOptimizationConfig.ParallelEpisodes"/> at a time so that the policy scores them in one batch
    /// (vectorised environments, as in CleanRL). Each finished episode joins the rollout whole, so episodes lie end
    /// to end as the advantages expect.
    /// </summary>
    private (List<Transition<TObservation>> Rollout, List<double> Returns, List<int> Lengths) Collect(Random random)
    {
        var rollout = new List<Transition<TObservation>>();
        var returns = new List<double>();
        var lengths = new List<int>();
        var lanes = Enumerable.Range(0, Math.Min(config.ParallelEpisodes, config.EpisodesPerIteration)).Select(_ => environments()).ToArray();
        var observations = lanes.Select(lane => lane.Reset(random)).ToArray();
        var episodes = lanes.Select(_ => new List<Transition<TObservation>>()).ToArray();
        var active = Enumerable.Range(0, lanes.Length).ToList();
        var started = lanes.Length;
        while (active.Count > 0)
        {
            var steps = Act(active.Select(l => observations[l]).ToList(), random);
            foreach (var (lane, (candidates, slate, logProbability, value, referenceLogits)) in active.Zip(steps).ToList())
            {
                var (next, reward, done) = lanes[lane].Step(slate.Select(i => candidates[i]).ToList(), random);
                episodes[lane].Add(new Transition<TObservation>(observations[lane], candidates, slate, logProbability, value, reward, done, referenceLogits));
                observations[lane] = next;
                if (!done)
                    continue;
                rollout.AddRange(episodes[lane]);
                returns.Add(episodes[lane].Sum(t => t.Reward));
                lengths.Add(episodes[lane].Count);
                episodes[lane].Clear();
                if (started++ < config.EpisodesPerIteration)
                    observations[lane] = lanes[lane].Reset(random);
                else
                    active.Remove(lane);
            }
        }
        return (rollout, returns, lengths);
    }

    /// <summary>
    /// One step of the current policy for a batch of observations: each one's candidates, the slate drawn, its
    /// log-probability and the state value, and the reference policy's logits over the same candidates (when there is one).
    /// </summary>
    private List<(long[] Candidates, int[] Slate, double LogProbability, double Value, float[]? ReferenceLogits)> Act(IReadOnlyList<TObservation> observations, Random random)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var candidates = policy.Candidates(observations);
        var (logits, values) = policy.Forward(observations, candidates);
        var rows = logits.to(ScalarType.Float64).cpu();
        var slates = candidates.Select((c, b) => SlateDistribution.Sample(rows[b].data<double>().ToArray(), Math.Min(slateSize, c.Length), random)).ToList();
        var logProbabilities = SlateDistribution.LogProbability(logits, slates).LogProbability.to(ScalarType.Float64).cpu().data<double>().ToArray();
        var valueOf = values.to(ScalarType.Float64).cpu().data<double>().ToArray();
        var referenceLogits = _reference?.Forward(observations, candidates).Logits.cpu();
        return candidates.Select((c, b) => (c, slates[b], logProbabilities[b], valueOf[b], referenceLogits?[b].data<float>().ToArray())).ToList();
    }
}

/// <summary>Generalised advantage estimation (Schulman et al. 2016).</summary>
public static class Advantages
{
    /// <summary>
    /// A_t = Σ_k (γλ)^k δ_{t+k}, δ_t = r_t + γ V(s_{t+1}) (1 - done_t) - V(s_t), over consecutive
    /// episodes laid end to end (<paramref name="done"/> marks each episode's last step; the value after it is 0).
    /// </summary>
    public static double[] Gae(double[] rewards, double[] values, bool[] done, double gamma, double lambda)
    {
        var advantages = new double[rewards.Length];
        double next = 0, nextValue = 0;
        for (var t = rewards.Length - 1; t >= 0; t--)
        {
            var continues = done[t] ? 0.0 : 1.0;
            var delta = rewards[t] + gamma * nextValue * continues - values[t];
            next = delta + gamma * lambda * continues * next;
            advantages[t] = next;
            nextValue = values[t];
        }
        return advantages;
    }

    public static double[] Normalize(double[] x)
    {
        var mean = x.Average();
        var std = Math.Sqrt(x.Sum(v => (v - mean) * (v - mean)) / Math.Max(1, x.Length));
        return x.Select(v => (v - mean) / (std + 1e-8)).ToArray();
    }
}

/// <summary>The PPO objective, and the distance to a reference policy.</summary>
public static class Losses
{
    /// <summary>KL(softmax(logits) || softmax(referenceLogits)) per row [B]: the exact divergence of the first slot's distributions.</summary>
    public static Tensor KlDivergence(Tensor logits, Tensor referenceLogits)
    {
        var logP = logits.log_softmax(1);
        return (logP.exp() * (logP - referenceLogits.log_softmax(1))).sum(1);
    }

    /// <summary>
    /// -E[min(ρ A, clip(ρ, 1 - ε, 1 + ε) A)], ρ = exp(log π - log π_old). With ε = ∞ it is the plain policy
    /// gradient loss -E[ρ A], whose gradient at ρ = 1 is A2C's -E[A ∇log π].
    /// </summary>
    public static Tensor ClippedSurrogate(Tensor logProbability, Tensor oldLogProbability, Tensor advantage, double clip)
    {
        var ratio = (logProbability - oldLogProbability).exp();
        var surrogate = ratio * advantage;
        if (double.IsPositiveInfinity(clip))
            return -surrogate.mean();
        using Scalar lower = 1 - clip, upper = 1 + clip; // held until the op has read them (see TorchScalars)
        return -minimum(surrogate, ratio.clamp(lower, upper) * advantage).mean();
    }
}

/// <summary>A slate of K drawn without replacement from softmax(logits) (Plackett-Luce).</summary>
public static class SlateDistribution
{
    /// <summary>Draws K distinct candidate positions, each with probability proportional to exp(logit) among those left.</summary>
    public static int[] Sample(double[] logits, int k, Random random)
    {
        var left = Enumerable.Range(0, logits.Length).ToList();
        var slate = new int[k];
        for (var slot = 0; slot < k; slot++)
        {
            var max = left.Max(i => logits[i]);
            var weights = left.Select(i => Math.Exp(logits[i] - max)).ToArray();
            var u = random.NextDouble() * weights.Sum();
            var pick = 0;
            while (pick < weights.Length - 1 && (u -= weights[pick]) > 0)
                pick++;
            slate[slot] = left[pick];
            left.RemoveAt(pick);
        }
        return slate;
    }

    /// <summary>
    /// log P(slate) = Σ_j [logit(s_j) - logsumexp(logits of candidates not yet placed)] per row [B], and the
    /// entropy of the first slot's softmax [B] (the bonus that keeps exploration alive). Slates are all K long.
    /// </summary>
    public static (Tensor LogProbability, Tensor Entropy) LogProbability(Tensor logits, IReadOnlyList<int[]> slates)
    {
        var (rows, candidates, k) = (slates.Count, logits.shape[1], slates[0].Length);
        var chosen = tensor(slates.SelectMany(s => s.Select(c => (long)c)).ToArray(), device: logits.device).view(rows, k);
        // placed[b, j, m] > 0: candidate m went into one of the slots before j of row b.
        var inSlot = nn.functional.one_hot(chosen, candidates);
        var placed = inSlot.cumsum(1) - inSlot;
        var left = logits.unsqueeze(1).expand(rows, k, candidates).masked_fill(placed.gt(TorchScalars.Zero), TorchScalars.NegativeInfinity);
        var logProbability = (logits.gather(1, chosen) - left.logsumexp(2)).sum(1);
        var first = logits.log_softmax(1);
        var entropy = -(first.exp() * first).sum(1);
        return (logProbability, entropy);
    }
}
