using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Recommender.Ingestion;
using Recommender.Serving;

/// <summary>
/// The serving routes in process, over the demo's storage (run <c>scripts/demo.sh --once</c> first): recommendations
/// and Personalizer's Rank with 10 actions for random demo users, one request at a time on one thread, with the
/// users' state already cached (as a serving instance has it after a few seconds of traffic). The sinks hold what the
/// requests log (their delay is an hour here), so the request figures are the request path alone; then the sinks are
/// flushed and the host-side CPU of writing what they held is reported per request, apart.
/// </summary>
internal static class ServingInProcessBenchmark
{
    private static readonly Option<int> Requests = new("--requests") { Description = "Requests to send", DefaultValueFactory = _ => 20_000 };
    private static readonly Option<int> Users = new("--users") { Description = "Users to draw from", DefaultValueFactory = _ => 1000 };
    private static readonly Option<string> Storage = BenchmarkCommand.StorageConnection();

    public static Command Command() => BenchmarkCommand.Create("serving-inprocess", "The serving path in process over the demo's storage (scripts/demo.sh --once first)", RunAsync, Requests, Users, Storage);

    private const int RankRequestPool = 1_000;

    private static async Task RunAsync(ParseResult parse, string outDir)
    {
        var requests = parse.GetValue(Requests);
        var users = parse.GetValue(Users);
        var storage = parse.GetValue(Storage)!;
        var ingestion = IngestionServices.Connect(storage);
        await using var serving = ServingServices.Connect(storage, ingestion,
            sinks: new BatchingSinkOptions { MaxDelay = TimeSpan.FromHours(1), Capacity = 10 * requests, MaxBatch = 4_000 });
        if (await serving.Switcher.RefreshAsync() == RefreshOutcome.NoModel)
            throw new InvalidOperationException("no promoted model in this storage: run scripts/demo.sh --once first");
        var items = serving.Switcher.Acquire()!.Value.Model.Manifest.ItemIds.Count - 1;
        var random = new Random(7);
        string User() => "user" + random.Next(users).ToString(CultureInfo.InvariantCulture);

        for (var u = 0; u < users; u++)
            await serving.Recommendations.RecommendAsync("user" + u.ToString(CultureInfo.InvariantCulture), 10);
        await serving.FlushAsync();

        var figures = new JsonObject();
        figures["recommendations"] = await MeasureAsync("GET recommendations?k=10", requests, serving,
            () => serving.Recommendations.RecommendAsync(User(), 10));
        // The requests are built before the clock starts (a pool sent round-robin, each ranked under a new event id), so what
        // is measured is Rank's work, not the making of its input (over HTTP, the host's JSON reader makes it).
        var rankRequests = Enumerable.Range(0, RankRequestPool).Select(_ =>
        {
            var actions = Enumerable.Range(1, items).OrderBy(_ => random.Next()).Take(10)
                .Select((i, slot) => new RankableAction("item" + i.ToString(CultureInfo.InvariantCulture),
                    [JsonSerializer.SerializeToElement(new Dictionary<string, string> { ["slot"] = "s" + slot.ToString(CultureInfo.InvariantCulture) })])).ToList();
            var context = new List<JsonElement> { JsonSerializer.SerializeToElement(new Dictionary<string, string> { ["userId"] = User() }), JsonSerializer.SerializeToElement(new Dictionary<string, string> { ["device"] = "mobile" }) };
            return new RankRequest(context, actions);
        }).ToArray();
        var sent = 0;
        figures["personalizer_rank_10_actions"] = await MeasureAsync("Personalizer rank, 10 actions", requests, serving,
            () => serving.Personalizer.RankAsync(rankRequests[sent++ % rankRequests.Length]));

        var result = new JsonObject
        {
            ["name"] = "serving-inprocess",
            ["created"] = DateTime.UtcNow.ToString("O", CultureInfo.InvariantCulture),
            ["machine"] = BenchmarkMachine.Describe(),
            ["protocol"] = new JsonObject
            {
                ["storage"] = "the demo's (scripts/demo.sh --once): its promoted model and its users' state in Azurite",
                ["model"] = $"{serving.Switcher.CurrentVersion}, {items} items",
                ["users"] = $"user0..user{users - 1}, drawn uniformly (seed 7), every one requested once before measuring (state cached)",
                ["rank_requests"] = $"{RankRequestPool} built before measuring (10 random items, a slot feature each; userId and device in the context), sent round-robin, each under a new event id",
                ["requests"] = requests, ["threads"] = 1,
                ["sinks"] = "hold everything during the requests (MaxDelay 1 h); flushed after, timed apart",
            },
            ["figures"] = figures,
        };
        var path = Path.Combine(outDir, "serving-inprocess.json");
        await File.WriteAllTextAsync(path, result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        Console.WriteLine($"wrote {path}");
    }

    private static async Task<JsonObject> MeasureAsync<T>(string name, int requests, ServingServices serving, Func<Task<T>> request)
    {
        for (var i = 0; i < 500; i++)
            await request();
        await serving.FlushAsync();
        var times = new double[requests];
        var process = Process.GetCurrentProcess();
        var cpu = process.TotalProcessorTime;
        // What the requests cost the collector: bytes allocated, collections by generation and the time paused.
        var allocated = GC.GetTotalAllocatedBytes(precise: true);
        var collections = Enumerable.Range(0, 3).Select(GC.CollectionCount).ToArray();
        var paused = GC.GetTotalPauseDuration();
        var wall = Stopwatch.StartNew();
        for (var i = 0; i < requests; i++)
        {
            var started = Stopwatch.GetTimestamp();
            await request();
            times[i] = Stopwatch.GetElapsedTime(started).TotalMicroseconds;
        }
        wall.Stop();
        var allocatedPerRequest = (GC.GetTotalAllocatedBytes(precise: true) - allocated) / requests;
        var collected = Enumerable.Range(0, 3).Select(g => GC.CollectionCount(g) - collections[g]).ToArray();
        var pausedMs = (GC.GetTotalPauseDuration() - paused).TotalMilliseconds;
        process.Refresh();
        var requestCpu = (process.TotalProcessorTime - cpu).TotalMicroseconds / requests;
        cpu = process.TotalProcessorTime;
        var flush = Stopwatch.StartNew();
        await serving.FlushAsync();
        flush.Stop();
        process.Refresh();
        var writeCpu = (process.TotalProcessorTime - cpu).TotalMicroseconds / requests;
        Array.Sort(times);
        double P(double q) => Math.Round(times[(int)(q * (requests - 1))]);
        Console.WriteLine(FormattableString.Invariant(
            $"{name}: p50 {P(0.5)} us, p99 {P(0.99)} us, p99.9 {P(0.999)} us; CPU {requestCpu:F0} us per request, {allocatedPerRequest:N0} bytes allocated per request, collections gen0/1/2 {collected[0]}/{collected[1]}/{collected[2]} pausing {pausedMs:F0} ms; then {writeCpu:F0} us per request to write what it logged ({flush.Elapsed.TotalSeconds:F1} s)"));
        return new JsonObject
        {
            ["p50_us"] = P(0.5), ["p90_us"] = P(0.9), ["p99_us"] = P(0.99), ["p999_us"] = P(0.999),
            ["requests_per_second_one_thread"] = Math.Round(requests / wall.Elapsed.TotalSeconds),
            ["cpu_us_per_request"] = Math.Round(requestCpu), ["write_cpu_us_per_request"] = Math.Round(writeCpu),
            ["allocated_bytes_per_request"] = allocatedPerRequest,
            ["gc"] = new JsonObject { ["gen0"] = collected[0], ["gen1"] = collected[1], ["gen2"] = collected[2], ["pause_ms"] = Math.Round(pausedMs, 1) },
            ["write_seconds"] = Math.Round(flush.Elapsed.TotalSeconds, 2),
        };
    }
}
