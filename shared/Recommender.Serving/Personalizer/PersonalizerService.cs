using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Serialization;
using Azure;
using Azure.Data.Tables;
using Microsoft.Extensions.Logging;
using Recommender.Events;
using Recommender.Ingestion;
using Recommender.ModelContract;
using Recommender.Storage;

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
[JsonSerializable(typeof(List<Feature>))]
[JsonSerializable(typeof(List<List<Feature>>))]
public sealed partial class PersonalizerJsonContext : JsonSerializerContext;

/// <summary>
/// Personalizer's Rank, Reward and Activate. Rank chooses with the learned <see cref="ContextualBandit"/> over the
/// context's and the actions' features (<see cref="PersonalizerFeatures"/>), exploring epsilon-greedily at the
/// configuration's <c>explorationPercentage</c>; before it has learned anything, the product's sequence model decides
/// when it can score the actions for the user (context feature <c>userId</c>: their online history; actions it knows,
/// or unseen ones whose features name content tokens it was trained with, <see cref="ContentTokens"/>), else every
/// action is equally likely. Where the sequence model scores the actions, its score is one more action feature, so the
/// bandit learns how far to trust it in each context. Apprentice and LoggingOnly serve the baseline, the first action
/// not excluded. Every rank is stored by event id with the features it was chosen on; its impressions enter the event
/// log when it is activated (at once unless <c>deferActivation</c>); a reward is kept on the rank
/// (<c>rewardAggregation</c>) for <see cref="PersonalizerLearner"/> and logged as a <c>reward</c> interaction on the
/// rewarded action, joined by the event id as the recommendation id.
/// </summary>
public sealed partial class PersonalizerService
{
    public const int MaxActions = 50;
    public const string AnonymousUser = "anonymous";
    /// <summary>The longest list of candidate features a rank record keeps (a table property holds 32K characters); longer ones keep the chosen action's only.</summary>
    private const int MaxStoredCandidatesLength = 30_000;
    private readonly ModelSwitcher models;
    private readonly UserStateStore userStates;
    private readonly RankEventTable ranks;
    private readonly EventIngestor ingestor;
    private readonly BatchingSink<ServingLogEntry> impressions;
    private readonly PersonalizerStore store;
    private readonly TimeProvider _time;

    public PersonalizerService(ModelSwitcher models, UserStateStore userStates, RankEventTable ranks, EventIngestor ingestor,
        BatchingSink<ServingLogEntry> impressions, PersonalizerStore store, TimeProvider? time = null)
    {
        this.models = models;
        this.userStates = userStates;
        this.ranks = ranks;
        this.ingestor = ingestor;
        this.impressions = impressions;
        this.store = store;
        _time = time ?? TimeProvider.System;
    }

    public PersonalizerStore Store => store;

    public async Task<RankResponse> RankAsync(RankRequest request, CancellationToken cancellationToken = default)
    {
        var actions = request.Actions ?? throw new InvalidRankRequestException("actions is required");
        if (actions.Count is 0 or > MaxActions)
            throw new InvalidRankRequestException($"actions must hold 1 to {MaxActions} items");
        var limits = EventLimits.Default;
        // Ids are checked as the impressions they become are: an id a rank accepts is never dead-lettered when its slate is logged.
        if (actions.Any(a => a is null))
            throw new InvalidRankRequestException("every action needs an id");
        if (actions.Select(a => limits.CheckId("action id", a.Id)).FirstOrDefault(e => e is not null) is { } badAction)
            throw new InvalidRankRequestException(badAction);
        if (actions.Select(a => a.Id).Distinct(StringComparer.Ordinal).Count() != actions.Count)
            throw new InvalidRankRequestException("action ids must be unique");
        var eventId = CheckEventId(request.EventId ?? Guid.NewGuid().ToString("N"));
        var userId = UserIdFrom(request.ContextFeatures) ?? AnonymousUser;
        if (limits.CheckId("the userId context feature", userId) is { } badUser)
            throw new InvalidRankRequestException(badUser);
        var started = System.Diagnostics.Stopwatch.GetTimestamp();

        var configuration = await store.GetConfigurationAsync(cached: true, cancellationToken);
        var (bandit, _, _) = await store.GetModelAsync(cached: true, cancellationToken);
        var excluded = (request.ExcludedActions ?? []).ToHashSet(StringComparer.Ordinal);
        var rankable = actions.Where(a => !excluded.Contains(a.Id)).ToList();
        var (prior, modelVersion) = await SequenceScoresAsync(userId, rankable, cancellationToken);
        var context = PersonalizerFeatures.Flatten(request.ContextFeatures, "c");
        var candidates = rankable.Select((a, i) => ActionFeatures(a, prior?[i])).ToList();
        var predictions = bandit.Predict(context, candidates);
        // Best first by the bandit; ties (all of them before it learns) by the sequence model, then as given.
        var order = Enumerable.Range(0, rankable.Count).OrderByDescending(i => predictions[i]).ThenByDescending(i => prior?[i] ?? double.NegativeInfinity).ThenBy(i => i).ToList();
        var (probabilities, chosen) = Choose(configuration, order, bandit.Events > 0 || prior is not null, new Random((int)TableKeys.StableHash(eventId)));

        // The chosen action first, the rest best first; excluded actions keep their place in the request, with probability 0.
        var ranked = new Queue<RankedAction>(rankable.Count == 0 ? [] : order.Where(i => i != chosen).Prepend(chosen).Select(i => new RankedAction(rankable[i].Id, probabilities[i])));
        var ranking = actions.Select(a => excluded.Contains(a.Id) ? new RankedAction(a.Id, 0) : ranked.Dequeue()).ToList();
        var response = new RankResponse(ranking, eventId, rankable.Count > 0 ? rankable[chosen].Id : null);

        var candidatesJson = JsonSerializer.Serialize(candidates, PersonalizerJsonContext.Default.ListListFeature);
        var record = new TableEntity(TableKeys.UserBucket(eventId), TableKeys.Encode(eventId))
        {
            ["EventId"] = eventId,
            ["UserId"] = userId,
            ["RewardActionId"] = response.RewardActionId,
            ["Ranking"] = JsonSerializer.Serialize(ranking, PersonalizerJsonContext.Default.ListRankedAction),
            ["Activated"] = !request.DeferActivation,
            ["RankedAt"] = _time.GetUtcNow(),
            ["ModelVersion"] = modelVersion,
            ["LearningMode"] = configuration.Mode,
            ["Context"] = JsonSerializer.Serialize(context, PersonalizerJsonContext.Default.ListFeature),
        };
        if (rankable.Count > 0) // every action excluded: nothing was chosen, nothing to learn
        {
            // What the learned policy would show and what the client would have shown: metrics/learning's matched events.
            record["Baseline"] = rankable[0].Id;
            record["PolicyChoice"] = rankable[order[0]].Id;
            record["Chosen"] = JsonSerializer.Serialize(candidates[chosen], PersonalizerJsonContext.Default.ListFeature);
            record["Probability"] = probabilities[chosen];
        }
        if (candidatesJson.Length <= MaxStoredCandidatesLength)
            record["Candidates"] = candidatesJson;
        if (!await ranks.AddAsync(eventId, record, cancellationToken))
            throw new InvalidRankRequestException($"eventId {eventId} was already used");
        if (!request.DeferActivation)
            LogImpressions(record, ranking);
        RecommenderMetrics.RecommendationDuration.Record(System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds,
            new("path", "personalizer"), new("model_version", modelVersion));
        return response;
    }

    /// <summary>
    /// The probability of each candidate being the one shown, and the one drawn. Online: epsilon-greedy around the best
    /// (<paramref name="order"/>[0]), or uniform while nothing ranks the actions; Apprentice and LoggingOnly: the baseline.
    /// </summary>
    private static (double[] Probabilities, int Chosen) Choose(PersonalizerConfiguration configuration, List<int> order, bool informed, Random random)
    {
        var n = order.Count;
        var probabilities = new double[n];
        if (n == 0)
            return (probabilities, 0);
        if (configuration.Mode != LearningModes.Online)
        {
            probabilities[0] = 1;
            return (probabilities, 0);
        }
        var epsilon = informed ? configuration.ExplorationPercentage : 1;
        for (var i = 0; i < n; i++)
            probabilities[i] = epsilon / n;
        probabilities[order[0]] += 1 - epsilon;
        var u = random.NextDouble();
        for (var i = 0; i < n; i++)
        {
            u -= probabilities[i];
            if (u < 0)
                return (probabilities, i);
        }
        return (probabilities, order[0]);
    }

    /// <summary>An action's features: its id, its own features, and the sequence model's standardised score when it has one.</summary>
    private static List<Feature> ActionFeatures(RankableAction action, double? sequenceScore)
    {
        var features = new List<Feature> { new("a.id=" + action.Id, 1) };
        features.AddRange(PersonalizerFeatures.Flatten(action.Features, "a"));
        if (sequenceScore is { } score)
            features.Add(new Feature("a.sequenceModel", score));
        return features;
    }

    /// <summary>Logs the rank's impressions (once, however often it is called).</summary>
    public async Task ActivateAsync(string eventId, CancellationToken cancellationToken = default)
    {
        for (var attempt = 0; ; attempt++)
        {
            var record = await GetAsync(eventId, cancellationToken);
            if (record.GetBoolean("Activated") == true)
                return;
            try
            {
                // Marked first, then logged: of two activations racing, only the one whose mark lands logs the impressions.
                await ranks.Table.UpdateEntityAsync(new TableEntity(record.PartitionKey, record.RowKey) { ["Activated"] = true }, record.ETag, TableUpdateMode.Merge, cancellationToken);
                await ranks.AddActivatedRowAsync(record, cancellationToken);
            }
            catch (RequestFailedException ex) when (ex.Status == 412 && attempt < 10)
            {
                continue; // a reward or another activation changed the record: read it again
            }
            LogImpressions(record, JsonSerializer.Deserialize(record.GetString("Ranking")!, PersonalizerJsonContext.Default.ListRankedAction)!);
            return;
        }
    }

    /// <summary>Hands the rank's impressions (the actions it could show) to the impression sink.</summary>
    private void LogImpressions(TableEntity record, List<RankedAction> ranking)
    {
        // Stamped with the rank's time: the impressions say when the ranking was made.
        var rankedAt = record.GetDateTimeOffset("RankedAt") ?? _time.GetUtcNow();
        var shown = ranking.Where(r => r.Probability > 0).ToList();
        var slate = new SlateImpressions(record.GetString("UserId")!, record.GetString("EventId") ?? TableKeys.Decode(record.RowKey), null, rankedAt,
            shown.Select(r => r.Id).ToArray(), shown.Select(r => r.Probability).ToArray(), Context(record));
        if (shown.Count > 0 && impressions.TryAdd(slate))
        {
            RecommenderMetrics.Impressions.Add(shown.Count, new("path", "personalizer"), new("model_version", record.GetString("ModelVersion")));
            if (slate.UserId != AnonymousUser) // one user for every rank without a userId: nothing reads its slates
                userStates.NoteShown(slate.UserId, slate.Shown);
        }
    }

    /// <summary>
    /// Keeps the reward on the rank (the first one, or the sum, by <c>rewardAggregation</c>) and logs it for the rank's
    /// reward action. Personalizer's rewards run from -1 to 1.
    /// </summary>
    public async Task RewardAsync(string eventId, RewardRequest reward, CancellationToken cancellationToken = default)
    {
        if (reward.Value is not { } value || !double.IsFinite(value) || value < -1 || value > 1)
            throw new InvalidRankRequestException("value must be a number from -1 to 1");
        var configuration = await store.GetConfigurationAsync(cached: true, cancellationToken);
        TableEntity record;
        for (var attempt = 0; ; attempt++)
        {
            record = await GetAsync(eventId, cancellationToken);
            var kept = record.GetDouble("Reward");
            if (kept is not null && configuration.RewardAggregation == PersonalizerConfiguration.Earliest)
                break;
            var count = (record.GetInt32("RewardCount") ?? (kept is null ? 0 : 1)) + 1;
            var update = new TableEntity(record.PartitionKey, record.RowKey) { ["Reward"] = (kept ?? 0) + value, ["RewardCount"] = count, ["RewardedAt"] = _time.GetUtcNow() };
            try
            {
                await ranks.Table.UpdateEntityAsync(update, record.ETag, TableUpdateMode.Merge, cancellationToken);
                await ranks.AddRewardRowAsync(record, (kept ?? 0) + value, count, cancellationToken); // for the learner
                break;
            }
            catch (RequestFailedException ex) when (ex.Status == 412 && attempt < 10)
            {
                // Another reward for the same event landed first: add to it.
            }
        }
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
        // Into the event log behind the request, with the impressions (the reward the learner reads is the one kept on
        // the rank above); written now only when the sink is full, so nothing is dropped. One log blob per reward
        // would pile up blobs (a storage account lists and collects them all).
        if (!impressions.TryAdd(new LoggedEvent(rewarded)))
            await ingestor.IngestEventsAsync([rewarded], cancellationToken);
    }

    /// <summary>The context a rank's events carry: the API, and the model version that ranked (rewards are counted per version).</summary>
    private static Dictionary<string, string> Context(TableEntity record) =>
        record.GetString("ModelVersion") is { } version ? new() { ["api"] = "personalizer", ["modelVersion"] = version } : new() { ["api"] = "personalizer" };

    /// <summary>A single-slot rank's record; a multi-slot event is refused here (its rewards name slots).</summary>
    private async Task<TableEntity> GetAsync(string eventId, CancellationToken cancellationToken)
    {
        var record = await GetRecordAsync(eventId, cancellationToken);
        return record.GetString(SlotsProperty) is null ? record
            : throw new InvalidRankRequestException($"event {eventId} is a multi-slot rank: its rewards and activation go to multislot/events/{eventId}/...");
    }

    private async Task<TableEntity> GetRecordAsync(string eventId, CancellationToken cancellationToken)
    {
        CheckEventId(eventId);
        return await ranks.GetAsync(eventId, cancellationToken) ?? throw new UnknownEventException(eventId);
    }

    /// <summary>
    /// The sequence model's score of each action for the user, standardised over the actions it could score (null for
    /// the others), and the model's version; no scores when no model is served, the user has no history or it can
    /// score none of the actions.
    /// </summary>
    private async Task<(double?[]? Scores, string ModelVersion)> SequenceScoresAsync(string userId, List<RankableAction> actions, CancellationToken cancellationToken)
    {
        using var lease = await models.AcquireAsync(cancellationToken);
        if (lease?.Model is not { } model)
            return (null, "none");
        var state = userId == AnonymousUser ? null : await userStates.GetAsync(userId, cancellationToken);
        var history = model.ItemNumbers((state?.Recent ?? []).Select(r => r.ItemId));
        if (history.Count == 0 || actions.Count == 0)
            return (null, model.Version);
        var modelScores = model.Score(history, null, out _, 1);
        var unseen = actions.Where(a => !model.TryGetItemNumber(a.Id, out _)).ToList();
        var contentScores = model.ScoresContent
            ? unseen.Zip(model.ScoreByContent(history, unseen.Select(a => FeatureTokens.OfFeatures(a.Features)).ToList())).ToDictionary(x => x.First.Id, x => x.Second, StringComparer.Ordinal)
            : [];
        var raw = actions.Select(a => model.TryGetItemNumber(a.Id, out var n) ? modelScores[n] : contentScores.TryGetValue(a.Id, out var c) ? c : (double?)null).ToArray();
        var known = raw.OfType<double>().ToList();
        if (known.Count == 0)
            return (null, model.Version);
        var mean = known.Average();
        var deviation = Math.Sqrt(known.Average(x => (x - mean) * (x - mean)));
        return (raw.Select(x => x is { } v ? (double?)(deviation > 0 ? (v - mean) / deviation : 0) : null).ToArray(), model.Version);
    }

    /// <summary>Event ids become table keys: checked here, not left to the table service, which refuses control characters with its own error.</summary>
    private static string CheckEventId(string eventId) =>
        EventLimits.Default.CheckId("eventId", eventId) is { } invalid ? throw new InvalidRankRequestException(invalid) : eventId;

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
