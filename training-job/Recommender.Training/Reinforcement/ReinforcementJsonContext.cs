using System.Text.Json.Serialization;

namespace Recommender.Training.Reinforcement;

/// <summary>The RL stage's settings and files as JSON (the same conventions as <see cref="TrainingJsonContext"/>).</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = true,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow, NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals)]
[JsonSerializable(typeof(PolicyStageConfig))]
[JsonSerializable(typeof(PolicyHead))]
[JsonSerializable(typeof(EvaluatedSession[]))]
public sealed partial class ReinforcementJsonContext : JsonSerializerContext;
