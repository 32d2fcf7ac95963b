using System.CommandLine;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Recommender.TrainingJob;

// dotnet run -c Release --project tests/Recommender.Benchmarks -- <benchmark> [options]; --help lists the benchmarks,
// <benchmark> --help a benchmark's options and their defaults. Each writes one JSON under --out.
var root = new RootCommand("Benchmarks of the recommender: each writes one JSON (name, protocol, figures, machine) under --out")
{
    IngestionBenchmark.Command(),
    HttpLoadBenchmark.Command(),
    ServingHttpBenchmark.Command(),
    ServingInProcessBenchmark.Command(),
    ServingLatencyBenchmark.Command(),
    TrainingThroughputBenchmark.Command(),
    TimeToQualityBenchmark.Command(),
    TrainingVsPyTorchBenchmark.Command(),
    ClosedLoopBenchmark.Command(),
    SoakBenchmark.Command(),
    PersonalizerFirstDayBenchmark.Command(),
};
return await CommandOptions.RunAsync(root, args);

/// <summary>The machine a benchmark ran on, written into every result.</summary>
internal static class BenchmarkMachine
{
    public static JsonObject Describe(int? torchThreads = null) => new()
    {
        ["os"] = RuntimeInformation.OSDescription,
        ["cpus"] = Environment.ProcessorCount,
        ["runtime"] = RuntimeInformation.FrameworkDescription,
        ["cpu_model"] = File.Exists("/proc/cpuinfo")
            ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':')[1].Trim()
            : null,
        ["torch_threads"] = torchThreads,
    };
}
