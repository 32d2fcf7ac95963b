using Azure.Messaging.EventHubs;
using Azure.Messaging.EventHubs.Producer;
using Recommender.Events;
using Recommender.Storage;

namespace Recommender.Ingestion;

/// <summary>
/// Sends events to Event Hubs for clients and tools: each event one message in the product's wire
/// format. A user's events all go to one partition (chosen by a stable hash of the user id), so a
/// partition's batch holds several events of each active user and the online state is written once
/// per user per batch; within a partition, events are packed into as few batches as the size limit allows.
/// </summary>
public sealed class EventHubsEventProducer(EventHubProducerClient producer)
{
    /// <summary>Sends the events; returns how many batches it took.</summary>
    public async Task<int> SendAsync(IEnumerable<WireEvent> events, CancellationToken cancellationToken = default)
    {
        var partitionIds = await producer.GetPartitionIdsAsync(cancellationToken);
        var batches = 0;
        foreach (var partition in events.GroupBy(e => PartitionIndex(e.UserId ?? e.ItemId ?? "", partitionIds.Length)))
        {
            var options = new CreateBatchOptions { PartitionId = partitionIds[partition.Key] };
            var batch = await producer.CreateBatchAsync(options, cancellationToken);
            try
            {
                foreach (var e in partition)
                {
                    var data = new EventData(e.ToUtf8Json()) { ContentType = "application/json", MessageId = e.EventId };
                    if (batch.TryAdd(data))
                        continue;
                    if (batch.Count == 0)
                        throw new ArgumentException($"event {e.EventId} is larger than an Event Hubs batch allows");
                    await producer.SendAsync(batch, cancellationToken);
                    batches++;
                    batch.Dispose();
                    batch = await producer.CreateBatchAsync(options, cancellationToken);
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
        }
        return batches;
    }

    /// <summary>The partition (by index) of a user's events; the same hash as <see cref="TableKeys.UserBucket"/>.</summary>
    public static int PartitionIndex(string key, int partitionCount) => (int)(TableKeys.StableHash(key) % (uint)partitionCount);
}
