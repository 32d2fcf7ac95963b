using Recommender.Data;
using Recommender.Training.Reinforcement;
using static TorchSharp.torch;

namespace Recommender.Training.Tests;

/// <summary>The actor's head: what each term reads of the session, and what it leaves alone.</summary>
[Collection("Torch")]
public sealed class SequenceActorCriticTests
{
    private const double Temperature = 0.2;
    private static readonly SyntheticWorld World = new(new SyntheticWorldOptions { Users = 150, Items = 60, Seed = 13 });
    private static readonly InteractionDataset Data = World.ToDataset(World.GenerateHistory(DateTimeOffset.UnixEpoch.AddYears(50)));

    private static SequenceActorCritic Actor(string head)
    {
        var split = LeaveOneOutSplit.Create(Data);
        var config = new SequenceModelConfig { Dimension = 16, Blocks = 1, MaxLength = 15, Epochs = 2, EvaluateEvery = 10, BatchSize = 64, Negatives = 32, Seed = 4 };
        var encoder = new SequenceModelTrainer(config).Train(Data, split).Model;
        encoder.eval();
        var actor = new SequenceActorCritic(encoder, config, Data.UserFeatures, Data.ItemFeatures, new PopularityScorer(split, Data.ItemCount).LogCounts(), candidates: 20, temperature: Temperature);
        actor.SetHead(PolicyHead.Parse(head));
        return actor;
    }

    private static float[] Logits(SequenceActorCritic actor, SessionState state, long[] candidates)
    {
        using var _ = no_grad();
        return actor.Forward([state], [candidates]).Logits[0].data<float>().ToArray();
    }

    [Fact]
    public void Terms_that_read_the_session_leave_its_first_step_as_the_pretrained_policy_ranks_it()
    {
        var (pretrained, sessionAware) = (Actor(""), Actor("declined=-1;declinedAffinity=-0.5"));
        var start = SessionState.Start(0, Data.Sequences[0]);
        var candidates = pretrained.Candidates(start);

        Assert.Equal(Logits(pretrained, start, candidates), Logits(sessionAware, start, candidates));
    }

    /// <summary>After a slate passed over, each candidate's logit moves by w · v_c · Σ v_d / temperature: most for the candidates most like what was declined.</summary>
    [Fact]
    public void Items_passed_over_move_each_candidate_by_its_affinity_with_them()
    {
        const double weight = -0.5;
        var (pretrained, sessionAware) = (Actor(""), Actor(FormattableString.Invariant($"declinedAffinity={weight}")));
        var start = SessionState.Start(0, Data.Sequences[0]);
        var candidates = pretrained.Candidates(start);
        long[] slate = [.. candidates.Take(5)];
        var afterNone = start.After(slate, null).After(slate, null); // passed over twice: each impression counts
        var rest = candidates.Skip(5).ToArray();

        var change = Logits(sessionAware, afterNone, rest).Zip(Logits(pretrained, afterNone, rest), (a, b) => (a - b) * Temperature).ToArray();

        using var _ = no_grad();
        var vectors = pretrained.Encoder.ItemVectors();
        var declinedSum = vectors.index_select(0, tensor(slate)).sum(dim: 0) * 2;
        var expected = vectors.index_select(0, tensor(rest)).matmul(declinedSum).data<float>().Select(a => weight * a).ToArray();
        for (var c = 0; c < rest.Length; c++)
            Assert.Equal(expected[c], change[c], 3);
        Assert.True(expected.Max() - expected.Min() > 0.1, "the candidates differ in how much they are like the declined slate");
        // A pick is not a "no": the picked item joins the history and is left out of the sum.
        var afterPick = start.After(slate, (int)slate[0]);
        var pickChange = Logits(sessionAware, afterPick, rest).Zip(Logits(pretrained, afterPick, rest), (a, b) => (a - b) * Temperature).ToArray();
        var withoutPicked = vectors.index_select(0, tensor(slate.Skip(1).ToArray())).sum(dim: 0);
        var pickExpected = vectors.index_select(0, tensor(rest)).matmul(withoutPicked).data<float>().Select(a => weight * a).ToArray();
        for (var c = 0; c < rest.Length; c++)
            Assert.Equal(pickExpected[c], pickChange[c], 3);
    }
}
