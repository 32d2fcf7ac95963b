using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Recommender.Data;
using Recommender.Training;
using TorchSharp;
using static TorchSharp.torch;

/// <summary>
/// Training steps per second of the sequence model on the configuration of ../shared/BENCHMARKS.md's
/// PyTorch SASRec micro benchmark: 3,700 items, dimension 64, 2 blocks, 1 head, length 50, batch 128,
/// BCE with one negative, Adam. Random full-length sequences; the first steps are warm-up.
/// </summary>
internal static class TrainingThroughputBenchmark
{
    private static readonly Option<int> Items = new("--items") { Description = "Items in the catalog", DefaultValueFactory = _ => 3700 };
    private static readonly Option<int> Steps = new("--steps") { Description = "Timed steps per round", DefaultValueFactory = _ => 60 };
    private static readonly Option<int> Warmup = new("--warmup") { Description = "Untimed steps before the timed ones", DefaultValueFactory = _ => 10 };
    private static readonly Option<int> Threads = new("--threads") { Description = "Torch threads", DefaultValueFactory = _ => 1 };
    private static readonly Option<string> Loss = new("--loss") { Description = "Training loss (bce, ce-sampled, ce)", DefaultValueFactory = _ => "bce" };

    public static Command Command() => BenchmarkCommand.Create("training-throughput", "Training steps per second on the micro configuration", RunAsync, Items, Steps, Warmup, Threads, Loss);

    private static async Task RunAsync(ParseResult parse, string outDir)
    {
        var items = parse.GetValue(Items);
        var steps = parse.GetValue(Steps);
        var warmup = parse.GetValue(Warmup);
        var threads = parse.GetValue(Threads);
        var loss = parse.GetValue(Loss)!;
        var config = new SequenceModelConfig
        {
            Dimension = 64, Blocks = 2, Heads = 1, MaxLength = 50, BatchSize = 128, Loss = loss, Dropout = 0.2,
            ItemContent = false, UserFeatures = false, Threads = threads, Seed = 1,
        };
        TorchSetup.Configure(threads);
        random.manual_seed(1);
        var rng = new Random(1);
        var sequences = Enumerable.Range(0, config.BatchSize * 8).Select(_ => Enumerable.Range(0, config.MaxLength + 1).Select(_ => rng.Next(1, items + 1)).ToArray()).ToArray();
        var data = new InteractionDataset("random", ["", .. Enumerable.Range(1, items).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture))],
            Enumerable.Range(0, sequences.Length).Select(u => u.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray(), sequences);
        var split = LeaveOneOutSplit.Create(data with { Sequences = sequences.Select(s => s.Append(1).Append(2).ToArray()).ToArray() });

        var model = new SasRecModel(config, items, null, 0, 0);
        var optimizer = optim.Adam(model.parameters(), config.LearningRate, beta1: 0.9, beta2: 0.98);
        var trainer = new SequenceModelTrainer(config);
        var times = new List<double>();
        for (var step = 0; step < warmup + steps; step++)
        {
            var users = Enumerable.Range((step % 8) * config.BatchSize, config.BatchSize).ToArray();
            var clock = Stopwatch.StartNew();
            trainer.Step(model, optimizer, data, split.Train, users, CPU, rng);
            if (step >= warmup)
                times.Add(clock.Elapsed.TotalMilliseconds);
        }
        times.Sort();
        var median = times[times.Count / 2];
        var perSecond = config.BatchSize / (median / 1000);
        Console.WriteLine($"training step ({loss}, {items:N0} items, dim 64, 2 blocks, length 50, batch 128, {threads} thread(s)): median {median:F1} ms, {perSecond:N0} sequences/s");

        var result = new JsonObject
        {
            ["name"] = "training-throughput",
            ["created"] = DateTime.UtcNow.ToString("O", System.Globalization.CultureInfo.InvariantCulture),
            ["machine"] = BenchmarkMachine.Describe(threads),
            ["protocol"] = new JsonObject { ["items"] = items, ["dimension"] = 64, ["blocks"] = 2, ["heads"] = 1, ["max_length"] = 50, ["batch"] = 128, ["loss"] = loss, ["warmup_steps"] = warmup, ["measured_steps"] = steps, ["data"] = "random full-length sequences, seed 1" },
            ["figures"] = new JsonObject { ["median_ms_per_step"] = Math.Round(median, 1), ["p10_ms"] = Math.Round(times[times.Count / 10], 1), ["p90_ms"] = Math.Round(times[times.Count * 9 / 10], 1), ["sequences_per_second"] = Math.Round(perSecond) },
            ["reference"] = "PyTorch SASRec port (pmixer), same configuration, this machine, OpenBLAS: 560-670 sequences/s on 1 thread (../shared/BENCHMARKS.md)",
        };
        var path = Path.Combine(outDir, $"training-throughput-{loss}.json");
        await File.WriteAllTextAsync(path, result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        Console.WriteLine($"wrote {path}");
    }
}
