using Recommender.Data;
using Recommender.Experiments;
using Recommender.Training.Reinforcement;
using Recommender.Training.Pipeline;

namespace Recommender.Training.Tests;

/// <summary>The whole RL stage, end to end on a tiny world: reproducible for its seeds in any process state, and in another process.</summary>
[Collection("Torch")]
public sealed class ReinforcementRunTests
{
    private static readonly string Job = Path.Combine(AppContext.BaseDirectory, "training-job.dll");
    private static readonly string Experiments = Path.Combine(AppContext.BaseDirectory, "experiments.dll");
    private const string World = "users=300,items=100,seed=7,clickbait=0.1";

    [Fact]
    public async Task The_rl_stage_gives_the_same_results_whatever_the_random_state_before_it()
    {
        var world = new SyntheticWorld(new SyntheticWorldOptions { Users = 200, Items = 80, Seed = 17 });
        var data = world.ToDataset(world.GenerateHistory(DateTimeOffset.UnixEpoch.AddYears(50)));
        var directory = Path.Combine(Path.GetTempPath(), "rl-" + Guid.NewGuid().ToString("N"));
        await new TrainingRun(new SequenceModelConfig { Dimension = 16, Blocks = 1, MaxLength = 10, Epochs = 2, EvaluateEvery = 2, Seed = 1 }, new EvaluationProtocol()).RunAsync(data, directory);
        var config = new ReinforcementConfig
        {
            Candidates = 10, MaxSessionSteps = 5, EvaluationSeeds = [1], EpisodesPerSeed = 4, OffPolicyDecisions = 20,
            Ppo = new() { Iterations = 1, EpisodesPerIteration = 6, MinibatchSize = 8 },
            A2C = new() { Algorithm = "a2c", Iterations = 1, EpisodesPerIteration = 6 },
            Simulator = new() { LoggedSessions = 20, Steps = 10 },
            Rewards = new() { Click = 1, Watch = 0.5, Leave = -1 },
            KlFrontier = [0.5],
        };

        var (first, report) = new ReinforcementRun(config).Run(world, data, directory, new EvaluationProtocol());
        TorchSharp.torch.random.manual_seed(12345);
        TorchSharp.torch.rand(1000);
        var (second, _) = new ReinforcementRun(config).Run(world, data, directory, new EvaluationProtocol());

        foreach (var key in new[] { "rl.curve_ppo", "rl.curve_a2c", "rl.curve_ppo_simulator", "rl.policies", "rl.simulator", "rl.kl_frontier" })
            Assert.Equal(first[key]!.ToJsonString(), second[key]!.ToJsonString());
        // The frontier's point: a PPO policy held near the pretrained one, judged on return, offline HR@10, its distance and off-policy.
        var point = first["rl.kl_frontier"]!.AsArray().Single()!;
        Assert.Equal(0.5, (double)point["beta"]!);
        Assert.All(new[] { "return", "hr@10", "kl_to_pretrained", "ope_truth", "ope_dr" }, k => Assert.True(double.IsFinite((double)point[k]!), $"{k}: {point[k]}"));
        // With watch time in the reward, the simulator learned what users do with their picks.
        Assert.NotNull(first["rl.simulator"]!["engagement_r2"]);
        // Its report, opened in a browser: five curves for each of PPO, A2C and PPO in the simulator, and the frontier's chart.
        var charts = await Recommender.TestSupport.HeadlessChromium.RenderChartsAsync(report);
        Assert.Equal(16, charts.Count);
        Assert.Contains(charts, c => c.Label == "PPO in the learned simulator: mean return per episode");
        Assert.All(charts, c => Assert.True(c.Width >= 600 && c.Paths > 0, $"{c.Label}: {c.Width} wide, {c.Paths} paths"));
    }

    /// <summary>
    /// Two processes with the same seeds write the same metrics to the last digit: PPO, A2C and PPO in the learned
    /// simulator, every judge's return and every off-policy estimate. Separate processes, because within one the
    /// C# arrays handed to libtorch tend to land at the same alignment: a result that hangs on where an array sits
    /// (an MKL product over a pinned array, see TorchArrays) only differs between processes.
    /// </summary>
    [Fact]
    public async Task The_RL_stage_writes_identical_metrics_from_two_processes_with_the_same_seeds()
    {
        var root = Directory.CreateTempSubdirectory("rl-determinism-").FullName;
        var pretrained = Path.Combine(root, "pretrained");
        await RunAsync(Job, "train", "--data", $"synthetic:{World}", "--out", pretrained, "--epochs", "5", "--evaluateEvery", "5",
            "--dimension", "16", "--blocks", "1", "--maxLength", "20", "--quiet");

        string[] Rl(string output) => ["rl", "--world", World, "--pretrained", pretrained, "--out", output, "--rl-iterations", "10",
            "--rl-episodes", "128", "--rl-judge-episodes", "50", "--rl-logged-decisions", "1000", "--rl-kl-frontier", "0.1", "--rl-reward", "click=1,watch=0.5", "--quiet"];
        var (first, second) = (Path.Combine(root, "first"), Path.Combine(root, "second"));
        await Task.WhenAll(RunAsync(Experiments, Rl(first)), RunAsync(Experiments, Rl(second)));

        var metrics = File.ReadAllText(Path.Combine(first, "metrics.json"));
        Assert.Contains("\"rl.curve_ppo\"", metrics);
        Assert.Contains("\"rl.ope\"", metrics);
        Assert.Contains("\"rl.kl_frontier\"", metrics);
        Assert.Equal(metrics, File.ReadAllText(Path.Combine(second, "metrics.json")));
        Directory.Delete(root, recursive: true);
    }

    private static async Task RunAsync(string program, params string[] arguments)
    {
        var (exitCode, output, error) = await Recommender.TestSupport.ChildProcess.RunAsync("dotnet", [program, .. arguments], TimeSpan.FromMinutes(5));
        Assert.True(exitCode == 0, $"{Path.GetFileNameWithoutExtension(program)} {string.Join(' ', arguments)} exited {exitCode}: {output}{error}");
    }
}
