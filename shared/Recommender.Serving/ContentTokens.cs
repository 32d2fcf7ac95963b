using System.Globalization;
using System.Text.Json;

namespace Recommender.Serving;

/// <summary>
/// Names an item's content tokens from feature objects (Personalizer's action features, the catalog's
/// fields) the way training names them: <c>name:value</c>, one token per array element, with the
/// catalog's plural field names singular (<c>categories</c> → <c>category</c>, <c>tags</c> → <c>tag</c>,
/// <c>genres</c> → <c>genre</c>). So <c>{"categories": ["games"], "tags": ["co-op"]}</c> gives
/// <c>category:games</c> and <c>tag:co-op</c>, the tokens an item with those catalog fields was trained with.
/// </summary>
public static class ContentTokens
{
    public static IReadOnlyList<string> FromFeatures(IEnumerable<JsonElement>? features)
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
            tokens.Add(name + ":" + text);
    }

    private static string Singular(string name) => name switch
    {
        "categories" => "category",
        "tags" => "tag",
        "genres" => "genre",
        _ => name,
    };
}
