using System.CommandLine;
using Recommender.Training;
using Recommender.Training.Reinforcement;
using Recommender.TrainingJob;

namespace Recommender.Training.Tests;

/// <summary>The training job's command line (System.CommandLine): what it refuses before anything runs, and that settings reach their records.</summary>
[Trait("Kind", "Unit")]
public sealed class TrainingJobCommandTests
{
    private static ParseResult Parse(params string[] args) => TrainingJobCommand.Create().Parse(args);

    [Fact]
    public void A_setting_that_is_not_of_its_type_is_refused_by_name_before_anything_runs()
    {
        var parse = Parse("train", "--data", "synthetic:users=10", "--out", "/tmp/never", "--dropout", "half");
        Assert.Contains(parse.Errors, e => e.Message == "--dropout: 'half' is not a number");
        Assert.Contains(Parse("retrain", "--snapshot", "s", "--version", "v", "--policy.iterations", "1.5").Errors,
            e => e.Message == "--policy.iterations: '1.5' is not an integer");
    }

    [Theory]
    [InlineData("train", "--out", "x")]                          // --data missing
    [InlineData("train", "--data", "d", "--out", "x", "--dimensions", "8")] // a setting that does not exist
    [InlineData("rl", "--out", "x")]                             // the research runs are the experiments' command, not the product job's
    [InlineData("retrain", "--snapshot", "s")]                   // --version missing
    public void A_command_line_that_does_not_parse_is_refused(params string[] args) => Assert.NotEmpty(Parse(args).Errors);

    [Fact]
    public void The_experiments_command_refuses_a_value_outside_an_options_choices_by_name()
    {
        var parse = Recommender.Experiments.ExperimentsCommand.Create().Parse(["rl", "--out", "x", "--rl-encoder", "thawed"]);
        Assert.Contains(parse.Errors, e => e.Message.Contains("thawed") && e.Message.Contains("--rl-encoder"));
        Assert.Empty(Recommender.Experiments.ExperimentsCommand.Create().Parse(["rl", "--out", "x", "--rl-encoder", "fine-tune", "--rl-kl", "0.05"]).Errors);
    }

    [Fact]
    public void Settings_given_by_either_name_override_the_defaults_and_only_those()
    {
        var settings = new SettingOptions(typeof(SequenceModelConfig), new SequenceModelConfig());
        var command = new RootCommand();
        foreach (var option in settings.Options)
            command.Add(option);

        var given = settings.Given(command.Parse(["--maxLength", "30", "--learning-rate", "0.003", "--refit", "true"]));
        var config = SequenceModelConfig.Load(null, given);

        Assert.Equal(3, given.Count);
        Assert.Equal(30, config.MaxLength);
        Assert.Equal(0.003, config.LearningRate);
        Assert.True(config.Refit);
        Assert.Equal(new SequenceModelConfig().Dimension, config.Dimension);
    }

    [Fact]
    public void Retrains_policy_settings_bind_under_their_prefix()
    {
        var policy = new SettingOptions(typeof(PolicyStageConfig), new PolicyStageConfig(), prefix: "policy.");
        var command = new RootCommand();
        foreach (var option in policy.Options)
            command.Add(option);

        var config = PolicyStageConfig.Load(policy.Given(command.Parse(["--policy.minDecisions", "150", "--policy.episodes-per-iteration", "64"])));

        Assert.Equal(150, config.MinDecisions);
        Assert.Equal(64, config.EpisodesPerIteration);
        Assert.Equal(new PolicyStageConfig().Iterations, config.Iterations);
    }

    /// <summary>A command with nothing but the training's settings, to parse them alone.</summary>
    private static (TrainingSettings Settings, RootCommand Command) TrainingSettingsCommand()
    {
        var settings = new TrainingSettings();
        var command = new RootCommand();
        settings.AddTo(command);
        return (settings, command);
    }

    [Fact]
    public void A_config_files_sections_reach_the_model_the_meta_learning_and_the_policy_and_options_override_them()
    {
        var (settings, command) = TrainingSettingsCommand();
        var file = Path.GetTempFileName();
        File.WriteAllText(file, """{ "model": { "maxLength": 30 }, "meta": { "innerSteps": 5, "epochs": 3 }, "policy": { "klCoefficient": 0.2, "simulatorSteps": 40 } }""");
        var parse = command.Parse(["--config", file, "--meta.epochs", "9"]);
        Assert.Empty(parse.Errors);

        var model = settings.Config(parse);
        var meta = settings.Meta(parse, model);
        var policy = PolicyStageConfig.Load(new Dictionary<string, string> { ["iterations"] = "7" }, settings.Section(parse, "policy"));

        Assert.Equal(30, model.MaxLength);
        Assert.Equal((5, 9), (meta.InnerSteps, meta.Epochs));
        Assert.True(meta.FirstOrder);              // the product's default, kept where the file says nothing
        Assert.Equal(model.Seed, meta.Seed);
        Assert.Equal((0.2, 40, 7), (policy.KlCoefficient, policy.SimulatorSettings.Steps, policy.Iterations));
    }

    [Fact]
    public void A_config_file_without_sections_is_the_models_and_an_unknown_section_is_refused_by_name()
    {
        var (settings, command) = TrainingSettingsCommand();
        var flat = Path.GetTempFileName();
        File.WriteAllText(flat, """{ "maxLength": 20 }""");
        var parse = command.Parse(["--config", flat]);
        Assert.Equal(20, settings.Config(parse).MaxLength);
        Assert.Null(settings.Section(parse, "meta"));

        var wrong = Path.GetTempFileName();
        File.WriteAllText(wrong, """{ "model": { "maxLength": 20 }, "rl": { "iterations": 3 } }""");
        var error = Assert.Throws<FormatException>(() => settings.Config(command.Parse(["--config", wrong])));
        Assert.Contains("rl", error.Message);
    }

    [Fact]
    public void Retrain_takes_the_meta_learnings_and_the_simulators_settings_as_options()
    {
        Assert.Empty(Parse("retrain", "--snapshot", "s", "--version", "v", "--meta.innerSteps", "2", "--meta.first-order", "false", "--policy.simulatorSteps", "10").Errors);
        Assert.Contains(Parse("train", "--data", "d", "--out", "x", "--meta.innerSteps", "two").Errors, e => e.Message == "--meta.innerSteps: 'two' is not an integer");
    }
}
