using System.CommandLine;
using System.Text.Json.Nodes;
using Recommender.Training;
using Recommender.Training.MetaLearning;
using Recommender.Training.Pipeline;

namespace Recommender.TrainingJob;

/// <summary>
/// A training's settings, bound once: each record's documented defaults, then its section of <c>--config</c>, then one
/// option per setting. The sequence model's settings are plain options (<c>--maxLength</c>), the meta-learning's are
/// <c>--meta.*</c> (<see cref="MetaLearningConfig"/>), and retrain's RL stage's are <c>--policy.*</c> (with its own
/// <see cref="SettingOptions"/>, reading the <c>policy</c> section from here).
/// </summary>
/// <remarks>
/// The file: <c>{ "model": { "maxLength": 30 }, "meta": { "innerSteps": 5 }, "policy": { "klCoefficient": 0.05 } }</c>,
/// names as the options; a file without sections holds the model's settings (as files written before the sections do).
/// </remarks>
public sealed class TrainingSettings
{
    /// <summary>The sections a <c>--config</c> file may hold.</summary>
    public static readonly string[] Sections = ["model", "meta", "policy"];

    private readonly SettingOptions _model = new(typeof(SequenceModelConfig), new SequenceModelConfig());
    private readonly SettingOptions _meta = new(typeof(MetaLearningConfig), new MetaLearningConfig(), prefix: "meta.");
    private readonly Option<string> _config = new("--config")
    {
        Description = "A JSON file of settings in sections model, meta and (retrain) policy, named as the options (a file without sections: the model's)",
    };
    private readonly Option<int?> _evaluationUsers = new("--eval-users") { Description = "Evaluate on at most this many users (all by default)" };

    public void AddTo(Command command)
    {
        command.Add(_config);
        command.Add(_evaluationUsers);
        foreach (var option in _model.Options.Concat(_meta.Options))
            command.Add(option);
    }

    public SequenceModelConfig Config(ParseResult parse, IReadOnlyDictionary<string, string>? commandDefaults = null)
    {
        var overrides = new Dictionary<string, string>(commandDefaults ?? new Dictionary<string, string>());
        foreach (var (setting, value) in _model.Given(parse))
            overrides[setting] = value;
        return SequenceModelConfig.FromSettings(Section(parse, "model"), overrides);
    }

    /// <summary>The meta-learning's settings: the product's defaults for this model (<see cref="TrainingRun.ProductMeta"/>), then the file's and the options'.</summary>
    public MetaLearningConfig Meta(ParseResult parse, SequenceModelConfig model) =>
        Settings.Load(TrainingRun.ProductMeta(model), Section(parse, "meta"), _meta.Given(parse), MetaLearningJsonContext.Default.MetaLearningConfig);

    public EvaluationProtocol Protocol(ParseResult parse, SequenceModelConfig config) => new() { Seed = config.Seed, MaxUsers = parse.GetValue(_evaluationUsers) };

    /// <summary>
    /// The <paramref name="name"/> section of the <c>--config</c> file (null: no file, or no such section); a file without
    /// sections is the model's section.
    /// </summary>
    public JsonObject? Section(ParseResult parse, string name)
    {
        if (parse.GetValue(_config) is not { } path)
            return null;
        var file = JsonNode.Parse(File.ReadAllText(path))?.AsObject() ?? throw new FormatException($"{path} holds no JSON object");
        var sectioned = file.Any(p => Sections.Contains(p.Key) && p.Value is JsonObject);
        if (!sectioned)
            return name == "model" ? file : null;
        var unknown = file.Select(p => p.Key).Where(k => !Sections.Contains(k)).ToList();
        if (unknown.Count > 0)
            throw new FormatException($"{path}: unknown section(s) {string.Join(", ", unknown)}; the sections are {string.Join(", ", Sections)}");
        return file[name] as JsonObject;
    }

    public Task<JsonObject> TrainAsync(ParseResult parse, Recommender.Data.InteractionDataset data, string output, JobProgress? progress)
    {
        var config = Config(parse);
        return new TrainingRun(config, Protocol(parse, config), progress, meta: Meta(parse, config)).RunAsync(data, output);
    }
}
