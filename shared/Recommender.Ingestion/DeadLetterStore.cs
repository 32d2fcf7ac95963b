using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Recommender.Storage;

namespace Recommender.Ingestion;

/// <summary>A refused event: why, and exactly what arrived, so it can be fixed and resent.</summary>
/// <param name="Index">Position of the event in its delivery.</param>
public sealed record DeadLetter(
    string Reason,
    string Payload,
    string DeliveryKey,
    int Index,
    long? SequenceNumber,
    DateTimeOffset ReceivedAt);

/// <summary>
/// Dead letters of one delivery go into one JSON-lines blob named by the delivery, so a
/// redelivered batch does not record its refused events twice.
/// </summary>
public sealed class DeadLetterStore(BlobContainerClient container) : IUserDataHolder
{
    public async Task WriteAsync(string source, string deliveryKey, IReadOnlyList<DeadLetter> deadLetters, CancellationToken cancellationToken = default)
    {
        if (deadLetters.Count == 0)
            return;
        var text = new StringBuilder();
        foreach (var letter in deadLetters)
        {
            text.Append(JsonSerializer.Serialize(letter, DeadLetterJsonContext.Default.DeadLetter)).Append('\n');
        }
        // Already there when an earlier attempt at the same delivery wrote it.
        await container.GetBlobClient(StorageLayout.DeadLetterBlobName(source, deliveryKey)).UploadIfAbsentAsync(
            BinaryData.FromString(text.ToString()), cancellationToken: cancellationToken);
    }

    /// <summary>Removes the dead letters of a delivery that was abandoned before it committed (see <see cref="EventIngestor"/>).</summary>
    public Task DeleteAsync(string source, string deliveryKey, CancellationToken cancellationToken = default) =>
        container.GetBlobClient(StorageLayout.DeadLetterBlobName(source, deliveryKey)).DeleteIfExistsAsync(cancellationToken: cancellationToken);

    /// <summary>
    /// Rewrites every dead-letter blob holding refused events of the deleted users without them (in place; a blob left
    /// empty stays, as the mark that its delivery was recorded). A payload names its user when its <c>userId</c> can be
    /// read, even from JSON broken further on.
    /// </summary>
    public async Task PurgeAsync(TombstoneSet due, PurgeTally tally, CancellationToken cancellationToken)
    {
        await foreach (var blob in container.GetBlobsAsync(cancellationToken: cancellationToken))
        {
            var content = await container.GetBlobClient(blob.Name).DownloadContentAsync(cancellationToken);
            var lines = content.Value.Content.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
            var kept = new StringBuilder();
            var removed = 0;
            foreach (var line in lines)
            {
                var letter = JsonSerializer.Deserialize(line, DeadLetterJsonContext.Default.DeadLetter)!;
                var userId = UserOf(letter.Payload);
                if (userId is not null && due.Find(userId) is { } tombstone
                    && tombstone.Covers(letter.ReceivedAt.UtcDateTime))
                {
                    tally.Add(tombstone, "deadLetters");
                    removed++;
                }
                else
                    kept.Append(line).Append('\n');
            }
            if (removed > 0)
                await container.GetBlobClient(blob.Name).UploadAsync(BinaryData.FromString(kept.ToString()),
                    new BlobUploadOptions { Conditions = new BlobRequestConditions { IfMatch = content.Value.Details.ETag } }, cancellationToken);
        }
    }

    /// <summary>The top-level <c>userId</c> of a refused payload, if it can be read before the JSON breaks.</summary>
    private static string? UserOf(string payload)
    {
        var reader = new Utf8JsonReader(Encoding.UTF8.GetBytes(payload));
        try
        {
            while (reader.Read())
            {
                if (reader.TokenType != JsonTokenType.PropertyName || reader.CurrentDepth != 1)
                    continue;
                var isUserId = reader.ValueTextEquals("userId");
                if (!reader.Read())
                    break;
                if (isUserId && reader.TokenType == JsonTokenType.String)
                    return reader.GetString();
            }
        }
        catch (JsonException)
        {
            // Broken before a userId: the letter names no user.
        }
        return null;
    }

    public async Task<IReadOnlyList<DeadLetter>> ReadAllAsync(string? source = null, CancellationToken cancellationToken = default)
    {
        var letters = new List<DeadLetter>();
        await foreach (var blob in container.GetBlobsAsync(new GetBlobsOptions { Prefix = source is null ? null : source + "/" }, cancellationToken))
        {
            var content = await container.GetBlobClient(blob.Name).DownloadContentAsync(cancellationToken);
            foreach (var line in content.Value.Content.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                letters.Add(JsonSerializer.Deserialize(line, DeadLetterJsonContext.Default.DeadLetter)!);
            }
        }
        return letters;
    }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(DeadLetter))]
internal sealed partial class DeadLetterJsonContext : JsonSerializerContext;
