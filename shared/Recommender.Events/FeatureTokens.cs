using System.Globalization;
using System.Text.Json;

namespace Recommender.Events;

/// <summary>
/// How features become the tokens the model reads, in one place for training and serving: a token is
/// <c>name:value</c> (<see cref="Of"/>). An item's categories and tags (<c>category:games</c>, <c>tag:co-op</c>), a user's
/// attributes (<c>age:25-34</c>, <c>country:fr</c>, in name order), and feature objects (Personalizer's action features,
/// the catalog's fields: <see cref="OfFeatures"/>), so an item described either way reads the same tokens.
/// </summary>
public static class FeatureTokens
{
    public static string Of(string name, string value) => name + ":" + value;

    public static string[] OfItem(CatalogItem item) =>
        [.. item.Categories.Select(c => Of("category", c)), .. item.Tags.Select(t => Of("tag", t))];

    public static string[] OfProfile(IReadOnlyDictionary<string, string> attributes) =>
        [.. attributes.OrderBy(a => a.Key, StringComparer.Ordinal).Select(a => Of(a.Key, a.Value))];

    /// <summary>
    /// Feature objects as tokens, one per array element, with the catalog's plural field names singular
    /// (<c>categories</c> → <c>category</c>, <c>tags</c> → <c>tag</c>, <c>genres</c> → <c>genre</c>): so
    /// <c>{"categories": ["games"], "tags": ["co-op"]}</c> gives <c>category:games</c> and <c>tag:co-op</c>, the tokens
    /// <see cref="OfItem"/> gives an item with those catalog fields.
    /// </summary>
    public static IReadOnlyList<string> OfFeatures(IEnumerable<JsonElement>? features)
    {
        var tokens = new List<string>();
        foreach (var feature in features ?? [])
        {
            if (feature.ValueKind != JsonValueKind.Object)
                continue;
            foreach (var property in feature.EnumerateObject())
            {
                var name = Singular(property.Name);
                if (property.Value.ValueKind == JsonValueKind.Array)
                {
                    foreach (var element in property.Value.EnumerateArray())
                        Add(tokens, name, element);
                }
                else
                    Add(tokens, name, property.Value);
            }
        }
        return tokens;
    }

    private static void Add(List<string> tokens, string name, JsonElement value)
    {
        var text = value.ValueKind switch
        {
            JsonValueKind.String => value.GetString(),
            JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False => value.GetRawText().ToLower(CultureInfo.InvariantCulture),
            _ => null,
        };
        if (!string.IsNullOrEmpty(text))
            tokens.Add(Of(name, text));
    }

    private static string Singular(string name) => name switch
    {
        "categories" => "category",
        "tags" => "tag",
        "genres" => "genre",
        _ => name,
    };
}
