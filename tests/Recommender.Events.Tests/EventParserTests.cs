using System.Text;
using Recommender.Events;
using Recommender.TestSupport;

namespace Recommender.Events.Tests;

[Trait("Kind", "Unit")]
public sealed class EventParserTests
{
    private static readonly DateTimeOffset Now = TestEvents.Start.AddDays(1);
    private readonly EventParser _parser = new();

    private ParsedEvent Parse(string json, DateTimeOffset? defaultTimestamp = null) =>
        _parser.Parse(Encoding.UTF8.GetBytes(json), Now, defaultTimestamp);

    [Fact]
    public void A_complete_interaction_round_trips_through_the_wire_format()
    {
        var original = new Interaction("e1", "u1", "i1", InteractionType.Rating, 4.5, TestEvents.Start, "s1", "r1", 3,
            new Dictionary<string, string> { ["device"] = "phone" });

        var parsed = _parser.Parse(WireEvent.From(original).ToUtf8Json(), Now);

        Assert.True(parsed.IsValid, parsed.Error);
        Assert.Equal(original with { Context = null }, parsed.Interaction! with { Context = null });
        Assert.Equal("phone", parsed.Interaction!.Context!["device"]);
    }

    [Fact]
    public void The_wire_format_is_camel_case_with_a_schema_version()
    {
        var json = Encoding.UTF8.GetString(TestEvents.Interaction(1).ToUtf8Json());

        Assert.Contains("\"schemaVersion\":1", json);
        Assert.Contains("\"eventId\":\"e1\"", json);
        Assert.Contains("\"type\":\"click\"", json);
    }

    [Fact]
    public void A_missing_event_id_is_derived_from_the_content_so_a_redelivery_gets_the_same_id()
    {
        const string json = """{"userId":"u1","itemId":"i1","type":"view","timestamp":"2026-11-01T12:00:00Z"}""";

        var first = Parse(json);
        var again = Parse(json);
        var other = Parse(json.Replace("i1", "i2"));

        Assert.StartsWith("h-", first.Interaction!.EventId);
        Assert.Equal(first.Interaction.EventId, again.Interaction!.EventId);
        Assert.NotEqual(first.Interaction.EventId, other.Interaction!.EventId);
    }

    [Fact]
    public void A_missing_timestamp_takes_the_delivery_time()
    {
        var enqueued = TestEvents.Start.AddHours(3);

        var parsed = Parse("""{"eventId":"e","userId":"u","itemId":"i","type":"click"}""", enqueued);

        Assert.Equal(enqueued, parsed.Interaction!.Timestamp);
    }

    [Fact]
    public void Item_and_user_events_are_told_apart_by_kind()
    {
        var item = Parse("""{"kind":"item","eventId":"c1","itemId":"i9","categories":["games"],"tags":["co-op"],"title":"T","available":false,"timestamp":"2026-11-01T12:00:00Z"}""");
        var user = Parse("""{"kind":"user","eventId":"p1","userId":"u9","attributes":{"country":"NO"},"timestamp":"2026-11-01T12:00:00Z"}""");

        Assert.Equal(["games"], item.Item!.Categories);
        Assert.False(item.Item.Available);
        Assert.Equal("NO", user.Profile!.Attributes["country"]);
    }

    [Theory]
    [InlineData("""{"userId":"u","itemId":"i","type":"teleport"}""", "type 'teleport' is unknown")]
    [InlineData("""{"userId":"u","itemId":"i"}""", "type is required")]
    [InlineData("""{"itemId":"i","type":"click"}""", "userId is required")]
    [InlineData("""{"userId":"u","type":"click"}""", "itemId is required")]
    [InlineData("""{"userId":"u","itemId":"i","type":"rating"}""", "a rating needs a value")]
    [InlineData("""{"userId":"u","type":"reward","value":1}""", "a reward needs an itemId or a recommendationId")]
    [InlineData("""{"userId":"u","itemId":"i","type":"click","position":-1}""", "position -1 is outside")]
    [InlineData("""{"userId":"u","itemId":"i","type":"click","timestamp":"2030-01-01T00:00:00Z"}""", "is in the future")]
    [InlineData("""{"userId":"u","itemId":"i","type":"click","timestamp":"1999-01-01T00:00:00Z"}""", "is before")]
    [InlineData("""{"userId":"u","itemId":"i","type":"click","schemaVersion":2}""", "schemaVersion 2 is not supported")]
    [InlineData("""{"kind":"order","userId":"u"}""", "kind 'order' is unknown")]
    [InlineData("""{"userId":"u\u0001","itemId":"i","type":"click"}""", "userId contains a control")]
    [InlineData("""{"userId":"u","itemId":"i","type":"click","value":"high"}""", "malformed JSON")]
    [InlineData("""{"userId":"u",""", "malformed JSON")]
    [InlineData("""[1,2]""", "malformed JSON")]
    [InlineData("""null""", "event is null")]
    public void Invalid_events_are_refused_with_a_reason(string json, string reason)
    {
        var parsed = Parse(json);

        Assert.False(parsed.IsValid);
        Assert.Contains(reason, parsed.Error);
    }

    [Fact]
    public void Bounds_on_ids_context_and_text_are_enforced()
    {
        var limits = EventLimits.Default;
        var longId = new string('x', limits.MaxIdLength + 1);
        var bigContext = string.Join(",", Enumerable.Range(0, limits.MaxContextEntries + 1).Select(i => $"\"k{i}\":\"v\""));
        var longText = new string('t', limits.MaxTextLength + 1);

        Assert.Contains("userId is 129 characters", Parse($$"""{"userId":"{{longId}}","itemId":"i","type":"click"}""").Error);
        Assert.Contains("context has 17 entries", Parse($$$"""{"userId":"u","itemId":"i","type":"click","context":{{{{bigContext}}}}}""").Error);
        Assert.Contains("text is 4097 characters", Parse($$"""{"kind":"item","itemId":"i","text":"{{longText}}"}""").Error);
        Assert.Contains("bytes; the limit is", _parser.Parse(new byte[limits.MaxEventBytes + 1], Now).Error);
    }

    [Fact]
    public void Payloads_that_are_not_utf8_are_kept_as_base64_for_the_dead_letter()
    {
        var text = EventParser.PayloadText(new byte[] { 0xff, 0xfe, 0x41 });

        Assert.Equal("base64:" + Convert.ToBase64String(new byte[] { 0xff, 0xfe, 0x41 }), text);
    }
}
