using Recommender.Events;

namespace Recommender.Ingestion;

/// <summary>An item the user engaged with, and when.</summary>
public readonly record struct RecentItem(string ItemId, DateTimeOffset Timestamp);

/// <summary>
/// A user's online state: what serving needs about the user right now. Immutable; <see cref="Apply"/>
/// returns the next state. It remembers (fingerprints of) the last deliveries it applied, so applying a delivery
/// twice (a redelivery or a retry) changes nothing.
/// </summary>
public sealed record UserState(
    string UserId,
    IReadOnlyList<RecentItem> Recent,
    IReadOnlyDictionary<InteractionType, long> Counts,
    DateTimeOffset? LastSeen,
    IReadOnlyList<string> AppliedDeliveries)
{
    /// <summary>How many recent items are kept (the sequence model reads at most this many).</summary>
    public const int MaxRecentItems = 50;

    /// <summary>How many delivery keys are remembered for idempotency.</summary>
    public const int MaxAppliedDeliveries = 32;

    public static UserState Empty(string userId) =>
        new(userId, [], new Dictionary<InteractionType, long>(), null, []);

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

    /// <summary>Applies one delivery's events of this user; a delivery already applied returns this state unchanged.</summary>
    public UserState Apply(string deliveryKey, IEnumerable<Interaction> events)
    {
        if (HasApplied(deliveryKey))
            return this;

        var counts = new Dictionary<InteractionType, long>(Counts);
        var recent = new List<RecentItem>(Recent);
        var lastSeen = LastSeen;
        foreach (var e in events)
        {
            counts[e.Type] = counts.GetValueOrDefault(e.Type) + 1;
            if (e.IsEngagement && e.ItemId is not null)
                recent.Add(new RecentItem(e.ItemId, e.Timestamp));
            if (lastSeen is null || e.Timestamp > lastSeen)
                lastSeen = e.Timestamp;
        }

        // Events can arrive out of order across deliveries: keep the newest, oldest first.
        var ordered = recent.Count > 1 ? recent.OrderBy(r => r.Timestamp).ToList() : recent;
        if (ordered.Count > MaxRecentItems)
            ordered = ordered.GetRange(ordered.Count - MaxRecentItems, MaxRecentItems);

        var applied = new List<string>(AppliedDeliveries) { Fingerprint(deliveryKey) };
        if (applied.Count > MaxAppliedDeliveries)
            applied.RemoveRange(0, applied.Count - MaxAppliedDeliveries);

        return new UserState(UserId, ordered, counts, lastSeen, applied);
    }
}
