using Recommender.ModelContract;

namespace Recommender.Serving;

/// <summary>What a ranking reads about the user, in the model's item numbers.</summary>
/// <param name="History">The items the user engaged with, oldest first (the online state's recent items).</param>
/// <param name="UserTokens">The model's numbers of the user's profile tokens (null: none).</param>
/// <param name="SessionSlates">The slates shown in the user's current session, oldest first, each in its positions.</param>
public sealed record RankingInput(IReadOnlyList<int> History, long[]? UserTokens, IReadOnlyList<IReadOnlyList<int>> SessionSlates);

/// <summary>A candidate of a ranking: the model's item number, the sequence model's score and the policy's logit.</summary>
public readonly record struct RankedCandidate(int Item, float Score, double Logit);

/// <summary>A ranking: the path it took, the candidates best first (by logit), and how a slate is drawn from them.</summary>
public sealed record PolicyRanking(string Path, IReadOnlyList<RankedCandidate> Candidates, ExplorationOptions Exploration)
{
    public IReadOnlyList<double> Logits => Candidates.Select(c => c.Logit).ToList();
}

/// <summary>
/// The one ranking path of a user with history, for serving and for the training job's off-policy evaluation of a
/// published model (so what is judged is what is served): the model's top candidates not yet consumed, their
/// logits and the slate distribution over them.
/// </summary>
/// <remarks>
/// With a <see cref="ServingPolicy"/> in the manifest, slates are Plackett-Luce draws over the policy's logits,
/// (policy score + session terms) / temperature; the session terms of a learned head (path <c>policy</c>) read the
/// history and this session's slates, as the training job's actor does (<c>SequenceActorCritic.Forward</c>):
/// repeats of the candidate's category among the last few items, times it was shown this session and not taken,
/// and its affinity with everything shown this session and not taken. Without one, the host's exploration draws
/// over the sequence model's scores (paths <c>sequence</c> and, for a short history with meta-learned adaptation,
/// <c>adapted</c>).
/// </remarks>
public static class SlateRanker
{
    /// <param name="allowed">Whether an item may be shown (not consumed, available).</param>
    /// <param name="excluded">How many items <paramref name="allowed"/> refuses at most, so that enough of the model's top is read.</param>
    public static PolicyRanking Rank(PolicyModel model, RankingInput input, Func<int, bool> allowed, int excluded, ExplorationOptions fallback)
    {
        var policy = model.Manifest.Policy;
        var exploration = policy is null ? fallback : new ExplorationOptions { Mode = ExplorationMode.Softmax, Temperature = 1, Candidates = policy.Candidates };
        var path = policy?.Head is not null ? ServingPath.Policy : model.AdaptsTo(input.History) ? ServingPath.Adapted : ServingPath.Sequence;
        var wanted = exploration.Candidates + excluded;
        var top = path == ServingPath.Adapted
            ? Top(model.AdaptedScores(input.History, input.UserTokens), wanted)
            : model.TopKWithPolicyScores(input.History, input.UserTokens, wanted);
        var shortlist = top.Where(t => allowed(t.Item)).Take(exploration.Candidates).ToList();
        var logits = policy?.Head is { } head ? HeadLogits(model, head, policy.Temperature, shortlist, input)
            : policy is not null ? shortlist.Select(t => t.Score / policy.Temperature).ToArray()
            : shortlist.Select(t => (double)t.Score).ToArray();
        var candidates = shortlist.Select((t, i) => new RankedCandidate(t.Item, t.Score, logits[i]))
            .Select((c, i) => (c, i)).OrderByDescending(x => x.c.Logit).ThenBy(x => x.i).Select(x => x.c).ToList();
        return new PolicyRanking(path, candidates, exploration);
    }

    /// <summary>(policy score + w_rep·repeats + w_dec·times shown + w_aff·affinity with the passed-over) / temperature, per candidate.</summary>
    private static double[] HeadLogits(PolicyModel model, PolicyHeadWeights head, double temperature, IReadOnlyList<(int Item, float Score, float PolicyScore)> shortlist, RankingInput input)
    {
        var consumed = input.History.ToHashSet();
        var categories = model.ItemCategories;
        var recent = input.History.Skip(Math.Max(0, input.History.Count - head.RecentWindow)).Select(i => categories[i]).Where(c => c >= 0).ToList();
        var shown = input.SessionSlates.SelectMany(s => s).ToList();
        // Σ v_d over the items shown this session and not taken (each time shown).
        var dimension = model.ItemVector(0).Length;
        var passedOver = new float[dimension];
        foreach (var item in shown.Where(i => !consumed.Contains(i)))
            System.Numerics.Tensors.TensorPrimitives.Add(passedOver, model.ItemVector(item), passedOver);
        return shortlist.Select(t =>
        {
            var category = categories[t.Item];
            var repeats = category < 0 ? 0 : recent.Count(c => c == category);
            var timesShown = shown.Count(i => i == t.Item);
            var affinity = System.Numerics.Tensors.TensorPrimitives.Dot(model.ItemVector(t.Item), passedOver);
            return (t.PolicyScore + head.Repetition * repeats + head.Declined * timesShown + head.DeclinedAffinity * affinity) / temperature;
        }).ToArray();
    }

    private static (int Item, float Score, float PolicyScore)[] Top(float[] scores, int k) =>
        Enumerable.Range(1, scores.Length - 1).OrderByDescending(i => scores[i]).Take(k).Select(i => (i, scores[i], scores[i])).ToArray();
}
