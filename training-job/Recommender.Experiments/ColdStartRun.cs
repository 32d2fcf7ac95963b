using System.Text.Json.Nodes;
using Recommender.Data;
using Recommender.ModelContract;
using Recommender.Training;
using Recommender.Training.MetaLearning;
using TorchSharp;

namespace Recommender.Experiments;

/// <summary>
/// The cold-start protocols (in the style of MeLU/MAMO): warm, user-cold, item-cold and user-and-item-cold. A share of users is held out as new users and a
/// share of items as new items: pretraining, meta-training and the item generator never see either.
/// <list type="bullet">
/// <item>warm: the known users' test items after their whole history (the usual leave-one-out protocol).</item>
/// <item>user-cold: a new user known by their first <c>SupportItems</c> interactions with existing items
/// (the support set), asked for the next one (the query). Compared: popularity, the pretrained model reading
/// the support items as history (no adaptation), plain fine-tuning of the user vector from 0 with a fixed
/// rate, and the meta-learned adaptation.</item>
/// <item>item-cold: a known user's first interaction with a new item, from the history before it.
/// user-and-item-cold: the same for a new user, the new item among their first <c>SupportItems</c> + 1.
/// Compared: popularity, the new item's untrained id row (random init) + content, content alone, and the
/// generated embedding (<see cref="ItemEmbeddingGenerator"/>) + content.</item>
/// </list>
/// All scored like the warm protocol (100 sampled negatives and full ranking).
/// </summary>
public sealed class ColdStartRun(MetaLearningConfig config, EvaluationProtocol protocol, JobProgress? progress = null)
{
    /// <summary>Whether user u is held out as a new user (a stable choice of about <see cref="MetaLearningConfig.ColdUserShare"/>).</summary>
    public bool IsColdUser(InteractionDataset data, int u) =>
        WarmItems(data.Sequences[u]).Length > config.SupportItems && (uint)(u * 2654435761u) % 1000 < config.ColdUserShare * 1000;

    /// <summary>Whether item i is held out as a new item (a stable choice of about <see cref="MetaLearningConfig.ColdItemShare"/>).</summary>
    public bool IsColdItem(int item) => item > 0 && (uint)(item * 2246822519u) % 1000 < config.ColdItemShare * 1000;

    /// <summary>The data pretraining, meta-training and the generator may see: cold users and every interaction with a cold item removed.</summary>
    public InteractionDataset WarmPart(InteractionDataset data) =>
        data with { Sequences = data.Sequences.Select((s, u) => IsColdUser(data, u) ? [] : WarmItems(s)).ToArray() };

    private int[] WarmItems(int[] sequence) => sequence.Where(i => !IsColdItem(i)).ToArray();

    public JsonObject Run(InteractionDataset data, string pretrainedDirectory)
    {
        var warm = WarmPart(data);
        var encoder = SavedModel.Load(pretrainedDirectory, warm, out var modelConfig);
        var learner = new UserMetaLearner(encoder, modelConfig, data.UserFeatures, config, progress);

        // Tasks: every warm user's first interactions, as if they were new (training part only).
        var warmSplit = LeaveOneOutSplit.Create(warm);
        var tasks = learner.FirstInteractionTasks(warmSplit.Train);
        progress?.Line($"meta-training on {tasks.Count} warm users' first {config.SupportItems} interactions; {data.Sequences.Where((_, u) => IsColdUser(data, u)).Count()} users held out as new");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var meta = learner.Train(tasks);
        var secondOrderSeconds = clock.Elapsed.TotalSeconds;
        // The same meta-learning with first-order MAML's cheaper outer gradient, to measure what the exact one buys.
        clock.Restart();
        var firstOrder = new UserMetaLearner(encoder, modelConfig, data.UserFeatures, config with { FirstOrder = true }, progress).Train(tasks);
        var firstOrderSeconds = clock.Elapsed.TotalSeconds;

        // New users: support = their first SupportItems interactions with existing items, query = the next (the split's test target).
        var cold = data with { Sequences = data.Sequences.Select((s, u) => IsColdUser(data, u) ? WarmItems(s)[..(config.SupportItems + 1)] : []).ToArray() };
        var coldSplit = LeaveOneOutSplit.Create(cold);
        var zero = new float[modelConfig.Dimension];
        var methods = new (string Key, ISequenceScorer Scorer)[]
        {
            ("popularity", new PopularityScorer(warmSplit, data.ItemCount)),
            ("pretrained", learner.Scorer("pretrained, no adaptation", new UserAdaptationParameters(zero, zero, 0, config.SupportItems))),
            ("fine_tuned", learner.Scorer("fine-tuned user vector", new UserAdaptationParameters(zero, Enumerable.Repeat((float)config.InitialRate, modelConfig.Dimension).ToArray(), config.InnerSteps, config.SupportItems))),
            ("meta_learned", learner.Scorer("meta-learned adaptation", meta)),
            ("meta_learned_first_order", learner.Scorer("meta-learned, first order", firstOrder)),
        };
        var (results, table) = Compare("user-cold", methods, coldSplit, data.ItemCount);
        // Warm: the known users' own next items (the usual protocol), to see what adaptation does where history is long.
        var (warmResults, _) = Compare("warm", methods.Where(m => m.Key is "popularity" or "pretrained" or "meta_learned").ToArray(), warmSplit, data.ItemCount);
        // Known users at the same point, their first SupportItems interactions and the next (the meta-training tasks,
        // seen in pretraining): how much worse a new user is served than a known one with as few items.
        var knownFirst = warm with { Sequences = warmSplit.Train.Select(s => s.Length > config.SupportItems ? s[..(config.SupportItems + 1)] : []).ToArray() };
        var (knownFirstResults, _) = Compare("known users' first items", methods.Where(m => m.Key is "pretrained" or "meta_learned").ToArray(), LeaveOneOutSplit.Create(knownFirst), data.ItemCount);
        var best = table["meta_learned"].All;
        var metrics = new JsonObject
        {
            [MetricKeys.OfColdUsers(MetricKeys.HitRate)] = best.HitRate,
            [MetricKeys.OfColdUsers(MetricKeys.Ndcg)] = best.Ndcg,
            [MetricKeys.OfColdUsers(MetricKeys.FullHitRate)] = best.FullHitRate,
            [MetricKeys.OfColdUsers(MetricKeys.FullNdcg)] = best.FullNdcg,
            ["cold_users.count"] = best.Users,
            ["cold_users.gain_over_pretrained"] = best.Ndcg / table["pretrained"].All.Ndcg - 1,
            ["cold_start"] = new JsonObject
            {
                ["protocol"] = $"user-cold: {config.ColdUserShare:P0} of users with more than {config.SupportItems} interactions held out from pretraining and meta-training; support = their first {config.SupportItems} interactions, query = the next; {protocol}",
                ["support_items"] = config.SupportItems,
                ["inner_steps"] = config.InnerSteps,
                ["meta_tasks"] = tasks.Count,
                ["meta_training_seconds"] = secondOrderSeconds,
                ["meta_training_seconds_first_order"] = firstOrderSeconds,
                ["warm"] = warmResults,
                ["known_users_first_items"] = knownFirstResults,
                ["user_cold"] = results,
                ["meta_parameters"] = new JsonObject { ["initial_norm"] = Math.Sqrt(meta.Initial.Sum(x => x * x)), ["mean_rate"] = meta.Rates.Average() },
            },
        };
        ItemCold(data, warmSplit, encoder, modelConfig, metrics);
        return metrics;
    }

    /// <summary>Trains the item generator on warm items, then compares the ways of scoring new items for known and new users; adds cold_items.* to the metrics.</summary>
    private void ItemCold(InteractionDataset data, LeaveOneOutSplit warmSplit, SasRecModel encoder, SequenceModelConfig modelConfig, JsonObject metrics)
    {
        using var scope = torch.NewDisposeScope();
        encoder.eval();
        using var noGrad = torch.no_grad();
        var content = encoder.ContentVectors();
        if (content is null)
        {
            progress?.Line("item-cold: the data has no item content, so a new item has nothing to be scored from; skipped");
            return;
        }
        var items = encoder.ItemVectors().detach();
        content = content.detach();
        var generator = new ItemEmbeddingGenerator(modelConfig.Dimension);
        using (torch.enable_grad())
            ItemGeneratorTraining.Fit(generator, encoder, modelConfig, data.UserFeatures, warmSplit.Train, torch.CPU, config, progress);

        var coldItems = Enumerable.Range(1, data.ItemCount).Where(IsColdItem).Select(i => (long)i).ToArray();
        var index = torch.tensor(coldItems);
        var contentOnly = items.index_copy(0, index, content.index_select(0, index));
        var generated = generator.ItemTable(items, content, coldItems);
        var methods = new[] { "popularity", "random_init", "content_only", "generated" }.Zip(new ISequenceScorer[]
        {
            new PopularityScorer(warmSplit, data.ItemCount),
            new SasRecScorer(encoder, modelConfig, data.UserFeatures, torch.CPU, "random-init id + content", items),
            new SasRecScorer(encoder, modelConfig, data.UserFeatures, torch.CPU, "content only", contentOnly),
            new SasRecScorer(encoder, modelConfig, data.UserFeatures, torch.CPU, "generated id + content", generated),
        }).ToArray();

        // Queries: each user's first interaction with a new item, after at least two with existing ones; new users only within their first SupportItems + 1.
        int[] Query(int[] s, int maxPosition)
        {
            var p = Array.FindIndex(s, IsColdItem);
            return p >= 2 && p <= maxPosition ? s[..(p + 1)] : [];
        }
        var knownUsers = data with { Sequences = data.Sequences.Select((s, u) => IsColdUser(data, u) ? [] : Query(s, int.MaxValue)).ToArray() };
        var newUsers = data with { Sequences = data.Sequences.Select((s, u) => IsColdUser(data, u) ? Query(s, config.SupportItems) : []).ToArray() };
        var amongNewItems = protocol with { CandidatePool = coldItems.Select(i => (int)i).ToHashSet(), CandidatePoolName = "the new items" };
        var (itemCold, itemTable) = Compare("item-cold", methods, LeaveOneOutSplit.Create(knownUsers), data.ItemCount);
        var (itemColdAmongNew, _) = Compare("item-cold among new items", methods, LeaveOneOutSplit.Create(knownUsers), data.ItemCount, amongNewItems);
        var (bothCold, _) = Compare("user-and-item-cold", methods, LeaveOneOutSplit.Create(newUsers), data.ItemCount);

        var best = itemTable["generated"].All;
        metrics["cold_items.hr@10"] = best.HitRate;
        metrics["cold_items.ndcg@10"] = best.Ndcg;
        metrics["cold_items.hr@10_full"] = best.FullHitRate;
        metrics["cold_items.ndcg@10_full"] = best.FullNdcg;
        metrics["cold_items.count"] = coldItems.Length;
        metrics["cold_items.queries"] = best.Users;
        var coldStart = metrics["cold_start"]!.AsObject();
        coldStart["item_protocol"] = $"item-cold: {config.ColdItemShare:P0} of items ({coldItems.Length}) held out (every interaction with them removed from pretraining and generator training); " +
            $"query = a known user's first interaction with a new item after at least 2 with existing ones, history = those before it; user-and-item-cold: the same for new users, the new item among their first {config.SupportItems + 1}; {protocol}";
        coldStart["item_cold"] = itemCold;
        coldStart["item_cold_among_new_items"] = itemColdAmongNew;
        coldStart["item_cold_among_new_items_protocol"] = amongNewItems.ToString();
        coldStart["user_and_item_cold"] = bothCold;
    }

    /// <summary>Evaluates each method on one cold-start state; prints and returns the metric sets by key.</summary>
    private (JsonObject Results, Dictionary<string, EvaluationResult> Table) Compare(string state, (string Key, ISequenceScorer Scorer)[] methods, LeaveOneOutSplit split, int itemCount, EvaluationProtocol? candidates = null)
    {
        var results = new JsonObject();
        var table = new Dictionary<string, EvaluationResult>();
        foreach (var (key, scorer) in methods)
        {
            var result = Evaluator.Evaluate(scorer, split, itemCount, EvaluationStage.Test, candidates ?? protocol);
            table[key] = result;
            progress?.Line($"{state} {scorer.Name,-26} HR@10 {result.All.HitRate:F4}  NDCG@10 {result.All.Ndcg:F4}  full HR@10 {result.All.FullHitRate:F4}  full NDCG@10 {result.All.FullNdcg:F4}  [{result.All.Users} users]");
            results[key] = result.All.ToJson();
        }
        return (results, table);
    }
}
