using System.Globalization;
using Recommender.Events;
using Recommender.Ingestion;

namespace Recommender.Serving;

/// <summary>
/// The impressions of one served slate, as both the recommendation endpoint and Personalizer's Rank log them: one
/// event per shown item, event id <c>{recommendationId}-{position}</c>, the recommendation id that rewards join on,
/// and the item's propensity in the context for off-policy evaluation.
/// </summary>
/// <param name="Items">The shown items' ids, by position.</param>
/// <param name="Propensities">Each shown item's probability in its slot, by position.</param>
/// <param name="Context">What every event of the slate carries besides its propensity (model version, path, API).</param>
public sealed record SlateImpressions(
    string UserId,
    string RecommendationId,
    string? SessionId,
    DateTimeOffset ShownAt,
    IReadOnlyList<string> Items,
    IReadOnlyList<double> Propensities,
    IReadOnlyDictionary<string, string> Context) : ServingLogEntry
{
    public override IReadOnlyList<WireEvent> ToEvents()
    {
        var events = new WireEvent[Items.Count];
        for (var position = 0; position < events.Length; position++)
        {
            events[position] = new WireEvent
            {
                SchemaVersion = EventParser.CurrentSchemaVersion,
                EventId = $"{RecommendationId}-{position}",
                UserId = UserId,
                ItemId = Items[position],
                Type = EventParser.WireName(InteractionType.Impression),
                Timestamp = ShownAt,
                RecommendationId = RecommendationId,
                SessionId = SessionId,
                Position = position,
                Context = new Dictionary<string, string>(Context) { ["propensity"] = Propensities[position].ToString("R", CultureInfo.InvariantCulture) },
            };
        }
        return events;
    }

    /// <summary>The slate as the user's online state keeps it (<see cref="UserStateStore.NoteShown"/>).</summary>
    public ShownSlate Shown => new(RecommendationId, SessionId, ShownAt, Items);
}
