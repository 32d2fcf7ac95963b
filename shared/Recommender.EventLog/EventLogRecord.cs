using System.Text.Json;
using Recommender.Events;

namespace Recommender.EventLog;

/// <summary>
/// One row of the Parquet event log. Flat columns the training job reads without JSON parsing;
/// the small context map is kept as a JSON string.
/// </summary>
public sealed class EventLogRecord
{
    public string EventId { get; set; } = "";
    public string UserId { get; set; } = "";
    public string? ItemId { get; set; }
    public string Type { get; set; } = "";
    public double? Value { get; set; }
    public DateTime Timestamp { get; set; }
    public string? SessionId { get; set; }
    public string? RecommendationId { get; set; }
    public int? Position { get; set; }
    public string? Context { get; set; }

    /// <summary>The delivery that wrote the row; with <see cref="SequenceNumber"/> it locates the event in its source.</summary>
    public string DeliveryKey { get; set; } = "";
    public long? SequenceNumber { get; set; }
    public DateTime IngestedAt { get; set; }

    /// <summary>Whether the event enters the user's history (a view, click, purchase... of an item), as training reads it.</summary>
    public bool IsEngagement() => ItemId is not null && EventParser.TryParseType(Type, out var type) && type.IsEngagement();

    public static EventLogRecord From(Interaction e, string deliveryKey, long? sequenceNumber, DateTimeOffset ingestedAt) => new()
    {
        EventId = e.EventId,
        UserId = e.UserId,
        ItemId = e.ItemId,
        Type = EventParser.WireName(e.Type),
        Value = e.Value,
        Timestamp = e.Timestamp.UtcDateTime,
        SessionId = e.SessionId,
        RecommendationId = e.RecommendationId,
        Position = e.Position,
        Context = e.Context is null ? null : JsonSerializer.Serialize(
            e.Context as Dictionary<string, string> ?? new Dictionary<string, string>(e.Context),
            EventJsonContext.Default.DictionaryStringString),
        DeliveryKey = deliveryKey,
        SequenceNumber = sequenceNumber,
        IngestedAt = ingestedAt.UtcDateTime,
    };

    public Interaction ToInteraction()
    {
        EventParser.TryParseType(Type, out var type);
        return new Interaction(EventId, UserId, ItemId, type, Value,
            new DateTimeOffset(DateTime.SpecifyKind(Timestamp, DateTimeKind.Utc)), SessionId, RecommendationId, Position,
            Context is null ? null : JsonSerializer.Deserialize(Context, EventJsonContext.Default.DictionaryStringString));
    }
}
