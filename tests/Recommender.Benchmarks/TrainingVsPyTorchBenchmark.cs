using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Recommender.Data;
using Recommender.Training;
using TorchSharp;
using static TorchSharp.torch;

/// <summary>
/// The product's training step against a PyTorch reference of the same model (pytorch/sasrec_step.py, SASRec as
/// pmixer/SASRec.pytorch writes it), on the same data, configuration and machine, in one run: rounds alternate
/// product, reference, product, reference, so a change in what else the shared machine runs falls on both.
/// The reference runs on Debian's python3-torch with OpenBLAS, installed here when missing (as root).
/// </summary>
internal static class TrainingVsPyTorchBenchmark
{
    private static readonly Option<string> Data = BenchmarkCommand.GamesData();
    private static readonly Option<int> Threads = new("--threads") { Description = "Torch threads", DefaultValueFactory = _ => 1 };
    private static readonly Option<int> Rounds = new("--rounds") { Description = "Rounds", DefaultValueFactory = _ => 2 };
    private static readonly Option<int> Warmup = new("--warmup") { Description = "Untimed steps before the timed ones", DefaultValueFactory = _ => 10 };
    private static readonly Option<int> Steps = new("--steps") { Description = "Timed steps per round", DefaultValueFactory = _ => 60 };

    public static Command Command() => BenchmarkCommand.Create("training-vs-pytorch", "The product's training step against a PyTorch reference of the same SASRec (installs python3-torch and OpenBLAS when missing)", RunAsync, Data, Threads, Rounds, Warmup, Steps);

    private static readonly string[] ReferencePackages = ["python3-torch", "python3-numpy", "libopenblas0-pthread"];

    private static async Task RunAsync(ParseResult parse, string outDir)
    {
        var source = parse.GetValue(Data)!;
        var threads = parse.GetValue(Threads);
        var rounds = parse.GetValue(Rounds);
        var warmup = parse.GetValue(Warmup);
        var steps = parse.GetValue(Steps);
        // Games' configuration in SASRec's paper and the port: dimension 50, 2 blocks, length 50, batch 128, dropout 0.5.
        var config = new SequenceModelConfig
        {
            Dimension = 50, Blocks = 2, Heads = 1, MaxLength = 50, BatchSize = 128, Loss = "bce", Dropout = 0.5,
            LearningRate = 0.001, ItemContent = false, UserFeatures = false, Threads = threads, Seed = 1,
        };

        await EnsureReferenceInstalledAsync();
        var script = Path.Combine(AppContext.BaseDirectory, "pytorch", "sasrec_step.py");
        TorchSetup.Configure(threads);
        var data = SasRecFile.Load(source);
        var split = LeaveOneOutSplit.Create(data);

        var product = new List<double>();
        var reference = new List<double>();
        JsonNode? referenceRun = null;
        for (var round = 1; round <= rounds; round++)
        {
            var ours = MeasureProductSteps(config, data, split.Train, warmup, steps, seed: round);
            product.AddRange(ours);
            Console.WriteLine($"round {round}/{rounds}: product median {Median(ours):F1} ms/step");
            referenceRun = await RunReferenceAsync(script, source, config, threads, warmup, steps, seed: round);
            var theirs = referenceRun!["step_ms"]!.AsArray().Select(t => t!.GetValue<double>()).ToList();
            reference.AddRange(theirs);
            Console.WriteLine($"round {round}/{rounds}: PyTorch median {Median(theirs):F1} ms/step");
        }

        var productRate = config.BatchSize / (Median(product) / 1000);
        var referenceRate = config.BatchSize / (Median(reference) / 1000);
        Console.WriteLine($"product {productRate:N0} sequences/s, PyTorch {referenceRate:N0} sequences/s: {productRate / referenceRate:F2}x");

        var result = new JsonObject
        {
            ["name"] = "training-vs-pytorch",
            ["created"] = DateTime.UtcNow.ToString("O", CultureInfo.InvariantCulture),
            ["machine"] = BenchmarkMachine.Describe(threads),
            ["protocol"] = new JsonObject
            {
                ["data"] = $"{source}: {data.ItemCount:N0} items; batches of users drawn uniformly among those with at least 2 training items (leave-one-out): {split.Train.Count(t => t.Length >= 2):N0} here, {referenceRun?["users"]} in the reference",
                ["model"] = "SASRec: dimension 50, 2 blocks, 1 head, length 50, batch 128, dropout 0.5, BCE against one uniform negative per position, Adam lr 0.001 betas 0.9/0.98; no item content or user features",
                ["timed"] = "one optimiser step (zero_grad, forward, loss, backward, step); the product's includes building its batch tensors, the reference's batches are drawn before its clock starts",
                ["rounds"] = rounds, ["warmup_steps_per_round"] = warmup, ["measured_steps_per_round"] = steps,
                ["order"] = "product then reference in each round, each a fresh model seeded by the round",
                ["threads"] = threads,
                ["reference"] = $"pytorch/sasrec_step.py (pmixer/SASRec.pytorch's model), torch {referenceRun?["torch"]}, BLAS {referenceRun?["blas"]}, OPENBLAS_NUM_THREADS={threads}",
            },
            ["product"] = Figures(product, config.BatchSize),
            ["pytorch"] = Figures(reference, config.BatchSize),
            ["speedup"] = Math.Round(productRate / referenceRate, 2),
            ["goal"] = "product at least 1.5x the PyTorch reference (sequences/s)",
        };
        var path = Path.Combine(outDir, $"training-vs-pytorch-{threads}thread.json");
        await File.WriteAllTextAsync(path, result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        Console.WriteLine($"wrote {path}");
    }

    /// <summary>Milliseconds of each measured step of a fresh model, on batches of users drawn at random.</summary>
    private static List<double> MeasureProductSteps(SequenceModelConfig config, InteractionDataset data, int[][] train, int warmup, int steps, int seed)
    {
        random.manual_seed(seed);
        var rng = new Random(seed);
        var users = Enumerable.Range(0, train.Length).Where(u => train[u].Length >= 2).ToArray();
        using var model = new SasRecModel(config, data.ItemCount, null, 0, 0);
        var optimizer = optim.Adam(model.parameters(), config.LearningRate, beta1: 0.9, beta2: 0.98);
        var trainer = new SequenceModelTrainer(config);
        var times = new List<double>();
        for (var step = 0; step < warmup + steps; step++)
        {
            var batch = Enumerable.Range(0, config.BatchSize).Select(_ => users[rng.Next(users.Length)]).ToArray();
            var clock = Stopwatch.StartNew();
            trainer.Step(model, optimizer, data, train, batch, CPU, rng);
            if (step >= warmup)
                times.Add(clock.Elapsed.TotalMilliseconds);
        }
        return times;
    }

    private static async Task<JsonNode?> RunReferenceAsync(string script, string source, SequenceModelConfig config, int threads, int warmup, int steps, int seed)
    {
        var start = new ProcessStartInfo("/usr/bin/python3")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            Environment = { ["OPENBLAS_NUM_THREADS"] = threads.ToString(CultureInfo.InvariantCulture), ["OMP_NUM_THREADS"] = threads.ToString(CultureInfo.InvariantCulture) },
        };
        foreach (var argument in new[]
                 {
                     script, "--data", Path.GetFullPath(source), "--hidden", $"{config.Dimension}", "--blocks", $"{config.Blocks}",
                     "--heads", $"{config.Heads}", "--maxlen", $"{config.MaxLength}", "--batch", $"{config.BatchSize}",
                     "--dropout", config.Dropout.ToString(CultureInfo.InvariantCulture), "--lr", config.LearningRate.ToString(CultureInfo.InvariantCulture),
                     "--threads", $"{threads}", "--warmup", $"{warmup}", "--steps", $"{steps}", "--seed", $"{seed}",
                 })
            start.ArgumentList.Add(argument);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"the PyTorch reference exited {process.ExitCode}: {await stderr}");
        return JsonNode.Parse((await stdout).Trim().Split('\n')[^1]);
    }

    /// <summary>Debian's torch uses the system BLAS; without OpenBLAS that is the reference BLAS, about 5x slower, which no fair comparison uses.</summary>
    private static async Task EnsureReferenceInstalledAsync()
    {
        var missing = new List<string>();
        foreach (var package in ReferencePackages)
        {
            using var query = Process.Start(new ProcessStartInfo("dpkg-query", ["-W", "-f=${Status}", package]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
            var status = await query.StandardOutput.ReadToEndAsync();
            await query.WaitForExitAsync();
            if (!status.Contains("install ok installed", StringComparison.Ordinal))
                missing.Add(package);
        }
        if (missing.Count == 0)
            return;
        Console.WriteLine($"installing the PyTorch reference: apt-get install {string.Join(' ', missing)}");
        foreach (var command in new string[][] { ["update", "-qq"], ["install", "-y", "-qq", .. missing] })
        {
            using var apt = Process.Start(new ProcessStartInfo("apt-get", command))!;
            await apt.WaitForExitAsync();
            if (apt.ExitCode != 0)
                throw new InvalidOperationException($"apt-get {string.Join(' ', command)} exited {apt.ExitCode}; install {string.Join(' ', missing)} by hand (as root) and run again");
        }
    }

    private static double Median(List<double> times) => times.Order().ElementAt(times.Count / 2);

    private static JsonObject Figures(List<double> times, int batch)
    {
        var sorted = times.Order().ToList();
        return new JsonObject
        {
            ["median_ms_per_step"] = Math.Round(sorted[sorted.Count / 2], 1),
            ["p10_ms"] = Math.Round(sorted[sorted.Count / 10], 1),
            ["p90_ms"] = Math.Round(sorted[sorted.Count * 9 / 10], 1),
            ["sequences_per_second"] = Math.Round(batch / (sorted[sorted.Count / 2] / 1000)),
        };
    }
}
