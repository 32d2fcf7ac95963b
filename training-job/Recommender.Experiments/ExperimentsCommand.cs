using System.CommandLine;
using System.Globalization;
using Recommender.Training;
using Recommender.Training.Reinforcement;
using Recommender.TrainingJob;
using static Recommender.TrainingJob.CommandOptions;

namespace Recommender.Experiments;

/// <summary>
/// The research runs (System.CommandLine, as the training job): <c>rl</c>, PPO and A2C on the synthetic world judged
/// against its truth, and <c>meta</c>, the cold-start protocols. They train with the training job's model settings and
/// read its data sources; the product's retraining (<c>training-job retrain</c>) runs neither.
/// </summary>
public static class ExperimentsCommand
{
    public static RootCommand Create()
    {
        var root = new RootCommand("The research runs behind the README's RL and cold-start results.");
        root.Add(Rl());
        root.Add(Meta());
        return root;
    }

    private static Command Rl()
    {
        var command = new Command("rl", "Research: pretrain on the synthetic world's logs (or reuse --pretrained), fine-tune with PPO and A2C against the world, judge every policy on held-out users and seeds; rl.* keys join metrics.json");
        var world = new Option<string>("--world") { Description = "The synthetic world (SyntheticWorldOptions), e.g. users=1000,items=500,seed=7,clickbait=0.1", DefaultValueFactory = _ => "" };
        var (output, pretrained, quiet, model) = (Out(), Pretrained(), Quiet(), new TrainingSettings());
        // PPO's and A2C's alike.
        var iterations = new Option<int?>("--rl-iterations") { Description = "Policy-optimisation iterations" };
        var episodes = new Option<int?>("--rl-episodes") { Description = "Sessions per iteration" };
        var minibatch = new Option<int?>("--rl-minibatch") { Description = "Minibatch size" };
        var learningRate = new Option<double?>("--rl-learning-rate") { Description = "Learning rate of the encoder's and value's parameters" };
        var headLearningRate = new Option<double?>("--rl-head-learning-rate") { Description = "Learning rate of the policy head" };
        var seed = new Option<int?>("--rl-seed") { Description = "Seed of the policy optimisation" };
        var kl = new Option<double?>("--rl-kl") { Description = "β of PPO's KL penalty to the pretrained policy (0: none)" };
        var encoder = new Option<string>("--rl-encoder") { Description = "frozen (the default: train the head and the critic on the pretrained encoder) or fine-tune (the encoder too)", DefaultValueFactory = _ => "frozen" };
        encoder.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<string>() is { } value && value is not ("frozen" or "fine-tune"))
                result.AddError($"--rl-encoder: '{value}' is not frozen or fine-tune");
        });
        var ablation = new Option<string>("--rl-ablation") { Description = "Heads to judge greedy with, comma-separated, e.g. \"repetition=-1;declined=-1,tag:sensational=-2\"" };
        var judgeEpisodes = new Option<int?>("--rl-judge-episodes") { Description = "Sessions per held-out seed for every policy" };
        var loggedDecisions = new Option<int?>("--rl-logged-decisions") { Description = "Logged decisions for the off-policy evaluation" };
        var reward = new Option<string>("--rl-reward") { Description = "What a session's events are worth, e.g. \"click=1,watch=1,like=0.5,purchase=2,rating=0.1,leave=-1\" (clicks alone by default)" };
        var frontier = new Option<double[]>("--rl-kl-frontier") { Description = "A PPO policy trained with each β besides the main one, judged by return and offline HR@10, e.g. 0.01,0.1,1", CustomParser = result => [.. result.Tokens.Single().Value.Split(',').Select(b => double.Parse(b, CultureInfo.InvariantCulture))] };
        foreach (var option in new Option[] { world, output, pretrained, quiet, iterations, episodes, minibatch, learningRate, headLearningRate, seed, kl, encoder, ablation, judgeEpisodes, loggedDecisions, reward, frontier })
            command.Add(option);
        model.AddTo(command);
        command.SetAction(Guarded(async parse =>
        {
            await WithProgressAsync(parse, quiet, progress => RunRlAsync(parse, progress));
            return 0;
        }));
        return command;

        async Task RunRlAsync(ParseResult parse, JobProgress? progress)
        {
            var synthetic = new Recommender.Data.SyntheticWorld(Recommender.Data.SyntheticWorldOptions.Parse(parse.GetValue(world)!));
            var data = synthetic.ToDataset(synthetic.GenerateHistory(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero)));
            var runFolder = parse.GetRequiredValue(output);
            var start = await PretrainedAsync(parse, pretrained, model, () => data, runFolder, progress);
            var rl = new ReinforcementConfig();
            PolicyOptimizationConfig Optimization(PolicyOptimizationConfig c) => c with
            {
                Iterations = parse.GetValue(iterations) ?? c.Iterations,
                EpisodesPerIteration = parse.GetValue(episodes) ?? c.EpisodesPerIteration,
                MinibatchSize = parse.GetValue(minibatch) ?? c.MinibatchSize,
                LearningRate = parse.GetValue(learningRate) ?? c.LearningRate,
                HeadLearningRate = parse.GetValue(headLearningRate) ?? c.HeadLearningRate,
                Seed = parse.GetValue(seed) ?? c.Seed,
            };
            rl = rl with
            {
                Ppo = Optimization(rl.Ppo) with { ReferenceKlCoefficient = parse.GetValue(kl) ?? rl.Ppo.ReferenceKlCoefficient },
                A2C = Optimization(rl.A2C),
                FineTuneEncoder = parse.GetValue(encoder) == "fine-tune",
                HeadAblation = parse.GetValue(ablation) is { } heads ? heads.Split(',').Select(PolicyHead.Parse).ToArray() : [],
                EpisodesPerSeed = parse.GetValue(judgeEpisodes) ?? rl.EpisodesPerSeed,
                OffPolicyDecisions = parse.GetValue(loggedDecisions) ?? rl.OffPolicyDecisions,
                Rewards = parse.GetValue(reward) is { } rewards ? RewardConfig.Parse(rewards) : rl.Rewards,
                KlFrontier = parse.GetValue(frontier) ?? [],
            };
            var (metrics, report) = new ReinforcementRun(rl, progress).Run(synthetic, data, start, new EvaluationProtocol());
            MergeMetrics(runFolder, metrics);
            File.WriteAllText(Path.Combine(runFolder, "report-rl.html"), report);
            progress?.Line($"wrote {Path.Combine(runFolder, "report-rl.html")}");
        }
    }

    /// <summary>The run folder a research run starts from: <c>--pretrained</c>'s, or <paramref name="runFolder"/> once the model is pretrained there on <paramref name="data"/> (made only then).</summary>
    private static async Task<string> PretrainedAsync(ParseResult parse, Option<string> pretrained, TrainingSettings model, Func<Recommender.Data.InteractionDataset> data, string runFolder, JobProgress? progress)
    {
        if (parse.GetValue(pretrained) is { } given)
            return given;
        await model.TrainAsync(parse, data(), runFolder, progress);
        return runFolder;
    }

    private static Command Meta()
    {
        var command = new Command("meta", "Research: user-cold meta-learning: pretrain on the warm users (or reuse --pretrained), meta-train the user adaptation, compare it on held-out new users; cold_users.* and cold_start join metrics.json");
        var (data, output, pretrained, storage, quiet, model) = (DataSource(), Out(), Pretrained(), StorageConnection(), Quiet(), new TrainingSettings());
        foreach (var option in new Option[] { data, output, pretrained, storage, quiet })
            command.Add(option);
        model.AddTo(command);
        command.SetAction(Guarded(async parse =>
        {
            var dataset = await DataSources.OpenAsync(parse.GetRequiredValue(data), StorageOf(parse, storage));
            var runFolder = parse.GetRequiredValue(output);
            await WithProgressAsync(parse, quiet, async progress =>
            {
                var coldStart = new ColdStartRun(new Recommender.Training.MetaLearning.MetaLearningConfig(), new EvaluationProtocol(), progress);
                MergeMetrics(runFolder, coldStart.Run(dataset, await PretrainedAsync(parse, pretrained, model, () => coldStart.WarmPart(dataset), runFolder, progress)));
            });
            return 0;
        }));
        return command;
    }
}
