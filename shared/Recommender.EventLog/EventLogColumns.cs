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

    private ReadOnlyMemory<char>?[] _eventId, _userId, _itemId, _type, _sessionId, _recommendationId, _context, _deliveryKey;
    private double?[] _value;
    private DateTime[] _timestamp, _ingestedAt;
    private int?[] _position;
    private long?[] _sequenceNumber;
    private readonly List<char[]> _text = [];
    private int _textUsed = TextChunk;
    private readonly ArrayBufferWriter<byte> _json = new(512);

    public EventLogColumns(int capacity = 1024)
    {
        _eventId = Rent<ReadOnlyMemory<char>?>(capacity);
        _userId = Rent<ReadOnlyMemory<char>?>(capacity);
        _itemId = Rent<ReadOnlyMemory<char>?>(capacity);
        _type = Rent<ReadOnlyMemory<char>?>(capacity);
        _sessionId = Rent<ReadOnlyMemory<char>?>(capacity);
        _recommendationId = Rent<ReadOnlyMemory<char>?>(capacity);
        _context = Rent<ReadOnlyMemory<char>?>(capacity);
        _deliveryKey = Rent<ReadOnlyMemory<char>?>(capacity);
        _value = Rent<double?>(capacity);
        _timestamp = Rent<DateTime>(capacity);
        _ingestedAt = Rent<DateTime>(capacity);
        _position = Rent<int?>(capacity);
        _sequenceNumber = Rent<long?>(capacity);
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
        _deliveryKey[row] = null;
        _ingestedAt[row] = default;
        _eventId[row] = Copy(e.EventId);
        _userId[row] = e.UserId.AsMemory();
        _itemId[row] = e.ItemId?.AsMemory();
        _type[row] = EventParser.WireName(e.Type).AsMemory();
        _value[row] = e.Value;
        _timestamp[row] = e.Timestamp.UtcDateTime;
        _sessionId[row] = e.SessionId?.AsMemory();
        _recommendationId[row] = e.RecommendationId?.AsMemory();
        _position[row] = e.Position;
        _context[row] = e.Context is null ? (ReadOnlyMemory<char>?)null : ContextJson(e.Context);
        _sequenceNumber[row] = sequenceNumber;
        if (Earliest is null || e.Timestamp < Earliest)
            Earliest = e.Timestamp;
    }

    /// <summary>Adds a row as it was read from the log (a purge rewriting a blob keeps its rows' delivery and ingestion time).</summary>
    public void Add(EventLogRecord r)
    {
        Grow();
        var row = Count++;
        _eventId[row] = r.EventId.AsMemory();
        _userId[row] = r.UserId.AsMemory();
        _itemId[row] = r.ItemId?.AsMemory();
        _type[row] = r.Type.AsMemory();
        _value[row] = r.Value;
        _timestamp[row] = r.Timestamp;
        _sessionId[row] = r.SessionId?.AsMemory();
        _recommendationId[row] = r.RecommendationId?.AsMemory();
        _position[row] = r.Position;
        _context[row] = r.Context?.AsMemory();
        _deliveryKey[row] = r.DeliveryKey.AsMemory();
        _sequenceNumber[row] = r.SequenceNumber;
        _ingestedAt[row] = r.IngestedAt;
        var timestamp = new DateTimeOffset(DateTime.SpecifyKind(r.Timestamp, DateTimeKind.Utc));
        if (Earliest is null || timestamp < Earliest)
            Earliest = timestamp;
    }

    /// <summary>Writes the rows as one row group; rows added from events get <paramref name="deliveryKey"/> and <paramref name="ingestedAt"/>.</summary>
    internal async Task WriteAsync(Stream stream, Parquet.ParquetOptions options, string? deliveryKey, DateTimeOffset ingestedAt, CancellationToken cancellationToken)
    {
        for (var row = 0; row < Count; row++)
        {
            if (_deliveryKey[row] is null)
                (_deliveryKey[row], _ingestedAt[row]) = (deliveryKey?.AsMemory() ?? throw new InvalidOperationException("rows added from events need the delivery's key"), ingestedAt.UtcDateTime);
        }
        {
            await using var writer = await Parquet.ParquetWriter.CreateAsync(Schema, stream, options, cancellationToken: cancellationToken);
            using var group = writer.CreateRowGroup();
            // In the schema's order, which is EventLogRecord's.
            foreach (var field in Schema.GetDataFields())
            {
                var task = field.Name switch
                {
                    nameof(EventLogRecord.EventId) => Text(_eventId),
                    nameof(EventLogRecord.UserId) => Text(_userId),
                    nameof(EventLogRecord.ItemId) => Text(_itemId),
                    nameof(EventLogRecord.Type) => Text(_type),
                    nameof(EventLogRecord.Value) => group.WriteAsync(field, new ReadOnlyMemory<double?>(_value, 0, Count), cancellationToken: cancellationToken),
                    nameof(EventLogRecord.Timestamp) => group.WriteAsync(field, new ReadOnlyMemory<DateTime>(_timestamp, 0, Count), cancellationToken: cancellationToken),
                    nameof(EventLogRecord.SessionId) => Text(_sessionId),
                    nameof(EventLogRecord.RecommendationId) => Text(_recommendationId),
                    nameof(EventLogRecord.Position) => group.WriteAsync(field, new ReadOnlyMemory<int?>(_position, 0, Count), cancellationToken: cancellationToken),
                    nameof(EventLogRecord.Context) => Text(_context),
                    nameof(EventLogRecord.DeliveryKey) => Text(_deliveryKey),
                    nameof(EventLogRecord.SequenceNumber) => group.WriteAsync(field, new ReadOnlyMemory<long?>(_sequenceNumber, 0, Count), cancellationToken: cancellationToken),
                    nameof(EventLogRecord.IngestedAt) => group.WriteAsync(field, new ReadOnlyMemory<DateTime>(_ingestedAt, 0, Count), cancellationToken: cancellationToken),
                    var other => throw new InvalidOperationException($"EventLogRecord has a column {other} the event log does not write"),
                };
                await task;

                Task Text(ReadOnlyMemory<char>?[] column) => group.WriteAsync(field, new ReadOnlyMemory<ReadOnlyMemory<char>?>(column, 0, Count), cancellationToken: cancellationToken);
            }
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
        if (Count < _eventId.Length)
            return;
        var capacity = _eventId.Length * 2;
        Regrow(ref _eventId, capacity);
        Regrow(ref _userId, capacity);
        Regrow(ref _itemId, capacity);
        Regrow(ref _type, capacity);
        Regrow(ref _sessionId, capacity);
        Regrow(ref _recommendationId, capacity);
        Regrow(ref _context, capacity);
        Regrow(ref _deliveryKey, capacity);
        Regrow(ref _value, capacity);
        Regrow(ref _timestamp, capacity);
        Regrow(ref _ingestedAt, capacity);
        Regrow(ref _position, capacity);
        Regrow(ref _sequenceNumber, capacity);
    }

    private void Regrow<T>(ref T[] column, int capacity)
    {
        var grown = Rent<T>(capacity);
        Array.Copy(column, grown, Count);
        ArrayPool<T>.Shared.Return(column, clearArray: System.Runtime.CompilerServices.RuntimeHelpers.IsReferenceOrContainsReferences<T>());
        column = grown;
    }

    private static T[] Rent<T>(int capacity) => ArrayPool<T>.Shared.Rent(Math.Max(16, capacity));

    /// <summary>Gives the pooled arrays back (cleared where they hold references, so nothing the rows named is kept alive).</summary>
    public void Dispose()
    {
        Return(_eventId);
        Return(_userId);
        Return(_itemId);
        Return(_type);
        Return(_sessionId);
        Return(_recommendationId);
        Return(_context);
        Return(_deliveryKey);
        Return(_value);
        Return(_timestamp);
        Return(_ingestedAt);
        Return(_position);
        Return(_sequenceNumber);
        foreach (var chunk in _text)
            ArrayPool<char>.Shared.Return(chunk);
        _text.Clear();
        Count = 0;
    }

    private static void Return<T>(T[] column) =>
        ArrayPool<T>.Shared.Return(column, clearArray: System.Runtime.CompilerServices.RuntimeHelpers.IsReferenceOrContainsReferences<T>());
}
