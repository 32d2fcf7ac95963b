using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Azure.Data.Tables;
using Recommender.Events;
using Recommender.Storage;

namespace Recommender.Serving;

// Request and response shapes of Personalizer's multi-slot API (v1.1-preview.1).

public sealed record SlotRequest(string? Id, List<JsonElement>? Features = null, List<string>? ExcludedActions = null, string? BaselineAction = null);

public sealed record MultiSlotRankRequest(
    List<JsonElement>? ContextFeatures,
    List<RankableAction>? Actions,
    List<SlotRequest>? Slots,
    string? EventId = null,
    bool DeferActivation = false);

public sealed record SlotResponse(string Id, string? RewardActionId);

public sealed record MultiSlotRankResponse(List<SlotResponse> Slots, string EventId);

public sealed record SlotReward(string? SlotId, double? Value);

public sealed record MultiSlotRewardRequest(List<SlotReward>? Reward);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(MultiSlotRankRequest))]
[JsonSerializable(typeof(MultiSlotRankResponse))]
[JsonSerializable(typeof(MultiSlotRewardRequest))]
[JsonSerializable(typeof(List<string>))]
public sealed partial class PersonalizerMultiSlotJsonContext : JsonSerializerContext;

/// <summary>
/// Multi-slot Rank, Reward and Activate. The slots are filled in the order given, each by a single-slot rank of its
/// own (event id <c>{eventId}/{slot index}</c>): the context with the slot's id and features (namespace <c>c.slot</c>,
/// so the bandit learns what suits each slot), the actions with the slot's baseline first (what Apprentice serves), and
/// excluded the slot's exclusions and every action an earlier slot took. Each slot is thus logged, learned from and
/// evaluated exactly as a single-slot rank, with its own probability. The event's own record keeps the user, the time
/// and the slot ids (<c>Slots</c>), which the rewards name.
/// </summary>
public sealed partial class PersonalizerService
{
    public const int MaxSlots = 50;
    private const string SlotsProperty = "Slots";

    public async Task<MultiSlotRankResponse> RankMultiSlotAsync(MultiSlotRankRequest request, CancellationToken cancellationToken = default)
    {
        var actions = request.Actions ?? throw new InvalidRankRequestException("actions is required");
        if (actions.Count is 0 or > MaxActions)
            throw new InvalidRankRequestException($"actions must hold 1 to {MaxActions} items");
        var slots = request.Slots ?? throw new InvalidRankRequestException("slots is required");
        if (slots.Count is 0 or > MaxSlots)
            throw new InvalidRankRequestException($"slots must hold 1 to {MaxSlots} items");
        var actionIds = actions.Where(a => a is not null).Select(a => a.Id).ToHashSet(StringComparer.Ordinal);
        var slotIds = new HashSet<string>(StringComparer.Ordinal);
        var baselines = new HashSet<string>(StringComparer.Ordinal);
        foreach (var slot in slots)
        {
            if (slot is null)
                throw new InvalidRankRequestException("every slot needs an id");
            if (EventLimits.Default.CheckId("slot id", slot.Id) is { } badSlot)
                throw new InvalidRankRequestException(badSlot);
            if (!slotIds.Add(slot.Id!))
                throw new InvalidRankRequestException($"slot ids must be unique: {slot.Id} is given twice");
            // The spec's rules for baselineAction: required, one of the actions, not excluded, a different one per slot.
            if (slot.BaselineAction is not { } baseline || !actionIds.Contains(baseline))
                throw new InvalidRankRequestException($"slot {slot.Id}: baselineAction is required and must be the id of one of the actions");
            if (slot.ExcludedActions?.Contains(baseline, StringComparer.Ordinal) == true)
                throw new InvalidRankRequestException($"slot {slot.Id}: baselineAction {baseline} is also excluded");
            if (!baselines.Add(baseline))
                throw new InvalidRankRequestException($"slot {slot.Id}: baselineAction {baseline} is another slot's baseline; each slot needs its own");
        }
        var eventId = CheckEventId(request.EventId ?? Guid.NewGuid().ToString("N"));
        var longestSlotEventId = SlotEventId(eventId, slots.Count - 1);
        if (EventLimits.Default.CheckId("eventId", longestSlotEventId) is not null)
            throw new InvalidRankRequestException($"eventId is {eventId.Length} characters; with {slots.Count} slots the limit is {EventLimits.Default.MaxIdLength - (longestSlotEventId.Length - eventId.Length)}");
        var userId = UserIdFrom(request.ContextFeatures) ?? AnonymousUser;
        if (EventLimits.Default.CheckId("the userId context feature", userId) is { } badUser)
            throw new InvalidRankRequestException(badUser);

        var record = new TableEntity(TableKeys.UserBucket(eventId), TableKeys.Encode(eventId))
        {
            ["EventId"] = eventId,
            ["UserId"] = userId,
            ["RankedAt"] = _time.GetUtcNow(),
            ["Activated"] = !request.DeferActivation,
            [SlotsProperty] = JsonSerializer.Serialize(slots.Select(s => s.Id!).ToList(), PersonalizerMultiSlotJsonContext.Default.ListString),
        };
        if (!await ranks.AddAsync(eventId, record, cancellationToken))
            throw new InvalidRankRequestException($"eventId {eventId} was already used");

        var taken = new HashSet<string>(StringComparer.Ordinal);
        var answers = new List<SlotResponse>(slots.Count);
        for (var index = 0; index < slots.Count; index++)
        {
            var slot = slots[index];
            var baseline = actions.First(a => a.Id == slot.BaselineAction);
            var slotRank = await RankAsync(new RankRequest(
                ContextFeatures: [.. request.ContextFeatures ?? [], SlotContext(slot)],
                Actions: [baseline, .. actions.Where(a => !ReferenceEquals(a, baseline))],
                ExcludedActions: [.. slot.ExcludedActions ?? [], .. taken],
                EventId: SlotEventId(eventId, index),
                DeferActivation: request.DeferActivation), cancellationToken);
            if (slotRank.RewardActionId is { } chosen)
                taken.Add(chosen);
            answers.Add(new SlotResponse(slot.Id!, slotRank.RewardActionId));
        }
        return new MultiSlotRankResponse(answers, eventId);
    }

    /// <summary>Keeps each slot's reward on its slot's rank, as <see cref="RewardAsync"/> does; every entry is checked before any is kept.</summary>
    public async Task RewardMultiSlotAsync(string eventId, MultiSlotRewardRequest request, CancellationToken cancellationToken = default)
    {
        var rewards = request.Reward ?? throw new InvalidRankRequestException("reward is required");
        var slotIds = await SlotIdsAsync(eventId, cancellationToken);
        foreach (var reward in rewards)
        {
            if (reward?.SlotId is not { } slotId || !slotIds.Contains(slotId))
                throw new InvalidRankRequestException($"slotId {reward?.SlotId} is not a slot of event {eventId}");
            if (reward.Value is not { } value || !double.IsFinite(value) || value < -1 || value > 1)
                throw new InvalidRankRequestException($"slot {slotId}: value must be a number from -1 to 1");
        }
        foreach (var reward in rewards)
            await RewardAsync(SlotEventId(eventId, slotIds.IndexOf(reward.SlotId!)), new RewardRequest(reward.Value), cancellationToken);
    }

    /// <summary>Activates every slot's rank: their impressions are logged (once, however often it is called).</summary>
    public async Task ActivateMultiSlotAsync(string eventId, CancellationToken cancellationToken = default)
    {
        var slotIds = await SlotIdsAsync(eventId, cancellationToken);
        for (var index = 0; index < slotIds.Count; index++)
            await ActivateAsync(SlotEventId(eventId, index), cancellationToken);
    }

    private async Task<List<string>> SlotIdsAsync(string eventId, CancellationToken cancellationToken)
    {
        var record = await GetRecordAsync(eventId, cancellationToken);
        return record.GetString(SlotsProperty) is { } slots
            ? JsonSerializer.Deserialize(slots, PersonalizerMultiSlotJsonContext.Default.ListString)!
            : throw new InvalidRankRequestException($"event {eventId} is a single-slot rank: its reward and activation go to events/{eventId}/...");
    }

    /// <summary>True for the event record of a multi-slot rank (its slots' ranks are ordinary records).</summary>
    public static bool IsMultiSlotEvent(TableEntity record) => record.GetString(SlotsProperty) is not null;

    private static string SlotEventId(string eventId, int slotIndex) => $"{eventId}/{slotIndex}";

    /// <summary>The slot as one more context object: <c>{"slot": {"id": ..., its features...}}</c>.</summary>
    private static JsonElement SlotContext(SlotRequest slot)
    {
        var features = new JsonObject { ["id"] = slot.Id };
        foreach (var group in slot.Features ?? [])
        {
            if (group.ValueKind != JsonValueKind.Object)
                continue;
            foreach (var property in group.EnumerateObject().Where(p => p.Name != "id")) // the slot's id is its id
                features[property.Name] = JsonNode.Parse(property.Value.GetRawText());
        }
        using var document = JsonDocument.Parse(new JsonObject { ["slot"] = features }.ToJsonString());
        return document.RootElement.Clone();
    }
}
