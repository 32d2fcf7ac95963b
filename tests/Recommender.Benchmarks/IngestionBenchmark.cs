using System.CommandLine;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Parquet;
using Parquet.Serialization;
using Recommender.EventLog;
using Recommender.Events;
using Recommender.Ingestion;
using Recommender.Storage;

internal static class IngestionBenchmark
{
    private static readonly Option<int> Events = new("--events") { Description = "Events ingested end to end", DefaultValueFactory = _ => 1_000_000 };
    private static readonly Option<int> Users = new("--users") { Description = "Users to draw from", DefaultValueFactory = _ => 20_000 };
    private static readonly Option<int> Items = new("--items") { Description = "Items in the catalog", DefaultValueFactory = _ => 5_000 };
    private static readonly Option<int> Batch = new("--batch") { Description = "Events per delivery (host.json maxEventBatchSize)", DefaultValueFactory = _ => 4000 };
    private static readonly Option<int> Partitions = new("--partitions") { Description = "Event Hubs partitions ingested in parallel", DefaultValueFactory = _ => 4 };
    private static readonly Option<int> ParseEvents = new("--parse-events") { Description = "Events for the one-thread parse and serialize figure", DefaultValueFactory = _ => 300_000 };
    private static readonly Option<string> Storage = BenchmarkCommand.StorageConnection();
    private static readonly Option<int> ActiveSessions = new("--active-sessions") { Description = "Users in a session at any moment", DefaultValueFactory = _ => 500 };

    public static Command Command() => BenchmarkCommand.Create("ingestion", "Ingestion throughput: parse, validate and serialize on one thread, then end to end into storage", RunAsync, Events, Users, Items, Batch, Partitions, ParseEvents, Storage, ActiveSessions);

    private static readonly DateTimeOffset Start = new(2026, 11, 1, 0, 0, 0, TimeSpan.Zero);

    private static async Task RunAsync(ParseResult parse, string outDir)
    {
        var events = parse.GetValue(Events);
        var users = parse.GetValue(Users);
        var items = parse.GetValue(Items);
        var batchSize = parse.GetValue(Batch); // host.json maxEventBatchSize
        var partitions = parse.GetValue(Partitions);
        var parseEvents = parse.GetValue(ParseEvents);
        var connection = parse.GetValue(Storage)!;

        Console.WriteLine($"generating {Math.Max(events, parseEvents):N0} events: {users:N0} users, {items:N0} items (Zipf-skewed), seed 42");
        var activeSessions = parse.GetValue(ActiveSessions);
        var raw = Generate(Math.Max(events, parseEvents), users, items, activeSessions, seed: 42);

        // 1. Parse + validate + map + Parquet serialize, one thread, no I/O.
        var parser = new EventParser();
        var now = Start.AddDays(30);
        var cpu = Stopwatch.StartNew();
        var rows = new EventLogColumns(10_000);
        long parquetBytes = 0;
        for (var i = 0; i < parseEvents; i++)
        {
            var parsed = parser.Parse(raw[i].Body, now);
            rows.Add(parsed.Interaction!, i);
            if (rows.Count == 10_000 || i == parseEvents - 1)
            {
                using var buffer = await EventLogStore.SerializeAsync(rows, "bench", now, CancellationToken.None); // as ingestion writes a log blob
                parquetBytes += buffer.Length;
                rows.Dispose();
                rows = new EventLogColumns(10_000);
            }
        }
        rows.Dispose();
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
