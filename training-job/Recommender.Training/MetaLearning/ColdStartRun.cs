using System.Text.Json.Nodes;
using Recommender.Data;

namespace Recommender.Training.MetaLearning;

/// <summary>
/// The user-cold protocol (in the style of MeLU/MAMO): a share of users is held out as new users, never
/// seen by pretraining or meta-training; each is known by their first <c>SupportItems</c> interactions
/// (the support set) and asked for the next one (the query), scored like the warm protocol (100 sampled
/// negatives and full ranking). Compared on the same users: popularity, the pretrained model reading the
/// support items as history (no adaptation), plain fine-tuning of the user vector from 0 with a fixed rate,
/// and the meta-learned adaptation.
/// </summary>
public sealed class ColdStartRun(MetaLearningConfig config, EvaluationProtocol protocol, TextWriter? progress = null)
{
    /// <summary>Whether user u is held out as a new user (a stable choice of about <see cref="MetaLearningConfig.ColdUserShare"/>).</summary>
    public bool IsColdUser(InteractionDataset data, int u) =>
        data.Sequences[u].Length > config.SupportItems && (uint)(u * 2654435761u) % 1000 < config.ColdUserShare * 1000;

    /// <summary>The data pretraining and meta-training may see: cold users' interactions removed.</summary>
    public InteractionDataset WarmPart(InteractionDataset data) =>
        data with { Sequences = data.Sequences.Select((s, u) => IsColdUser(data, u) ? [] : s).ToArray() };

    public JsonObject Run(InteractionDataset data, string pretrainedDirectory)
    {
        var warm = WarmPart(data);
        var encoder = SavedModel.Load(pretrainedDirectory, warm, out var modelConfig);
        var learner = new UserMetaLearner(encoder, modelConfig, data.UserFeatures, config, progress);

        // Tasks: every warm user's first interactions, as if they were new (training part only).
        var warmSplit = LeaveOneOutSplit.Create(warm);
        var tasks = Enumerable.Range(0, warm.UserCount).Where(u => warmSplit.Train[u].Length > config.SupportItems)
            .Select(u => learner.Task(u, warmSplit.Train[u][..config.SupportItems], warmSplit.Train[u][config.SupportItems])).ToList();
        progress?.WriteLine($"meta-training on {tasks.Count} warm users' first {config.SupportItems} interactions; {data.Sequences.Where((_, u) => IsColdUser(data, u)).Count()} users held out as new");
        var meta = learner.Train(tasks);

        // New users: support = their first SupportItems interactions, query = the next (the split's test target).
        var cold = data with { Sequences = data.Sequences.Select((s, u) => IsColdUser(data, u) ? s[..(config.SupportItems + 1)] : []).ToArray() };
        var coldSplit = LeaveOneOutSplit.Create(cold);
        var zero = new float[modelConfig.Dimension];
        var methods = new (string Key, ISequenceScorer Scorer)[]
        {
            ("popularity", new PopularityScorer(warmSplit, data.ItemCount)),
            ("pretrained", learner.Scorer("pretrained, no adaptation", new MetaParameters(zero, zero, 0))),
            ("fine_tuned", learner.Scorer("fine-tuned user vector", new MetaParameters(zero, Enumerable.Repeat((float)config.InitialRate, modelConfig.Dimension).ToArray(), config.InnerSteps))),
            ("meta_learned", learner.Scorer("meta-learned adaptation", meta)),
        };
        var results = new JsonObject();
        var table = new Dictionary<string, EvaluationResult>();
        foreach (var (key, scorer) in methods)
        {
            var result = Evaluator.Evaluate(scorer, coldSplit, data.ItemCount, EvaluationStage.Test, protocol);
            table[key] = result;
            progress?.WriteLine($"user-cold {scorer.Name,-26} HR@10 {result.All.HitRate:F4}  NDCG@10 {result.All.Ndcg:F4}  full HR@10 {result.All.FullHitRate:F4}  full NDCG@10 {result.All.FullNdcg:F4}  [{result.All.Users} users]");
            results[key] = new JsonObject
            {
                ["hr@10"] = result.All.HitRate, ["ndcg@10"] = result.All.Ndcg, ["hr@10_full"] = result.All.FullHitRate, ["ndcg@10_full"] = result.All.FullNdcg, ["users"] = result.All.Users,
            };
        }
        var best = table["meta_learned"].All;
        return new JsonObject
        {
            ["cold_users.hr@10"] = best.HitRate,
            ["cold_users.ndcg@10"] = best.Ndcg,
            ["cold_users.hr@10_full"] = best.FullHitRate,
            ["cold_users.ndcg@10_full"] = best.FullNdcg,
            ["cold_users.count"] = best.Users,
            ["cold_users.gain_over_pretrained"] = best.Ndcg / table["pretrained"].All.Ndcg - 1,
            ["cold_start"] = new JsonObject
            {
                ["protocol"] = $"user-cold: {config.ColdUserShare:P0} of users with more than {config.SupportItems} interactions held out from pretraining and meta-training; support = their first {config.SupportItems} interactions, query = the next; {protocol}",
                ["support_items"] = config.SupportItems,
                ["inner_steps"] = config.InnerSteps,
                ["meta_tasks"] = tasks.Count,
                ["user_cold"] = results,
                ["meta_parameters"] = new JsonObject { ["initial_norm"] = Math.Sqrt(meta.Initial.Sum(x => x * x)), ["mean_rate"] = meta.Rates.Average() },
            },
        };
    }
}
