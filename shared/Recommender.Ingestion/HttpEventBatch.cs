using System.Text.Json;

namespace Recommender.Ingestion;

/// <summary>Limits of <c>POST /api/events</c>.</summary>
public sealed record HttpIngestLimits
{
    public static HttpIngestLimits Default { get; } = new();

    public int MaxEvents { get; init; } = 1000;
    public int MaxBodyBytes { get; init; } = 1024 * 1024;
}

/// <summary>Why a body was refused as a whole.</summary>
public enum HttpBatchError
{
    None,
    /// <summary>Not one JSON array: answer 400.</summary>
    Malformed,
    /// <summary>More events than the limit: answer 413.</summary>
    TooManyEvents,
}

/// <summary>
/// Splits an HTTP body (a JSON array of events) into the raw bytes of each event, so that each one
/// is validated (and dead-lettered) on its own. Only a body that is not a JSON array at all is
/// refused as a whole.
/// </summary>
public static class HttpEventBatch
{
    /// <summary>Reads at most <paramref name="maxBytes"/>; returns null when the body is larger.</summary>
    public static async Task<byte[]?> ReadBoundedAsync(Stream body, int maxBytes, CancellationToken cancellationToken = default)
    {
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int read;
        while ((read = await body.ReadAsync(chunk, cancellationToken)) > 0)
        {
            if (buffer.Length + read > maxBytes)
                return null;
            buffer.Write(chunk, 0, read);
        }
        return buffer.ToArray();
    }

    /// <summary>Splits the array, or says why the body is refused (<paramref name="kind"/>) and explains it (<paramref name="error"/>).</summary>
    public static bool TrySplit(ReadOnlyMemory<byte> body, int maxEvents, out List<ReadOnlyMemory<byte>> events, out string? error, out HttpBatchError kind)
    {
        events = [];
        error = null;
        kind = HttpBatchError.Malformed;
        try
        {
            var reader = new Utf8JsonReader(body.Span, new JsonReaderOptions { MaxDepth = 16 });
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartArray)
            {
                error = "the body must be a JSON array of events";
                return false;
            }
            while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
            {
                var start = (int)reader.TokenStartIndex;
                reader.Skip();
                var end = (int)reader.BytesConsumed;
                if (events.Count == maxEvents)
                {
                    kind = HttpBatchError.TooManyEvents;
                    error = $"the batch has more than {maxEvents} events";
                    return false;
                }
                events.Add(body[start..end]);
            }
            // Reading on past the array makes the reader refuse anything that follows it.
            reader.Read();
            kind = HttpBatchError.None;
            return true;
        }
        catch (JsonException ex)
        {
            error = $"malformed JSON at byte {ex.BytePositionInLine} of line {ex.LineNumber + 1}: {ex.Message.Split('.')[0]}";
            return false;
        }
    }
}
