using Recommender.Data;
using Recommender.Serving;

namespace Recommender.Training.Reinforcement;

/// <summary>A policy's slate distribution in one session state: its candidates (dataset item numbers) best first, their logits, and how slates are drawn from them.</summary>
public sealed record SlateDistributionAt(long[] Candidates, IReadOnlyList<double> Logits, ExplorationOptions Exploration)
{
    /// <summary>
    /// The probability of this slate: in this exact slot order, or (<paramref name="ordered"/> false) as a set, in any
    /// order (the sum over its orderings); 0 when it holds an item the policy would not consider.
    /// </summary>
    public double Probability(IReadOnlyList<long> slate, bool ordered = true)
    {
        var positions = slate.Select(item => Array.IndexOf(Candidates, item)).ToArray();
        if (positions.Any(p => p < 0))
            return 0;
        return ordered ? SlatePolicy.Probability(Logits, positions, Exploration) : Orderings(positions).Sum(o => SlatePolicy.Probability(Logits, o, Exploration));
    }

    private static IEnumerable<int[]> Orderings(int[] items) => items.Length <= 1 ? [items]
        : items.SelectMany((first, i) => Orderings([.. items[..i], .. items[(i + 1)..]]).Select(rest => (int[])[first, .. rest]));

    public long[] Sample(int k, Random random) =>
        SlatePolicy.Draw(Logits, Math.Min(k, Candidates.Length), Exploration, random).Select(c => Candidates[c.Candidate]).ToArray();
}

/// <summary>
/// A published model as serving runs it (<see cref="SlateRanker"/>: the same candidates, logits and slate distribution),
/// over a dataset numbered differently: the training job's off-policy evaluation judges what would be served. The state's
/// history is cut to what the online state keeps (<see cref="Ingestion.UserState.MaxRecentItems"/>), which is also what
/// serving leaves out as seen; items either side does not know are left out.
/// </summary>
public sealed class PublishedPolicy(PolicyModel model, InteractionDataset data, ExplorationOptions? fallback = null)
{
    private readonly int[] _modelNumber = data.ItemIds.Select(id => model.TryGetItemNumber(id, out var n) ? n : 0).ToArray();
    private readonly Dictionary<int, long> _dataNumber = data.ItemIds.Select((id, i) => (id, i)).Where(x => x.i > 0 && model.TryGetItemNumber(x.id, out _))
        .ToDictionary(x => model.TryGetItemNumber(x.id, out var n) ? n : 0, x => (long)x.i);
    private readonly ExplorationOptions _fallback = fallback ?? new ExplorationOptions();

    public PolicyModel Model => model;

    public SlateDistributionAt At(SessionState state)
    {
        var recent = state.History.Skip(Math.Max(0, state.History.Length - Ingestion.UserState.MaxRecentItems)).Select(i => _modelNumber[i]).Where(n => n > 0).ToList();
        var seen = recent.ToHashSet();
        var session = state.Responses.Select(r => (IReadOnlyList<int>)r.Slate.Select(i => _modelNumber[i]).Where(n => n > 0).ToList()).ToList();
        var userTokens = data.UserFeatures is { } users ? model.UserTokens(users.Tokens[state.User].Select(t => users.Vocabulary[t])) : null;
        var ranking = SlateRanker.Rank(model, new RankingInput(recent, userTokens, session), item => !seen.Contains(item) && _dataNumber.ContainsKey(item),
            seen.Count + model.Manifest.ItemIds.Count - 1 - _dataNumber.Count, _fallback);
        return new SlateDistributionAt(ranking.Candidates.Select(c => _dataNumber[c.Item]).ToArray(), ranking.Logits, ranking.Exploration);
    }
}
