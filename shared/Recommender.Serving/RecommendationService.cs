using Recommender.Events;
using Recommender.Ingestion;

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
}

public sealed record RecommendedItem(string ItemId, int Position, float Score, double Propensity, string? BecauseOf);

public sealed record Recommendations(string RecommendationId, string UserId, string ModelVersion, string Path, IReadOnlyList<RecommendedItem> Items);

public sealed record RecommendationOptions
{
    public ExplorationOptions Exploration { get; init; } = new();
    /// <summary>Leave out items the user already engaged with.</summary>
    public bool ExcludeSeen { get; init; } = true;
}

/// <summary>
/// Serves top-k recommendations for a user: history from the online user state, the promoted model
/// (or popularity for a user without history), unavailable and seen items left out, a slate drawn by
/// the exploration policy with the propensity of each shown item, and the impressions logged into the
/// event log through the ingestion code, carrying the recommendation id that rewards join on.
/// </summary>
public sealed class RecommendationService(
    ModelSwitcher models,
    UserStateStore userStates,
    CatalogAvailability availability,
    EventIngestor ingestor,
    RecommendationOptions? options = null,
    TimeProvider? time = null)
{
    private readonly RecommendationOptions _options = options ?? new();
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    public async Task<Recommendations> RecommendAsync(string userId, int k, CancellationToken cancellationToken = default)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        using var lease = await models.AcquireAsync(cancellationToken) ?? throw new NoModelException();
        var model = lease.Model;
        var state = await userStates.GetAsync(userId, cancellationToken);
        var history = state?.Recent.Select(r => r.ItemId).ToList() ?? [];
        var unavailable = await availability.UnavailableAsync(cancellationToken);
        var seen = _options.ExcludeSeen ? history.ToHashSet(StringComparer.Ordinal) : [];
        bool Allowed(string itemId) => !seen.Contains(itemId) && !unavailable.Contains(itemId);

        var numbers = model.ItemNumbers(history);
        var path = numbers.Count == 0 ? ServingPath.Popular : model.AdaptsTo(numbers) ? ServingPath.Adapted : ServingPath.Sequence;
        List<(string ItemId, float Score, string? BecauseOf)> candidates;
        if (path != ServingPath.Popular)
        {
            // Enough of the model's top to fill the candidates after leaving out seen and unavailable items.
            var wanted = _options.Exploration.Candidates + seen.Count + unavailable.Count;
            var top = path == ServingPath.Sequence ? model.TopK(numbers, null, wanted) : Top(model.AdaptedScores(numbers, null), wanted);
            candidates = top
                .Where(t => Allowed(model.Manifest.ItemIds[t.Item]))
                .Take(_options.Exploration.Candidates)
                .Select(t => (model.Manifest.ItemIds[t.Item], t.Score, model.ClosestInHistory(t.Item, numbers) is { } h ? model.Manifest.ItemIds[h] : null))
                .ToList();
        }
        else
        {
            var popular = model.Manifest.PopularItems ?? [];
            candidates = popular.Where(Allowed).Take(_options.Exploration.Candidates)
                .Select((id, rank) => (id, (float)(popular.Count - rank), (string?)null)).ToList();
        }

        var recommendationId = Guid.NewGuid().ToString("N");
        var random = new Random(recommendationId.GetHashCode(StringComparison.Ordinal));
        var slate = SlatePolicy.Draw(candidates.Select(c => (double)c.Score).ToList(), Math.Min(k, candidates.Count), _options.Exploration, random);
        var items = slate.Select((choice, position) =>
        {
            var c = candidates[choice.Candidate];
            return new RecommendedItem(c.ItemId, position, c.Score, choice.Propensity, c.BecauseOf);
        }).ToList();

        await LogImpressionsAsync(userId, recommendationId, model.Version, path, items, cancellationToken);
        KeyValuePair<string, object?>[] tags = [new("path", path), new("model_version", model.Version)];
        RecommenderMetrics.Impressions.Add(items.Count, tags);
        RecommenderMetrics.RecommendationDuration.Record(System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds, tags);
        return new Recommendations(recommendationId, userId, model.Version, path, items);
    }

    private static (int Item, float Score)[] Top(float[] scores, int k) =>
        Enumerable.Range(1, scores.Length - 1).OrderByDescending(i => scores[i]).Take(k).Select(i => (i, scores[i])).ToArray();

    private async Task LogImpressionsAsync(string userId, string recommendationId, string version, string path, IReadOnlyList<RecommendedItem> items, CancellationToken cancellationToken)
    {
        if (items.Count == 0)
            return;
        var events = Impressions.ToEvents(userId, recommendationId, _time.GetUtcNow(), items.Select(i => (i.ItemId, i.Propensity)),
            new Dictionary<string, string> { ["modelVersion"] = version, ["path"] = path });
        await ingestor.IngestEventsAsync(events, cancellationToken);
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
