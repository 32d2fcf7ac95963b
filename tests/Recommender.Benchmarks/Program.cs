using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Parquet;
using Parquet.Serialization;
using Recommender.Events;
using Recommender.Ingestion;

// dotnet run -c Release --project tests/Recommender.Benchmarks -- ingestion [--events N] [--users N] [--batch N] [--partitions N] [--out DIR]
var options = Args.Parse(args);
var outDir = options.Get("out", "artifacts/benchmarks");
Directory.CreateDirectory(outDir);

switch (options.Command)
{
    case "ingestion":
        await IngestionBenchmark.RunAsync(options, outDir);
        break;
    case "http-load":
        await HttpLoadBenchmark.RunAsync(options, outDir);
        break;
    case "serving-http":
        await ServingHttpBenchmark.RunAsync(options, outDir);
        break;
    case "serving-inprocess":
        await ServingInProcessBenchmark.RunAsync(options, outDir);
        break;
    case "serving-latency":
        await ServingLatencyBenchmark.RunAsync(options, outDir);
        break;
    case "training-throughput":
        await TrainingThroughputBenchmark.RunAsync(options, outDir);
        break;
    case "training-vs-pytorch":
        await TrainingVsPyTorchBenchmark.RunAsync(options, outDir);
        break;
    case "closed-loop":
        await ClosedLoopBenchmark.RunAsync(options, outDir);
        break;
    case "soak":
        return await SoakBenchmark.RunAsync(options, outDir);
    case "personalizer-first-day":
        await PersonalizerFirstDayBenchmark.RunAsync(options, outDir);
        break;
    default:
        Console.Error.WriteLine("usage: Recommender.Benchmarks http-load [--url http://127.0.0.1:7071] [--requests 3000] [--concurrency 8] [--users 1000]   (against a running local host)");
        Console.Error.WriteLine("usage: Recommender.Benchmarks soak [--minutes 30] [--pace-ms 50] [--world users=300,items=80,seed=7] [--check true]   (starts the Release local host; --check: exit 1 unless reconciled with 0 5xx)");
        Console.Error.WriteLine("usage: Recommender.Benchmarks serving-http [--seconds 30] [--warmup 10] [--connections 32] [--users 1000] [--host-settings \"Serving:Sinks:MaxDelay=00:00:05 ...\"]   (starts the Release local host over the demo's storage: scripts/demo.sh --once first)");
        Console.Error.WriteLine("usage: Recommender.Benchmarks serving-inprocess [--requests 20000] [--users 1000]   (over the demo's storage: scripts/demo.sh --once first)");
        Console.Error.WriteLine("usage: Recommender.Benchmarks serving-latency [--requests 3000] [--out artifacts/benchmarks]");
        Console.Error.WriteLine("usage: Recommender.Benchmarks training-throughput [--items 3700] [--steps 60] [--threads 1] [--loss bce] [--out artifacts/benchmarks]");
        Console.Error.WriteLine("usage: Recommender.Benchmarks training-vs-pytorch [--data ../shared/data/sasrec/Video.txt] [--threads 1] [--rounds 2] [--steps 60] [--out artifacts/benchmarks]   (installs python3-torch and OpenBLAS when missing)");
        Console.Error.WriteLine("usage: Recommender.Benchmarks closed-loop [--world users=1000,items=500,seed=7,clickbait=0.1] [--rounds 3] [--sessions 500] [--seed 1] [--concurrency 8] [--url http://127.0.0.1:7071] [--training \"<training-job settings>\"] [--name closed-loop] [--out artifacts/benchmarks]");
        Console.Error.WriteLine("usage: Recommender.Benchmarks personalizer-first-day [--calls 600] [--after 1000] [--evaluation-events 50000] [--export-frequency PT30S] [--seed 1] [--out artifacts/benchmarks]");
        Console.Error.WriteLine("usage: Recommender.Benchmarks ingestion [--events 1000000] [--users 20000] [--items 5000] [--batch 4000] [--partitions 4] [--active-sessions 500] [--out artifacts/benchmarks]");
        return 2;
}
return 0;

internal static class IngestionBenchmark
{
    private static readonly DateTimeOffset Start = new(2026, 11, 1, 0, 0, 0, TimeSpan.Zero);

    public static async Task RunAsync(Args options, string outDir)
    {
        var events = options.GetInt("events", 1_000_000);
        var users = options.GetInt("users", 20_000);
        var items = options.GetInt("items", 5_000);
        var batchSize = options.GetInt("batch", 4000); // host.json maxEventBatchSize
        var partitions = options.GetInt("partitions", 4);
        var parseEvents = options.GetInt("parse-events", 300_000);
        var connection = options.Get("storage", "UseDevelopmentStorage=true");

        Console.WriteLine($"generating {Math.Max(events, parseEvents):N0} events: {users:N0} users, {items:N0} items (Zipf-skewed), seed 42");
        var activeSessions = options.GetInt("active-sessions", 500);
        var raw = Generate(Math.Max(events, parseEvents), users, items, activeSessions, seed: 42);

        // 1. Parse + validate + map + Parquet serialize, one thread, no I/O.
        var parser = new EventParser();
        var now = Start.AddDays(30);
        var cpu = Stopwatch.StartNew();
        var rows = new List<EventLogRecord>(10_000);
        long parquetBytes = 0;
        var parquet = new ParquetOptions { CompressionMethod = CompressionMethod.Snappy }; // as EventLog writes
        for (var i = 0; i < parseEvents; i++)
        {
            var parsed = parser.Parse(raw[i].Body, now);
            rows.Add(EventLogRecord.From(parsed.Interaction!, "bench", i, now));
            if (rows.Count == 10_000 || i == parseEvents - 1)
            {
                using var buffer = new MemoryStream();
                await ParquetSerializer.SerializeAsync(rows, buffer, parquet);
                parquetBytes += buffer.Length;
                rows.Clear();
            }
        }
        cpu.Stop();
        var parseRate = parseEvents / cpu.Elapsed.TotalSeconds;
        Console.WriteLine($"parse+validate+serialize: {parseRate:N0} events/s on one thread ({parquetBytes / (double)parseEvents:F1} bytes/event in Parquet+snappy)");

        // 2. End to end into Azurite: Event Hubs deliveries from several partitions at once, as the host would run them.
        var services = IngestionServices.Connect(connection, new StorageLayout
        {
            EventLogContainer = "bench-eventlog", DeadLetterContainer = "bench-deadletter", IngestStateContainer = "bench-ingest",
            UserStateTable = "BenchUserState", CatalogTable = "BenchCatalog", UserProfileTable = "BenchProfiles", TombstoneTable = "BenchTombstones",
        });
        await services.EnsureCreatedAsync();
        var runId = Guid.NewGuid().ToString("N")[..8]; // a fresh consumer group: a rerun against the same Azurite starts from zero
        // Partitioned by user, as EventHubsEventProducer sends them.
        var perPartition = Enumerable.Range(0, partitions)
            .Select(p => Enumerable.Range(0, events).Where(i => EventHubsEventProducer.PartitionIndex(raw[i].UserId, partitions) == p).ToList())
            .ToList();
        var e2e = Stopwatch.StartNew();
        var done = 0L;
        var progress = Stopwatch.StartNew();
        await Task.WhenAll(perPartition.Select((indices, p) => Task.Run(async () =>
        {
            for (var b = 0; b < indices.Count; b += batchSize)
            {
                var slice = indices.GetRange(b, Math.Min(batchSize, indices.Count - b));
                var delivery = new EventHubsDelivery($"bench-{runId}", p.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    slice.Select((i, k) => new EventHubsMessage(raw[i].Body, b + k, Start)).ToList());
                var result = await services.Ingestor.IngestAsync(delivery);
                if (result.Accepted != slice.Count)
                    throw new InvalidOperationException($"batch lost events: {result.Accepted} of {slice.Count}");
                var total = Interlocked.Add(ref done, slice.Count);
                if (progress.Elapsed.TotalSeconds > 10 && Interlocked.Exchange(ref progress, Stopwatch.StartNew()) is not null)
                {
                    var rate = total / e2e.Elapsed.TotalSeconds;
                    Console.WriteLine($"  {total:N0}/{events:N0} events, {rate:N0}/s, ETA {(events - total) / rate:F0} s");
                }
            }
        })));
        e2e.Stop();
        var e2eRate = events / e2e.Elapsed.TotalSeconds;
        Console.WriteLine($"end to end into Azurite (log + user state): {e2eRate:N0} events/s, {events:N0} events in {e2e.Elapsed.TotalSeconds:F1} s");

        var result = new JsonObject
        {
            ["name"] = "ingestion",
            ["created"] = DateTime.UtcNow.ToString("O", System.Globalization.CultureInfo.InvariantCulture),
            ["machine"] = BenchmarkMachine.Describe(),
            ["protocol"] = new JsonObject
            {
                ["events"] = events, ["users"] = users, ["items"] = items, ["item_popularity"] = "Zipf s=1.0", ["active_sessions"] = activeSessions, ["mean_session_events"] = 20, ["seed"] = 42,
                ["batch_size"] = batchSize, ["partitions_in_parallel"] = partitions, ["parse_events"] = parseEvents,
                ["storage"] = "Azurite 3.35 in memory on the same machine", ["parquet_compression"] = "snappy",
            },
            ["figures"] = new JsonObject
            {
                ["parse_validate_serialize_events_per_second_one_thread"] = Math.Round(parseRate),
                ["parquet_bytes_per_event"] = Math.Round(parquetBytes / (double)parseEvents, 1),
                ["end_to_end_events_per_second"] = Math.Round(e2eRate),
                ["end_to_end_seconds"] = Math.Round(e2e.Elapsed.TotalSeconds, 1),
            },
            ["goals"] = new JsonObject
            {
                ["parse_validate_serialize_events_per_second_per_core"] = 100_000,
                ["end_to_end_events_per_second"] = 20_000,
            },
        };
        var path = Path.Combine(outDir, "ingestion.json");
        await File.WriteAllTextAsync(path, result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        Console.WriteLine($"wrote {path}");
    }

    /// <summary>
    /// Interactions as a live service sees them: about <c>activeSessions</c> users in a session at any
    /// moment (sessions of 20 events on average, users drawn uniformly), Zipf-skewed items, in the wire format.
    /// </summary>
    private static (byte[] Body, string UserId)[] Generate(int count, int users, int items, int activeSessions, int seed)
    {
        var random = new Random(seed);
        var cumulative = new double[items];
        double sum = 0;
        for (var i = 0; i < items; i++)
            cumulative[i] = sum += 1.0 / (i + 1);
        string[] types = ["view", "click", "like", "purchase", "impression"];
        var sessions = Enumerable.Range(0, activeSessions).Select(s => (User: random.Next(users), Session: s)).ToArray();
        var nextSession = activeSessions;
        var raw = new (byte[], string)[count];
        for (var n = 0; n < count; n++)
        {
            var slot = random.Next(activeSessions);
            if (random.NextDouble() < 1.0 / 20) // the session ends; another user starts one
                sessions[slot] = (random.Next(users), nextSession++);
            var item = Array.BinarySearch(cumulative, random.NextDouble() * sum);
            item = item < 0 ? ~item : item;
            var userId = $"user{sessions[slot].User}";
            raw[n] = (new WireEvent
            {
                SchemaVersion = 1,
                EventId = $"b{n}",
                UserId = userId,
                ItemId = $"item{item}",
                Type = types[random.Next(types.Length)],
                Timestamp = Start.AddSeconds(n * 0.5),
                SessionId = $"s{sessions[slot].Session}",
            }.ToUtf8Json(), userId);
        }
        return raw;
    }

}

/// <summary>Command line: a command, then --name value pairs.</summary>
internal sealed class Args(string command, Dictionary<string, string> values)
{
    public string Command => command;

    public static Args Parse(string[] args)
    {
        var values = new Dictionary<string, string>();
        for (var i = 1; i + 1 < args.Length; i += 2)
            values[args[i].TrimStart('-')] = args[i + 1];
        return new Args(args.Length > 0 ? args[0] : "", values);
    }

    public string Get(string name, string fallback) => values.GetValueOrDefault(name, fallback);

    public int GetInt(string name, int fallback) => values.TryGetValue(name, out var v) ? int.Parse(v, System.Globalization.CultureInfo.InvariantCulture) : fallback;
}

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
