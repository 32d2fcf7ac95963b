using Recommender.Data;
using Recommender.ModelContract;
using static TorchSharp.torch;

namespace Recommender.Training;

/// <summary>
/// The champion's weights, to start a retraining from instead of from a random initialisation: item rows are mapped
/// by item id, content and user-attribute rows by token, the rest copied as they are; items and tokens the champion
/// never saw keep their fresh initialisation. A model that continues from the one being served stays close to it,
/// so its slates stay close to the ones the champion logged: that is what keeps the next off-policy estimate's
/// importance weights usable (a model retrained from scratch on nearly the same data ranks differently enough to
/// leave a handful of effective decisions), and it is less churn for users.
/// </summary>
public sealed class WarmStart : IDisposable
{
    /// <summary>The model's files a published version carries for the next retraining to start from (<see cref="ModelRegistry.TrainingFileBlob"/>).</summary>
    public static readonly string[] Files = ["model.bin", "config.json"];

    private readonly SasRecModel _source;
    private readonly ModelManifest _manifest;

    private WarmStart(SasRecModel source, ModelManifest manifest) => (_source, _manifest) = (source, manifest);

    public string Version => _manifest.Version;

    /// <summary>
    /// The champion's weights when it was published with them and its architecture is <paramref name="config"/>'s
    /// (dimension, blocks, heads, length, which features); else null, and training starts afresh, saying why.
    /// </summary>
    public static async Task<WarmStart?> FromChampionAsync(ModelRegistry registry, SequenceModelConfig config, JobProgress? progress, CancellationToken cancellationToken = default)
    {
        var current = await registry.GetCurrentAsync(cancellationToken);
        if (current is null)
            return null;
        var version = current.Pointer.Version;
        var weights = await registry.DownloadTrainingFileAsync(version, "model.bin", cancellationToken);
        var settings = await registry.DownloadTrainingFileAsync(version, "config.json", cancellationToken);
        if (weights is null || settings is null)
        {
            progress?.Line($"warm start: the champion {version} was published without its weights; training from scratch");
            return null;
        }
        var directory = Directory.CreateTempSubdirectory("warm-start-").FullName;
        await File.WriteAllBytesAsync(Path.Combine(directory, "config.json"), settings, cancellationToken);
        await File.WriteAllBytesAsync(Path.Combine(directory, "model.bin"), weights, cancellationToken);
        var championConfig = SequenceModelConfig.Load(Path.Combine(directory, "config.json"), new Dictionary<string, string>());
        var c = championConfig;
        if ((c.Dimension, c.Blocks, c.Heads, c.MaxLength, c.ItemContent, c.UserFeatures, c.ItemGenerator) !=
            (config.Dimension, config.Blocks, config.Heads, config.MaxLength, config.ItemContent, config.UserFeatures, config.ItemGenerator))
        {
            progress?.Line($"warm start: the champion {version} has another architecture; training from scratch");
            return null;
        }
        var manifest = await registry.GetManifestAsync(version, cancellationToken);
        var items = manifest.ItemIds.Count - 1;
        var contentVocabulary = manifest.ContentVocabulary?.Count ?? 0;
        // The content-token table of each item is rebuilt from data: it is skipped when loading the weights.
        var source = new SasRecModel(championConfig, items, contentVocabulary > 1 ? Enumerable.Repeat(new[] { 0 }, items + 1).ToArray() : null, contentVocabulary,
            manifest.UserVocabulary?.Count ?? 0);
        source.load(Path.Combine(directory, "model.bin"), skip: ["_itemTokens", "item_tokens"]);
        Directory.Delete(directory, recursive: true);
        progress?.Line($"warm start from the champion {version}");
        return new WarmStart(source, manifest);
    }

    /// <summary>Overwrites <paramref name="target"/>'s weights (a fresh model for <paramref name="data"/>) with the champion's, row by row where the tables are by id or token.</summary>
    public void CopyInto(SasRecModel target, InteractionDataset data)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var source = _source.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);
        foreach (var (name, parameter) in target.named_parameters())
        {
            if (!source.TryGetValue(name, out var from))
                continue;
            var rows = name switch
            {
                "_itemEmbedding.weight" => RowMap(data.ItemIds, _manifest.ItemIds),
                "_contentEmbedding.weight" => RowMap(data.ItemFeatures?.Vocabulary ?? [], _manifest.ContentVocabulary ?? []),
                "_userEmbedding.weight" => RowMap(data.UserFeatures?.Vocabulary ?? [], _manifest.UserVocabulary ?? []),
                _ => null,
            };
            if (rows is null)
            {
                if (from.shape.SequenceEqual(parameter.shape))
                    parameter.copy_(from.to(parameter.device));
                continue;
            }
            var pairs = rows.Select((s, t) => (Target: (long)t, Source: (long)s)).Where(p => p.Target > 0 && p.Source > 0).ToArray();
            if (pairs.Length > 0)
                parameter.index_copy_(0, tensor(pairs.Select(p => p.Target).ToArray(), device: parameter.device),
                    from.index_select(0, tensor(pairs.Select(p => p.Source).ToArray())).to(parameter.device));
        }
    }

    /// <summary>For each target row (index 0 is padding), the source row of the same name, or 0 when the source has none.</summary>
    private static int[] RowMap(IReadOnlyList<string> target, IReadOnlyList<string> source)
    {
        var index = source.Select((name, i) => (name, i)).Where(x => x.i > 0).GroupBy(x => x.name).ToDictionary(g => g.Key, g => g.First().i, StringComparer.Ordinal);
        return target.Select((name, i) => i == 0 ? 0 : index.GetValueOrDefault(name)).ToArray();
    }

    public void Dispose() => _source.Dispose();
}
