using Recommender.Data;
using Recommender.Training;

namespace Recommender.Training.Tests;

[Trait("Kind", "Unit")]
public sealed class EvaluationTests
{
    [Theory]
    [InlineData(0, 1.0, 1.0)]
    [InlineData(1, 1.0, 0.63092975357145753)] // 1 / log2(3)
    [InlineData(9, 1.0, 0.28906482631788782)] // 1 / log2(11)
    [InlineData(10, 0.0, 0.0)]
    public void Hit_rate_and_ndcg_at_10_from_a_rank(int rank, double hitRate, double ndcg)
    {
        Assert.Equal(hitRate, RankingMetrics.HitRate(rank, 10));
        Assert.Equal(ndcg, RankingMetrics.Ndcg(rank, 10), 12);
    }

    [Fact]
    public void Ties_count_against_the_target()
    {
        Assert.Equal(2, RankingMetrics.Rank(0.5f, [0.1f, 0.5f, 0.9f]));
    }

    /// <summary>A scorer that puts given scores on the target, on training-history items and on the rest.</summary>
    private sealed class RiggedScorer(LeaveOneOutSplit split, EvaluationStage stage, int items, float target, float history, float others) : ISequenceScorer
    {
        public string Name => "rigged";

        public float[][] Score(IReadOnlyList<int> users, IReadOnlyList<int[]> histories) =>
            users.Select(u =>
            {
                var s = Enumerable.Repeat(others, items + 1).ToArray();
                foreach (var i in split.Train[u])
                    s[i] = history;
                s[split.Target(u, stage)] = target;
                return s;
            }).ToArray();
    }

    private static (InteractionDataset Data, LeaveOneOutSplit Split) World()
    {
        var world = new SyntheticWorld(new SyntheticWorldOptions { Users = 120, Items = 300, Seed = 5 });
        var data = world.ToDataset(world.GenerateHistory(DateTimeOffset.UnixEpoch.AddYears(50)));
        return (data, LeaveOneOutSplit.Create(data));
    }

    [Fact]
    public void An_oracle_scores_one_and_its_opposite_zero()
    {
        var (data, split) = World();

        var oracle = Evaluator.Evaluate(new RiggedScorer(split, EvaluationStage.Test, data.ItemCount, 1, 0, 0), split, data.ItemCount, EvaluationStage.Test);
        var worst = Evaluator.Evaluate(new RiggedScorer(split, EvaluationStage.Test, data.ItemCount, -1, 0, 0), split, data.ItemCount, EvaluationStage.Test);

        Assert.Equal((1.0, 1.0, 1.0, 1.0), (oracle.All.HitRate, oracle.All.Ndcg, oracle.All.FullHitRate, oracle.All.FullNdcg));
        Assert.Equal((0.0, 0.0), (worst.All.HitRate, worst.All.FullHitRate));
        Assert.Equal(split.EvaluableUsers(EvaluationStage.Test).Count(), oracle.All.Users);
    }

    [Fact]
    public void Training_history_is_never_a_sampled_negative_nor_ranked_in_full()
    {
        var (data, split) = World();

        // History items outscore the target: if any were a negative (or unmasked), the target would lose rank 0.
        var result = Evaluator.Evaluate(new RiggedScorer(split, EvaluationStage.Test, data.ItemCount, 1, 5, 0), split, data.ItemCount, EvaluationStage.Test);

        Assert.Equal(1.0, result.All.HitRate);
        Assert.Equal(1.0, result.All.Ndcg);
        Assert.Equal(1.0, result.All.FullNdcg);
    }

    [Fact]
    public void A_candidate_pool_ranks_the_target_among_the_pool_only()
    {
        var (data, split) = World();
        var pool = Enumerable.Range(1, 20).ToHashSet();

        // Items outside the pool outscore the target; pool items score below it.
        var scorer = new PooledScorer(split, data.ItemCount, pool);
        var amongPool = Evaluator.Evaluate(scorer, split, data.ItemCount, EvaluationStage.Test, new EvaluationProtocol { CandidatePool = pool });
        var amongAll = Evaluator.Evaluate(scorer, split, data.ItemCount, EvaluationStage.Test);

        Assert.Equal((1.0, 1.0), (amongPool.All.HitRate, amongPool.All.FullNdcg));
        Assert.Equal((0.0, 0.0), (amongAll.All.HitRate, amongAll.All.FullHitRate));
    }

    private sealed class PooledScorer(LeaveOneOutSplit split, int items, IReadOnlySet<int> pool) : ISequenceScorer
    {
        public string Name => "pooled";

        public float[][] Score(IReadOnlyList<int> users, IReadOnlyList<int[]> histories) =>
            users.Select(u =>
            {
                var s = Enumerable.Range(0, items + 1).Select(i => pool.Contains(i) ? 0f : 5f).ToArray();
                s[split.Target(u, EvaluationStage.Test)] = 1f;
                return s;
            }).ToArray();
    }

    [Fact]
    public void Every_model_sees_the_same_negatives_and_a_user_sample_is_seeded()
    {
        var (data, split) = World();
        var protocol = new EvaluationProtocol { MaxUsers = 50, Seed = 3 };
        var pop = new PopularityScorer(split, data.ItemCount);

        var a = Evaluator.Evaluate(pop, split, data.ItemCount, EvaluationStage.Test, protocol);
        var b = Evaluator.Evaluate(pop, split, data.ItemCount, EvaluationStage.Test, protocol);

        Assert.Equal(50, a.All.Users);
        Assert.Equal(a.All, b.All);
    }

    [Fact]
    public void Cold_users_are_those_with_at_most_five_known_interactions()
    {
        var data = new InteractionDataset("toy", ["", "a", "b", "c", "d", "e", "f", "g", "h", "i"], ["cold", "warm"],
            [[1, 2, 3, 4], [1, 2, 3, 4, 5, 6, 7, 8, 9]]);
        var split = LeaveOneOutSplit.Create(data);

        var result = Evaluator.Evaluate(new PopularityScorer(split, data.ItemCount), split, data.ItemCount, EvaluationStage.Test, new EvaluationProtocol { SampledNegatives = 2 });

        Assert.Equal(2, result.All.Users);
        Assert.Equal(1, result.ColdUsers.Users);
    }

    [Fact]
    public void Baselines_rank_what_they_should()
    {
        var data = new InteractionDataset("toy", ["", "a", "b", "c", "d"], ["u0", "u1", "u2"],
            [[1, 2, 9 - 9 + 3, 4, 4], [1, 2, 4, 4], [3, 4, 4, 4]]);
        var split = LeaveOneOutSplit.Create(data);

        var popularity = new PopularityScorer(split, data.ItemCount).Score([0], [[1]])[0];
        var knn = new ItemKnnScorer(split, data.ItemCount).Score([0], [[1]])[0];

        Assert.Equal(1, Array.IndexOf(popularity, popularity.Max()));           // "a" and "b" appear twice in training...
        Assert.True(knn[2] > knn[3], "b co-occurs with a in both users who had a; c in one");
        Assert.Equal(0, knn[1]);                                                  // an item is not its own neighbour
    }
}
