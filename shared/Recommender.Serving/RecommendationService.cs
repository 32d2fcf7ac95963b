using Recommender.EventLog;
using Recommender.Events;
using Recommender.Ingestion;
using Recommender.Storage;

namespace Recommender.Serving;

/// <summary>Thrown when no model has been promoted yet (HTTP 503 with Retry-After).</summary>
public sealed class NoModelException() : Exception("no model has been published and promoted yet");

/// <summary>Which way a request was served.</summary>
public static class ServingPath
{
    /// <summary>The sequence model over the user's history.</summary>
    public const string Sequence = "sequence";
    /// <summary>A short history: the sequence model adapted to the user in a few gradient steps (meta-learned).</summary>
    public const string Adapted = "adapted";
    /// <summary>No history: the most popular items of the training data.</summary>
    public const string Popular = "popular";
    /// <summary>The policy fine-tuned by RL for long-term reward: the sequence model with a learned head, reading the session.</summary>
    public const string Policy = "policy";
}

public sealed record RecommendedItem(string ItemId, int Position, float Score, double Propensity, string? BecauseOf);

public sealed record Recommendations(string RecommendationId, string UserId, string ModelVersion, string Path, IReadOnlyList<RecommendedItem> Items);

public sealed record RecommendationOptions
{
    public ExplorationOptions Exploration { get; init; } = new();
    /// <summary>Leave out items the user already engaged with.</summary>
    public bool ExcludeSeen { get; init; } = true;
    /// <summary>Without a session id from the client, a session is the slates shown less than this far apart (as snapshots cut them).</summary>
    public TimeSpan SessionIdle { get; init; } = TimeSpan.FromMinutes(30);
}

/// <summary>
/// Serves top-k recommendations for a user: history, this session's slates and profile from the online state,
/// the promoted model ranking through <see cref="SlateRanker"/> (or popularity for a user without history),
/// unavailable and seen items left out, a slate drawn by the model's policy (or the exploration options) with the
/// propensity of each shown item, and the impressions handed to the impression sink, which writes them into the
/// event log through the ingestion code behind the request, carrying the recommendation id that rewards join on
/// and the session id. Nothing on the way waits for storage while the user's state and profile are cached.
/// </summary>
public sealed class RecommendationService(
    ModelSwitcher models,
    UserStateStore userStates,
    CatalogAvailability availability,
    BatchingSink<ServingLogEntry> impressions,
    RecommendationOptions? options = null,
    TimeProvider? time = null,
    CatalogStore? profiles = null)
{
    private readonly RecommendationOptions _options = options ?? new();
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    public async Task<Recommendations> RecommendAsync(string userId, int k, CancellationToken cancellationToken = default) =>
        await RecommendAsync(userId, k, sessionId: null, cancellationToken);

    /// <param name="sessionId">The client's session, whose earlier slates a policy reads (null: the slates of the last <see cref="RecommendationOptions.SessionIdle"/>).</param>
    public async Task<Recommendations> RecommendAsync(string userId, int k, string? sessionId, CancellationToken cancellationToken = default)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        using var lease = await models.AcquireAsync(cancellationToken) ?? throw new NoModelException();
        var model = lease.Model;
        var stateRead = userStates.GetAsync(userId, cancellationToken);
        var profileRead = profiles is not null && model.ReadsUserAttributes ? profiles.GetProfileAsync(userId, cancellationToken) : null;
        var state = await stateRead;
        var profile = profileRead is null ? null : await profileRead;
        var history = state?.Recent.Select(r => r.ItemId).ToList() ?? [];
        var unavailable = await availability.UnavailableAsync(cancellationToken);
        var seen = _options.ExcludeSeen ? history.ToHashSet(StringComparer.Ordinal) : [];
        bool Allowed(string itemId) => !seen.Contains(itemId) && !unavailable.Contains(itemId);

        var numbers = model.ItemNumbers(history);
        string path;
        ExplorationOptions exploration;
        // The explanation (the closest history item) is found for the drawn items only: Item is the model's number, 0 for none.
        List<(string ItemId, double Logit, float Score, int Item)> candidates;
        if (numbers.Count > 0)
        {
            var session = (state?.SessionSlates(sessionId, _time.GetUtcNow(), _options.SessionIdle) ?? []).Select(s => (IReadOnlyList<int>)model.ItemNumbers(s.Items)).ToList();
            var ranking = SlateRanker.Rank(model, new RankingInput(numbers, model.UserTokens(profile is null ? null : FeatureTokens.OfProfile(profile.Attributes)), session),
                item => Allowed(model.Manifest.ItemIds[item]), seen.Count + unavailable.Count, _options.Exploration);
            (path, exploration) = (ranking.Path, ranking.Exploration);
            candidates = ranking.Candidates.Select(c => (model.Manifest.ItemIds[c.Item], c.Logit, c.Score, c.Item)).ToList();
        }
        else
        {
            (path, exploration) = (ServingPath.Popular, _options.Exploration);
            var popular = model.Manifest.PopularItems ?? [];
            candidates = popular.Where(Allowed).Take(exploration.Candidates)
                .Select((id, rank) => (id, (double)(popular.Count - rank), (float)(popular.Count - rank), 0)).ToList();
        }

        var recommendationId = Guid.NewGuid().ToString("N");
        var random = new Random(recommendationId.GetHashCode(StringComparison.Ordinal));
        var slate = SlatePolicy.Draw(candidates.Select(c => c.Logit).ToList(), Math.Min(k, candidates.Count), exploration, random);
        var items = slate.Select((choice, position) =>
        {
            var c = candidates[choice.Candidate];
            var becauseOf = c.Item > 0 && model.ClosestInHistory(c.Item, numbers) is { } h ? model.Manifest.ItemIds[h] : null;
            return new RecommendedItem(c.ItemId, position, c.Score, choice.Propensity, becauseOf);
        }).ToList();

        LogImpressions(userId, recommendationId, sessionId, model.Version, path, items);
        KeyValuePair<string, object?>[] tags = [new("path", path), new("model_version", model.Version)];
        RecommenderMetrics.Impressions.Add(items.Count, tags);
        RecommenderMetrics.RecommendationDuration.Record(System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds, tags);
        return new Recommendations(recommendationId, userId, model.Version, path, items);
    }

    /// <summary>
    /// The context of a slate's impressions, one per model version and path, shared by every slate that has it: a slate
    /// waits in the impression sink for up to a second, and a dictionary of its own was much of what it kept alive.
    /// </summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<(string Version, string Path), IReadOnlyDictionary<string, string>> _contexts = new();

    private void LogImpressions(string userId, string recommendationId, string? sessionId, string version, string path, IReadOnlyList<RecommendedItem> items)
    {
        if (items.Count == 0)
            return;
        var slate = new SlateImpressions(userId, recommendationId, sessionId, _time.GetUtcNow(), items.Select(i => i.ItemId).ToArray(),
            items.Select(i => i.Propensity).ToArray(), _contexts.GetOrAdd((version, path), key => new Dictionary<string, string> { ["modelVersion"] = key.Version, ["path"] = key.Path }));
        if (impressions.TryAdd(slate)) // a slate the sink must drop is counted and logged there
            userStates.NoteShown(userId, slate.Shown);
    }
}

/// <summary>Items the catalog marks unavailable, cached for a short while (they are few, and change rarely).</summary>
public sealed class CatalogAvailability(CatalogStore catalog, TimeSpan? maxAge = null, TimeProvider? time = null)
{
    private readonly TimeSpan _maxAge = maxAge ?? TimeSpan.FromMinutes(1);
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private (HashSet<string> Items, DateTimeOffset At)? _cached;

    public async Task<IReadOnlySet<string>> UnavailableAsync(CancellationToken cancellationToken = default)
    {
        var cached = _cached;
        if (cached is { } c && _time.GetUtcNow() - c.At < _maxAge)
            return c.Items;
        var items = new HashSet<string>(StringComparer.Ordinal);
        await foreach (var itemId in catalog.ListUnavailableItemIdsAsync(cancellationToken))
            items.Add(itemId);
        _cached = (items, _time.GetUtcNow());
        return items;
    }
}
