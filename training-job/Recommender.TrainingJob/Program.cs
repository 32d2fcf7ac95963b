using Recommender.Training;
using Recommender.TrainingJob;

// training-job train --data <source> --out <dir> [--config <file>] [--seed N] [--quiet] [--<setting> <value> ...]
// training-job evaluate --model <dir> --data <source> [--quiet]
// training-job retrain --snapshot <id> --version <v> [--storage <connection>] [--out <dir>] [settings]   (what the orchestration launches)
var command = args.FirstOrDefault();
var options = CommandLine.Parse(args.Skip(1).ToArray());
var progress = options.Flags.Contains("quiet") ? null : Console.Out;
try
{
    switch (command)
    {
        case "train":
        {
            var metrics = await TrainAsync(await DataSources.OpenAsync(options.Required("data"), Storage()), options.Required("out"));
            if (progress is null)
                Console.WriteLine(metrics.ToJsonString());
            return 0;
        }
        case "retrain":
        {
            // One run of the learning loop: the whole pipeline on a frozen snapshot (RetrainPipeline), then publish the
            // candidate, not promoted: the orchestration's gate decides. Exit 0 only when the candidate is published.
            var snapshot = options.Required("snapshot");
            var version = options.Required("version");
            var output = options.Values.GetValueOrDefault("out") ?? Path.Combine(Path.GetTempPath(), "retrain-" + version);
            var container = options.Values.TryGetValue("snapshot-container", out var c) ? c + "/" : "";
            var policyConfig = PolicyConfig();
            var (data, logs) = await DataSources.OpenProductSnapshotAsync(Storage(), container + snapshot, policyConfig.MaxSessionSteps);
            var registry = new Recommender.Serving.ModelRegistry(Recommender.Ingestion.StorageAccount.Connect(Storage()).Blobs.GetBlobContainerClient(options.Values.GetValueOrDefault("container", "models")));
            var modelConfig = Config(RetrainDefaults());
            await new RetrainPipeline(modelConfig, policyConfig, Protocol(modelConfig), progress).RunAsync(data, logs, registry, output);
            await RunPublisher.PublishAsync(registry, output, version, "snapshot:" + snapshot, promote: false);
            Console.WriteLine($"published candidate {version} (trained on snapshot {snapshot})");
            return 0;
        }
        case "publish":
        {
            var registry = new Recommender.Serving.ModelRegistry(Recommender.Ingestion.StorageAccount.Connect(Storage()).Blobs.GetBlobContainerClient(options.Values.GetValueOrDefault("container", "models")));
            var version = options.Values.GetValueOrDefault("version") ?? DateTime.UtcNow.ToString("yyyyMMdd'T'HHmmss'Z'", System.Globalization.CultureInfo.InvariantCulture);
            var promoted = await RunPublisher.PublishAsync(registry, options.Required("run"), version, options.Values.GetValueOrDefault("snapshot", "unknown"), options.Flags.Contains("promote"));
            Console.WriteLine(options.Flags.Contains("promote")
                ? promoted ? $"published and promoted {version}" : $"published {version}; not promoted: another version was promoted meanwhile"
                : $"published {version}");
            return promoted ? 0 : 3;
        }
        case "rl":
        {
            // Pretrain on the synthetic world's logs (or reuse --pretrained), then fine-tune with PPO and A2C
            // against the world and judge every policy on held-out users and seeds; rl.* keys join metrics.json.
            var world = new Recommender.Data.SyntheticWorld(Recommender.Data.SyntheticWorldOptions.Parse(options.Values.GetValueOrDefault("world", "")));
            var data = world.ToDataset(world.GenerateHistory(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero)));
            var output = options.Required("out");
            var pretrained = options.Values.GetValueOrDefault("pretrained") ?? output;
            if (!options.Values.ContainsKey("pretrained"))
                await TrainAsync(data, output);
            var rlConfig = new Recommender.Training.Reinforcement.ReinforcementConfig();
            int Int(string name, int fallback) => options.Values.TryGetValue(name, out var v) ? int.Parse(v, System.Globalization.CultureInfo.InvariantCulture) : fallback;
            double Double(string name, double fallback) => options.Values.TryGetValue(name, out var v) ? double.Parse(v, System.Globalization.CultureInfo.InvariantCulture) : fallback;
            // --rl-iterations, --rl-episodes (per iteration), --rl-minibatch, --rl-learning-rate, --rl-head-learning-rate and --rl-seed set PPO's and A2C's alike.
            Recommender.Training.Reinforcement.PolicyOptimizationConfig Optimization(Recommender.Training.Reinforcement.PolicyOptimizationConfig c) => c with
            {
                Iterations = Int("rl-iterations", c.Iterations),
                EpisodesPerIteration = Int("rl-episodes", c.EpisodesPerIteration),
                MinibatchSize = Int("rl-minibatch", c.MinibatchSize),
                LearningRate = Double("rl-learning-rate", c.LearningRate),
                HeadLearningRate = Double("rl-head-learning-rate", c.HeadLearningRate),
                Seed = Int("rl-seed", c.Seed),
            };
            rlConfig = rlConfig with
            {
                // --rl-kl: β of PPO's KL penalty to the pretrained policy (0: none)
                Ppo = Optimization(rlConfig.Ppo) with { ReferenceKlCoefficient = Double("rl-kl", rlConfig.Ppo.ReferenceKlCoefficient) },
                A2C = Optimization(rlConfig.A2C),
                FineTuneEncoder = options.Values.GetValueOrDefault("rl-encoder", "frozen") switch
                {
                    "fine-tune" => true,
                    "frozen" => false,
                    var other => throw new ArgumentException($"--rl-encoder is fine-tune or frozen, not '{other}'"),
                },
                // --rl-ablation "repetition=-1;declined=-1,tag:sensational=-2": heads to judge greedy with, comma-separated
                HeadAblation = options.Values.TryGetValue("rl-ablation", out var ablation)
                    ? ablation.Split(',').Select(Recommender.Training.Reinforcement.PolicyHead.Parse).ToArray()
                    : [],
                // --rl-judge-episodes (sessions per held-out seed for every policy) and --rl-logged-decisions (for off-policy evaluation): smaller for a quick run
                EpisodesPerSeed = Int("rl-judge-episodes", rlConfig.EpisodesPerSeed),
                OffPolicyDecisions = Int("rl-logged-decisions", rlConfig.OffPolicyDecisions),
                // --rl-reward "click=1,watch=1,like=0.5,purchase=2,rating=0.1,leave=-1": what a session's events are worth (clicks alone by default)
                Rewards = options.Values.TryGetValue("rl-reward", out var rewards) ? Recommender.Training.Reinforcement.RewardConfig.Parse(rewards) : rlConfig.Rewards,
                // --rl-kl-frontier "0.01,0.1,1": a PPO policy trained with each β besides the main one, judged by return and offline HR@10
                KlFrontier = options.Values.TryGetValue("rl-kl-frontier", out var frontier)
                    ? frontier.Split(',').Select(b => double.Parse(b, System.Globalization.CultureInfo.InvariantCulture)).ToArray()
                    : [],
            };
            var (rlMetrics, report) = new Recommender.Training.Reinforcement.ReinforcementRun(rlConfig, progress).Run(world, data, pretrained, new EvaluationProtocol());
            MergeMetrics(output, rlMetrics);
            File.WriteAllText(Path.Combine(output, "report-rl.html"), report);
            Console.WriteLine($"wrote {Path.Combine(output, "report-rl.html")}");
            return 0;
        }
        case "meta":
        {
            // User-cold meta-learning: pretrain on the warm users (or reuse --pretrained), meta-train the
            // user adaptation, compare it on held-out new users; cold_users.* and cold_start join metrics.json.
            var data = await DataSources.OpenAsync(options.Required("data"), Storage());
            var output = options.Required("out");
            var coldStart = new Recommender.Training.MetaLearning.ColdStartRun(new Recommender.Training.MetaLearning.MetaLearningConfig(), new EvaluationProtocol(), progress);
            if (!options.Values.ContainsKey("pretrained"))
                await TrainAsync(coldStart.WarmPart(data), output);
            var coldMetrics = coldStart.Run(data, options.Values.GetValueOrDefault("pretrained") ?? output);
            MergeMetrics(output, coldMetrics);
            return 0;
        }
        case "promote":
        {
            // Roll back (or forward) by hand: point models/current.json at a published version, unless
            // someone promoted in between (then read the pointer again and retry).
            var registry = new Recommender.Serving.ModelRegistry(Recommender.Ingestion.StorageAccount.Connect(Storage()).Blobs.GetBlobContainerClient(options.Values.GetValueOrDefault("container", "models")));
            var version = options.Required("version");
            var current = await registry.GetCurrentAsync();
            var promoted = await registry.PromoteAsync(version, current, options.Values.GetValueOrDefault("reason", "promoted by hand"));
            Console.WriteLine(promoted ? $"promoted {version} (was {current?.Pointer.Version ?? "none"})" : "not promoted: the pointer changed meanwhile; run again");
            return promoted ? 0 : 3;
        }
        case "simulate":
        {
            // Development: fill the local event log (Azurite) with the synthetic world's traffic.
            // With --data, any source's interactions (e.g. movielens:<dir>) instead of the synthetic world.
            var services = Recommender.Ingestion.IngestionServices.Connect(Storage());
            if (options.Values.TryGetValue("data", out var source))
                await IngestionTraffic.SendDatasetAsync(services, await DataSources.OpenAsync(source, Storage()), Console.Out);
            else
                await IngestionTraffic.SendAsync(services, Recommender.Data.SyntheticWorldOptions.Parse(options.Values.GetValueOrDefault("world", "")), Console.Out);
            return 0;
        }
        case "evaluate":
        {
            var data = await DataSources.OpenAsync(options.Required("data"), Storage());
            var result = SavedModel.Evaluate(options.Required("model"), data, new EvaluationProtocol());
            Console.WriteLine(TrainingRun.Describe(result));
            return 0;
        }
        default:
            Console.Error.WriteLine("""
                usage:
                  training-job train --data <source> --out <dir> [--config <file>] [--seed N] [--eval-users N] [--quiet] [--<setting> <value> ...]
                  training-job evaluate --model <dir> --data <source>
                  training-job retrain --snapshot <id> --version <v> [--storage <connection string>] [--snapshot-container training] [--container models] [--out <dir>] [--<setting> <value> ...] [--policy.<setting> <value> ...]
                  training-job publish --run <dir> [--version V] [--snapshot S] [--promote] [--storage <connection string>] [--container models]
                  training-job rl --world users=1000,items=500,seed=7 --out <dir> [--pretrained <dir>] [--rl-iterations 300] [--rl-episodes 256] [--rl-minibatch 128] [--rl-learning-rate 3e-4] [--rl-head-learning-rate 3e-3] [--rl-seed 42] [--rl-encoder frozen|fine-tune] [--rl-ablation "repetition=-1;declined=-1,tag:sensational=-2"] [--rl-judge-episodes 400] [--rl-logged-decisions 4000] [--rl-kl 0] [--rl-kl-frontier "0.01,0.1,1"] [--rl-reward "click=1,watch=0,like=0,purchase=0,rating=0,leave=0"] [--<setting> <value> ...]   (PPO/A2C on the synthetic world)
                  training-job meta --data <source> --out <dir> [--pretrained <dir>] [--<setting> <value> ...]   (user-cold meta-learning and its evaluation)
                  training-job promote --version V [--reason text] [--storage <connection string or account>] [--container models]   (roll back or forward by hand)
                  training-job simulate [--world users=1000,items=500,seed=7 | --data <source>] [--storage <connection string>]   (sends traffic through ingestion; Azurite by default)
                sources: sasrec:<file> | movielens:<dir> | synthetic:users=1000,items=500,seed=7 | eventlog:dev (Azurite) or eventlog:<connection string> | snapshot:<id> (in --storage)
                settings (SequenceModelConfig): dimension, blocks, heads, maxLength, dropout, loss (bce|ce-sampled|ce), negatives,
                  learningRate, weightDecay, batchSize, epochs, evaluateEvery, patience, validationUsers, itemContent, userFeatures,
                  threads, timeBudgetSeconds, seed, refit, itemGenerator, userAdaptation (retrain: refit, itemGenerator and userAdaptation true unless set)
                policy settings of retrain's RL stage (PolicyStageConfig): enabled, minDecisions, algorithm (ppo|a2c), heldOutShare, maxEvaluationSessions,
                  candidates, temperature, maxSessionSteps, rewards ("click=1,watch=0,like=0,purchase=0,rating=0,leave=0"), iterations, episodesPerIteration,
                  klCoefficient, headLearningRate, valueRollouts, seed
                """);
            return 2;
    }
}
catch (Exception ex) when (ex is ArgumentException or FileNotFoundException or DirectoryNotFoundException or FormatException)
{
    Console.Error.WriteLine($"training-job: {ex.Message}");
    return 2;
}

// retrain runs every stage unless the settings turn one off: a warm start from the champion, refit on train + validation, the item generator and the user adaptation.
static IReadOnlyDictionary<string, string> RetrainDefaults() => new Dictionary<string, string> { ["refit"] = "true", ["itemGenerator"] = "true", ["userAdaptation"] = "true", ["warmStart"] = "true" };

// Storage account of the event log, snapshots and models: --storage, else TRAINING_STORAGE, else Azurite.
string Storage() => options.Values.GetValueOrDefault("storage") ?? Environment.GetEnvironmentVariable("TRAINING_STORAGE") ?? DataSources.DevelopmentStorage;

Task<System.Text.Json.Nodes.JsonObject> TrainAsync(Recommender.Data.InteractionDataset data, string output)
{
    var config = Config();
    return new TrainingRun(config, Protocol(config), progress).RunAsync(data, output);
}

// The model settings: defaults (the command's, then the documented ones), then --config, then --<setting> overrides
// (every option that is neither the command's own nor a --policy.<setting> of the RL stage).
SequenceModelConfig Config(IReadOnlyDictionary<string, string>? commandDefaults = null)
{
    var overrides = new Dictionary<string, string>(commandDefaults ?? new Dictionary<string, string>());
    foreach (var (key, value) in options.Values.Where(kv => !kv.Key.StartsWith("policy.", StringComparison.Ordinal) && kv.Key is not ("data" or "out" or "config" or "eval-users" or "storage" or "snapshot" or "snapshot-container" or "version" or "container" or "world" or "pretrained" or "rl-iterations" or "rl-episodes" or "rl-minibatch" or "rl-learning-rate" or "rl-head-learning-rate" or "rl-seed" or "rl-ablation" or "rl-encoder" or "rl-judge-episodes" or "rl-logged-decisions" or "rl-kl" or "rl-kl-frontier" or "rl-reward")))
        overrides[key] = value;
    return SequenceModelConfig.Load(options.Values.GetValueOrDefault("config"), overrides);
}

// The RL stage of retrain: --policy.<setting> value (PolicyStageConfig).
Recommender.Training.Reinforcement.PolicyStageConfig PolicyConfig() =>
    Recommender.Training.Reinforcement.PolicyStageConfig.Load(options.Values.Where(kv => kv.Key.StartsWith("policy.", StringComparison.Ordinal)).ToDictionary(kv => kv.Key["policy.".Length..], kv => kv.Value));

EvaluationProtocol Protocol(SequenceModelConfig config) =>
    new() { Seed = config.Seed, MaxUsers = options.Values.TryGetValue("eval-users", out var n) ? int.Parse(n, System.Globalization.CultureInfo.InvariantCulture) : null };

// Adds a stage's keys to the run's metrics.json (replacing keys of the same name).
static void MergeMetrics(string output, System.Text.Json.Nodes.JsonObject stage)
{
    Directory.CreateDirectory(output);
    RetrainPipeline.Merge(output, stage);
    Console.WriteLine($"wrote {Path.Combine(output, "metrics.json")}");
}

/// <summary>--name value pairs and bare --flags.</summary>
internal sealed record CommandLine(Dictionary<string, string> Values, HashSet<string> Flags)
{
    public static CommandLine Parse(string[] args)
    {
        var values = new Dictionary<string, string>();
        var flags = new HashSet<string>();
        for (var i = 0; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal))
                throw new ArgumentException($"unexpected argument '{args[i]}'");
            var name = args[i][2..];
            if (i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal))
                values[name] = args[++i];
            else
                flags.Add(name);
        }
        return new CommandLine(values, flags);
    }

    public string Required(string name) => Values.TryGetValue(name, out var v) ? v : throw new ArgumentException($"--{name} is required");
}
