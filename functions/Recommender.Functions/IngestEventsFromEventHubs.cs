using System.Text.Json;
using Azure.Messaging.EventHubs;
using Microsoft.Azure.Functions.Worker;
using Microsoft.Extensions.Configuration;
using Recommender.Ingestion;

namespace Recommender.Functions;

/// <summary>
/// Event Hubs -> event log and user state. The retry policy retries without limit: the host
/// checkpoints even when a function fails, so giving up on a batch would skip its events.
/// </summary>
public sealed class IngestEventsFromEventHubs(EventIngestor ingestor, IConfiguration configuration)
{
    [Function(nameof(IngestEventsFromEventHubs))]
    [ExponentialBackoffRetry(-1, "00:00:02", "00:05:00")]
    public async Task Run(
        [EventHubTrigger("%EventHubName%", Connection = "EventHubConnection", ConsumerGroup = "%EventHubConsumerGroup%", IsBatched = true)] EventData[] events,
        FunctionContext context)
    {
        var delivery = new EventHubsDelivery(
            configuration["EventHubConsumerGroup"] ?? "$Default",
            PartitionId(context),
            events.Select(e => new EventHubsMessage(e.EventBody.ToMemory(), e.SequenceNumber, e.EnqueuedTime)).ToList());
        await ingestor.IngestAsync(delivery, context.CancellationToken);
    }

    /// <summary>The host passes the partition in the trigger metadata as a JSON object.</summary>
    internal static string PartitionId(FunctionContext context)
    {
        if (context.BindingContext.BindingData.TryGetValue("PartitionContext", out var value) && value is not null)
        {
            using var json = JsonDocument.Parse(value.ToString()!);
            if (json.RootElement.TryGetProperty("PartitionId", out var id))
                return id.GetString() ?? throw new InvalidOperationException("PartitionContext.PartitionId is null");
        }
        throw new InvalidOperationException("the Event Hubs trigger did not pass a PartitionContext");
    }
}
