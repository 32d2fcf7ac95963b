using System.Buffers;
using System.Security.Cryptography;
using System.Text.Json;
using Recommender.EventLog;
using Recommender.Events;
using Recommender.Storage;

namespace Recommender.Ingestion;

/// <summary>
/// Ingests deliveries of raw events with an exactly-once effect over at-least-once delivery.
/// </summary>
/// <remarks>
/// Every delivery has a key derived from what was delivered (the Event Hubs partition and sequence
/// range, or the hash of an HTTP body), and its effects are applied in this order, each idempotent
/// for that key:
/// <list type="number">
/// <item>dead letters of refused events (one blob named by the key);</item>
/// <item>catalog items and user profiles (latest timestamp wins);</item>
/// <item>the event-log blob (named by the key, written only if absent): the commit point of the data;</item>
/// <item>per-user online state (each user remembers the keys it applied).</item>
/// </list>
/// Event Hubs may redeliver from its last checkpoint with different batch boundaries, which would give
/// overlapping keys; the partition's <see cref="DeliveryLedger"/> prevents that: it records the delivery
/// it starts, then the sequence number it completed. A delivery found pending (the instance died) is
/// rolled forward when its log blob exists, and rolled back (its dead letters removed) when not.
/// </remarks>
public sealed class EventIngestor(
    EventParser parser,
    EventLogStore eventLog,
    DeadLetterStore deadLetters,
    CatalogStore catalog,
    UserStateStore userStates,
    DeliveryLedger ledger,
    TombstoneStore tombstones,
    TimeProvider? time = null)
{
    public const string HttpSource = "http";
    public const string EventHubsSource = "eventhubs";

    private readonly TimeProvider _time = time ?? TimeProvider.System;

    /// <summary>Ingests a batch that arrived over HTTP; the key is the hash of the request body.</summary>
    public Task<IngestResult> IngestHttpAsync(IReadOnlyList<ReadOnlyMemory<byte>> events, ReadOnlyMemory<byte> body, CancellationToken cancellationToken = default) =>
        IngestBodyAsync(events.Select(e => new RawEvent(e)).ToList(), body, impressionsNotedAsShown: false, cancellationToken);

    private async Task<IngestResult> IngestBodyAsync(IReadOnlyList<RawEvent> events, ReadOnlyMemory<byte> body, bool impressionsNotedAsShown, CancellationToken cancellationToken)
    {
        var deliveryKey = HttpDeliveryKey(SHA256.HashData(body.Span));
        var now = _time.GetUtcNow();
        using var batch = ParseBatch(events, deliveryKey, now, impressionsNotedAsShown);
        return await IngestParsedAsync(batch, deliveryKey, now, cancellationToken);
    }

    private async Task<IngestResult> IngestParsedAsync(ParsedBatch batch, string deliveryKey, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (batch.Rows.Count == 0 && batch.Items.Count == 0 && batch.Profiles.Count == 0 && batch.DeadLetters.Count == 0)
            return IngestResult.Nothing;
        var blobName = batch.Rows.Earliest is { } earliest ? StorageLayout.EventLogBlobName(earliest, deliveryKey) : null;
        await ApplyEffectsAsync(HttpSource, deliveryKey, blobName, batch, now, cancellationToken);
        return batch.ToResult(deliveryKey);
    }

    /// <summary>
    /// Ingests events the product produces itself (impressions, rewards, synthetic traffic) as if posted
    /// to <c>POST /api/events</c> in one body: the same events in the same order are the same delivery.
    /// </summary>
    /// <param name="impressionsNotedAsShown">
    /// The impressions' slates were noted as shown (<see cref="UserStateStore.NoteShown"/>), and the store writes them into
    /// the users' state itself, several slates per row write (<see cref="UserStateStore.StoreShownAsync"/>): this delivery
    /// leaves them out of the state and logs them. Serving's own impressions come this way.
    /// </param>
    public async Task<IngestResult> IngestEventsAsync(IEnumerable<WireEvent> events, CancellationToken cancellationToken = default, bool impressionsNotedAsShown = false)
    {
        // The key is the hash of the JSON array of the events, as if posted; each event's JSON is written into one reused
        // buffer, hashed and measured there, the event validated as it is, not read back, and its log row added to the
        // batch's pooled columns. The events are read once, as they come: serving writes tens of thousands of impressions
        // a second this way, and what each of them allocates dies here instead of living on through the upload, where the
        // collector would promote it.
        var now = _time.GetUtcNow();
        using var batch = new ParsedBatch(impressionsNotedAsShown);
        var refused = new List<(int Index, string Error, string Payload)>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var json = new ArrayBufferWriter<byte>(1024);
        using (var writer = new Utf8JsonWriter(json))
        {
            hash.AppendData("["u8);
            var i = -1;
            foreach (var e in events)
            {
                i++;
                json.ResetWrittenCount();
                writer.Reset(json);
                JsonSerializer.Serialize(writer, e, EventJsonContext.Default.WireEvent);
                if (i > 0)
                    hash.AppendData(","u8);
                hash.AppendData(json.WrittenSpan);
                var parsed = parser.Parse(e, json.WrittenSpan, now);
                if (!parsed.IsValid)
                    refused.Add((i, parsed.Error!, EventParser.PayloadText(json.WrittenSpan)));
                else
                    batch.Add(parsed, seen, sequenceNumber: null);
            }
            hash.AppendData("]"u8);
        }
        var deliveryKey = HttpDeliveryKey(hash.GetHashAndReset());
        foreach (var (index, error, payload) in refused)
        {
            batch.Rejected.Add(new Rejection(index, null, error));
            batch.DeadLetters.Add(new DeadLetter(error, payload, deliveryKey, index, null, now));
        }
        return await IngestParsedAsync(batch, deliveryKey, now, cancellationToken);
    }

    /// <summary>The key of a delivery posted whole: 128 bits of the SHA-256 of its body.</summary>
    private static string HttpDeliveryKey(ReadOnlySpan<byte> sha256) => "http-" + Convert.ToHexStringLower(sha256[..16]);

    /// <summary>Ingests a batch from one Event Hubs partition.</summary>
    public async Task<IngestResult> IngestAsync(EventHubsDelivery delivery, CancellationToken cancellationToken = default)
    {
        if (delivery.Messages.Count == 0)
            return IngestResult.Nothing;

        await using var lease = await ledger.AcquireAsync(delivery.ConsumerGroup, delivery.PartitionId, cancellationToken);
        if (lease.State.Pending is { } pending)
            await RecoverAsync(lease, pending, cancellationToken);

        var committed = lease.State.CommittedSequenceNumber;
        var fresh = delivery.Messages.Where(m => m.SequenceNumber > committed).OrderBy(m => m.SequenceNumber).ToList();
        var alreadyIngested = delivery.Messages.Count - fresh.Count;
        if (fresh.Count == 0)
            return new IngestResult(null, 0, alreadyIngested, []);

        var first = fresh[0].SequenceNumber;
        var last = fresh[^1].SequenceNumber;
        var deliveryKey = $"eh-{TableKeys.Encode(delivery.ConsumerGroup)}-{delivery.PartitionId}-{first:D19}-{last:D19}";
        var now = _time.GetUtcNow();
        using var batch = ParseBatch(fresh.Select(m => new RawEvent(m.Body, m.SequenceNumber, m.EnqueuedTime)).ToList(), deliveryKey, now, impressionsNotedAsShown: false);

        // The log blob is always written for an Event Hubs delivery (even with no rows): it is the commit marker recovery looks for.
        var partitionTime = batch.Rows.Earliest ?? fresh[0].EnqueuedTime;
        var blobName = StorageLayout.EventLogBlobName(partitionTime, deliveryKey);

        await lease.WriteAsync(lease.State with { Pending = new PendingDelivery(deliveryKey, blobName, first, last) }, cancellationToken);
        await ApplyEffectsAsync(EventHubsSource, deliveryKey, blobName, batch, now, cancellationToken);
        await lease.WriteAsync(new LedgerState(last, null), cancellationToken);

        var result = batch.ToResult(deliveryKey);
        return result with { AlreadyIngested = result.AlreadyIngested + alreadyIngested };
    }

    private async Task RecoverAsync(LedgerLease lease, PendingDelivery pending, CancellationToken cancellationToken)
    {
        if (await eventLog.ExistsAsync(pending.EventLogBlobName, cancellationToken))
        {
            // Roll forward: the data is committed; finish the user state (idempotent per user).
            var records = await eventLog.ReadBlobAsync(pending.EventLogBlobName, cancellationToken);
            await userStates.ApplyAsync(pending.DeliveryKey, await WithoutDeletedUsersAsync(records.Select(r => r.ToInteraction()).ToList(), cancellationToken), cancellationToken);
            await lease.WriteAsync(new LedgerState(pending.LastSequenceNumber, null), cancellationToken);
        }
        else
        {
            // Roll back: nothing was committed; the redelivery (with whatever boundaries) starts afresh.
            await deadLetters.DeleteAsync(EventHubsSource, pending.DeliveryKey, cancellationToken);
            await lease.WriteAsync(lease.State with { Pending = null }, cancellationToken);
        }
    }

    private async Task ApplyEffectsAsync(string source, string deliveryKey, string? blobName, ParsedBatch batch, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await deadLetters.WriteAsync(source, deliveryKey, batch.DeadLetters, cancellationToken);
        if (batch.Items.Count > 0)
            await catalog.UpsertItemsAsync(batch.Items, cancellationToken);
        if (batch.Profiles.Count > 0)
            await catalog.UpsertProfilesAsync(batch.Profiles, cancellationToken);
        var firstTime = true;
        if (blobName is not null)
            firstTime = await eventLog.AppendAsync(blobName, batch.Rows, deliveryKey, now, cancellationToken);
        if (batch.Interactions.Count > 0)
            await userStates.ApplyAsync(deliveryKey, firstTime ? batch.Interactions : await WithoutDeletedUsersAsync(batch.Interactions, cancellationToken), cancellationToken);
        if (firstTime)
            RecommenderMetrics.RecordAccepted(source, batch.Rows.Count + batch.Items.Count + batch.Profiles.Count, batch.DeadLetters.Count, batch.Interactions);
    }

    /// <summary>
    /// A delivery applied again (its log blob was there) finishes the online state its first attempt may have left
    /// undone, but not for users deleted since: that would bring back the state the deletion removed. Only this rare
    /// path reads the tombstones (as known within <see cref="TombstoneStore.MaxStaleness"/>).
    /// </summary>
    private async Task<IReadOnlyList<Interaction>> WithoutDeletedUsersAsync(IReadOnlyList<Interaction> interactions, CancellationToken cancellationToken)
    {
        var deleted = await tombstones.ReadRecentAsync(cancellationToken);
        return deleted.Count == 0 ? interactions : interactions.Where(e => deleted.Find(e.UserId) is null).ToList();
    }

    /// <summary>One event of a delivery as it came: its JSON and its Event Hubs position.</summary>
    private readonly record struct RawEvent(ReadOnlyMemory<byte> Body, long? SequenceNumber = null, DateTimeOffset? EnqueuedTime = null);

    private ParsedBatch ParseBatch(IReadOnlyList<RawEvent> raw, string deliveryKey, DateTimeOffset now, bool impressionsNotedAsShown)
    {
        var batch = new ParsedBatch(impressionsNotedAsShown);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < raw.Count; i++)
        {
            var (body, sequenceNumber, enqueuedTime) = raw[i];
            var parsed = parser.Parse(body.Span, now, enqueuedTime);
            if (!parsed.IsValid)
            {
                batch.Rejected.Add(new Rejection(i, null, parsed.Error!));
                batch.DeadLetters.Add(new DeadLetter(parsed.Error!, EventParser.PayloadText(body.Span), deliveryKey, i, sequenceNumber, now));
                continue;
            }
            batch.Add(parsed, seen, sequenceNumber);
        }
        return batch;
    }

    /// <summary>
    /// A delivery, parsed: the log's rows (every interaction, in pooled columns), the interactions the user state applies
    /// (all of them, but for the impressions of slates noted as shown, which the state store writes itself), the catalog
    /// items, profiles, refusals and duplicates.
    /// </summary>
    private sealed class ParsedBatch(bool impressionsNotedAsShown) : IDisposable
    {
        public EventLogColumns Rows { get; } = new();
        public List<Interaction> Interactions { get; } = [];
        public List<CatalogItem> Items { get; } = [];
        public List<UserProfile> Profiles { get; } = [];
        public List<Rejection> Rejected { get; } = [];
        public List<DeadLetter> DeadLetters { get; } = [];
        public int Duplicates { get; set; }

        /// <summary>A valid event, unless its id came earlier in the delivery (a duplicate, counted).</summary>
        public void Add(ParsedEvent parsed, HashSet<string> seen, long? sequenceNumber)
        {
            var eventId = parsed.Interaction?.EventId ?? parsed.Item?.EventId ?? parsed.Profile!.EventId;
            if (!seen.Add(eventId))
            {
                Duplicates++;
                return;
            }
            if (parsed.Interaction is { } interaction)
            {
                Rows.Add(interaction, sequenceNumber);
                if (!(impressionsNotedAsShown && interaction.Type == InteractionType.Impression && interaction.RecommendationId is not null))
                    Interactions.Add(interaction);
            }
            else if (parsed.Item is { } item)
                Items.Add(item);
            else
                Profiles.Add(parsed.Profile!);
        }

        public IngestResult ToResult(string deliveryKey) =>
            new(deliveryKey, Rows.Count + Items.Count + Profiles.Count, Duplicates, Rejected);

        public void Dispose() => Rows.Dispose();
    }
}
