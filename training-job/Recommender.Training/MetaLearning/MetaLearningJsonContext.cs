using System.Text.Json.Serialization;

namespace Recommender.Training.MetaLearning;

/// <summary>The meta-learning's settings as JSON (the same conventions as <see cref="TrainingJsonContext"/>).</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = true,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow, NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals)]
[JsonSerializable(typeof(MetaLearningConfig))]
public sealed partial class MetaLearningJsonContext : JsonSerializerContext;
