using System.Text.Json;
using System.Text.Json.Serialization;
using Azure;
using Azure.Data.Tables;
using Recommender.Events;
using Recommender.Ingestion;

namespace Recommender.Serving;

// Request and response shapes of Azure AI Personalizer's Rank and Reward APIs (v1.0), so that its
// clients can switch by changing the endpoint.

public sealed record RankableAction(string Id, List<JsonElement>? Features = null);

public sealed record RankRequest(
    List<JsonElement>? ContextFeatures,
    List<RankableAction>? Actions,
    List<string>? ExcludedActions = null,
    string? EventId = null,
    bool DeferActivation = false);

public sealed record RankedAction(string Id, double Probability);

public sealed record RankResponse(List<RankedAction> Ranking, string EventId, string? RewardActionId);

public sealed record RewardRequest(double? Value);

/// <summary>A request the Personalizer API refuses (HTTP 400), with the reason.</summary>
public sealed class InvalidRankRequestException(string message) : Exception(message);

/// <summary>An event id that was never ranked (HTTP 404).</summary>
public sealed class UnknownEventException(string eventId) : Exception($"event {eventId} was never ranked");

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(RankRequest))]
[JsonSerializable(typeof(RankResponse))]
[JsonSerializable(typeof(RewardRequest))]
[JsonSerializable(typeof(List<RankedAction>))]
public sealed partial class PersonalizerJsonContext : JsonSerializerContext;

/// <summary>
/// Personalizer's Rank, Reward and Activate over this product's model. The user is the context feature
/// <c>userId</c> when present (their online history drives the ranking), else "anonymous". Actions the
/// model knows are ranked by it, and so are unseen actions whose features name content tokens it was
/// trained with (<see cref="ContentTokens"/>); the rest follow in popularity order, then as given.
/// Every rank is stored by event id; its impressions enter the event log when it is activated (at once
/// unless <c>deferActivation</c>), and a reward is logged as a <c>reward</c> interaction on the
/// rewarded action, joined by the event id as the recommendation id.
/// </summary>
public sealed class PersonalizerService(ModelSwitcher models, UserStateStore userStates, TableClient rankEvents, EventIngestor ingestor,
    ExplorationOptions? exploration = null, TimeProvider? time = null)
{
    public const int MaxActions = 50;
    public const string AnonymousUser = "anonymous";
    private readonly ExplorationOptions _exploration = exploration ?? new ExplorationOptions();
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    public async Task<RankResponse> RankAsync(RankRequest request, CancellationToken cancellationToken = default)
    {
        var actions = request.Actions ?? throw new InvalidRankRequestException("actions is required");
        if (actions.Count is 0 or > MaxActions)
            throw new InvalidRankRequestException($"actions must hold 1 to {MaxActions} items");
        var limits = EventLimits.Default;
        if (actions.Any(a => string.IsNullOrWhiteSpace(a.Id) || a.Id.Length > limits.MaxIdLength))
            throw new InvalidRankRequestException($"every action needs an id of 1 to {limits.MaxIdLength} characters");
        if (actions.Select(a => a.Id).Distinct(StringComparer.Ordinal).Count() != actions.Count)
            throw new InvalidRankRequestException("action ids must be unique");
        var eventId = CheckEventId(request.EventId ?? Guid.NewGuid().ToString("N"));
        var userId = UserIdFrom(request.ContextFeatures) ?? AnonymousUser;

        var excluded = (request.ExcludedActions ?? []).ToHashSet(StringComparer.Ordinal);
        var rankable = actions.Where(a => !excluded.Contains(a.Id)).Select(a => a.Id).ToList();
        var features = actions.ToDictionary(a => a.Id, a => a.Features, StringComparer.Ordinal);
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var (scores, modelVersion) = await ScoreAsync(userId, rankable, features, cancellationToken);
        var ordered = rankable.Select((id, i) => (Id: id, Score: scores[i], Given: i))
            .OrderByDescending(x => x.Score).ThenBy(x => x.Given).ToList();
        var sortedScores = ordered.Select(o => o.Score).ToList();
        var probabilities = SlatePolicy.SlotProbabilities(sortedScores, _exploration); // Personalizer's probability: of being ranked first
        var slate = SlatePolicy.Draw(sortedScores, ordered.Count, _exploration, new Random(eventId.GetHashCode(StringComparison.Ordinal)));
        var ranking = slate.Select(s => new RankedAction(ordered[s.Candidate].Id, probabilities[s.Candidate]))
            .Concat(actions.Where(a => excluded.Contains(a.Id)).Select(a => new RankedAction(a.Id, 0)))
            .ToList();
        var response = new RankResponse(ranking, eventId, ranking.Count > 0 && excluded.Count < actions.Count ? ranking[0].Id : null);

        var record = new TableEntity(TableKeys.UserBucket(eventId), TableKeys.Encode(eventId))
        {
            ["UserId"] = userId,
            ["RewardActionId"] = response.RewardActionId,
            ["Ranking"] = JsonSerializer.Serialize(ranking, PersonalizerJsonContext.Default.ListRankedAction),
            ["Activated"] = false,
            ["RankedAt"] = _time.GetUtcNow(),
            ["ModelVersion"] = modelVersion,
        };
        try
        {
            await rankEvents.AddEntityAsync(record, cancellationToken);
        }
        catch (RequestFailedException ex) when (ex.Status == 409)
        {
            throw new InvalidRankRequestException($"eventId {eventId} was already used");
        }
        if (!request.DeferActivation)
            await ActivateAsync(eventId, cancellationToken);
        RecommenderMetrics.RecommendationDuration.Record(System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds,
            new("path", "personalizer"), new("model_version", modelVersion));
        return response;
    }

    /// <summary>Logs the rank's impressions (once, however often it is called).</summary>
    public async Task ActivateAsync(string eventId, CancellationToken cancellationToken = default)
    {
        var record = await GetAsync(eventId, cancellationToken);
        var ranking = JsonSerializer.Deserialize(record.GetString("Ranking")!, PersonalizerJsonContext.Default.ListRankedAction)!;
        // Stamped with the rank's time, so a repeated activation sends identical events: the same delivery, logged once.
        var rankedAt = record.GetDateTimeOffset("RankedAt") ?? _time.GetUtcNow();
        var impressions = Impressions.ToEvents(record.GetString("UserId")!, eventId, rankedAt,
            ranking.Where(r => r.Probability > 0).Select(r => (r.Id, r.Probability)), Context(record));
        await ingestor.IngestEventsAsync(impressions, cancellationToken);
        if (record.GetBoolean("Activated") != true)
            RecommenderMetrics.Impressions.Add(impressions.Count, new("path", "personalizer"), new("model_version", record.GetString("ModelVersion")));
        record["Activated"] = true;
        await rankEvents.UpdateEntityAsync(record, record.ETag, TableUpdateMode.Merge, cancellationToken);
    }

    /// <summary>Logs a reward for the rank's reward action; Personalizer's rewards run from 0 to 1.</summary>
    public async Task RewardAsync(string eventId, RewardRequest reward, CancellationToken cancellationToken = default)
    {
        if (reward.Value is not { } value || !double.IsFinite(value) || value < 0 || value > 1)
            throw new InvalidRankRequestException("value must be a number from 0 to 1");
        var record = await GetAsync(eventId, cancellationToken);
        var rewarded = new WireEvent
        {
            SchemaVersion = EventParser.CurrentSchemaVersion,
            EventId = $"{eventId}-reward-{value.ToString("R", System.Globalization.CultureInfo.InvariantCulture)}",
            UserId = record.GetString("UserId"),
            ItemId = record.GetString("RewardActionId"),
            RecommendationId = eventId,
            Type = EventParser.WireName(InteractionType.Reward),
            Value = value,
            Timestamp = _time.GetUtcNow(),
            Context = Context(record),
        };
        await ingestor.IngestEventsAsync([rewarded], cancellationToken);
    }

    /// <summary>The context a rank's events carry: the API, and the model version that ranked (rewards are counted per version).</summary>
    private static Dictionary<string, string> Context(TableEntity record) =>
        record.GetString("ModelVersion") is { } version ? new() { ["api"] = "personalizer", ["modelVersion"] = version } : new() { ["api"] = "personalizer" };

    private async Task<TableEntity> GetAsync(string eventId, CancellationToken cancellationToken)
    {
        CheckEventId(eventId);
        var response = await rankEvents.GetEntityIfExistsAsync<TableEntity>(TableKeys.UserBucket(eventId), TableKeys.Encode(eventId), cancellationToken: cancellationToken);
        return response.HasValue ? response.Value! : throw new UnknownEventException(eventId);
    }

    private async Task<(double[] Scores, string ModelVersion)> ScoreAsync(string userId, List<string> actionIds, Dictionary<string, List<JsonElement>?> features, CancellationToken cancellationToken)
    {
        using var lease = await models.AcquireAsync(cancellationToken) ?? throw new NoModelException();
        var model = lease.Model;
        var popularity = (model.Manifest.PopularItems ?? []).Select((id, rank) => (id, rank)).ToDictionary(x => x.id, x => x.rank);
        var state = userId == AnonymousUser ? null : await userStates.GetAsync(userId, cancellationToken);
        var history = model.ItemNumbers((state?.Recent ?? []).Select(r => r.ItemId));
        var modelScores = history.Count > 0 ? model.Score(history, null, out _, 1) : null;
        // Unknown actions with features the model knows are scored from their content, in the same space.
        var unseen = actionIds.Where(id => !model.TryGetItemNumber(id, out _)).ToList();
        var contentScores = modelScores is not null && model.ScoresContent
            ? unseen.Zip(model.ScoreByContent(history, unseen.Select(id => ContentTokens.FromFeatures(features[id])).ToList())).ToDictionary(x => x.First, x => x.Second)
            : [];
        // Scored by the model first (known actions, or unseen ones from content), then by popularity, then as given.
        return (actionIds.Select(id =>
            model.TryGetItemNumber(id, out var n) && modelScores is not null ? 1e6 + modelScores[n]
            : contentScores.GetValueOrDefault(id) is { } content ? 1e6 + content
            : popularity.TryGetValue(id, out var rank) ? 1e3 - rank
            : 0.0).ToArray(), model.Version);
    }

    /// <summary>Event ids become table keys: checked here, not left to the table service, which refuses control characters with its own error.</summary>
    private static string CheckEventId(string eventId)
    {
        var max = EventLimits.Default.MaxIdLength;
        if (string.IsNullOrWhiteSpace(eventId) || eventId.Length > max || eventId.Any(char.IsControl))
            throw new InvalidRankRequestException($"eventId must be 1 to {max} printable characters");
        return eventId;
    }

    private static string? UserIdFrom(List<JsonElement>? contextFeatures)
    {
        foreach (var feature in contextFeatures ?? [])
        {
            if (feature.ValueKind == JsonValueKind.Object && feature.TryGetProperty("userId", out var id) && id.ValueKind == JsonValueKind.String)
                return id.GetString();
        }
        return null;
    }

}
