namespace Recommender.Events;

/// <summary>
/// How catalog items and user profiles become the tokens the model reads, in one place for training and
/// serving: an item's categories and tags (<c>category:games</c>, <c>tag:co-op</c>), a user's attributes
/// (<c>age:25-34</c>, <c>country:fr</c>, in name order).
/// </summary>
public static class FeatureTokens
{
    public static string[] OfItem(CatalogItem item) =>
        [.. item.Categories.Select(c => "category:" + c), .. item.Tags.Select(t => "tag:" + t)];

    public static string[] OfProfile(IReadOnlyDictionary<string, string> attributes) =>
        [.. attributes.OrderBy(a => a.Key, StringComparer.Ordinal).Select(a => a.Key + ":" + a.Value)];
}
