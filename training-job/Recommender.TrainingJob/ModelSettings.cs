using System.CommandLine;
using System.Text.Json.Nodes;
using Recommender.Training;

namespace Recommender.TrainingJob;

/// <summary>The model's settings: the command's defaults, the documented ones, then <c>--config</c>, then one option per setting.</summary>
public sealed class ModelSettings
{
    private readonly SettingOptions _settings = new(typeof(SequenceModelConfig), new SequenceModelConfig());
    private readonly Option<string> _config = new("--config") { Description = "A JSON file of SequenceModelConfig settings (names as the options below)" };
    private readonly Option<int?> _evaluationUsers = new("--eval-users") { Description = "Evaluate on at most this many users (all by default)" };

    public void AddTo(Command command)
    {
        command.Add(_config);
        command.Add(_evaluationUsers);
        foreach (var option in _settings.Options)
            command.Add(option);
    }

    public SequenceModelConfig Config(ParseResult parse, IReadOnlyDictionary<string, string>? commandDefaults = null)
    {
        var overrides = new Dictionary<string, string>(commandDefaults ?? new Dictionary<string, string>());
        foreach (var (setting, value) in _settings.Given(parse))
            overrides[setting] = value;
        return SequenceModelConfig.Load(parse.GetValue(_config), overrides);
    }

    public EvaluationProtocol Protocol(ParseResult parse, SequenceModelConfig config) => new() { Seed = config.Seed, MaxUsers = parse.GetValue(_evaluationUsers) };

    public Task<JsonObject> TrainAsync(ParseResult parse, Recommender.Data.InteractionDataset data, string output, JobProgress? progress)
    {
        var config = Config(parse);
        return new TrainingRun(config, Protocol(parse, config), progress).RunAsync(data, output);
    }
}
