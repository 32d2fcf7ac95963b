namespace Recommender.Events;

/// <summary>
/// Bounds every accepted event respects. They keep one event small (a Table entity, a Parquet row),
/// keep ids usable as storage keys, and stop a misbehaving client from filling the log.
/// </summary>
public sealed record EventLimits
{
    public static EventLimits Default { get; } = new();

    public int MaxIdLength { get; init; } = 128;
    public int MaxContextEntries { get; init; } = 16;
    public int MaxContextKeyLength { get; init; } = 64;
    public int MaxContextValueLength { get; init; } = 256;
    public int MaxTitleLength { get; init; } = 512;
    public int MaxTextLength { get; init; } = 4096;
    public int MaxLabels { get; init; } = 32;
    public int MaxLabelLength { get; init; } = 64;
    public int MaxAttributes { get; init; } = 32;
    public int MaxPosition { get; init; } = 1000;

    /// <summary>Clock skew tolerated for timestamps ahead of the receiver's clock.</summary>
    public TimeSpan MaxFutureSkew { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Nothing older is plausible for this product's data; older stamps are client bugs.</summary>
    public DateTimeOffset EarliestTimestamp { get; init; } = new(2000, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>Largest raw event accepted (bytes of JSON).</summary>
    public int MaxEventBytes { get; init; } = 16 * 1024;

    /// <summary>
    /// Why <paramref name="id"/> cannot be an id (null when it can): present, at most <see cref="MaxIdLength"/> characters,
    /// no control or lone surrogate characters. Events and every route that takes an id in its path check it here, so an
    /// id a route accepts is one its logged events are accepted with.
    /// </summary>
    public string? CheckId(string field, string? id)
    {
        if (string.IsNullOrWhiteSpace(id))
            return $"{field} is required";
        if (id.Length > MaxIdLength)
            return $"{field} is {id.Length} characters; the limit is {MaxIdLength}";
        foreach (var c in id)
        {
            if (char.IsControl(c) || char.IsSurrogate(c))
                return $"{field} contains a control or surrogate character";
        }
        return null;
    }
}
