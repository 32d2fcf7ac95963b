using System.Globalization;
using System.Text.Json;
using Recommender.Events;

namespace Recommender.EventLog;

/// <summary>Where a logged decision was served: the recommendation route or Personalizer's Rank.</summary>
public static class DecisionSource
{
    public const string Recommendations = "recommendations";
    public const string Personalizer = "personalizer";
}

/// <summary>
/// One decision the product served, as a snapshot freezes it: the slate (items by position, with the propensity
/// each had in its slot), and what followed it: the item the user took (joined by the recommendation id, or an
/// organic engagement of a shown item within the window, flagged <see cref="PickedOrganically"/>), what they did
/// with it (the view's value, like, purchase, rating), the rewards sent for it, and whether the user's session
/// ended after it.
/// </summary>
/// <param name="Propensities">Per position; null where the impression carried none.</param>
/// <param name="Watched">The largest value of a view of the picked item (watch time, in the client's unit).</param>
/// <param name="Reward">The sum of the reward events joined to the decision (null: none).</param>
/// <param name="Session">The session the decision belongs to: the client's session id, else the recommendation id of the session's first slate.</param>
/// <param name="SessionEnded">The last decision of a session that has closed (no further slate within the idle time before the snapshot).</param>
public sealed record ServedDecision(
    string RecommendationId,
    string UserId,
    string? SessionId,
    string Session,
    DateTime ShownAt,
    string Source,
    string? ModelVersion,
    string? Path,
    string[] Items,
    double?[] Propensities,
    int? PickedPosition,
    bool PickedOrganically,
    double? Watched,
    bool Liked,
    bool Purchased,
    double? Stars,
    double? Reward,
    int Rewards,
    bool SessionEnded)
{
    /// <summary>The probability the serving policy gave this slate (the product of its slots' propensities); null without them all.</summary>
    public double? SlateProbability => Propensities.All(p => p is > 0) ? Propensities.Aggregate(1.0, (product, p) => product * p!.Value) : null;
}

/// <summary>What the join of a snapshot's decisions found.</summary>
public sealed record DecisionStatistics(
    int Decisions,
    int PersonalizerRanks,
    int Sessions,
    int WithResponse,
    int OrganicResponses,
    int RewardsJoined,
    int UnjoinedRewards,
    double PropensityCoverage);

/// <summary>How a snapshot joins responses to the decisions served.</summary>
public sealed record DecisionJoinOptions
{
    /// <summary>An engagement with a shown item, by the same user, without the recommendation id, this soon after the slate counts as its response.</summary>
    public TimeSpan OrganicResponseWindow { get; init; } = TimeSpan.FromMinutes(30);
    /// <summary>Slates this far apart belong to different sessions (when the client names no session), and a session is closed after this long without one.</summary>
    public TimeSpan SessionIdle { get; init; } = TimeSpan.FromMinutes(30);
}

/// <summary>
/// Joins the log's impressions into decisions and their responses (a pure function of the log, so a snapshot
/// stays a function of its data). Impressions group by recommendation id; a response is the first engagement of a
/// shown item that carries the recommendation id, else the first engagement of a shown item by the same user
/// within <see cref="DecisionJoinOptions.OrganicResponseWindow"/> and before the user's next slate; rewards join
/// by recommendation id. Sessions are the client's <c>sessionId</c> when it sends one, else runs of slates less
/// than <see cref="DecisionJoinOptions.SessionIdle"/> apart, one source at a time.
/// </summary>
public static class ServedDecisions
{
    public static (List<ServedDecision> Decisions, DecisionStatistics Statistics) Join(IReadOnlyList<EventLogRecord> records, DateTimeOffset watermark, DecisionJoinOptions options)
    {
        var slates = records.Where(r => r.Type == "impression" && r.RecommendationId is not null && r.ItemId is not null)
            .GroupBy(r => r.RecommendationId!, StringComparer.Ordinal)
            .Select(g => Skeleton(g.OrderBy(r => r.Position ?? 0).ThenBy(r => r.EventId, StringComparer.Ordinal).ToList()))
            .ToDictionary(d => d.RecommendationId, StringComparer.Ordinal);

        // Explicit responses: engagements and rewards that carry the recommendation id.
        var explicitly = new Dictionary<string, List<EventLogRecord>>(StringComparer.Ordinal);
        var unjoinedRewards = 0;
        foreach (var record in records)
        {
            if (record.Type == "impression")
                continue;
            if (record.RecommendationId is { } id && slates.TryGetValue(id, out var slate) && slate.UserId == record.UserId)
            {
                if (!explicitly.TryGetValue(id, out var list))
                    explicitly[id] = list = [];
                list.Add(record);
            }
            else if (record.Type == "reward")
                unjoinedRewards++;
        }

        var engagementsByUser = records.Where(r => r.IsEngagement()).GroupBy(r => r.UserId, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.ToList(), StringComparer.Ordinal);
        var decisions = new List<ServedDecision>();
        var sessions = 0;
        foreach (var user in slates.Values.GroupBy(d => (d.UserId, d.Source)))
        {
            var ordered = user.OrderBy(d => d.ShownAt).ThenBy(d => d.RecommendationId, StringComparer.Ordinal).ToList();
            var engagements = engagementsByUser.GetValueOrDefault(user.Key.UserId) ?? [];
            string? session = null;
            for (var i = 0; i < ordered.Count; i++)
            {
                session ??= ordered[i].SessionId ?? ordered[i].RecommendationId;
                var decision = WithResponse(ordered[i], explicitly.GetValueOrDefault(ordered[i].RecommendationId), engagements,
                    until: i + 1 < ordered.Count ? ordered[i + 1].ShownAt : DateTime.MaxValue, options);
                var next = i + 1 < ordered.Count ? ordered[i + 1] : null;
                var lastOfSession = next is null || (decision.SessionId ?? "") != (next.SessionId ?? "")
                    || (decision.SessionId is null && next.ShownAt - decision.ShownAt > options.SessionIdle);
                if (lastOfSession)
                    sessions++;
                var closed = lastOfSession && watermark.UtcDateTime - decision.ShownAt > options.SessionIdle;
                decisions.Add(decision with { Session = session, SessionEnded = closed });
                if (lastOfSession)
                    session = null;
            }
        }
        decisions.Sort((a, b) => a.ShownAt != b.ShownAt ? a.ShownAt.CompareTo(b.ShownAt) : string.CompareOrdinal(a.RecommendationId, b.RecommendationId));

        var statistics = new DecisionStatistics(
            decisions.Count,
            decisions.Count(d => d.Source == DecisionSource.Personalizer),
            sessions,
            decisions.Count(d => d.PickedPosition is not null),
            decisions.Count(d => d.PickedOrganically),
            decisions.Sum(d => d.Rewards),
            unjoinedRewards,
            decisions.Count == 0 ? 0 : decisions.Count(d => d.SlateProbability is not null) / (double)decisions.Count);
        return (decisions, statistics);
    }

    private static ServedDecision Skeleton(List<EventLogRecord> impressions)
    {
        var context = impressions.Select(r => Context(r.Context)).ToList();
        var first = context[0];
        return new ServedDecision(
            impressions[0].RecommendationId!,
            impressions[0].UserId,
            impressions.Select(r => r.SessionId).FirstOrDefault(s => s is not null),
            "",
            impressions.Min(r => r.Timestamp),
            first.GetValueOrDefault("api") == "personalizer" ? DecisionSource.Personalizer : DecisionSource.Recommendations,
            first.GetValueOrDefault("modelVersion"),
            first.GetValueOrDefault("path"),
            [.. impressions.Select(r => r.ItemId!)],
            [.. context.Select(c => double.TryParse(c.GetValueOrDefault("propensity"), NumberStyles.Float, CultureInfo.InvariantCulture, out var p) ? p : (double?)null)],
            null, false, null, false, false, null, null, 0, false);
    }

    private static ServedDecision WithResponse(ServedDecision decision, List<EventLogRecord>? joined, List<EventLogRecord> engagements, DateTime until, DecisionJoinOptions options)
    {
        var rewards = joined?.Where(r => r.Type == "reward").ToList() ?? [];
        decision = decision with { Reward = rewards.Count == 0 ? null : rewards.Sum(r => r.Value ?? 0), Rewards = rewards.Count };

        var pick = joined?.Where(r => r.IsEngagement() && Array.IndexOf(decision.Items, r.ItemId) >= 0).MinBy(r => r.Timestamp);
        var organic = false;
        if (pick is null)
        {
            var deadline = decision.ShownAt + options.OrganicResponseWindow;
            pick = engagements.Where(r => r.RecommendationId is null && r.Timestamp >= decision.ShownAt && r.Timestamp <= deadline && r.Timestamp < until
                && Array.IndexOf(decision.Items, r.ItemId) >= 0).MinBy(r => r.Timestamp);
            organic = pick is not null;
        }
        if (pick is null)
            return decision;

        // What the user did with the item picked: the signals of the same item, joined the same way.
        var signals = (organic
            ? engagements.Where(r => r.RecommendationId is null && r.ItemId == pick.ItemId && r.Timestamp >= pick.Timestamp && r.Timestamp < until)
            : joined!.Where(r => r.ItemId == pick.ItemId)).ToList();
        return decision with
        {
            PickedPosition = Array.IndexOf(decision.Items, pick.ItemId),
            PickedOrganically = organic,
            Watched = signals.Where(r => r.Type == "view" && r.Value is not null).Select(r => r.Value).Max(),
            Liked = signals.Any(r => r.Type == "like"),
            Purchased = signals.Any(r => r.Type == "purchase"),
            Stars = signals.Where(r => r.Type == "rating").Select(r => r.Value).LastOrDefault(),
        };
    }

    private static Dictionary<string, string> Context(string? json) =>
        json is null ? [] : JsonSerializer.Deserialize(json, EventJsonContext.Default.DictionaryStringString) ?? [];
}
