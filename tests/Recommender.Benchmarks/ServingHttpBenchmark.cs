using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Recommender.Ingestion;
using Recommender.Serving;

/// <summary>
/// The serving routes over HTTP on loopback, driven by wrk (Debian's package; installed here when missing and allowed):
/// the benchmark starts the local host (Release build) over the demo's storage (run <c>scripts/demo.sh --once</c>
/// first), warms each route, then runs <c>wrk -t2 -c32 -d30s</c> per route with random demo users: recommendations
/// (k=10) and Personalizer's Rank with 10 actions. wrk counts what every response showed; after the runs the host is
/// stopped as a host is (SIGTERM: its sinks flush), and the impressions in the event log blobs written since it started
/// are counted against what was shown, exactly. The host's peak memory is read from /proc before it stops. Each route is
/// also run paced at the goal's rate (first, see <see cref="PacedConnections"/>).
/// </summary>
internal static class ServingHttpBenchmark
{
    private static readonly Option<int> Seconds = new("--seconds") { Description = "Seconds of load per route", DefaultValueFactory = _ => 30 };
    private static readonly Option<int> Warmup = new("--warmup") { Description = "Warm-up seconds before each route", DefaultValueFactory = _ => 10 };
    private static readonly Option<int> Connections = new("--connections") { Description = "Connections wrk keeps open", DefaultValueFactory = _ => 32 };
    private static readonly Option<int> Users = new("--users") { Description = "Users to draw from", DefaultValueFactory = _ => 1000 };
    private static readonly Option<string> Storage = BenchmarkCommand.StorageConnection();
    private static readonly Option<string> HostSettings = new("--host-settings") { Description = "Configuration overrides for the host, space-separated key=value", DefaultValueFactory = _ => "" };

    public static Command Command() => BenchmarkCommand.Create("serving-http", "Every serving route with wrk against the Release local host over the demo's storage (scripts/demo.sh --once first)", RunAsync, Seconds, Warmup, Connections, Users, Storage, HostSettings);

    private static async Task RunAsync(ParseResult parse, string outDir)
    {
        var seconds = parse.GetValue(Seconds);
        var warmup = parse.GetValue(Warmup);
        var connections = parse.GetValue(Connections);
        var users = parse.GetValue(Users);
        var storage = parse.GetValue(Storage)!;
        EnsureWrk();
        var ingestion = IngestionServices.Connect(storage);
        var registry = ServingServices.Connect(storage, ingestion).Registry;
        var current = await registry.GetCurrentAsync() ?? throw new InvalidOperationException("no promoted model in this storage: run scripts/demo.sh --once first");
        var (manifest, _) = await registry.DownloadAsync(current.Pointer.Version);
        var items = manifest.ItemIds.Count - 1;

        var startedAt = DateTimeOffset.UtcNow;
        // --host-settings "Serving:Sinks:MaxDelay=00:00:05 ...": the host's own settings for this run (a tuning to compare), recorded in the protocol.
        var hostSettings = parse.GetValue(HostSettings)!.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        await using var host = await LocalHostProcess.StartAsync(["--Logging:LogLevel:Default=Warning", "--AzureWebJobsStorage", storage, .. hostSettings.Select(s => "--" + s)],
            Path.GetFullPath(Path.Combine(outDir, "serving-http-host.log")));
        var url = host.Url;
        var routes = new JsonObject();
        long shown = 0, unansweredShown = 0;
        async Task MeasureAsync(Route route, bool paced)
        {
            var name = paced ? route.Name + "_paced" : route.Name;
            var environment = new Dictionary<string, string> { ["USERS"] = users.ToString(CultureInfo.InvariantCulture), ["ITEMS"] = items.ToString(CultureInfo.InvariantCulture), ["ACTIONS"] = SlateSize.ToString(CultureInfo.InvariantCulture) };
            var load = connections;
            if (paced)
            {
                // Each connection waits connections/rate between requests, less the 2 ms a request takes when the host keeps up.
                load = PacedConnections;
                environment["PACE_MS"] = (load * 1000.0 / route.GoalRate - 2).ToString("F1", CultureInfo.InvariantCulture);
            }
            var warm = await WrkAsync(url, route.Script, load, warmup, environment);
            var run = await WrkAsync(url, route.Script, load, seconds, environment);
            shown += (long)warm["shown"]! + (long)run["shown"]!;
            // A request wrk sent and saw no answer to may have been served and logged all the same: at most one slate each.
            unansweredShown += SlateSize * ((long)warm["unanswered"]! + (long)run["unanswered"]!);
            var rps = (long)run["requests"]! / ((long)run["duration_us"]! / 1e6);
            run["requests_per_second"] = Math.Round(rps);
            run["load"] = paced ? $"paced at {route.GoalRate}/s over {load} connections" : $"as fast as {load} connections go";
            routes[name] = run;
            Console.WriteLine(FormattableString.Invariant(
                $"{name}: {rps:F0} requests/s, p50 {(long)run["p50_us"]! / 1000.0:F1} ms, p99 {(long)run["p99_us"]! / 1000.0:F1} ms, {run["non_2xx"]} non-2xx, {run["socket_errors"]} socket errors"));
        }
        try
        {
            // Paced first, on a host whose sinks the saturating runs have not filled yet.
            foreach (var route in Routes)
                await MeasureAsync(route, paced: true);
            foreach (var route in Routes)
                await MeasureAsync(route, paced: false);
        }
        finally
        {
            routes["host_peak_rss_mb"] = host.PeakRssMegabytes();
            // What the load left in the sinks is written at shutdown: how long that takes says how far the writes fell behind.
            routes["shutdown_drain_seconds"] = Math.Round((await host.StopAsync(TimeSpan.FromMinutes(10))).TotalSeconds, 1);
        }

        var logged = await ImpressionsWrittenSinceAsync(ingestion, startedAt);
        Console.WriteLine($"impressions shown {shown:N0} (+ at most {unansweredShown:N0} in requests wrk sent and saw no answer to), in the log {logged:N0}; host peak RSS {routes["host_peak_rss_mb"]} MB; shutdown drained the sinks in {routes["shutdown_drain_seconds"]} s");
        var result = new JsonObject
        {
            ["name"] = "serving-http",
            ["created"] = DateTime.UtcNow.ToString("O", CultureInfo.InvariantCulture),
            ["machine"] = BenchmarkMachine.Describe(),
            ["protocol"] = new JsonObject
            {
                ["target"] = $"the local host (Release, {url}) over the demo's Azurite storage, on the same machine as wrk and Azurite",
                ["model"] = $"{current.Pointer.Version}, {items} items",
                ["host_settings"] = hostSettings.Length == 0 ? "defaults" : string.Join(' ', hostSettings),
                ["load"] = $"wrk -t2 -c{connections} -d{seconds}s per route after a {warmup}s warm-up (the issue's load: each connection sends its next request when the last is answered); users user0..user{users - 1} drawn uniformly",
                ["paced_load"] = $"<route>_paced, run first: wrk -t2 -c{PacedConnections} -d{seconds}s after a {warmup}s warm-up, each connection waiting about {PacedConnections}/rate between requests (PACE_MS, 0.5-1.5x at random), at the goal's rate: {string.Join(", ", Routes.Select(r => $"{r.Name} {r.GoalRate}/s"))}",
                ["routes"] = "GET /api/users/{user}/recommendations?k=10; POST /personalizer/v1.0/rank with 10 distinct actions and a context naming the user",
                ["reconciliation"] = $"impressions shown (counted by wrk from every response, warm-up included) against impression rows in the event-log blobs written since the host started, after a SIGTERM shutdown; requests wrk sent and saw no answer to (in flight when its time was up, or past its timeout) may have been served and logged, {SlateSize} impressions each at most, so the log must hold at least what was shown and at most that much more",
            },
            ["figures"] = routes,
            ["impressions_shown"] = shown,
            ["impressions_in_unanswered_requests_at_most"] = unansweredShown,
            ["impressions_logged"] = logged,
            ["reconciled"] = logged >= shown && logged <= shown + unansweredShown,
            ["goal"] = "recommendations >= 1,500 requests/s with p99 <= 10 ms and 0 errors; Rank with 10 actions >= 1,000 requests/s with p99 <= 15 ms; impressions logged = shown; host memory < 500 MB",
        };
        var path = Path.Combine(outDir, "serving-http.json");
        await File.WriteAllTextAsync(path, result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        Console.WriteLine($"wrote {path}");
        if (logged < shown)
            throw new InvalidOperationException($"impressions logged ({logged}) are fewer than impressions shown ({shown}): some were lost");
        if (logged > shown + unansweredShown)
            throw new InvalidOperationException($"impressions logged ({logged}) exceed those shown and those of unanswered requests ({shown} + {unansweredShown}): some were logged twice");
    }

    private sealed record Route(string Name, string Script, int GoalRate);

    /// <summary>Items per served slate on both routes: k=10 recommendations, 10 actions ranked.</summary>
    private const int SlateSize = 10;

    private static readonly Route[] Routes = [new("recommendations", "recommendations.lua", 1500), new("personalizer_rank_10_actions", "rank.lua", 1000)];

    /// <summary>
    /// With wrk's own load, 32 connections each waiting for its answer, the mean latency is 32 / throughput (Little's
    /// law), so it says how saturated the host is rather than how fast a request is served at a given rate. The paced
    /// runs offer the goal's rate over enough connections that the rate holds while a request takes up to a few ms.
    /// </summary>
    private const int PacedConnections = 128;

    private static void EnsureWrk()
    {
        if (File.Exists("/usr/bin/wrk"))
            return;
        Console.WriteLine("wrk is missing: apt-get install -y wrk");
        using var install = Process.Start(new ProcessStartInfo("sh", "-c \"apt-get install -y wrk || (apt-get update && apt-get install -y wrk)\"") { RedirectStandardOutput = true })!;
        install.StandardOutput.ReadToEnd();
        install.WaitForExit();
        if (!File.Exists("/usr/bin/wrk"))
            throw new InvalidOperationException("wrk could not be installed (Debian package wrk; as root: apt-get install -y wrk)");
    }

    private static async Task<JsonObject> WrkAsync(Uri url, string script, int connections, int seconds, Dictionary<string, string> environment)
    {
        var scripts = Path.GetFullPath("tests/Recommender.Benchmarks/wrk");
        var start = new ProcessStartInfo("wrk") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in new[] { "-t2", $"-c{connections}", $"-d{seconds}s", "-s", Path.Combine(scripts, script), url.ToString().TrimEnd('/') })
            start.ArgumentList.Add(argument);
        start.Environment["WRK_SCRIPTS"] = scripts;
        foreach (var (key, value) in environment)
            start.Environment[key] = value;
        using var wrk = Process.Start(start)!;
        var output = await wrk.StandardOutput.ReadToEndAsync();
        var errors = await wrk.StandardError.ReadToEndAsync();
        await wrk.WaitForExitAsync();
        var line = output.Split('\n').LastOrDefault(l => l.StartsWith('{')) ?? throw new InvalidOperationException($"wrk printed no summary: {output} {errors}");
        return JsonNode.Parse(line)!.AsObject();
    }

    private static async Task<long> ImpressionsWrittenSinceAsync(IngestionServices ingestion, DateTimeOffset since)
    {
        long impressions = 0;
        await foreach (var blob in ingestion.EventLog.ListBlobsAsync())
        {
            if (blob.Properties.CreatedOn is { } created && created >= since.AddSeconds(-1))
                impressions += (await ingestion.EventLog.ReadBlobAsync(blob.Name)).Count(r => r.Type == "impression");
        }
        return impressions;
    }
}
