using System.Text.Json;
using System.Text.Json.Nodes;
using Recommender.Data;
using Recommender.ModelContract;
using Recommender.Serving;
using Recommender.Training.Reinforcement;

namespace Recommender.Training.Pipeline;

/// <summary>
/// One run of the product's learning loop on a frozen snapshot (<c>training-job retrain</c>), every stage writing
/// its keys into the run's <c>metrics.json</c>:
/// <list type="number">
/// <item>pretrain the sequence model (and refit it), meta-learn the item generator and the user adaptation (<see cref="TrainingRun"/>);</item>
/// <item>the RL stage on the snapshot's logged decisions: simulator, PPO with a KL penalty, export (<see cref="ProductPolicyStage"/>);</item>
/// <item>judge like with like: the candidate as published and the champion being served, on the same test split
/// (offline metrics) and the same held-out sessions (off-policy estimates of return per session, with the ESS).</item>
/// </list>
/// The caller publishes the run folder; the orchestration's gate reads these figures.
/// </summary>
public sealed class RetrainPipeline(SequenceModelConfig modelConfig, PolicyStageConfig policyConfig, EvaluationProtocol protocol, JobProgress? progress = null,
    MetaLearning.MetaLearningConfig? meta = null)
{
    public async Task<JsonObject> RunAsync(InteractionDataset data, ProductLogs logs, ModelRegistry registry, string output, CancellationToken cancellationToken = default)
    {
        // 1. Pretrain (continuing from the champion's weights when it has them and the same architecture) and meta-learn.
        using var warmStart = modelConfig.WarmStart ? await WarmStart.FromChampionAsync(registry, modelConfig, progress, cancellationToken) : null;
        await new TrainingRun(modelConfig, protocol, progress, warmStart, meta).RunAsync(data, output, cancellationToken);

        // 2. RL on the logs.
        var stage = new ProductPolicyStage(policyConfig, progress);
        var championHead = warmStart is null ? null : await ProductPolicyStage.PublishedHeadAsync(registry, warmStart.Version, cancellationToken);
        var trained = stage.Train(logs, data, output, championHead);
        var metrics = Merge(output, trained.Metrics);

        // 3. Judge: the candidate as serving will run it, and the champion on the same data.
        using var champion = await ChampionEvaluation.LoadAsync(registry, cancellationToken);
        if (champion is null)
            return metrics; // the first model: nothing to compare with, nothing logged
        using var candidate = PolicyModel.Load(RunPublisher.Manifest(output, "candidate", "this run"), await File.ReadAllBytesAsync(Path.Combine(output, "policy.onnx"), cancellationToken));
        var logger = new PublishedPolicy(champion, data);
        ProductPolicyStage.WriteEvaluatedSessions(output, ProductPolicyStage.SessionsLoggedBy(trained, logger), data);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var estimates = stage.Evaluate(trained, new PublishedPolicy(candidate, data), logger);
        var championEstimates = stage.Evaluate(trained, logger, logger);
        var block = ChampionEvaluation.Measure(champion, data, protocol);
        if (estimates is not null && championEstimates is not null)
        {
            // The reward model calibrated on the champion's own sessions: c = what they realized / what the model expected
            // of them. The simulator misses what it cannot see (users tiring across sessions) by nearly the same factor for
            // both policies; scaled by c, the share of the estimate that clipped weights leave to the model errs less.
            var scale = policyConfig.CalibrateRewardModel && championEstimates.DirectMethod.Mean > 0 ? championEstimates.Logged.Mean / championEstimates.DirectMethod.Mean : 1;
            var candidateReturns = estimates.DoublyRobustWithModelScaled(scale);
            var championReturns = championEstimates.DoublyRobustWithModelScaled(scale);
            metrics = Merge(output, OffPolicyKeys(estimates, Estimate.Of(candidateReturns), scale));
            foreach (var (key, value) in OffPolicyKeys(championEstimates, Estimate.Of(championReturns), scale))
                block[key] = value?.DeepClone();
            // The two on the same sessions and random numbers: the gain is estimated from the pairs, with its own interval
            // (what the sessions share cancels; what the candidate's importance weights add does not).
            var gain = Estimate.Gain(candidateReturns, championReturns);
            metrics = Merge(output, new JsonObject
            {
                [MetricKeys.OffPolicyGain] = new JsonObject { ["mean"] = JsonNumbers.Finite(gain.Mean), ["ci95"] = JsonNumbers.Finite(gain.HalfWidth), ["sessions"] = gain.Samples },
            });
        }
        if (metrics["rl.seconds"] is JsonObject seconds)
            seconds["evaluation"] = Math.Round(clock.Elapsed.TotalSeconds, 1);
        return Merge(output, new JsonObject { [MetricKeys.Champion] = block, ["rl.seconds"] = metrics["rl.seconds"]?.DeepClone() });
    }

    /// <summary>
    /// The gate's figures of a policy's off-policy estimates: <c>rl.ope_reward</c> (the doubly robust return per session,
    /// <paramref name="gateEstimate"/>: with the reward model scaled by <paramref name="modelScale"/>), <c>rl.ope_ess</c> and
    /// <c>rl.dm_reward</c> (the reward model's own estimate, unscaled, which the doubly robust one corrects).
    /// </summary>
    private static JsonObject OffPolicyKeys(SessionValueEstimates estimates, Estimate gateEstimate, double modelScale)
    {
        var ope = estimates.ToJson();
        ope["dr_calibrated"] = new JsonObject { ["mean"] = JsonNumbers.Finite(gateEstimate.Mean), ["ci95"] = JsonNumbers.Finite(gateEstimate.HalfWidth), ["n"] = gateEstimate.Samples };
        ope["model_scale"] = JsonNumbers.Finite(modelScale);
        return new()
        {
            [MetricKeys.OffPolicyReward] = gateEstimate.Mean,
            [MetricKeys.RewardModelReturn] = estimates.DirectMethod.Mean,
            [MetricKeys.OffPolicyEffectiveSampleSize] = estimates.EffectiveSampleSize,
            ["rl.ope"] = ope,
        };
    }

    /// <summary>Adds a stage's keys to the run's metrics.json (replacing keys of the same name) and returns the whole.</summary>
    public static JsonObject Merge(string output, JsonObject stage)
    {
        var path = Path.Combine(output, "metrics.json");
        var merged = File.Exists(path) ? JsonNode.Parse(File.ReadAllText(path))!.AsObject() : new JsonObject();
        foreach (var (key, value) in stage.ToList())
            merged[key] = value?.DeepClone();
        File.WriteAllText(path, merged.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return merged;
    }
}
