using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Parquet.Schema;
using Parquet.Serialization;
using Recommender.Events;

namespace Recommender.EventLog;

/// <summary>
/// Rows of one event-log blob held as its columns, in <see cref="EventLogRecord"/>'s schema, without an object per row:
/// numbers in pooled arrays, text the rows own (event ids, context JSON) copied into pooled character buffers, text
/// they share with their events (user, item, session, recommendation ids) referenced as it is. A delivery of tens of
/// thousands of events (what serving logs every second) then leaves nothing behind for the collector to promote while
/// its blob is uploaded. <see cref="EventLogStore.AppendAsync(string, EventLogColumns, string, DateTimeOffset, CancellationToken)"/> writes it.
/// </summary>
public sealed class EventLogColumns : IDisposable
{
    /// <summary>The blob's schema: what <see cref="Parquet.Serialization.ParquetSerializer"/> writes and reads for <see cref="EventLogRecord"/>.</summary>
    public static readonly ParquetSchema Schema = typeof(EventLogRecord).GetParquetSchema(forWriting: true);

    private const int TextChunk = 64 * 1024;

    // Every column, for what is done to all of them alike (grow, give back); each is also a field of its own, named.
    private readonly List<IColumn> _columns = [];
    private readonly Column<ReadOnlyMemory<char>?> _eventId, _userId, _itemId, _type, _sessionId, _recommendationId, _context, _deliveryKey;
    private readonly Column<double?> _value;
    private readonly Column<DateTime> _timestamp, _ingestedAt;
    private readonly Column<int?> _position;
    private readonly Column<long?> _sequenceNumber;
    private readonly List<char[]> _text = [];
    private int _textUsed = TextChunk;
    private readonly ArrayBufferWriter<byte> _json = new(512);

    public EventLogColumns(int capacity = 1024)
    {
        _eventId = new(capacity, _columns);
        _userId = new(capacity, _columns);
        _itemId = new(capacity, _columns);
        _type = new(capacity, _columns);
        _sessionId = new(capacity, _columns);
        _recommendationId = new(capacity, _columns);
        _context = new(capacity, _columns);
        _deliveryKey = new(capacity, _columns);
        _value = new(capacity, _columns);
        _timestamp = new(capacity, _columns);
        _ingestedAt = new(capacity, _columns);
        _position = new(capacity, _columns);
        _sequenceNumber = new(capacity, _columns);
    }

    /// <summary>Rows added so far.</summary>
    public int Count { get; private set; }

    /// <summary>The earliest event time among the rows (the blob's partition time).</summary>
    public DateTimeOffset? Earliest { get; private set; }

    /// <summary>
    /// Adds a row for <paramref name="e"/>, with the position of the event in its source (Event Hubs' sequence number); its
    /// delivery and ingestion time are the blob's, given when it is written.
    /// </summary>
    public void Add(Interaction e, long? sequenceNumber = null)
    {
        Grow();
        var row = Count++;
        _deliveryKey.Values[row] = null;
        _ingestedAt.Values[row] = default;
        _eventId.Values[row] = Copy(e.EventId);
        _userId.Values[row] = e.UserId.AsMemory();
        _itemId.Values[row] = e.ItemId?.AsMemory();
        _type.Values[row] = EventParser.WireName(e.Type).AsMemory();
        _value.Values[row] = e.Value;
        _timestamp.Values[row] = e.Timestamp.UtcDateTime;
        _sessionId.Values[row] = e.SessionId?.AsMemory();
        _recommendationId.Values[row] = e.RecommendationId?.AsMemory();
        _position.Values[row] = e.Position;
        _context.Values[row] = e.Context is null ? (ReadOnlyMemory<char>?)null : ContextJson(e.Context);
        _sequenceNumber.Values[row] = sequenceNumber;
        if (Earliest is null || e.Timestamp < Earliest)
            Earliest = e.Timestamp;
    }

    /// <summary>Adds a row as it was read from the log (a purge rewriting a blob keeps its rows' delivery and ingestion time).</summary>
    public void Add(EventLogRecord r)
    {
        Grow();
        var row = Count++;
        _eventId.Values[row] = r.EventId.AsMemory();
        _userId.Values[row] = r.UserId.AsMemory();
        _itemId.Values[row] = r.ItemId?.AsMemory();
        _type.Values[row] = r.Type.AsMemory();
        _value.Values[row] = r.Value;
        _timestamp.Values[row] = r.Timestamp;
        _sessionId.Values[row] = r.SessionId?.AsMemory();
        _recommendationId.Values[row] = r.RecommendationId?.AsMemory();
        _position.Values[row] = r.Position;
        _context.Values[row] = r.Context?.AsMemory();
        _deliveryKey.Values[row] = r.DeliveryKey.AsMemory();
        _sequenceNumber.Values[row] = r.SequenceNumber;
        _ingestedAt.Values[row] = r.IngestedAt;
        var timestamp = new DateTimeOffset(DateTime.SpecifyKind(r.Timestamp, DateTimeKind.Utc));
        if (Earliest is null || timestamp < Earliest)
            Earliest = timestamp;
    }

    /// <summary>Writes the rows as one row group; rows added from events get <paramref name="deliveryKey"/> and <paramref name="ingestedAt"/>.</summary>
    internal async Task WriteAsync(Stream stream, Parquet.ParquetOptions options, string? deliveryKey, DateTimeOffset ingestedAt, CancellationToken cancellationToken)
    {
        for (var row = 0; row < Count; row++)
        {
            if (_deliveryKey.Values[row] is null)
                (_deliveryKey.Values[row], _ingestedAt.Values[row]) = (deliveryKey?.AsMemory() ?? throw new InvalidOperationException("rows added from events need the delivery's key"), ingestedAt.UtcDateTime);
        }
        await using var writer = await Parquet.ParquetWriter.CreateAsync(Schema, stream, options, cancellationToken: cancellationToken);
        using var group = writer.CreateRowGroup();
        // In the schema's order, which is EventLogRecord's.
        foreach (var field in Schema.GetDataFields())
        {
            var task = field.Name switch
            {
                nameof(EventLogRecord.EventId) => WriteNullable(_eventId),
                nameof(EventLogRecord.UserId) => WriteNullable(_userId),
                nameof(EventLogRecord.ItemId) => WriteNullable(_itemId),
                nameof(EventLogRecord.Type) => WriteNullable(_type),
                nameof(EventLogRecord.Value) => WriteNullable(_value),
                nameof(EventLogRecord.Timestamp) => Write(_timestamp),
                nameof(EventLogRecord.SessionId) => WriteNullable(_sessionId),
                nameof(EventLogRecord.RecommendationId) => WriteNullable(_recommendationId),
                nameof(EventLogRecord.Position) => WriteNullable(_position),
                nameof(EventLogRecord.Context) => WriteNullable(_context),
                nameof(EventLogRecord.DeliveryKey) => WriteNullable(_deliveryKey),
                nameof(EventLogRecord.SequenceNumber) => WriteNullable(_sequenceNumber),
                nameof(EventLogRecord.IngestedAt) => Write(_ingestedAt),
                var other => throw new InvalidOperationException($"EventLogRecord has a column {other} the event log does not write"),
            };
            await task;

            Task Write<T>(Column<T> column) where T : struct =>
                group.WriteAsync(field, new ReadOnlyMemory<T>(column.Values, 0, Count), cancellationToken: cancellationToken);
            Task WriteNullable<T>(Column<T?> column) where T : struct =>
                group.WriteAsync(field, new ReadOnlyMemory<T?>(column.Values, 0, Count), cancellationToken: cancellationToken);
        }
    }

    /// <summary>The context map as JSON, written as the serializer writes a <c>Dictionary&lt;string, string&gt;</c> (the same escaping), into pooled text.</summary>
    private ReadOnlyMemory<char> ContextJson(IReadOnlyDictionary<string, string> context)
    {
        _json.ResetWrittenCount();
        using (var writer = new Utf8JsonWriter(_json))
        {
            writer.WriteStartObject();
            foreach (var (key, value) in context)
                writer.WriteString(key, value);
            writer.WriteEndObject();
        }
        var length = Encoding.UTF8.GetCharCount(_json.WrittenSpan);
        var (chunk, start) = Reserve(length);
        Encoding.UTF8.GetChars(_json.WrittenSpan, chunk.AsSpan(start, length));
        return chunk.AsMemory(start, length);
    }

    private ReadOnlyMemory<char> Copy(string text)
    {
        var (chunk, start) = Reserve(text.Length);
        text.CopyTo(chunk.AsSpan(start));
        return chunk.AsMemory(start, text.Length);
    }

    private (char[] Chunk, int Start) Reserve(int length)
    {
        if (_textUsed + length > (_text.Count == 0 ? 0 : _text[^1].Length))
        {
            _text.Add(ArrayPool<char>.Shared.Rent(Math.Max(TextChunk, length)));
            _textUsed = 0;
        }
        var start = _textUsed;
        _textUsed += length;
        return (_text[^1], start);
    }

    private void Grow()
    {
        if (Count < _eventId.Values.Length)
            return;
        foreach (var column in _columns)
            column.Grow(Count, Count * 2);
    }

    /// <summary>Gives the pooled arrays back (cleared where they hold references, so nothing the rows named is kept alive).</summary>
    public void Dispose()
    {
        foreach (var column in _columns)
            column.Return();
        foreach (var chunk in _text)
            ArrayPool<char>.Shared.Return(chunk);
        _text.Clear();
        Count = 0;
    }

    private interface IColumn
    {
        /// <summary>A pooled array of <paramref name="capacity"/> in place of this one, its first <paramref name="count"/> rows copied.</summary>
        void Grow(int count, int capacity);

        void Return();
    }

    /// <summary>One column's values, in an array rented from the shared pool.</summary>
    private sealed class Column<T> : IColumn
    {
        public Column(int capacity, List<IColumn> columns)
        {
            Values = Rent(capacity);
            columns.Add(this);
        }

        public T[] Values { get; private set; }

        public void Grow(int count, int capacity)
        {
            var grown = Rent(capacity);
            Array.Copy(Values, grown, count);
            Return();
            Values = grown;
        }

        public void Return() =>
            ArrayPool<T>.Shared.Return(Values, clearArray: System.Runtime.CompilerServices.RuntimeHelpers.IsReferenceOrContainsReferences<T>());

        private static T[] Rent(int capacity) => ArrayPool<T>.Shared.Rent(Math.Max(16, capacity));
    }
}
