using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Recommender.Events;

/// <summary>The outcome of parsing one raw event: exactly one of the three records, or an error.</summary>
public readonly record struct ParsedEvent(Interaction? Interaction, CatalogItem? Item, UserProfile? Profile, string? Error)
{
    public bool IsValid => Error is null;

    public static ParsedEvent Invalid(string error) => new(null, null, null, error);
}

/// <summary>
/// Turns one raw JSON event into a validated record, or into the reason it was refused. It never
/// throws on input: whatever the bytes are, the caller gets an event to ingest or a reason to
/// dead-letter.
/// </summary>
public sealed class EventParser(EventLimits? limits = null)
{
    public const int CurrentSchemaVersion = 1;
    public const string InteractionKind = "interaction";
    public const string ItemKind = "item";
    public const string UserKind = "user";

    private static readonly string[] TypeNames = Enum.GetNames<InteractionType>().Select(n => n.ToLowerInvariant()).ToArray();

    private readonly EventLimits _limits = limits ?? EventLimits.Default;

    public EventLimits Limits => _limits;

    public static string WireName(InteractionType type) => TypeNames[(int)type];

    public static bool TryParseType(string? name, out InteractionType type)
    {
        for (var i = 0; i < TypeNames.Length; i++)
        {
            if (string.Equals(TypeNames[i], name, StringComparison.OrdinalIgnoreCase))
            {
                type = (InteractionType)i;
                return true;
            }
        }
        type = default;
        return false;
    }

    /// <summary>
    /// Parses one event.
    /// </summary>
    /// <param name="json">The raw UTF-8 JSON of one event object.</param>
    /// <param name="receivedAt">The receiver's clock; bounds how far in the future a timestamp may be.</param>
    /// <param name="defaultTimestamp">Used when the event has none (for Event Hubs, the enqueued time, so a redelivery gets the same value).</param>
    public ParsedEvent Parse(ReadOnlySpan<byte> json, DateTimeOffset receivedAt, DateTimeOffset? defaultTimestamp = null)
    {
        if (SizeError(json) is { } tooLarge)
            return ParsedEvent.Invalid(tooLarge);

        WireEvent? wire;
        try
        {
            wire = JsonSerializer.Deserialize(json, EventJsonContext.Default.WireEvent);
        }
        catch (JsonException ex)
        {
            return ParsedEvent.Invalid($"malformed JSON: {FirstLine(ex.Message)}");
        }
        catch (Exception ex) when (ex is InvalidOperationException or NotSupportedException or ArgumentException or FormatException or OverflowException)
        {
            return ParsedEvent.Invalid($"malformed JSON: {FirstLine(ex.Message)}");
        }
        if (wire is null)
            return ParsedEvent.Invalid("event is null; expected a JSON object");

        return Validate(wire, json, receivedAt, defaultTimestamp);
    }

    /// <summary>
    /// Validates an event the product built itself (impressions, rewards), as <see cref="Parse(ReadOnlySpan{byte}, DateTimeOffset, DateTimeOffset?)"/>
    /// would its JSON, without reading that JSON back: the same checks, the same record.
    /// </summary>
    /// <param name="json">The event's serialized form (<see cref="WireEvent.ToUtf8Json"/>): its size and, without an event id, its content id.</param>
    public ParsedEvent Parse(WireEvent wire, ReadOnlySpan<byte> json, DateTimeOffset receivedAt, DateTimeOffset? defaultTimestamp = null) =>
        SizeError(json) is { } tooLarge ? ParsedEvent.Invalid(tooLarge) : Validate(wire, json, receivedAt, defaultTimestamp);

    private string? SizeError(ReadOnlySpan<byte> json) =>
        json.Length > _limits.MaxEventBytes ? $"event is {json.Length} bytes; the limit is {_limits.MaxEventBytes}" : null;

    private ParsedEvent Validate(WireEvent w, ReadOnlySpan<byte> raw, DateTimeOffset receivedAt, DateTimeOffset? defaultTimestamp)
    {
        var version = w.SchemaVersion ?? CurrentSchemaVersion;
        if (version < 1 || version > CurrentSchemaVersion)
            return ParsedEvent.Invalid($"schemaVersion {version} is not supported (1..{CurrentSchemaVersion})");

        string? error;
        var eventId = w.EventId ?? ContentId(raw);
        if ((error = CheckId("eventId", eventId)) is not null)
            return ParsedEvent.Invalid(error);

        var timestamp = w.Timestamp ?? defaultTimestamp ?? receivedAt;
        if (timestamp > receivedAt + _limits.MaxFutureSkew)
            return ParsedEvent.Invalid($"timestamp {timestamp:O} is in the future (receiver clock {receivedAt:O})");
        if (timestamp < _limits.EarliestTimestamp)
            return ParsedEvent.Invalid($"timestamp {timestamp:O} is before {_limits.EarliestTimestamp:O}");
        timestamp = timestamp.ToUniversalTime();

        switch (w.Kind?.ToLowerInvariant())
        {
            case null or InteractionKind:
                return ValidateInteraction(w, eventId, timestamp);
            case ItemKind:
                return ValidateItem(w, eventId, timestamp);
            case UserKind:
                return ValidateUser(w, eventId, timestamp);
            default:
                return ParsedEvent.Invalid($"kind '{Truncate(w.Kind)}' is unknown; expected interaction, item or user");
        }
    }

    private ParsedEvent ValidateInteraction(WireEvent w, string eventId, DateTimeOffset timestamp)
    {
        string? error;
        if (w.Type is null)
            return ParsedEvent.Invalid("type is required");
        if (!TryParseType(w.Type, out var type))
            return ParsedEvent.Invalid($"type '{Truncate(w.Type)}' is unknown; expected one of {string.Join(", ", TypeNames)}");
        if ((error = CheckId("userId", w.UserId)) is not null)
            return ParsedEvent.Invalid(error);

        // A reward may refer to its recommendation instead of an item; everything else names an item.
        if (type == InteractionType.Reward && w.ItemId is null)
        {
            if (w.RecommendationId is null)
                return ParsedEvent.Invalid("a reward needs an itemId or a recommendationId");
        }
        else if ((error = CheckId("itemId", w.ItemId)) is not null)
            return ParsedEvent.Invalid(error);

        if (w.SessionId is not null && (error = CheckId("sessionId", w.SessionId)) is not null)
            return ParsedEvent.Invalid(error);
        if (w.RecommendationId is not null && (error = CheckId("recommendationId", w.RecommendationId)) is not null)
            return ParsedEvent.Invalid(error);

        if (w.Value is { } v && !double.IsFinite(v))
            return ParsedEvent.Invalid("value must be a finite number");
        if (type is InteractionType.Rating or InteractionType.Reward && w.Value is null)
            return ParsedEvent.Invalid($"a {WireName(type)} needs a value");
        if (w.Position is { } p && (p < 0 || p >= _limits.MaxPosition))
            return ParsedEvent.Invalid($"position {p} is outside 0..{_limits.MaxPosition - 1}");
        if ((error = CheckMap("context", w.Context, _limits.MaxContextEntries)) is not null)
            return ParsedEvent.Invalid(error);

        return new ParsedEvent(
            new Interaction(eventId, w.UserId!, w.ItemId, type, w.Value, timestamp, w.SessionId, w.RecommendationId, w.Position, w.Context),
            null, null, null);
    }

    private ParsedEvent ValidateItem(WireEvent w, string eventId, DateTimeOffset timestamp)
    {
        string? error;
        if ((error = CheckId("itemId", w.ItemId)) is not null)
            return ParsedEvent.Invalid(error);
        if ((error = CheckLabels("categories", w.Categories)) is not null || (error = CheckLabels("tags", w.Tags)) is not null)
            return ParsedEvent.Invalid(error);
        if ((error = CheckText("title", w.Title, _limits.MaxTitleLength)) is not null
            || (error = CheckText("text", w.Text, _limits.MaxTextLength)) is not null)
            return ParsedEvent.Invalid(error);

        return new ParsedEvent(null,
            new CatalogItem(eventId, w.ItemId!, w.Categories ?? [], w.Tags ?? [], w.Title, w.Text, w.Available ?? true, timestamp),
            null, null);
    }

    private ParsedEvent ValidateUser(WireEvent w, string eventId, DateTimeOffset timestamp)
    {
        string? error;
        if ((error = CheckId("userId", w.UserId)) is not null)
            return ParsedEvent.Invalid(error);
        if ((error = CheckMap("attributes", w.Attributes, _limits.MaxAttributes)) is not null)
            return ParsedEvent.Invalid(error);

        return new ParsedEvent(null, null,
            new UserProfile(eventId, w.UserId!, w.Attributes ?? new Dictionary<string, string>(), timestamp), null);
    }

    /// <summary>Ids become storage keys and log columns: non-empty, bounded, printable.</summary>
    private string? CheckId(string field, string? id) => _limits.CheckId(field, id);

    private string? CheckMap(string field, Dictionary<string, string>? map, int maxEntries)
    {
        if (map is null)
            return null;
        if (map.Count > maxEntries)
            return $"{field} has {map.Count} entries; the limit is {maxEntries}";
        foreach (var (key, value) in map)
        {
            if (key.Length == 0 || key.Length > _limits.MaxContextKeyLength)
                return $"{field} key length must be 1..{_limits.MaxContextKeyLength}";
            if (value is null)
                return $"{field} value of '{Truncate(key)}' is null";
            if (value.Length > _limits.MaxContextValueLength)
                return $"{field} value of '{Truncate(key)}' is {value.Length} characters; the limit is {_limits.MaxContextValueLength}";
        }
        return null;
    }

    private string? CheckLabels(string field, List<string>? labels)
    {
        if (labels is null)
            return null;
        if (labels.Count > _limits.MaxLabels)
            return $"{field} has {labels.Count} entries; the limit is {_limits.MaxLabels}";
        foreach (var label in labels)
        {
            if (string.IsNullOrWhiteSpace(label) || label.Length > _limits.MaxLabelLength)
                return $"{field} entries must be 1..{_limits.MaxLabelLength} non-blank characters";
        }
        return null;
    }

    private static string? CheckText(string field, string? text, int max) =>
        text is not null && text.Length > max ? $"{field} is {text.Length} characters; the limit is {max}" : null;

    /// <summary>
    /// An id for an event that came without one, derived from its bytes: a redelivered copy gets the
    /// same id, so generating ids does not break idempotency.
    /// </summary>
    public static string ContentId(ReadOnlySpan<byte> raw)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(raw, hash);
        return "h-" + Convert.ToHexStringLower(hash[..16]);
    }

    private static string FirstLine(string message)
    {
        var cut = message.IndexOfAny(['\r', '\n']);
        return Truncate(cut < 0 ? message : message[..cut], 200);
    }

    private static string Truncate(string? s, int max = 64) =>
        s is null ? "" : s.Length <= max ? s : s[..max] + "...";

    /// <summary>The raw payload as text for a dead-letter record; bytes that are not UTF-8 are kept as base64.</summary>
    public static string PayloadText(ReadOnlySpan<byte> raw)
    {
        try
        {
            return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(raw);
        }
        catch (DecoderFallbackException)
        {
            return "base64:" + Convert.ToBase64String(raw);
        }
    }
}
