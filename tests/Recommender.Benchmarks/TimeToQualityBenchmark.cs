using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Recommender.Data;
using Recommender.Training;

/// <summary>
/// Test quality against wall clock: trains the sequence model as <c>train</c> does (validation every few epochs,
/// early stopping, a time budget) and, at each validation, scores the test split too. The clock counts training and
/// validation, not the test scoring, which a real run does not do; the report shows the curves.
/// </summary>
internal static class TimeToQualityBenchmark
{
    private static readonly Option<string> Data = BenchmarkCommand.GamesData();
    private static readonly Option<int> Minutes = new("--minutes") { Description = "Wall-clock minutes", DefaultValueFactory = _ => 30 };
    private static readonly Option<int> EvaluateEvery = new("--evaluate-every") { Description = "Validate every this many epochs", DefaultValueFactory = _ => 5 };
    private static readonly Option<int> Patience = new("--patience") { Description = "Validations without improvement before stopping", DefaultValueFactory = _ => 3 };
    private static readonly Option<int> Negatives = new("--negatives") { Description = "Shared negatives of ce-sampled", DefaultValueFactory = _ => 2048 };
    private static readonly Option<string> Loss = new("--loss") { Description = "Training loss (bce, ce-sampled, ce)", DefaultValueFactory = _ => "ce-sampled" };
    private static readonly Option<string> SelectBy = new("--select-by") { Description = "Validation figure that picks the best epoch: sampled or full", DefaultValueFactory = _ => "sampled" };
    private static readonly Option<string> Name = BenchmarkCommand.ResultName("time-to-quality");

    public static Command Command() => BenchmarkCommand.Create("time-to-quality", "Test metrics against wall clock while training on Games", RunAsync, Data, Minutes, EvaluateEvery, Patience, Negatives, Loss, SelectBy, Name);

    private static async Task RunAsync(ParseResult parse, string outDir)
    {
        var source = parse.GetValue(Data)!;
        var minutes = parse.GetValue(Minutes);
        var config = new SequenceModelConfig
        {
            Epochs = 400, EvaluateEvery = parse.GetValue(EvaluateEvery), Patience = parse.GetValue(Patience),
            TimeBudgetSeconds = minutes * 60, Dropout = 0.5, MaxLength = 50, Negatives = parse.GetValue(Negatives),
            Loss = parse.GetValue(Loss)!, SelectBy = parse.GetValue(SelectBy)!, Threads = 1,
        };
        TorchSetup.Configure(config.Threads);
        var data = SasRecFile.Load(source);
        var split = LeaveOneOutSplit.Create(data);
        var test = new EvaluationProtocol();

        var clock = Stopwatch.StartNew();
        var testing = TimeSpan.Zero;
        var points = new List<JsonObject>();
        void ScoreTest(EpochRecord record, SasRecModel model)
        {
            var wall = clock.Elapsed - testing;
            var started = Stopwatch.StartNew();
            var result = Evaluator.Evaluate(new SasRecScorer(model, config, data.UserFeatures, model.parameters().First().device), split, data.ItemCount, EvaluationStage.Test, test);
            testing += started.Elapsed;
            points.Add(new JsonObject
            {
                ["epoch"] = record.Epoch, ["wall_minutes"] = Math.Round(wall.TotalMinutes, 2),
                ["validation_ndcg@10"] = Math.Round(record.ValidationNdcg!.Value, 4), ["validation_full_ndcg@10"] = Math.Round(record.ValidationFullNdcg!.Value, 4),
                ["test_hr@10"] = Math.Round(result.All.HitRate, 4), ["test_ndcg@10"] = Math.Round(result.All.Ndcg, 4),
                ["test_full_hr@10"] = Math.Round(result.All.FullHitRate, 4), ["test_full_ndcg@10"] = Math.Round(result.All.FullNdcg, 4),
            });
            Console.WriteLine($"{wall.TotalMinutes,6:F1} min  epoch {record.Epoch,3}  test HR@10 {result.All.HitRate:F4}  NDCG@10 {result.All.Ndcg:F4}  full NDCG@10 {result.All.FullNdcg:F4}");
        }
        var outcome = new SequenceModelTrainer(config, new JobProgress(Console.Out), validated: ScoreTest).Train(data, split);
        var total = clock.Elapsed - testing;
        var best = points.Single(p => p["epoch"]!.GetValue<int>() == outcome.BestEpoch);

        var result = new JsonObject
        {
            ["name"] = "time-to-quality",
            ["created"] = DateTime.UtcNow.ToString("O", CultureInfo.InvariantCulture),
            ["machine"] = BenchmarkMachine.Describe(config.Threads),
            ["protocol"] = new JsonObject
            {
                ["data"] = $"{source}: {data.UserCount:N0} users, {data.ItemCount:N0} items; leave-one-out",
                ["evaluation"] = test.ToString(),
                ["training"] = $"{config.Loss} with {config.Negatives} shared negatives, dimension {config.Dimension}, {config.Blocks} blocks, length {config.MaxLength}, dropout {config.Dropout}, batch {config.BatchSize}, Adam {config.LearningRate}, seed {config.Seed}; validation every {config.EvaluateEvery} epochs, best epoch and early stopping by {config.SelectBy} NDCG@10, patience {config.Patience}, budget {minutes} min; no refit",
                ["clock"] = "wall clock from the start of training, validation included, the test scoring of each point excluded",
            },
            ["points"] = new JsonArray(points.Select(p => (JsonNode)p).ToArray()),
            ["best_by_validation"] = best.DeepClone(),
            ["wall_minutes"] = Math.Round(total.TotalMinutes, 2),
            ["best_epoch"] = outcome.BestEpoch,
            ["peak_memory_mb"] = Process.GetCurrentProcess().PeakWorkingSet64 / (1024 * 1024),
            ["reference"] = "the PyTorch SASRec port with BCE on this machine, 1 torch thread, OpenBLAS (../shared/BENCHMARKS.md): test NDCG@10 0.404 at 9 min, 0.447 at 19 min, 0.475 at 28 min, 0.486 at 40 min",
            ["goal"] = "test HR@10 >= 0.75 and NDCG@10 >= 0.56 (sampled-100), full NDCG@10 >= 0.075, within 30 minutes including evaluation",
        };
        var name = parse.GetValue(Name)!;
        var path = Path.Combine(outDir, $"{name}.json");
        await File.WriteAllTextAsync(path, result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        var report = new HtmlReport("Time to quality", $"{source}, {config.Loss}, {config.Negatives} negatives; test metrics at each validation against wall clock")
            .LineChart("Test NDCG@10 (100 sampled negatives)", points.Select(p => (p["wall_minutes"]!.GetValue<double>(), (double?)p["test_ndcg@10"]!.GetValue<double>())), "wall clock (min)", "NDCG@10")
            .LineChart("Test NDCG@10 over all items", points.Select(p => (p["wall_minutes"]!.GetValue<double>(), (double?)p["test_full_ndcg@10"]!.GetValue<double>())), "wall clock (min)", "full NDCG@10")
            .Table(["minutes", "epoch", "valid NDCG@10", "valid full NDCG@10", "HR@10", "NDCG@10", "full HR@10", "full NDCG@10"],
                points.Select(p => (IReadOnlyList<string>)[
                    HtmlReport.Number(p["wall_minutes"]!.GetValue<double>(), "F1"), $"{p["epoch"]}",
                    .. new[] { "validation_ndcg@10", "validation_full_ndcg@10", "test_hr@10", "test_ndcg@10", "test_full_hr@10", "test_full_ndcg@10" }.Select(k => HtmlReport.Number(p[k]!.GetValue<double>())),
                ]))
            .Paragraph((string)result["reference"]!);
        await File.WriteAllTextAsync(Path.Combine(outDir, $"{name}.html"), report.ToString());
        Console.WriteLine($"wrote {path} and {name}.html");
    }
}
