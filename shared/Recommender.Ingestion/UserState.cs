using Recommender.Events;

namespace Recommender.Ingestion;

/// <summary>An item the user engaged with, and when.</summary>
public readonly record struct RecentItem(string ItemId, DateTimeOffset Timestamp);

/// <summary>A slate the user was shown (its impressions), in its positions: what serving's session terms read.</summary>
public sealed record ShownSlate(string RecommendationId, string? SessionId, DateTimeOffset ShownAt, IReadOnlyList<string> Items);

/// <summary>
/// A user's online state: what serving needs about the user right now. Immutable; <see cref="Apply"/>
/// returns the next state. It remembers (fingerprints of) the last deliveries it applied, so applying a delivery
/// twice (a redelivery or a retry) changes nothing.
/// </summary>
/// <param name="Slates">The last <see cref="MaxRecentSlates"/> slates shown, oldest first.</param>
public sealed record UserState(
    string UserId,
    IReadOnlyList<RecentItem> Recent,
    IReadOnlyDictionary<InteractionType, long> Counts,
    DateTimeOffset? LastSeen,
    IReadOnlyList<string> AppliedDeliveries,
    IReadOnlyList<ShownSlate> Slates)
{
    /// <summary>How many recent items are kept (the sequence model reads at most this many).</summary>
    public const int MaxRecentItems = 50;

    /// <summary>How many delivery keys are remembered for idempotency.</summary>
    public const int MaxAppliedDeliveries = 32;

    /// <summary>How many shown slates are kept: a session's worth (the RL stage's horizon is 30 slates).</summary>
    public const int MaxRecentSlates = 30;

    public static UserState Empty(string userId) =>
        new(userId, [], new Dictionary<InteractionType, long>(), null, [], []);

    public long TotalInteractions => Counts.Values.Sum();

    public bool HasApplied(string deliveryKey) => AppliedDeliveries.Contains(Fingerprint(deliveryKey));

    /// <summary>
    /// What is remembered of a delivery key: 64 bits of its SHA-256 in hex. The keys are long (about
    /// 60 characters) and every user row carries 32 of them; 16 characters keep rows small, and a
    /// false match needs a 64-bit collision among one user's last 32 deliveries.
    /// </summary>
    public static string Fingerprint(string deliveryKey)
    {
        Span<byte> hash = stackalloc byte[32];
        System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(deliveryKey), hash);
        return Convert.ToHexStringLower(hash[..8]);
    }

    /// <summary>
    /// Applies one delivery's events of this user; a delivery already applied returns this state unchanged.
    /// </summary>
    /// <remarks>
    /// Impressions are idempotent by their slate instead: a slate already kept is not applied again, nor one older
    /// than every slate kept when the list is full (it was kept once and has fallen off). So a delivery of
    /// impressions alone (what serving writes on every request) is exactly-once without a delivery key, and reads
    /// cannot push a client's delivery out of <see cref="AppliedDeliveries"/>, which would let a retried client
    /// batch apply twice.
    /// </remarks>
    public UserState Apply(string deliveryKey, IEnumerable<Interaction> events)
    {
        if (HasApplied(deliveryKey))
            return this;

        var counts = new Dictionary<InteractionType, long>(Counts);
        var recent = new List<RecentItem>(Recent);
        var slates = new List<ShownSlate>(Slates);
        var lastSeen = LastSeen;
        var onlyImpressions = true;
        var changed = false;
        foreach (var group in events.GroupBy(e => e.Type == InteractionType.Impression && e.RecommendationId is not null ? e.RecommendationId : null))
        {
            if (group.Key is { } recommendationId)
            {
                var shown = group.OrderBy(e => e.Position ?? 0).ToList();
                var slate = new ShownSlate(recommendationId, shown[0].SessionId, shown.Min(e => e.Timestamp), shown.Select(e => e.ItemId!).ToList());
                if (!IsNew(slates, slate))
                    continue;
                slates.Add(slate);
            }
            else
                onlyImpressions = false;
            foreach (var e in group)
            {
                changed = true;
                counts[e.Type] = counts.GetValueOrDefault(e.Type) + 1;
                if (e.IsEngagement && e.ItemId is not null)
                    recent.Add(new RecentItem(e.ItemId, e.Timestamp));
                if (lastSeen is null || e.Timestamp > lastSeen)
                    lastSeen = e.Timestamp;
            }
        }
        if (!changed)
            return this;

        // Events can arrive out of order across deliveries: keep the newest, oldest first.
        var ordered = recent.Count > 1 ? recent.OrderBy(r => r.Timestamp).ToList() : recent;
        if (ordered.Count > MaxRecentItems)
            ordered = ordered.GetRange(ordered.Count - MaxRecentItems, MaxRecentItems);
        if (slates.Count > 1)
            slates = slates.OrderBy(s => s.ShownAt).ToList();

        var applied = new List<string>(AppliedDeliveries);
        if (!onlyImpressions)
        {
            applied.Add(Fingerprint(deliveryKey));
            if (applied.Count > MaxAppliedDeliveries)
                applied.RemoveRange(0, applied.Count - MaxAppliedDeliveries);
        }

        return new UserState(UserId, ordered, counts, lastSeen, applied, Newest(slates));
    }

    /// <summary>
    /// Applies slates shown to the user as their impressions would apply (<see cref="Apply"/>: counted, the last seen time,
    /// the slates kept), each once by its recommendation id; returns this state when every one was applied already.
    /// </summary>
    public UserState ApplyShown(IReadOnlyList<ShownSlate> shown)
    {
        var slates = new List<ShownSlate>(Slates);
        long impressions = 0;
        var lastSeen = LastSeen;
        foreach (var slate in shown)
        {
            if (!IsNew(slates, slate) || slate.Items.Count == 0)
                continue;
            slates.Add(slate);
            impressions += slate.Items.Count;
            if (lastSeen is null || slate.ShownAt > lastSeen)
                lastSeen = slate.ShownAt;
        }
        if (impressions == 0)
            return this;
        var counts = new Dictionary<InteractionType, long>(Counts);
        counts[InteractionType.Impression] = counts.GetValueOrDefault(InteractionType.Impression) + impressions;
        return this with { Counts = counts, LastSeen = lastSeen, Slates = Newest(slates.OrderBy(s => s.ShownAt).ToList()) };
    }

    /// <summary>
    /// Whether a slate is not among <paramref name="slates"/> yet: not kept (by its recommendation id), nor older than
    /// every slate kept when the list is full (it was kept once and has fallen off).
    /// </summary>
    private static bool IsNew(List<ShownSlate> slates, ShownSlate slate) =>
        !slates.Any(s => s.RecommendationId == slate.RecommendationId) && !(slates.Count >= MaxRecentSlates && slate.ShownAt < slates.Min(s => s.ShownAt));

    /// <summary>The newest <see cref="MaxRecentSlates"/> of slates ordered oldest first.</summary>
    private static List<ShownSlate> Newest(List<ShownSlate> slates) =>
        slates.Count > MaxRecentSlates ? slates.GetRange(slates.Count - MaxRecentSlates, MaxRecentSlates) : slates;

    /// <summary>
    /// This state with slates shown since it was stored (serving's own, on their way through the impression sink)
    /// among its slates; ones it holds already are left out, and the newest <see cref="MaxRecentSlates"/> kept.
    /// </summary>
    public UserState WithShown(IEnumerable<ShownSlate> shown)
    {
        var slates = Slates.Concat(shown.Where(s => !Slates.Any(kept => kept.RecommendationId == s.RecommendationId))).OrderBy(s => s.ShownAt).ToList();
        return this with { Slates = Newest(slates) };
    }

    /// <summary>
    /// The slates of the session a request belongs to, oldest first: those of <paramref name="sessionId"/> when the
    /// client names one, else those shown within <paramref name="idle"/> of each other up to <paramref name="now"/>
    /// (a session ends after that long without a slate, as web analytics count sessions).
    /// </summary>
    public IReadOnlyList<ShownSlate> SessionSlates(string? sessionId, DateTimeOffset now, TimeSpan idle)
    {
        if (sessionId is not null)
            return Slates.Where(s => s.SessionId == sessionId).ToList();
        var session = new List<ShownSlate>();
        var after = now;
        for (var i = Slates.Count - 1; i >= 0 && after - Slates[i].ShownAt <= idle; i--)
        {
            session.Insert(0, Slates[i]);
            after = Slates[i].ShownAt;
        }
        return session;
    }
}
