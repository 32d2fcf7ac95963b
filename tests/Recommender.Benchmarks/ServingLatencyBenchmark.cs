using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.OnnxRuntime;
using Recommender.Data;
using Recommender.ModelContract;
using Recommender.Serving;
using Recommender.Training;
using static TorchSharp.torch;

/// <summary>
/// In-process latency of one recommendation's model call (ONNX Runtime, one thread, no spinning): a 50-item history
/// through the 2-block model and the catalog's top-10, at 3,700 and 100,000 items, three ways: the whole graph run for
/// the top-10 (how serving ran it before: ONNX Runtime computes every output whatever a call asks for), the ranking part
/// alone (<see cref="PolicyModel"/>) with exact fp32 scoring, and with the two-stage ranking of large catalogs
/// (<see cref="SequenceModelConfig.ShortlistAbove"/>). Timing weights are untrained (latency does not depend on them);
/// the two-stage ranking's recall against exact scoring is measured on real histories with a model trained on Games.
/// </summary>
internal static class ServingLatencyBenchmark
{
    private static readonly Option<int> Requests = new("--requests") { Description = "Requests timed per variant", DefaultValueFactory = _ => 3000 };
    private static readonly Option<string> Data = BenchmarkCommand.GamesData();
    private static readonly Option<int> Epochs = new("--epochs") { Description = "Epochs of the Games model the recall is measured with", DefaultValueFactory = _ => 5 };
    private static readonly Option<int> RecallUsers = new("--recall-users") { Description = "Games test histories the recall is measured on", DefaultValueFactory = _ => 5000 };

    public static Command Command() => BenchmarkCommand.Create("serving-latency",
        "The ONNX model call in process at 3,700 and 100,000 items, and the two-stage ranking's recall on Games", RunAsync, Requests, Data, Epochs, RecallUsers);

    private static async Task RunAsync(ParseResult parse, string outDir)
    {
        var requests = parse.GetValue(Requests);
        TorchSetup.Configure(1);
        var figures = new JsonObject();
        foreach (var items in new[] { 3_700, 100_000 })
        {
            var config = new SequenceModelConfig { Dimension = 64, Blocks = 2, MaxLength = 50, ItemContent = false, UserFeatures = false };
            random.manual_seed(1);
            var model = new SasRecModel(config, items, null, 0, 0);
            var exactOnnx = PolicyExporter.Export(model, config with { ShortlistAbove = 0 });
            var rng = new Random(7);
            var histories = Enumerable.Range(0, 64).Select(_ => Enumerable.Range(0, 50).Select(_ => rng.Next(1, items + 1)).ToArray()).ToArray();
            var row = new JsonObject { ["onnx_mb"] = Math.Round(exactOnnx.Length / 1e6, 1) };

            using (var whole = new WholeGraph(exactOnnx, config.MaxLength))
                row["whole_graph"] = Time($"{items,7:N0} items, whole graph, exact", requests, i => whole.Top(histories[i % 64], 10));
            using (var exact = PolicyModel.Load(Manifest(items, exactOnnx), exactOnnx))
                row["exact"] = Time($"{items,7:N0} items, ranking part, exact", requests, i => exact.TopK(histories[i % 64], null, 10));
            if (items > config.ShortlistAbove)
            {
                var twoStageOnnx = PolicyExporter.Export(model, config);
                using var twoStage = PolicyModel.Load(Manifest(items, twoStageOnnx), twoStageOnnx);
                var timed = Time($"{items,7:N0} items, ranking part, two stages (shortlist {config.ShortlistSize})", requests, i => twoStage.TopK(histories[i % 64], null, 10));
                timed["recall@10_untrained_random_histories"] = Recall(twoStage, histories);
                timed["onnx_mb"] = Math.Round(twoStageOnnx.Length / 1e6, 1);
                row["two_stage"] = timed;
            }
            figures[$"items_{items}"] = row;
        }
        var games = GamesRecall(parse.GetValue(Data)!, parse.GetValue(Epochs), parse.GetValue(RecallUsers), requests);

        var result = new JsonObject
        {
            ["name"] = "serving-latency",
            ["created"] = DateTime.UtcNow.ToString("O", CultureInfo.InvariantCulture),
            ["machine"] = BenchmarkMachine.Describe(),
            ["protocol"] = new JsonObject
            {
                ["path"] = "the model's top-10 for one history in process: history -> ONNX Runtime (1 intra-op thread, allow_spinning=0) -> top-10 in the graph, copied out",
                ["variants"] = "whole_graph: every output computed (the full score vector, the item vectors' copy), top-10 fetched; exact: PolicyModel's ranking part (OnnxGraph.Part), fp32 scores of every item; two_stage: int8 scores of every item, the best 256 re-scored in fp32",
                ["history"] = 50, ["dimension"] = 64, ["blocks"] = 2, ["k"] = 10, ["requests"] = requests, ["warmup"] = 200,
                ["timing_weights"] = "untrained (seed 1), 64 histories of 50 uniformly random items",
                ["recall"] = "recall@10 of the two-stage top-10 against the exact fp32 top-10 of the same graph (history not masked), mean over histories",
            },
            ["figures"] = figures,
            ["games"] = games,
            ["goal"] = "p99 <= 1.5 ms at 100,000 items, one core; recall@10 >= 0.99 against exact fp32 on real histories",
        };
        var path = Path.Combine(outDir, "serving-latency.json");
        await File.WriteAllTextAsync(path, result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        Console.WriteLine($"wrote {path}");
    }

    /// <summary>Recall on real histories: a model trained briefly on Games (23,715 items, above the two-stage threshold), its test histories.</summary>
    private static JsonObject GamesRecall(string source, int epochs, int users, int requests)
    {
        var data = SasRecFile.Load(source);
        var split = LeaveOneOutSplit.Create(data);
        var config = new SequenceModelConfig
        {
            Dimension = 64, Blocks = 2, MaxLength = 50, Dropout = 0.5, Epochs = epochs, EvaluateEvery = epochs, Patience = 1,
            Negatives = 2048, ItemContent = false, UserFeatures = false, Threads = 1,
        };
        Console.WriteLine($"training {epochs} epochs on {source} for the recall on real histories");
        var model = new SequenceModelTrainer(config, new JobProgress(Console.Out)).Train(data, split).Model;
        var onnx = PolicyExporter.Export(model, config);
        using var served = PolicyModel.Load(Manifest(data.ItemCount, onnx), onnx);
        var histories = Enumerable.Range(0, Math.Min(users, data.UserCount)).Select(u => split.History(u, EvaluationStage.Test).ToArray()).ToArray();
        var recall = Recall(served, histories);
        Console.WriteLine($"Games: recall@10 of the two-stage ranking against exact fp32 on {histories.Length:N0} test histories: {recall:F4}");
        var timed = Time($"{data.ItemCount,7:N0} items (Games, trained), ranking part, two stages", requests, i => served.TopK(histories[i % histories.Length], null, 10));
        timed["recall@10"] = recall;
        timed["histories"] = histories.Length;
        timed["items"] = data.ItemCount;
        timed["training"] = $"{epochs} epochs, {config.Loss} with {config.Negatives} negatives, dimension 64, 2 blocks, length 50, dropout 0.5, seed {config.Seed}";
        return timed;
    }

    private static double Recall(PolicyModel model, IReadOnlyList<int[]> histories)
    {
        var found = 0;
        foreach (var history in histories)
        {
            var exact = model.Score(history, null, out var top, 10);
            var exactTop = Enumerable.Range(1, exact.Length - 1).OrderByDescending(i => exact[i]).Take(10).ToHashSet();
            found += top.Count(t => exactTop.Contains(t.Item));
        }
        return Math.Round(found / (10.0 * histories.Count), 4);
    }

    private static JsonObject Time(string label, int requests, Action<int> request)
    {
        for (var i = 0; i < 200; i++)
            request(i);
        var times = new double[requests];
        for (var i = 0; i < requests; i++)
        {
            var clock = Stopwatch.StartNew();
            request(i);
            times[i] = clock.Elapsed.TotalMicroseconds;
        }
        Array.Sort(times);
        var (p50, p99) = (times[requests / 2], times[requests * 99 / 100]);
        Console.WriteLine($"{label}: p50 {p50:F0} us, p99 {p99:F0} us");
        return new JsonObject { ["p50_us"] = Math.Round(p50), ["p99_us"] = Math.Round(p99) };
    }

    private static ModelManifest Manifest(int items, byte[] onnx)
    {
        var outputs = Onnx.ModelProto.Parser.ParseFrom(onnx).Graph.Output.Select(o => o.Name).ToList();
        return new ModelManifest("bench", DateTimeOffset.UtcNow, "none", 50, [PolicyGraph.History, PolicyGraph.K], outputs,
            ["", .. Enumerable.Range(1, items).Select(i => "i" + i.ToString(CultureInfo.InvariantCulture))]);
    }

    /// <summary>The graph in one session, as serving ran it before it ran parts: the top-10 fetched, every output computed.</summary>
    private sealed class WholeGraph(byte[] onnx, int maxLength) : IDisposable
    {
        private readonly InferenceSession _session = Open(onnx);
        private readonly RunOptions _runOptions = new();
        private readonly long[] _history = new long[maxLength];
        private static readonly string[] Inputs = [PolicyGraph.History, PolicyGraph.K];
        private static readonly string[] Outputs = [PolicyGraph.TopScores, PolicyGraph.TopItems];

        private static InferenceSession Open(byte[] onnx)
        {
            using var options = PolicyModel.NewSessionOptions();
            return new InferenceSession(onnx, options);
        }

        public long Top(int[] history, long k)
        {
            Array.Copy(history, history.Length - maxLength, _history, 0, maxLength);
            using var historyValue = OrtValue.CreateTensorValueFromMemory(_history, [1, maxLength]);
            using var kValue = OrtValue.CreateTensorValueFromMemory(new[] { k }, [1]);
            using var results = _session.Run(_runOptions, Inputs, [historyValue, kValue], Outputs);
            return results[1].GetTensorDataAsSpan<long>()[0];
        }

        public void Dispose()
        {
            _session.Dispose();
            _runOptions.Dispose();
        }
    }
}
