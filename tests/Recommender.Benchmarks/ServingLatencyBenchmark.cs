using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Recommender.ModelContract;
using Recommender.Serving;
using Recommender.Training;
using static TorchSharp.torch;

/// <summary>
/// In-process latency of one recommendation request through <see cref="PolicyModel"/> (ONNX Runtime, one
/// thread, no spinning): a 50-item history through the 2-block model, scores over the catalog and the
/// in-graph top-10, for a small and a large catalog. Weights are untrained (latency does not depend on them).
/// </summary>
internal static class ServingLatencyBenchmark
{
    private static readonly Option<int> Requests = new("--requests") { Description = "Requests to send", DefaultValueFactory = _ => 3000 };

    public static Command Command() => BenchmarkCommand.Create("serving-latency", "The ONNX model call in process at 3,700 and 100,000 items", RunAsync, Requests);

    private static async Task RunAsync(ParseResult parse, string outDir)
    {
        var requests = parse.GetValue(Requests);
        var figures = new JsonObject();
        foreach (var items in new[] { 3_700, 100_000 })
        {
            var config = new SequenceModelConfig { Dimension = 64, Blocks = 2, MaxLength = 50, ItemContent = false, UserFeatures = false };
            TorchSetup.Configure(1);
            random.manual_seed(1);
            var model = new SasRecModel(config, items, null, 0, 0);
            var onnx = PolicyExporter.Export(model, config);
            var manifest = new ModelManifest("bench", DateTimeOffset.UtcNow, "none", 50, ["history", "k"], ["scores", "top_scores", "top_items", "item_embeddings"],
                ["", .. Enumerable.Range(1, items).Select(i => "i" + i.ToString(System.Globalization.CultureInfo.InvariantCulture))]);
            var policy = PolicyModel.Load(manifest, onnx);
            var rng = new Random(7);
            var histories = Enumerable.Range(0, 64).Select(_ => Enumerable.Range(0, 50).Select(_ => rng.Next(1, items + 1)).ToArray()).ToArray();
            for (var i = 0; i < 200; i++)
                policy.TopK(histories[i % 64], null, 10);
            var times = new double[requests];
            for (var i = 0; i < requests; i++)
            {
                var clock = Stopwatch.StartNew();
                policy.TopK(histories[i % 64], null, 10);
                times[i] = clock.Elapsed.TotalMicroseconds;
            }
            Array.Sort(times);
            var (p50, p99) = (times[requests / 2], times[requests * 99 / 100]);
            Console.WriteLine($"{items,7:N0} items: p50 {p50:F0} us, p99 {p99:F0} us per request (50-item history, 2 blocks, dim 64, top-10), ONNX {onnx.Length / 1e6:F1} MB");
            figures[$"items_{items}"] = new JsonObject { ["p50_us"] = Math.Round(p50), ["p99_us"] = Math.Round(p99), ["onnx_mb"] = Math.Round(onnx.Length / 1e6, 1) };
        }
        var result = new JsonObject
        {
            ["name"] = "serving-latency",
            ["created"] = DateTime.UtcNow.ToString("O", System.Globalization.CultureInfo.InvariantCulture),
            ["machine"] = BenchmarkMachine.Describe(),
            ["protocol"] = new JsonObject
            {
                ["path"] = "PolicyModel.TopK in process: history tensor -> ONNX Runtime (1 intra-op thread, allow_spinning=0) -> scores and TopK in the graph, top-10 copied out",
                ["history"] = 50, ["dimension"] = 64, ["blocks"] = 2, ["k"] = 10, ["requests"] = requests, ["warmup"] = 200,
            },
            ["figures"] = figures,
            ["goal"] = "p99 <= 5 ms at 100,000 items",
        };
        var path = Path.Combine(outDir, "serving-latency.json");
        await File.WriteAllTextAsync(path, result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        Console.WriteLine($"wrote {path}");
    }
}
