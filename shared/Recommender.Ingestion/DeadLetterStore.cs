using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;

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
public sealed class DeadLetterStore(BlobContainerClient container)
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
