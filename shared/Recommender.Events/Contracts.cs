namespace Recommender.Events;

/// <summary>What a user did with an item. The wire format spells these in lower case.</summary>
public enum InteractionType
{
    Impression,
    View,
    Click,
    Like,
    Dislike,
    Rating,
    Purchase,
    Skip,
    Reward,
}

/// <summary>
/// One user-item interaction, validated. <see cref="EventId"/> is the idempotency key: a redelivered
/// event carries the same id and is not counted twice.
/// </summary>
/// <param name="ItemId">Null only for a <see cref="InteractionType.Reward"/> that names its recommendation instead.</param>
/// <param name="Value">Rating, reward or watch seconds, depending on <paramref name="Type"/>.</param>
/// <param name="RecommendationId">Links a response to the recommendation that was served.</param>
/// <param name="Position">Zero-based slot of the item in the served recommendation.</param>
public sealed record Interaction(
    string EventId,
    string UserId,
    string? ItemId,
    InteractionType Type,
    double? Value,
    DateTimeOffset Timestamp,
    string? SessionId = null,
    string? RecommendationId = null,
    int? Position = null,
    IReadOnlyDictionary<string, string>? Context = null)
{
    /// <summary>Whether the interaction says the user engaged with the item (it enters the user's history).</summary>
    public bool IsEngagement => Type.IsEngagement();
}

public static class InteractionTypeExtensions
{
    /// <summary>Engagements enter the user's history; impressions, skips, dislikes and rewards do not.</summary>
    public static bool IsEngagement(this InteractionType type) =>
        type is InteractionType.View or InteractionType.Click or InteractionType.Like or InteractionType.Rating or InteractionType.Purchase;
}

/// <summary>An item of the catalog with its content features. Latest timestamp wins.</summary>
public sealed record CatalogItem(
    string EventId,
    string ItemId,
    IReadOnlyList<string> Categories,
    IReadOnlyList<string> Tags,
    string? Title,
    string? Text,
    bool Available,
    DateTimeOffset Timestamp);

/// <summary>A user's profile attributes (age band, country, ...). Latest timestamp wins.</summary>
public sealed record UserProfile(
    string EventId,
    string UserId,
    IReadOnlyDictionary<string, string> Attributes,
    DateTimeOffset Timestamp);
