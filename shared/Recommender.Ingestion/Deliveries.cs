namespace Recommender.Ingestion;

/// <summary>One message as Event Hubs delivered it.</summary>
public readonly record struct EventHubsMessage(ReadOnlyMemory<byte> Body, long SequenceNumber, DateTimeOffset EnqueuedTime);

/// <summary>A batch from one Event Hubs partition, as the trigger hands it over.</summary>
public sealed record EventHubsDelivery(string ConsumerGroup, string PartitionId, IReadOnlyList<EventHubsMessage> Messages);

/// <summary>Why one event of a delivery was not ingested.</summary>
public sealed record Rejection(int Index, string? EventId, string Reason);

/// <summary>What happened to a delivery.</summary>
/// <param name="Accepted">Events now in the log or the catalog (including ones a redelivery had already written).</param>
/// <param name="AlreadyIngested">Events dropped because an earlier delivery had ingested them (redelivery, duplicate ids in one batch).</param>
/// <param name="Rejected">Refused events, each dead-lettered with its reason.</param>
public sealed record IngestResult(string? DeliveryKey, int Accepted, int AlreadyIngested, IReadOnlyList<Rejection> Rejected)
{
    public static IngestResult Nothing { get; } = new(null, 0, 0, []);
}
