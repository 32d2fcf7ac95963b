using Azure.Messaging.EventHubs;
using Azure.Messaging.EventHubs.Producer;
using Recommender.Events;

namespace Recommender.Ingestion;

/// <summary>
/// Sends events to Event Hubs for clients and tools: each event one message in the product's wire
/// format, packed into as few batches as the hub's size limit allows. No partition key: ingestion
/// orders a user's events by their timestamps, so spreading them over partitions costs nothing.
/// </summary>
public sealed class EventHubsEventProducer(EventHubProducerClient producer)
{
    /// <summary>Sends the events; returns how many batches it took.</summary>
    public async Task<int> SendAsync(IEnumerable<WireEvent> events, CancellationToken cancellationToken = default)
    {
        var batches = 0;
        var batch = await producer.CreateBatchAsync(cancellationToken);
        try
        {
            foreach (var e in events)
            {
                var data = new EventData(e.ToUtf8Json()) { ContentType = "application/json", MessageId = e.EventId };
                if (batch.TryAdd(data))
                    continue;
                if (batch.Count == 0)
                    throw new ArgumentException($"event {e.EventId} is larger than an Event Hubs batch allows");
                await producer.SendAsync(batch, cancellationToken);
                batches++;
                batch.Dispose();
                batch = await producer.CreateBatchAsync(cancellationToken);
                if (!batch.TryAdd(data))
                    throw new ArgumentException($"event {e.EventId} is larger than an Event Hubs batch allows");
            }
            if (batch.Count > 0)
            {
                await producer.SendAsync(batch, cancellationToken);
                batches++;
            }
        }
        finally
        {
            batch.Dispose();
        }
        return batches;
    }
}
