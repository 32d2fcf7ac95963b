using CsCheck;
using Parquet.Serialization;
using Recommender.EventLog;
using Recommender.Events;
using Recommender.TestSupport;

namespace Recommender.EventLog.Tests;

/// <summary>
/// The event log's blobs are written as columns (<see cref="EventLogColumns"/>) and read as records: they must read back as the
/// rows the record serializer (which wrote the log before) writes for the same events.
/// </summary>
[Trait("Kind", "Unit")]
public sealed class EventLogColumnsTests
{
    private static readonly Gen<string?> Text = Gen.OneOf(Gen.Const((string?)null), Gen.String[1, 12].Select(s => (string?)s),
        Gen.OneOf(Gen.Const("é<>&'\"\\ \u2028"), Gen.Const("item-42")).Select(s => (string?)s));

    private static readonly Gen<Interaction> Interactions = Gen.Select(Gen.String[1, 20], Gen.Enum<InteractionType>(), Gen.Double.Nullable(), Gen.Int[0, 1_000_000],
        Text, Text, Gen.Int[0, 50].Nullable(), Gen.OneOf(Gen.Const((IReadOnlyDictionary<string, string>?)null), Gen.Dictionary(Gen.String[1, 8], Gen.String[0, 10])[0, 4].Select(d => (IReadOnlyDictionary<string, string>?)d)),
        (id, type, value, seconds, item, session, position, context) => new Interaction(id, "user-" + id, item, type, value,
            TestEvents.Start.AddSeconds(seconds), session, item is null ? null : "rec-" + item, position, context));

    [Fact]
    public void Rows_written_as_columns_read_back_as_the_records_of_the_same_events()
    {
        Gen.Select(Interactions.List[1, 60], Gen.Long[0, 1_000].Nullable()).Sample(sample =>
        {
            var (events, sequence) = sample;
            using var rows = new EventLogColumns(capacity: 4); // grown on the way
            foreach (var e in events)
                rows.Add(e, sequence);
            var read = ReadBack(rows, "key-1", TestEvents.Start.AddDays(1));
            var expected = AsRecordsReadBack(events.Select(e => EventLogRecord.From(e, "key-1", sequence, TestEvents.Start.AddDays(1))).ToList());
            Assert.Equal(string.Join("\n", expected.Select(Fields)), string.Join("\n", read.Select(Fields)));
            Assert.Equal(events.Min(e => e.Timestamp), rows.Earliest);
        }, iter: 200);
    }

    [Fact]
    public void Rows_added_from_records_keep_their_own_delivery_and_ingestion_time()
    {
        var records = new[]
        {
            EventLogRecord.From(new Interaction("a", "u1", "i1", InteractionType.Click, null, TestEvents.Start, Context: new Dictionary<string, string> { ["k"] = "v" }), "first", 7, TestEvents.Start.AddHours(1)),
            EventLogRecord.From(new Interaction("b", "u2", null, InteractionType.Reward, 0.5, TestEvents.Start.AddMinutes(1), RecommendationId: "r"), "second", null, TestEvents.Start.AddHours(2)),
        };
        using var rows = new EventLogColumns();
        foreach (var record in records)
            rows.Add(record);
        Assert.Equal(AsRecordsReadBack(records).Select(Fields), ReadBack(rows, deliveryKey: null, default).Select(Fields));
    }

    private static IList<EventLogRecord> ReadBack(EventLogColumns rows, string? deliveryKey, DateTimeOffset ingestedAt)
    {
        using var blob = EventLogStore.SerializeAsync(rows, deliveryKey, ingestedAt, CancellationToken.None).GetAwaiter().GetResult();
        blob.Position = 0;
        return ParquetSerializer.DeserializeAsync<EventLogRecord>(blob).GetAwaiter().GetResult().Data;
    }

    private static IList<EventLogRecord> AsRecordsReadBack(IReadOnlyCollection<EventLogRecord> records)
    {
        using var blob = new MemoryStream();
        ParquetSerializer.SerializeAsync(records, blob).GetAwaiter().GetResult();
        blob.Position = 0;
        return ParquetSerializer.DeserializeAsync<EventLogRecord>(blob).GetAwaiter().GetResult().Data;
    }

    private static string Fields(EventLogRecord r) => string.Join("|", r.EventId, r.UserId, r.ItemId ?? "<null>", r.Type, r.Value?.ToString("R") ?? "<null>",
        r.Timestamp.ToString("O"), r.SessionId ?? "<null>", r.RecommendationId ?? "<null>", r.Position?.ToString() ?? "<null>", r.Context ?? "<null>", r.DeliveryKey,
        r.SequenceNumber?.ToString() ?? "<null>", r.IngestedAt.ToString("O"));
}
