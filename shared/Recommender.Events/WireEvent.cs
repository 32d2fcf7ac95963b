using System.Text.Json;
using System.Text.Json.Serialization;

namespace Recommender.Events;

/// <summary>
/// The JSON wire format of every event (camelCase, <c>schemaVersion</c> 1). One shape for all kinds,
/// told apart by <see cref="Kind"/> ("interaction" when absent, "item", "user"), so a batch can mix
/// kinds and a single source-generated parse reads any of them. Everything is optional here;
/// <see cref="EventParser"/> decides what is required.
/// </summary>
public sealed class WireEvent
{
    public int? SchemaVersion { get; set; }
    public string? Kind { get; set; }
    public string? EventId { get; set; }
    public string? UserId { get; set; }
    public string? ItemId { get; set; }
    public string? Type { get; set; }
    public double? Value { get; set; }
    public DateTimeOffset? Timestamp { get; set; }
    public string? SessionId { get; set; }
    public string? RecommendationId { get; set; }
    public int? Position { get; set; }
    public Dictionary<string, string>? Context { get; set; }

    // Catalog item fields.
    public List<string>? Categories { get; set; }
    public List<string>? Tags { get; set; }
    public string? Title { get; set; }
    public string? Text { get; set; }
    public bool? Available { get; set; }

    // User profile fields.
    public Dictionary<string, string>? Attributes { get; set; }

    public static WireEvent From(Interaction e) => new()
    {
        SchemaVersion = EventParser.CurrentSchemaVersion,
        EventId = e.EventId,
        UserId = e.UserId,
        ItemId = e.ItemId,
        Type = EventParser.WireName(e.Type),
        Value = e.Value,
        Timestamp = e.Timestamp,
        SessionId = e.SessionId,
        RecommendationId = e.RecommendationId,
        Position = e.Position,
        Context = e.Context is null ? null : new Dictionary<string, string>(e.Context),
    };

    public static WireEvent From(CatalogItem e) => new()
    {
        SchemaVersion = EventParser.CurrentSchemaVersion,
        Kind = EventParser.ItemKind,
        EventId = e.EventId,
        ItemId = e.ItemId,
        Categories = [.. e.Categories],
        Tags = [.. e.Tags],
        Title = e.Title,
        Text = e.Text,
        Available = e.Available,
        Timestamp = e.Timestamp,
    };

    public static WireEvent From(UserProfile e) => new()
    {
        SchemaVersion = EventParser.CurrentSchemaVersion,
        Kind = EventParser.UserKind,
        EventId = e.EventId,
        UserId = e.UserId,
        Attributes = new Dictionary<string, string>(e.Attributes),
        Timestamp = e.Timestamp,
    };

    public byte[] ToUtf8Json() => JsonSerializer.SerializeToUtf8Bytes(this, EventJsonContext.Default.WireEvent);
}

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    ReadCommentHandling = JsonCommentHandling.Disallow,
    NumberHandling = JsonNumberHandling.Strict)]
[JsonSerializable(typeof(WireEvent))]
[JsonSerializable(typeof(List<WireEvent>))]
[JsonSerializable(typeof(Dictionary<string, string>))]
public sealed partial class EventJsonContext : JsonSerializerContext;
