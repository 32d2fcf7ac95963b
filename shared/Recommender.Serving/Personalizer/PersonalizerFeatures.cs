using System.Globalization;
using System.Text.Json;

namespace Recommender.Serving;

/// <summary>One feature of a context or an action: a name (namespace, path and, for text, its value) and a numeric value.</summary>
public readonly record struct Feature(string Name, double Value);

/// <summary>
/// Personalizer's free-form feature objects flattened the way Personalizer read them: every object of the array is a
/// group of features; a nested object's property name is the namespace of what is inside it; text and true/false are
/// categorical (<c>namespace.key=value</c>, value 1), numbers are numeric (<c>namespace.key</c>, the number); arrays
/// are read element by element (numbers by index, text as categories). Nulls and false add nothing.
/// </summary>
public static class PersonalizerFeatures
{
    /// <summary>Every feature of <paramref name="objects"/>, in document order; <paramref name="prefix"/> keeps context and action features apart.</summary>
    public static List<Feature> Flatten(IEnumerable<JsonElement>? objects, string prefix)
    {
        var features = new List<Feature>();
        foreach (var element in objects ?? [])
            Add(element, prefix, features);
        return features;
    }

    private static void Add(JsonElement element, string name, List<Feature> features)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                foreach (var property in element.EnumerateObject())
                    Add(property.Value, name + "." + property.Name, features);
                break;
            case JsonValueKind.Array:
                var index = 0;
                foreach (var item in element.EnumerateArray())
                {
                    if (item.ValueKind is JsonValueKind.Number)
                        Add(item, name + "[" + index.ToString(CultureInfo.InvariantCulture) + "]", features);
                    else
                        Add(item, name, features);
                    index++;
                }
                break;
            case JsonValueKind.String:
                features.Add(new Feature(name + "=" + element.GetString(), 1));
                break;
            case JsonValueKind.Number:
                var value = element.GetDouble();
                if (double.IsFinite(value) && value != 0)
                    features.Add(new Feature(name, value));
                break;
            case JsonValueKind.True:
                features.Add(new Feature(name, 1));
                break;
        }
    }
}
