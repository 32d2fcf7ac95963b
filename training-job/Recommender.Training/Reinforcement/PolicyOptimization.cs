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
    public double LearningRate { get; init; } = 3e-4;
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
    long[] Candidates(TObservation observation);
    (Tensor Logits, Tensor Values) Forward(IReadOnlyList<TObservation> observations, IReadOnlyList<long[]> candidates);
    IEnumerable<TorchSharp.Modules.Parameter> Parameters();
    void Train(bool on);
}

/// <summary>One step of a rollout.</summary>
public sealed record Transition<TObservation>(TObservation Observation, long[] Candidates, int[] Slate, double LogProbability, double Value, double Reward, bool Done);

/// <summary>One iteration's learning-curve point.</summary>
public sealed record PolicyIterationRecord(int Iteration, double MeanReturn, double MeanLength, double PolicyLoss, double ValueLoss, double Entropy, double ApproxKl, double ClipFraction);

/// <summary>
/// PPO (Schulman et al. 2017) and A2C (Mnih et al. 2016) for slate recommendation, top to bottom:
/// collect episodes with the current policy; compute advantages with GAE(λ); then improve the clipped
/// surrogate (PPO) or the plain policy gradient (A2C) plus the value loss and an entropy bonus.
/// A slate of K is drawn without replacement from softmax(logits) over the actor's M candidates
/// (Plackett-Luce), so its log-probability is the sum of the K sequential choices.
/// </summary>
public sealed class PolicyOptimizer<TObservation>(PolicyOptimizationConfig config, IActorCritic<TObservation> policy, ISlateEnvironment<TObservation> environment, TextWriter? progress = null)
{
    public IReadOnlyList<PolicyIterationRecord> Train()
    {
        var random = new Random(config.Seed);
        torch.random.manual_seed(config.Seed);
        var optimizer = optim.Adam(policy.Parameters(), config.LearningRate);
        var curve = new List<PolicyIterationRecord>();
        var lambda = config.IsA2C ? 1.0 : config.Lambda;

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
            double policyLoss = 0, valueLoss = 0, entropy = 0, kl = 0, clipped = 0;
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
                    var loss = lossPolicy
                        + config.ValueCoefficient * (values - target).pow(2).mean()
                        - config.EntropyCoefficient * slateEntropy.mean();

                    optimizer.zero_grad();
                    loss.backward();
                    nn.utils.clip_grad_norm_(policy.Parameters(), config.MaxGradNorm);
                    optimizer.step();

                    using var _ = no_grad();
                    var logRatio = logProbability - oldLogProbability;
                    kl += ((logRatio.exp() - 1) - logRatio).mean().item<float>(); // the low-variance estimator k3 (Schulman 2020)
                    clipped += (logRatio.exp() - 1).abs().gt(clip).to(ScalarType.Float32).mean().item<float>();
                    policyLoss += lossPolicy.item<float>();
                    valueLoss += (values - target).pow(2).mean().item<float>();
                    entropy += slateEntropy.mean().item<float>();
                    steps++;
                }
                if (!config.IsA2C && config.TargetKl > 0 && kl / steps > config.TargetKl)
                    break;
            }
            policy.Train(false);

            var record = new PolicyIterationRecord(iteration, returns.Average(), lengths.Average(), policyLoss / steps, valueLoss / steps, entropy / steps, kl / steps, clipped / steps);
            curve.Add(record);
            progress?.WriteLine($"{config.Algorithm} iteration {iteration,3}/{config.Iterations}  return {record.MeanReturn,7:F3}  length {record.MeanLength,5:F1}  " +
                $"value loss {record.ValueLoss:F4}  entropy {record.Entropy:F3}  KL {record.ApproxKl:F4}");
        }
        return curve;
    }

    /// <summary>Runs <see cref="PolicyOptimizationConfig.EpisodesPerIteration"/> episodes, sampling slates from the policy.</summary>
    private (List<Transition<TObservation>> Rollout, List<double> Returns, List<int> Lengths) Collect(Random random)
    {
        var rollout = new List<Transition<TObservation>>();
        var returns = new List<double>();
        var lengths = new List<int>();
        for (var episode = 0; episode < config.EpisodesPerIteration; episode++)
        {
            var observation = environment.Reset(random);
            double total = 0;
            var length = 0;
            while (true)
            {
                var candidates = policy.Candidates(observation);
                var (slate, logProbability, value) = Act(observation, candidates, random);
                var (next, reward, done) = environment.Step(slate.Select(i => candidates[i]).ToList(), random);
                rollout.Add(new Transition<TObservation>(observation, candidates, slate, logProbability, value, reward, done));
                total += reward;
                length++;
                observation = next;
                if (done)
                    break;
            }
            returns.Add(total);
            lengths.Add(length);
        }
        return (rollout, returns, lengths);
    }

    private (int[] Slate, double LogProbability, double Value) Act(TObservation observation, long[] candidates, Random random)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var (logits, values) = policy.Forward([observation], [candidates]);
        var row = logits[0].to(ScalarType.Float64).cpu().data<double>().ToArray();
        var slate = SlateDistribution.Sample(row, Math.Min(environment.SlateSize, candidates.Length), random);
        var (logProbability, _) = SlateDistribution.LogProbability(logits, [slate]);
        return (slate, logProbability.item<float>(), values[0].item<float>());
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

/// <summary>The PPO objective.</summary>
public static class Losses
{
    /// <summary>
    /// -E[min(ρ A, clip(ρ, 1 - ε, 1 + ε) A)], ρ = exp(log π - log π_old). With ε = ∞ it is the plain policy
    /// gradient loss -E[ρ A], whose gradient at ρ = 1 is A2C's -E[A ∇log π].
    /// </summary>
    public static Tensor ClippedSurrogate(Tensor logProbability, Tensor oldLogProbability, Tensor advantage, double clip)
    {
        var ratio = (logProbability - oldLogProbability).exp();
        var surrogate = ratio * advantage;
        if (!double.IsPositiveInfinity(clip))
            surrogate = minimum(surrogate, ratio.clamp(1 - clip, 1 + clip) * advantage);
        return -surrogate.mean();
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
    /// entropy of the first slot's softmax [B] (the bonus that keeps exploration alive).
    /// </summary>
    public static (Tensor LogProbability, Tensor Entropy) LogProbability(Tensor logits, IReadOnlyList<int[]> slates)
    {
        var rows = new List<Tensor>();
        for (var b = 0; b < slates.Count; b++)
        {
            var row = logits[b];
            var placed = new List<long>();
            Tensor total = zeros(1, dtype: row.dtype, device: row.device).squeeze();
            foreach (var choice in slates[b])
            {
                var available = placed.Count == 0 ? row
                    : row.index_fill(0, tensor(placed.ToArray(), device: row.device), double.NegativeInfinity);
                total = total + row[choice] - available.logsumexp(0);
                placed.Add(choice);
            }
            rows.Add(total);
        }
        var first = logits.log_softmax(1);
        var entropy = -(first.exp() * first).sum(1);
        return (stack(rows), entropy);
    }
}
