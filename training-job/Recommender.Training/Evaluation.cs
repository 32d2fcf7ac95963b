using System.Text.Json.Nodes;
using Recommender.Data;
using Recommender.ModelContract;

namespace Recommender.Training;

/// <summary>Scores every item (index 1..ItemCount; index 0 unused) for a batch of users given their histories.</summary>
public interface ISequenceScorer
{
    string Name { get; }

    float[][] Score(IReadOnlyList<int> users, IReadOnlyList<int[]> histories);
}

/// <summary>
/// How models are compared, stated once and printed with every result. Defaults follow SASRec (Kang &amp;
/// McAuley 2018): leave-one-out, HR@10 and NDCG@10 against 100 negatives drawn uniformly from items the
/// user has not interacted with in training; plus the same metrics ranked against all items (the
/// user's history masked, the target kept), and a slice of cold users.
/// </summary>
public sealed record EvaluationProtocol
{
    public int K { get; init; } = 10;
    public int SampledNegatives { get; init; } = 100;
    /// <summary>Seeds the negatives: every model sees the same ones for the same user.</summary>
    public int Seed { get; init; } = 42;
    /// <summary>Evaluate a seeded sample of this many users (SASRec used 10,000 on large sets); null for all.</summary>
    public int? MaxUsers { get; init; }
    /// <summary>Cold users: at most this many known interactions before the target.</summary>
    public int ColdUserMaxHistory { get; init; } = 5;
    public int BatchSize { get; init; } = 256;
    /// <summary>
    /// Rank only among these items (null: the whole catalogue), e.g. "which of the new items": negatives
    /// are drawn from the pool (all of it when it holds fewer than <see cref="SampledNegatives"/>), and the
    /// full ranking is over the pool.
    /// </summary>
    public IReadOnlySet<int>? CandidatePool { get; init; }
    /// <summary>How <see cref="CandidatePool"/> is described in <see cref="ToString"/>.</summary>
    public string CandidatePoolName { get; init; } = "all items";

    public override string ToString() => CandidatePool is not null
        ? $"HR@{K}/NDCG@{K} among {CandidatePoolName} ({CandidatePool.Count}): vs up to {SampledNegatives} of them drawn uniformly, neither the target nor in the training history (seed {Seed}), and vs all of them (history masked); ties count against the target" :
        $"leave-one-out (last item test, second-to-last validation); HR@{K}/NDCG@{K} vs {SampledNegatives} uniform negatives, neither the target nor in the training history (seed {Seed}) " +
        $"and vs all items (history masked); ties count against the target; users: {(MaxUsers is { } m ? $"seeded sample of {m:N0}" : "all with a target")}; cold users: history <= {ColdUserMaxHistory}";
}

/// <summary>Hit rate and NDCG at K from a 0-based rank (the number of candidates ranked above the target).</summary>
public static class RankingMetrics
{
    public static double HitRate(int rank, int k) => rank < k ? 1.0 : 0.0;

    public static double Ndcg(int rank, int k) => rank < k ? 1.0 / Math.Log2(rank + 2) : 0.0;

    /// <summary>Rank of the target among candidates: those scoring higher, and ties (pessimistic).</summary>
    public static int Rank(float targetScore, IEnumerable<float> candidateScores) =>
        candidateScores.Count(s => s >= targetScore);
}

public sealed record MetricSet(double HitRate, double Ndcg, double FullHitRate, double FullNdcg, int Users)
{
    /// <summary>The four figures under their <see cref="MetricKeys"/> names, added to <paramref name="target"/> (an undefined one as null).</summary>
    public JsonObject AddTo(JsonObject target)
    {
        target[MetricKeys.HitRate] = JsonNumbers.Finite(HitRate);
        target[MetricKeys.Ndcg] = JsonNumbers.Finite(Ndcg);
        target[MetricKeys.FullHitRate] = JsonNumbers.Finite(FullHitRate);
        target[MetricKeys.FullNdcg] = JsonNumbers.Finite(FullNdcg);
        return target;
    }

    /// <summary>The set as JSON: its figures and the users they average over.</summary>
    public JsonObject ToJson()
    {
        var json = AddTo([]);
        json[MetricKeys.Users] = Users;
        return json;
    }
}

public sealed record EvaluationResult(string Model, EvaluationStage Stage, MetricSet All, MetricSet ColdUsers, double Seconds);

public static class Evaluator
{
    public static EvaluationResult Evaluate(ISequenceScorer scorer, LeaveOneOutSplit split, int itemCount, EvaluationStage stage, EvaluationProtocol? protocol = null)
    {
        protocol ??= new EvaluationProtocol();
        var started = System.Diagnostics.Stopwatch.StartNew();
        var users = split.EvaluableUsers(stage).ToList();
        if (protocol.MaxUsers is { } max && users.Count > max)
            users = users.OrderBy(u => new Random(StableSeed(protocol.Seed, u, -1)).Next()).Take(max).Order().ToList();

        var all = new Accumulator();
        var cold = new Accumulator();
        foreach (var batch in users.Chunk(protocol.BatchSize))
        {
            var histories = batch.Select(u => split.History(u, stage)).ToList();
            var scores = scorer.Score(batch, histories);
            for (var b = 0; b < batch.Length; b++)
            {
                var user = batch[b];
                var target = split.Target(user, stage);
                var userScores = scores[b];
                var t = userScores[target];

                // Sampled: SASRec's sampler (uniform, resampled while in the training history), which also never draws the target.
                var random = new Random(StableSeed(protocol.Seed, user, (int)stage));
                var rated = new HashSet<int>(split.Train[user]) { 0, target };
                var sampledRank = 0;
                if (protocol.CandidatePool is { } pool)
                {
                    var eligible = pool.Where(i => !rated.Contains(i)).Order().ToArray();
                    random.Shuffle(eligible);
                    sampledRank = eligible.Take(protocol.SampledNegatives).Count(i => userScores[i] >= t);
                }
                else
                {
                    for (var n = 0; n < protocol.SampledNegatives; n++)
                    {
                        int negative;
                        do
                            negative = random.Next(1, itemCount + 1);
                        while (rated.Contains(negative));
                        if (userScores[negative] >= t)
                            sampledRank++;
                    }
                }

                // Full: every candidate, the history masked (the target stays even if seen before).
                var seen = new HashSet<int>(histories[b]);
                var fullRank = 0;
                foreach (var i in protocol.CandidatePool ?? (IEnumerable<int>)Enumerable.Range(1, itemCount))
                {
                    if (i != target && !seen.Contains(i) && userScores[i] >= t)
                        fullRank++;
                }

                all.Add(sampledRank, fullRank, protocol.K);
                if (histories[b].Length <= protocol.ColdUserMaxHistory)
                    cold.Add(sampledRank, fullRank, protocol.K);
            }
        }
        return new EvaluationResult(scorer.Name, stage, all.Result(), cold.Result(), started.Elapsed.TotalSeconds);
    }

    /// <summary>The same in every process (HashCode.Combine is randomised per process, which would change the negatives between runs).</summary>
    private static int StableSeed(int seed, int user, int stage) => unchecked((seed * 1_000_003) ^ (user * 7_919) ^ (stage * 104_729));

    private sealed class Accumulator
    {
        private double _hr, _ndcg, _fullHr, _fullNdcg;
        private int _n;

        public void Add(int sampledRank, int fullRank, int k)
        {
            _hr += RankingMetrics.HitRate(sampledRank, k);
            _ndcg += RankingMetrics.Ndcg(sampledRank, k);
            _fullHr += RankingMetrics.HitRate(fullRank, k);
            _fullNdcg += RankingMetrics.Ndcg(fullRank, k);
            _n++;
        }

        public MetricSet Result() => _n == 0
            ? new MetricSet(double.NaN, double.NaN, double.NaN, double.NaN, 0)
            : new MetricSet(_hr / _n, _ndcg / _n, _fullHr / _n, _fullNdcg / _n, _n);
    }
}
