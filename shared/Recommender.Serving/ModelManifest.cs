using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Recommender.Serving;

/// <summary>
/// What a published model is and how to call it: <c>models/{version}/manifest.json</c> beside
/// <c>policy.onnx</c>. <see cref="ItemIds"/> maps the model's item numbers to catalog ids (index 0 is padding);
/// <see cref="PopularItems"/> (most interacted-with first) serve users with no history;
/// <see cref="ContentVocabulary"/> numbers the content tokens (index 0 is padding) for items the model never saw;
/// <see cref="UserAdaptation"/>, when present, adapts the model to users with a short history (<see cref="Serving.UserAdaptation"/>).
/// </summary>
public sealed record ModelManifest(
    string Version,
    DateTimeOffset Created,
    string DataSnapshot,
    int MaxLength,
    IReadOnlyList<string> Inputs,
    IReadOnlyList<string> Outputs,
    IReadOnlyList<string> ItemIds,
    JsonObject? Metrics = null,
    IReadOnlyList<string>? PopularItems = null,
    IReadOnlyList<string>? ContentVocabulary = null,
    UserAdaptationParameters? UserAdaptation = null)
{
    public byte[] ToUtf8Json() => JsonSerializer.SerializeToUtf8Bytes(this, ServingJsonContext.Default.ModelManifest);

    public static ModelManifest FromUtf8Json(ReadOnlySpan<byte> json) =>
        JsonSerializer.Deserialize(json, ServingJsonContext.Default.ModelManifest) ?? throw new InvalidDataException("manifest is null");
}

/// <summary><c>models/current.json</c>: the promoted version.</summary>
public sealed record CurrentModelPointer(string Version, DateTimeOffset PromotedAt, string? Reason = null);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = true)]
[JsonSerializable(typeof(ModelManifest))]
[JsonSerializable(typeof(CurrentModelPointer))]
internal sealed partial class ServingJsonContext : JsonSerializerContext;
