using System.Text.Json.Nodes;
using Recommender.Data;
using Recommender.EventLog;

namespace Recommender.Training.Reinforcement;

/// <summary>
/// One decision of the product's own logs in a dataset's numbering: the session state the slate was served in (the
/// user's history up to then, and this session's earlier slates with their answers), the slate, the probability the
/// serving policy gave it, the slot taken (null: none), what the user did with it, and whether they left after it.
/// </summary>
public sealed record LoggedSlate(SessionState State, long[] Slate, double? LoggedProbability, int? Chosen, Engagement? Engagement, bool Left, string? ModelVersion, DateTime ShownAt)
{
    /// <summary>What the learned user simulator fits.</summary>
    public LoggedStep ToStep() => new(State, Slate, Chosen, Left, Engagement);

    /// <summary>The reward the decision earned, as <paramref name="rewards"/> values its events.</summary>
    public double Reward(RewardConfig rewards) => rewards.Of(Chosen is null ? null : Engagement ?? default, Left);
}

/// <summary>A logged session, its decisions in order; <paramref name="Closed"/> when it has ended (the user left, or it reached the horizon).</summary>
public sealed record LoggedSession(string Key, int User, IReadOnlyList<LoggedSlate> Decisions, bool Closed)
{
    public DateTime StartedAt => Decisions[0].ShownAt;
}

/// <summary>
/// The snapshot's decisions (<see cref="ServedDecision"/>) as RL reads them: recommendation slates only (Personalizer's
/// ranks are another problem), of users and items the dataset knows, cut into sessions with states rebuilt from the
/// engagements before each slate. A session that ended before the horizon ends with the user leaving; one still open
/// at the snapshot has not ended.
/// </summary>
public sealed record ProductLogs(IReadOnlyList<LoggedSession> Sessions, int SlateSize, JsonObject Counts)
{
    public int Decisions => Sessions.Sum(s => s.Decisions.Count);

    /// <param name="engagementTicks">Per dataset user, the times (ticks) of the engagements of their sequence, in order.</param>
    /// <param name="horizon">Slates per session at most (the RL stage's); a session that reaches it was cut, not left.</param>
    public static ProductLogs From(InteractionDataset data, IReadOnlyList<long[]> engagementTicks, IReadOnlyList<ServedDecision> decisions, int horizon)
    {
        var users = data.UserIds.Select((id, u) => (id, u)).ToDictionary(x => x.id, x => x.u, StringComparer.Ordinal);
        var items = data.ItemIds.Select((id, i) => (id, i)).Where(x => x.i > 0).ToDictionary(x => x.id, x => x.i, StringComparer.Ordinal);
        var recommendations = decisions.Where(d => d.Source == DecisionSource.Recommendations).ToList();
        // RL compares like slates: the size clients ask for most.
        var slateSize = recommendations.Count == 0 ? 0 : recommendations.GroupBy(d => d.Items.Length).MaxBy(g => g.Count())!.Key;
        int unknownUser = 0, unknownItem = 0, otherSize = 0;
        var sessions = new List<LoggedSession>();
        foreach (var session in recommendations.GroupBy(d => (d.UserId, d.Session)))
        {
            var ordered = session.OrderBy(d => d.ShownAt).ToList();
            if (!users.TryGetValue(session.Key.UserId, out var user))
            {
                unknownUser += ordered.Count;
                continue;
            }
            var steps = new List<LoggedSlate>();
            var responses = new List<SlateResponse>();
            var ended = ordered[^1].SessionEnded;
            foreach (var decision in ordered)
            {
                if (decision.Items.Length != slateSize)
                {
                    otherSize++;
                    continue;
                }
                if (!decision.Items.All(items.ContainsKey))
                {
                    unknownItem++;
                    continue;
                }
                var slate = decision.Items.Select(i => (long)items[i]).ToArray();
                var historyLength = UpperBound(engagementTicks[user], decision.ShownAt.Ticks);
                var state = new SessionState(user, data.Sequences[user][..historyLength], [.. responses]);
                Engagement? engagement = decision.PickedPosition is null ? null
                    : new Engagement(decision.Watched ?? 0, decision.Liked ? 1 : 0, decision.Purchased ? 1 : 0, decision.Stars ?? 0);
                steps.Add(new LoggedSlate(state, slate, decision.SlateProbability, decision.PickedPosition, engagement, Left: false, decision.ModelVersion, decision.ShownAt));
                responses.Add(new SlateResponse(slate, decision.PickedPosition is { } p ? slate[p] : 0, engagement));
            }
            if (steps.Count == 0)
                continue;
            // The user left after the last slate of a session that ended before the horizon; at the horizon it was cut.
            var left = ended && steps.Count < horizon;
            if (left)
                steps[^1] = steps[^1] with { Left = true };
            sessions.Add(new LoggedSession(session.Key.Session, user, steps, ended));
        }
        sessions.Sort((a, b) => a.StartedAt.CompareTo(b.StartedAt));
        var counts = new JsonObject
        {
            ["decisions_served"] = decisions.Count,
            ["personalizer_ranks"] = decisions.Count - recommendations.Count,
            ["decisions"] = sessions.Sum(s => s.Decisions.Count),
            ["sessions"] = sessions.Count,
            ["sessions_closed"] = sessions.Count(s => s.Closed),
            ["slate_size"] = slateSize,
            ["with_propensities"] = sessions.Sum(s => s.Decisions.Count(d => d.LoggedProbability is not null)),
            ["picked"] = sessions.Sum(s => s.Decisions.Count(d => d.Chosen is not null)),
            ["left_out_unknown_user"] = unknownUser,
            ["left_out_unknown_item"] = unknownItem,
            ["left_out_other_slate_size"] = otherSize,
        };
        return new ProductLogs(sessions, slateSize, counts);
    }

    /// <summary>How many of the sorted <paramref name="ticks"/> are before <paramref name="time"/>.</summary>
    private static int UpperBound(long[] ticks, long time)
    {
        var at = Array.BinarySearch(ticks, time);
        if (at < 0)
            return ~at;
        while (at > 0 && ticks[at - 1] == time)
            at--;
        return at;
    }
}
