using Azure.Messaging.EventHubs;
using Azure.Messaging.EventHubs.Producer;
using Recommender.Events;
using Recommender.Ingestion;
using Recommender.TestSupport;

namespace Recommender.Ingestion.Tests;

/// <summary>The producer, without a network: batches made by EventHubsModelFactory with a real size limit.</summary>
[Trait("Kind", "Unit")]
public sealed class EventHubsEventProducerTests
{
    private sealed class RecordingProducer(long maxBatchBytes, int partitions = 4) : EventHubProducerClient
    {
        public List<(string PartitionId, List<EventData> Events)> Sent { get; } = [];
        private readonly Dictionary<EventDataBatch, (string, List<EventData>)> _contents = [];

        public override Task<string[]> GetPartitionIdsAsync(CancellationToken cancellationToken = default) =>
            Task.FromResult(Enumerable.Range(0, partitions).Select(p => p.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray());

        public override ValueTask<EventDataBatch> CreateBatchAsync(CreateBatchOptions options, CancellationToken cancellationToken = default)
        {
            var store = new List<EventData>();
            long size = 0;
            var batch = EventHubsModelFactory.EventDataBatch(maxBatchBytes, store, options, e =>
            {
                var bytes = e.EventBody.ToMemory().Length + 64; // message overhead, roughly as AMQP adds it
                if (size + bytes > maxBatchBytes)
                    return false;
                size += bytes;
                return true;
            });
            _contents[batch] = (options.PartitionId!, store);
            return ValueTask.FromResult(batch);
        }

        public override Task SendAsync(EventDataBatch eventBatch, CancellationToken cancellationToken = default)
        {
            var (partition, store) = _contents[eventBatch];
            Sent.Add((partition, [.. store]));
            return Task.CompletedTask;
        }
    }

    [Fact]
    public async Task Events_are_packed_into_batches_up_to_the_size_limit_each_user_on_one_partition()
    {
        var client = new RecordingProducer(maxBatchBytes: 4096);
        var events = Enumerable.Range(0, 200).Select(n => TestEvents.Interaction(n)).ToList();

        var batches = await new EventHubsEventProducer(client).SendAsync(events);

        Assert.Equal(client.Sent.Count, batches);
        Assert.True(batches > 1 && batches < 200, $"{batches} batches");
        var parser = new EventParser();
        var received = client.Sent
            .SelectMany(b => b.Events.Select(d => (b.PartitionId, parser.Parse(d.EventBody.ToMemory().Span, TestEvents.Start.AddDays(1)).Interaction!)))
            .ToList();
        Assert.Equal(events.Select(e => e.EventId).Order(), received.Select(r => r.Item2.EventId).Order());
        Assert.All(received.GroupBy(r => r.Item2.UserId), user => Assert.Single(user.Select(r => r.PartitionId).Distinct()));
        Assert.True(received.Select(r => r.PartitionId).Distinct().Count() > 1, "users spread over partitions");
        var perPartition = received.GroupBy(r => r.PartitionId).Select(g => g.Select(r => r.Item2.EventId).ToList());
        Assert.All(perPartition, p => Assert.Equal(events.Select(e => e.EventId!).Where(p.Contains), p)); // order kept within a partition
    }

    [Fact]
    public async Task An_event_larger_than_a_batch_is_refused_with_its_id()
    {
        var client = new RecordingProducer(maxBatchBytes: 100);
        var error = await Assert.ThrowsAsync<ArgumentException>(() => new EventHubsEventProducer(client).SendAsync([TestEvents.Interaction(7)]));
        Assert.Contains("e7", error.Message);
    }
}
