using System.Globalization;
using Recommender.Events;

namespace Recommender.Serving;

/// <summary>
/// The impression events of one served slate, as both the recommendation endpoint and Personalizer's Rank
/// log them: one per shown item, event id <c>{recommendationId}-{position}</c>, the recommendation id that
/// rewards join on, and the propensity in the context for off-policy evaluation.
/// </summary>
public static class Impressions
{
    public static List<WireEvent> ToEvents(string userId, string recommendationId, DateTimeOffset shownAt,
        IEnumerable<(string ItemId, double Propensity)> slate, IReadOnlyDictionary<string, string> context, string? sessionId = null) =>
        slate.Select((item, position) => new WireEvent
        {
            SchemaVersion = EventParser.CurrentSchemaVersion,
            EventId = $"{recommendationId}-{position}",
            UserId = userId,
            ItemId = item.ItemId,
            Type = EventParser.WireName(InteractionType.Impression),
            Timestamp = shownAt,
            RecommendationId = recommendationId,
            SessionId = sessionId,
            Position = position,
            Context = new Dictionary<string, string>(context) { ["propensity"] = item.Propensity.ToString("R", CultureInfo.InvariantCulture) },
        }).ToList();
}
