using System.Text;
using CsCheck;
using Recommender.Events;
using Recommender.TestSupport;

namespace Recommender.Events.Tests;

/// <summary>Whatever arrives, parsing never throws: the event is accepted or refused with a reason.</summary>
[Trait("Kind", "Unit")]
public sealed class EventParserProperties
{
    private static readonly DateTimeOffset Now = TestEvents.Start.AddDays(1);
    private readonly EventParser _parser = new();

    private void AcceptedOrRefused(byte[] bytes)
    {
        var parsed = _parser.Parse(bytes, Now);
        var records = (parsed.Interaction is null ? 0 : 1) + (parsed.Item is null ? 0 : 1) + (parsed.Profile is null ? 0 : 1);
        if (parsed.IsValid)
            Assert.Equal(1, records);
        else
        {
            Assert.Equal(0, records);
            Assert.False(string.IsNullOrWhiteSpace(parsed.Error));
        }
    }

    [Fact]
    public void Arbitrary_bytes_never_throw()
    {
        Gen.Byte.Array[0, 300].Sample(AcceptedOrRefused, iter: 5_000);
    }

    private static readonly Gen<string> PlausibleJsonObjects = Gen.Select(
            Gen.OneOf("eventId", "userId", "itemId", "type", "value", "timestamp", "sessionId", "recommendationId",
                "position", "context", "kind", "schemaVersion", "categories", "tags", "title", "text", "available", "attributes", "other"),
            Gen.OneOf(
                Gen.String[Gen.Char.AlphaNumeric, 0, 140].Select(s => $"\"{s}\""),
                Gen.OneOf("\"click\"", "\"rating\"", "\"reward\"", "\"item\"", "\"user\"", "\"2026-11-01T00:00:00Z\"", "\"9999-01-01T00:00:00Z\"",
                    "null", "true", "[]", "[\"a\"]", "{}", "{\"a\":\"b\"}", "{\"a\":1}", "1e400", "-1", "2", "0.5", "\"\\u0000\"", "\"\\ud800\""),
                Gen.Int.Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture))))
        .List[0, 12]
        .Select(fields => "{" + string.Join(",", fields.Select(f => $"\"{f.Item1}\":{f.Item2}")) + "}");

    /// <summary>
    /// The product's own events (impressions, rewards) are validated as built, not read back from their JSON: whatever the
    /// event, that gives the same verdict and the same record as parsing its JSON.
    /// </summary>
    [Fact]
    public void An_event_validated_as_built_gets_the_verdict_and_record_its_json_gets()
    {
        PlausibleJsonObjects.Sample(j =>
        {
            WireEvent? wire;
            byte[] json;
            try
            {
                wire = System.Text.Json.JsonSerializer.Deserialize<WireEvent>(j, EventJsonContext.Default.WireEvent);
                if (wire is null)
                    return;
                json = wire.ToUtf8Json();
            }
            catch (Exception e) when (e is System.Text.Json.JsonException or ArgumentException or InvalidOperationException or FormatException or OverflowException)
            {
                return; // not an event object, or none that can be written (1e400 reads as infinity): only the JSON path meets it
            }
            var fromJson = _parser.Parse(json, Now);
            var asBuilt = _parser.Parse(wire, json, Now);
            Assert.Equal(fromJson.Error, asBuilt.Error);
            Assert.Equal(Describe(fromJson), Describe(asBuilt));
        }, iter: 5_000);

        static string Describe(ParsedEvent parsed) => System.Text.Json.JsonSerializer.Serialize(new object?[] { parsed.Interaction, parsed.Item, parsed.Profile });
    }

    /// <summary>Plausible JSON objects with random fields and values: the interesting cases are near valid ones.</summary>
    [Fact]
    public void Arbitrary_json_objects_never_throw()
    {
        PlausibleJsonObjects.Sample(j => AcceptedOrRefused(Encoding.UTF8.GetBytes(j)), iter: 5_000);
    }
}
