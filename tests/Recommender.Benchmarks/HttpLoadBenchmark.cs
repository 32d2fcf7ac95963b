using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;

/// <summary>
/// Recommendations over HTTP on loopback under concurrent load: a fixed number of requests from N
/// concurrent clients against a running host (scripts/demo.sh --serve), each request the whole product
/// path: user state read, model, filters, exploration, impressions logged to the event log.
/// Bounded in count and time; only 127.0.0.1 is ever a target.
/// </summary>
internal static class HttpLoadBenchmark
{
    private static readonly Option<string> Url = new("--url") { Description = "A running host to use instead of starting one", DefaultValueFactory = _ => "http://127.0.0.1:7071" };
    private static readonly Option<int> Requests = new("--requests") { Description = "Requests to send", DefaultValueFactory = _ => 3000 };
    private static readonly Option<int> Concurrency = new("--concurrency") { Description = "Requests in flight", DefaultValueFactory = _ => 8 };
    private static readonly Option<int> Users = new("--users") { Description = "Users to draw from", DefaultValueFactory = _ => 1000 };

    public static Command Command() => BenchmarkCommand.Create("http-load", "Recommendations over HTTP against a running local host", RunAsync, Url, Requests, Concurrency, Users);

    private static async Task RunAsync(ParseResult parse, string outDir)
    {
        var baseUrl = new Uri(parse.GetValue(Url)!);
        if (!baseUrl.IsLoopback)
            throw new ArgumentException("the load benchmark only targets loopback addresses");
        var requests = parse.GetValue(Requests);
        var concurrency = parse.GetValue(Concurrency);
        var users = parse.GetValue(Users);
        using var http = new HttpClient { BaseAddress = baseUrl, Timeout = TimeSpan.FromSeconds(10) };
        for (var i = 0; i < 50; i++)
            (await http.GetAsync($"/api/users/user{i}/recommendations?k=10")).EnsureSuccessStatusCode();

        var latencies = new double[requests];
        var failures = 0;
        var next = -1;
        var wall = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
        {
            int n;
            while ((n = Interlocked.Increment(ref next)) < requests && wall.Elapsed < TimeSpan.FromMinutes(5))
            {
                var clock = Stopwatch.StartNew();
                using var response = await http.GetAsync($"/api/users/user{n % users}/recommendations?k=10");
                await response.Content.ReadAsByteArrayAsync();
                latencies[n] = clock.Elapsed.TotalMilliseconds;
                if (!response.IsSuccessStatusCode)
                    Interlocked.Increment(ref failures);
            }
        })));
        wall.Stop();
        var done = Math.Min(requests, next);
        var sorted = latencies.Take(done).Order().ToArray();
        var (p50, p99, rps) = (sorted[done / 2], sorted[done * 99 / 100], done / wall.Elapsed.TotalSeconds);
        Console.WriteLine($"GET recommendations over loopback, {concurrency} clients: p50 {p50:F1} ms, p99 {p99:F1} ms, {rps:F0} requests/s, {failures} failed of {done}");

        var result = new JsonObject
        {
            ["name"] = "http-load",
            ["created"] = DateTime.UtcNow.ToString("O", System.Globalization.CultureInfo.InvariantCulture),
            ["machine"] = BenchmarkMachine.Describe(),
            ["protocol"] = new JsonObject
            {
                ["target"] = "scripts/demo.sh --serve (local host, Azurite in memory, the demo model: 500 items, dim 32, 2 blocks)",
                ["request"] = "GET /api/users/user{n % users}/recommendations?k=10, each logging its impressions",
                ["requests"] = done, ["concurrency"] = concurrency, ["users"] = users, ["warmup"] = 50,
            },
            ["figures"] = new JsonObject { ["p50_ms"] = Math.Round(p50, 2), ["p99_ms"] = Math.Round(p99, 2), ["requests_per_second"] = Math.Round(rps), ["failed"] = failures },
        };
        var path = Path.Combine(outDir, "http-load.json");
        await File.WriteAllTextAsync(path, result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        Console.WriteLine($"wrote {path}");
    }
}
