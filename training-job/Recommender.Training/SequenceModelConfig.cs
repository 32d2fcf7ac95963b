using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Recommender.ModelContract;

namespace Recommender.Training;

/// <summary>
/// Hyper-parameters of the sequence model and its training, with documented defaults (the SASRec
/// paper's where it has one). A JSON config file overrides them; <c>--name value</c> on the command
/// line overrides the file.
/// </summary>
public sealed record SequenceModelConfig
{
    /// <summary>Width of item, position and hidden vectors (SASRec: 50 on Games; 64 here for the benchmark protocol).</summary>
    public int Dimension { get; init; } = 64;
    /// <summary>Transformer blocks (SASRec: 2).</summary>
    public int Blocks { get; init; } = 2;
    /// <summary>Attention heads per block (SASRec: 1).</summary>
    public int Heads { get; init; } = 1;
    /// <summary>Most recent interactions the model reads (SASRec: 50 on Games, 200 on MovieLens-1M).</summary>
    public int MaxLength { get; init; } = 50;
    /// <summary>Dropout on embeddings, attention output and feed-forward (SASRec: 0.5 on sparse sets, 0.2 on MovieLens).</summary>
    public double Dropout { get; init; } = 0.5;
    /// <summary>
    /// "bce": SASRec's binary cross-entropy with one uniformly sampled negative per position;
    /// "ce-sampled": softmax cross-entropy against <see cref="Negatives"/> uniform negatives shared by the batch;
    /// "ce": softmax cross-entropy over all items (Klenitskiy &amp; Vasilev 2023 found CE much stronger than BCE).
    /// </summary>
    public string Loss { get; init; } = "ce-sampled";
    /// <summary>Shared negatives per batch for "ce-sampled".</summary>
    public int Negatives { get; init; } = 512;
    public double LearningRate { get; init; } = 0.001;
    public double WeightDecay { get; init; } = 0.0;
    public int BatchSize { get; init; } = 128;
    public int Epochs { get; init; } = 200;
    /// <summary>Validate every this many epochs; training stops after <see cref="Patience"/> validations without a better NDCG@10.</summary>
    public int EvaluateEvery { get; init; } = 5;
    public int Patience { get; init; } = 4;
    /// <summary>
    /// The validation figure that picks the best epoch and stops training: "sampled", NDCG@10 against 100 sampled
    /// negatives (SASRec's protocol), or "full", NDCG@10 over every item with the history masked, the ranking serving
    /// does. The two can disagree on which epoch is best (Krichene and Rendle 2020).
    /// </summary>
    public string SelectBy { get; init; } = "sampled";
    /// <summary>Validation on a seeded sample of users (null: all), as SASRec used 10,000.</summary>
    public int? ValidationUsers { get; init; } = 10_000;
    /// <summary>Fuse item content (categories, tags, title words) into the item representation.</summary>
    public bool ItemContent { get; init; } = true;
    /// <summary>Fuse user attributes into the sequence state.</summary>
    public bool UserFeatures { get; init; } = true;
    /// <summary>Torch threads on CPU; more than 1 needs OMP_WAIT_POLICY=PASSIVE on a shared machine (set at start-up).</summary>
    public int Threads { get; init; } = 1;
    /// <summary>Stop after this many seconds of training (0: no limit); the best validated model is kept.</summary>
    public double TimeBudgetSeconds { get; init; }
    public int Seed { get; init; } = 42;
    /// <summary>
    /// After early stopping, train a fresh model for the best epoch count on train + validation and serve
    /// that one (it has seen each user's most recent transition). Its test metrics are the run's; the
    /// early-stopped model's (SASRec's protocol) are kept beside them under <c>early_stopped</c>.
    /// </summary>
    public bool Refit { get; init; }
    /// <summary>
    /// After training, also learn a content-to-embedding generator for new items (Meta-Embedding style,
    /// <see cref="ItemEmbeddingGenerator"/>); saved with the model, and the exported graph scores
    /// <c>candidate_tokens</c> (items the model never saw) as G(c) + c instead of c alone. Needs item content.
    /// </summary>
    public bool ItemGenerator { get; init; }
    /// <summary>
    /// After training, also meta-learn a few-shot adaptation for users with a short history (first-order MAML over
    /// the training users' first interactions, the meta-learning stage); written to
    /// <c>user-adaptation.json</c> and the manifest, and serving adapts users with up to that many interactions.
    /// </summary>
    public bool UserAdaptation { get; init; }
    /// <summary>
    /// Retraining: start from the weights of the model being served (<see cref="Training.WarmStart"/>) when it was
    /// published with them and has this architecture, instead of a random initialisation.
    /// </summary>
    public bool WarmStart { get; init; }
    /// <summary>Epochs a warm start is fine-tuned for, on train + validation (no early stopping: see <see cref="SequenceModelTrainer.FineTune"/>).</summary>
    public int WarmStartEpochs { get; init; } = 2;
    /// <summary>
    /// Adam's learning rate when fine-tuning a warm start: small, so that the model learns the new data without moving
    /// far from the champion; at the full rate a few epochs moved its slates so far that few logged decisions stayed
    /// effective for the next off-policy estimate (README, "The learning loop").
    /// </summary>
    public double WarmStartLearningRate { get; init; } = 3e-4;

    /// <summary>
    /// Catalogs with more items than this are ranked in two stages by the exported graph
    /// (<see cref="PolicyExporter"/>): every item scored against an int8 copy of the item vectors, a quarter of the bytes
    /// a request reads, then the best <see cref="ShortlistSize"/> re-scored exactly. The top-k is the exact one whenever
    /// the int8 scores keep it in the shortlist (recall against exact scoring: the <c>serving-latency</c> benchmark).
    /// 0 ranks every catalog exactly.
    /// </summary>
    public int ShortlistAbove { get; init; } = 20_000;
    /// <summary>Items re-scored exactly in the second stage (at least the k asked for).</summary>
    public int ShortlistSize { get; init; } = 256;

    public static SequenceModelConfig Load(string? path, IReadOnlyDictionary<string, string> overrides) =>
        Settings.Load(new SequenceModelConfig(), path, overrides, TrainingJsonContext.Default.SequenceModelConfig);

    /// <summary>The defaults, then a settings file's (or section's) <paramref name="settings"/>, then <paramref name="overrides"/>.</summary>
    public static SequenceModelConfig FromSettings(System.Text.Json.Nodes.JsonObject? settings, IReadOnlyDictionary<string, string> overrides) =>
        Settings.Load(new SequenceModelConfig(), settings, overrides, TrainingJsonContext.Default.SequenceModelConfig);

    public string ToJson() => JsonSerializer.Serialize(this, TrainingJsonContext.Default.SequenceModelConfig);
}

/// <summary>Binds a settings record: its documented defaults, then a JSON file, then <c>name value</c> overrides (names as the properties, case-insensitive, dashes ignored).</summary>
public static class Settings
{
    public static T Load<T>(T defaults, string? path, IReadOnlyDictionary<string, string> overrides, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type) =>
        Load(defaults, path is null ? null : System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!.AsObject(), overrides, type);

    /// <param name="file">The settings from a file (or a file's section), named as the record's JSON.</param>
    public static T Load<T>(T defaults, System.Text.Json.Nodes.JsonObject? file, IReadOnlyDictionary<string, string> overrides, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type)
    {
        // Start from the defaults written out in full: the source-generated reader sets init-only
        // properties it does not find to default(T), not to their initialisers.
        var node = System.Text.Json.Nodes.JsonNode.Parse(JsonSerializer.Serialize(defaults, type))!.AsObject();
        foreach (var (key, value) in file ?? [])
            node[key] = value?.DeepClone();
        var properties = typeof(T).GetProperties().Where(p => p.CanWrite).ToList();
        foreach (var (key, value) in overrides)
        {
            var property = properties.FirstOrDefault(p => string.Equals(p.Name, key.Replace("-", ""), StringComparison.OrdinalIgnoreCase))
                ?? throw new ArgumentException($"unknown setting '{key}'; settings: {string.Join(", ", properties.Select(p => Camel(p.Name)))}");
            node[Camel(property.Name)] = System.Text.Json.Nodes.JsonNode.Parse(
                property.PropertyType == typeof(string) ? JsonSerializer.Serialize(value, TrainingJsonContext.Default.String) : value.ToLower(CultureInfo.InvariantCulture));
        }
        return node.Deserialize(type)!;
    }

    // As the source-generated context names them (CamelCase policy), so an override lands on the property the JSON holds.
    private static string Camel(string name) => JsonNamingPolicy.CamelCase.ConvertName(name);
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = true,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow, NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals)]
[JsonSerializable(typeof(SequenceModelConfig))]
[JsonSerializable(typeof(string))]
[JsonSerializable(typeof(Recommender.ModelContract.UserAdaptationParameters))]
[JsonSerializable(typeof(Recommender.ModelContract.ServingPolicy))]
public sealed partial class TrainingJsonContext : JsonSerializerContext;
