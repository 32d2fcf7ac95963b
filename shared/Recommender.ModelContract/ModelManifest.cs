using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Recommender.ModelContract;

/// <summary>
/// What a published model is and how to call it: <c>models/{version}/manifest.json</c> beside
/// <c>policy.onnx</c>. <see cref="ItemIds"/> maps the model's item numbers to catalog ids (index 0 is padding);
/// <see cref="PopularItems"/> (most interacted-with first) serve users with no history;
/// <see cref="ContentVocabulary"/> numbers the content tokens (index 0 is padding) for items the model never saw;
/// <see cref="UserAdaptation"/>, when present, adapts the model to users with a short history (<c>Recommender.Serving.ServingTimeAdaptation</c>);
/// <see cref="UserVocabulary"/> numbers the profile tokens (<see cref="Events.FeatureTokens.OfProfile"/>; index 0 is padding) the
/// model reads as <c>user_tokens</c>; <see cref="Policy"/>, when present, is how the model's slates are drawn (else the host's exploration).
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
    UserAdaptationParameters? UserAdaptation = null,
    IReadOnlyList<string>? UserVocabulary = null,
    ServingPolicy? Policy = null)
{
    public byte[] ToUtf8Json() => JsonSerializer.SerializeToUtf8Bytes(this, ModelContractJsonContext.Default.ModelManifest);

    public static ModelManifest FromUtf8Json(ReadOnlySpan<byte> json) =>
        JsonSerializer.Deserialize(json, ModelContractJsonContext.Default.ModelManifest) ?? throw new InvalidDataException("manifest is null");
}

/// <summary>
/// How a model's slates are drawn, as the training job trained and judged it: Plackett-Luce over the top
/// <see cref="Candidates"/> items not yet consumed, each slot a softmax of the remaining candidates' logits, a
/// logit being (the graph's policy score + the session terms of <see cref="Head"/>) / <see cref="Temperature"/>.
/// Without a head the policy score is the sequence model's own score: the supervised model, sampled.
/// </summary>
public sealed record ServingPolicy(double Temperature, int Candidates, PolicyHeadWeights? Head = null);

/// <summary>
/// The session terms of a policy learned by RL (the per-item terms are folded into the graph's
/// <c>top_policy_scores</c>), in the graph's score units: a weight per item of the candidate's category among
/// the last <see cref="RecentWindow"/> consumed, per time the candidate was shown this session and not taken, and
/// on its affinity with the items shown this session and not taken (vᶜ · Σ v_d).
/// </summary>
public sealed record PolicyHeadWeights(double Repetition, double Declined, double DeclinedAffinity, int RecentWindow);

/// <summary>
/// What few-shot user adaptation needs at serving time (the training job meta-learns it, the manifest
/// carries it): the starting user vector u₀, the per-dimension inner rates α, the number of inner steps, and
/// the longest history it is used for (longer histories are served by the sequence model as it is).
/// </summary>
public sealed record UserAdaptationParameters(float[] Initial, float[] Rates, int Steps, int MaxHistory);

/// <summary><c>models/current.json</c>: the promoted version.</summary>
public sealed record CurrentModelPointer(string Version, DateTimeOffset PromotedAt, string? Reason = null);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = true)]
[JsonSerializable(typeof(ModelManifest))]
[JsonSerializable(typeof(CurrentModelPointer))]
internal sealed partial class ModelContractJsonContext : JsonSerializerContext;
