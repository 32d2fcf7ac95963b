using Azure.Messaging.EventHubs;
using Azure.Messaging.EventHubs.Producer;
using Recommender.Events;
using Recommender.Ingestion;
using Recommender.TestSupport;

namespace Recommender.Ingestion.Tests;

/// <summary>The producer, without a network: batches made by EventHubsModelFactory with a real size limit.</summary>
public sealed class EventHubsEventProducerTests
{
    private sealed class RecordingProducer(long maxBatchBytes) : EventHubProducerClient
    {
        public List<List<EventData>> Sent { get; } = [];
        private readonly Dictionary<EventDataBatch, List<EventData>> _contents = [];

        public override ValueTask<EventDataBatch> CreateBatchAsync(CancellationToken cancellationToken = default)
        {
            var store = new List<EventData>();
            long size = 0;
            var batch = EventHubsModelFactory.EventDataBatch(maxBatchBytes, store, new CreateBatchOptions(), e =>
            {
                var bytes = e.EventBody.ToMemory().Length + 64; // message overhead, roughly as AMQP adds it
                if (size + bytes > maxBatchBytes)
                    return false;
                size += bytes;
                return true;
            });
            _contents[batch] = store;
            return ValueTask.FromResult(batch);
        }

        public override Task SendAsync(EventDataBatch eventBatch, CancellationToken cancellationToken = default)
        {
            Sent.Add([.. _contents[eventBatch]]);
            return Task.CompletedTask;
        }
    }

    [Fact]
    public async Task Events_are_packed_into_batches_up_to_the_size_limit_and_arrive_parseable()
    {
        var client = new RecordingProducer(maxBatchBytes: 4096);
        var events = Enumerable.Range(0, 200).Select(n => TestEvents.Interaction(n)).ToList();

        var batches = await new EventHubsEventProducer(client).SendAsync(events);

        Assert.Equal(client.Sent.Count, batches);
        Assert.True(batches > 1 && batches < 200, $"{batches} batches");
        var parser = new EventParser();
        var received = client.Sent.SelectMany(b => b).Select(d => parser.Parse(d.EventBody.ToMemory().Span, TestEvents.Start.AddDays(1)).Interaction!.EventId);
        Assert.Equal(events.Select(e => e.EventId), received);
    }

    [Fact]
    public async Task An_event_larger_than_a_batch_is_refused_with_its_id()
    {
        var client = new RecordingProducer(maxBatchBytes: 100);
        var error = await Assert.ThrowsAsync<ArgumentException>(() => new EventHubsEventProducer(client).SendAsync([TestEvents.Interaction(7)]));
        Assert.Contains("e7", error.Message);
    }
}
