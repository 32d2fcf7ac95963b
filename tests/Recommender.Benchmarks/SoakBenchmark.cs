using System.CommandLine;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Azure.Data.Tables;
using Recommender.Data;
using Recommender.EventLog;
using Recommender.Events;
using Recommender.Ingestion;
using Recommender.Serving;
using Recommender.Storage;

/// <summary>
/// The whole product under sustained mixed traffic, with faults, then reconciled. Against the Release local host over a
/// storage namespace of its own, for <c>--minutes</c>, all at once: event batches over HTTP, Event Hubs deliveries through
/// the ingestion code (redelivered with overlapping boundaries, as a partition's consumer does after a crash),
/// recommendations, Personalizer rank, reward and deferred activation, user deletions, and a retraining with the gate.
/// Faults: a storage outage and added storage latency in the SDK pipeline of the host and of the Event Hubs consumer,
/// and a host restart (SIGTERM, then a new process over the same storage). A client retries a failed request with the
/// same body, as a client must for exactly-once.
/// </summary>
/// <remarks>
/// At the end (host stopped, the deleted users purged) it reads storage and reconciles: every accepted event of a user
/// not deleted is in the log once; impressions served equal impressions logged; every reward the API took is on its rank;
/// no deleted user's event ingested before the deletion remains; no model the gate refused was served.
/// </remarks>
internal static class SoakBenchmark
{
    private static readonly Option<double> Minutes = new("--minutes") { Description = "Wall-clock minutes", DefaultValueFactory = _ => 30 };
    private static readonly Option<string> World = new("--world") { Description = "Synthetic world options", DefaultValueFactory = _ => "users=300,items=80,seed=7" };
    private static readonly Option<string> Training = new("--training") { Description = "Settings passed to training-job retrain", DefaultValueFactory = _ => "--epochs 4 --evaluateEvery 2 --dimension 16 --blocks 1 --maxLength 20 --policy.iterations 15 --policy.episodesPerIteration 64" };
    private static readonly Option<string> Storage = BenchmarkCommand.StorageConnection();
    private static readonly Option<int> PaceMs = new("--pace-ms") { Description = "Mean pause between a client's requests (ms)", DefaultValueFactory = _ => 50 };
    private static readonly Option<bool> Check = new("--check") { Description = "Exit 1 unless reconciled with no 5xx" };

    public static Command Command() => BenchmarkCommand.Create("soak", "Everything at once with faults injected, then reconciled (starts the Release local host)", RunAsync, Minutes, World, Training, Storage, PaceMs, Check);

    private sealed class Tally
    {
        public readonly ConcurrentDictionary<string, string> AcceptedEvents = new(); // event id -> user
        public readonly ConcurrentDictionary<string, int> ServedImpressions = new(); // recommendation or rank event id -> items shown
        public readonly ConcurrentDictionary<string, string> ServedTo = new(); // recommendation or rank event id -> user
        public readonly ConcurrentDictionary<string, string> Rewarded = new(); // rank event id -> user
        public readonly ConcurrentDictionary<string, int> ModelsServed = new();
        public readonly ConcurrentDictionary<string, DateTimeOffset> Deleted = new();
        public readonly ConcurrentDictionary<string, int> ServerErrors = new(); // "route status" -> count
        public readonly ConcurrentQueue<string> Faults = new();
        public readonly ConcurrentQueue<JsonObject> Trainings = new();
        public readonly ConcurrentDictionary<string, int> GaveUp = new(); // route -> requests unanswered after a minute of retries
        public readonly ConcurrentDictionary<string, double> SlowestMilliseconds = new(); // route -> slowest answered attempt
        public long Requests;
        public long Retries;
    }

    private static async Task<int> RunAsync(ParseResult parse, string outDir)
    {
        var minutes = parse.GetValue(Minutes);
        var duration = TimeSpan.FromMinutes(minutes);
        var world = new SyntheticWorld(SyntheticWorldOptions.Parse(parse.GetValue(World)!));
        // A small model and a short PPO stage: the soak tests the loop under load, not the model (the retraining benchmark does).
        var training = parse.GetValue(Training)!;
        var storage = parse.GetValue(Storage)!;
        // Each client waits this long between its calls: sustained traffic the 2 cores can carry with Azurite and a
        // retraining beside it (unpaced, the clients pile millions of impressions into Azurite's memory, and a
        // snapshot of them stalls every other request; the serving benchmarks measure the top speed).
        var pace = TimeSpan.FromMilliseconds(parse.GetValue(PaceMs));
        var tag = "soak" + Guid.NewGuid().ToString("N")[..8];
        var layout = StorageLayout.Default.WithNamespace(tag);
        var log = Path.GetFullPath(Path.Combine(outDir, $"soak-host-{tag}.log"));
        var clock = Stopwatch.StartNew();
        var tally = new Tally();

        // The product's data before the traffic: the world's catalog, profiles and organic history.
        var ingestion = IngestionServices.Connect(storage, layout);
        await ingestion.EnsureCreatedAsync();
        await Recommender.TrainingJob.IngestionTraffic.SendAsync(ingestion, world.Options, progress: null);
        string[] hostSettings = ["--Logging:LogLevel:Default=Warning", "--Logging:LogLevel:Recommender=Information", "--AzureWebJobsStorage", storage, "--Storage:Namespace", tag, "--Storage:FaultInjection", "true",
            "--TrainingJob:Launcher", "local", "--TrainingJob:Command", $"dotnet {Path.Combine(AppContext.BaseDirectory, "training-job.dll")}", "--TrainingJob:Settings", training,
            "--Retraining:PollInterval", "00:00:02", "--Retraining:RetryBackoff", "00:00:05", "--Retraining:JobTimeout", "00:20:00"];
        var host = await LocalHostProcess.StartAsync(hostSettings, log);
        var url = host.Url;
        using var http = new HttpClient { BaseAddress = url, Timeout = TimeSpan.FromSeconds(30) };
        Console.WriteLine($"soak: {minutes} min against {url} (storage namespace {tag}, host log {log}); first training");
        await TrainAsync(http, tally, "initial");

        // The Event Hubs consumer: this process, as another instance would be, with faults of its own in its storage pipeline.
        var consumerFaults = new InjectedStorageFaults();
        var consumer = IngestionServices.Connect(storage, layout, consumerFaults);

        var users = Enumerable.Range(0, world.Options.Users).Select(SyntheticWorld.UserId).ToArray();
        var deletable = new ConcurrentQueue<string>(users.Skip(users.Length * 5 / 6));
        var active = new ConcurrentDictionary<string, bool>(users.Select(u => KeyValuePair.Create(u, true)));
        var items = Enumerable.Range(0, world.Options.Items).Select(i => $"item{i}").ToArray();
        using var stop = new CancellationTokenSource(duration);
        var restarting = new SemaphoreSlim(1);

        string RandomUser(Random random)
        {
            while (true)
            {
                var user = users[random.Next(users.Length)];
                if (active.ContainsKey(user))
                    return user;
            }
        }

        // A client: the same request again after a connection failure, a timeout or a 503, for up to a minute; then it gives
        // up on that request (counted, status 0) and goes on, as a real client would.
        async Task<(HttpStatusCode Status, string Body)> SendAsync(string route, Func<HttpRequestMessage> request)
        {
            var deadline = Stopwatch.GetTimestamp() + Stopwatch.Frequency * 60;
            for (var attempt = 0; ; attempt++)
            {
                Interlocked.Increment(ref tally.Requests);
                if (attempt > 0)
                    Interlocked.Increment(ref tally.Retries);
                var started = Stopwatch.GetTimestamp();
                try
                {
                    using var response = await http.SendAsync(request());
                    var body = await response.Content.ReadAsStringAsync();
                    var milliseconds = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                    tally.SlowestMilliseconds.AddOrUpdate(route, milliseconds, (_, m) => Math.Max(m, milliseconds));
                    if ((int)response.StatusCode >= 500)
                        tally.ServerErrors.AddOrUpdate($"{route} {(int)response.StatusCode}", 1, (_, n) => n + 1);
                    if (response.StatusCode != HttpStatusCode.ServiceUnavailable || Stopwatch.GetTimestamp() > deadline)
                        return (response.StatusCode, body);
                }
                catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
                {
                    // The host restarting, or storage latency past the client's timeout: try again, for a minute.
                    if (Stopwatch.GetTimestamp() > deadline)
                    {
                        if (tally.GaveUp.AddOrUpdate(route, 1, (_, n) => n + 1) == 1)
                            Console.WriteLine($"  {clock.Elapsed:mm\\:ss}: {route} unanswered for a minute ({ex.GetType().Name}: {ex.Message}); the client goes on");
                        return (0, "");
                    }
                }
                await Task.Delay(200 + Random.Shared.Next(200));
            }
        }

        async Task HttpIngestionAsync(int worker)
        {
            var random = new Random(100 + worker);
            for (var batch = 0; !stop.IsCancellationRequested; batch++)
            {
                var events = Enumerable.Range(0, 50).Select(i => new WireEvent
                {
                    SchemaVersion = 1, EventId = $"soak-h{worker}-{batch}-{i}", UserId = RandomUser(random), ItemId = items[random.Next(items.Length)],
                    Type = random.Next(3) == 0 ? "view" : "click", Timestamp = DateTimeOffset.UtcNow,
                }).ToList();
                var body = "[" + string.Join(",", events.Select(e => Encoding.UTF8.GetString(e.ToUtf8Json()))) + "]";
                var (status, answer) = await SendAsync("POST /api/events", () => new HttpRequestMessage(HttpMethod.Post, "/api/events") { Content = new StringContent(body, Encoding.UTF8, "application/json") });
                if (status == HttpStatusCode.Accepted && JsonNode.Parse(answer)!["rejected"]!.GetValue<int>() == 0)
                    foreach (var e in events)
                        tally.AcceptedEvents[e.EventId!] = e.UserId!;
                // Ten times the pace: each batch is a log blob, and Azurite's blob collector walks all of them every 10 minutes.
                await Delay(pace * 10, stop.Token);
            }
        }

        async Task EventHubsAsync()
        {
            var random = new Random(7);
            long sequence = 0, committed = -1;
            var messages = new List<EventHubsMessage>();
            while (!stop.IsCancellationRequested)
            {
                for (var i = 0; i < 50; i++, sequence++)
                {
                    var e = new WireEvent { SchemaVersion = 1, EventId = $"soak-e-{sequence}", UserId = RandomUser(random), ItemId = items[random.Next(items.Length)], Type = "click", Timestamp = DateTimeOffset.UtcNow };
                    messages.Add(new EventHubsMessage(e.ToUtf8Json(), sequence, DateTimeOffset.UtcNow));
                    tally.AcceptedEvents[e.EventId!] = e.UserId!; // in the hub: the consumer must log it, however often it fails
                }
                // A delivery from the last checkpoint, sometimes overlapping what was already ingested (a redelivery after a crash).
                var from = random.Next(5) == 0 ? Math.Max(0, committed - 20) : committed + 1;
                while (true)
                {
                    try
                    {
                        await consumer.Ingestor.IngestAsync(new EventHubsDelivery("$Default", "0", [.. messages.Where(m => m.SequenceNumber >= from)]));
                        committed = messages[^1].SequenceNumber;
                        messages.Clear();
                        break;
                    }
                    catch (Exception ex) when (ex is Azure.RequestFailedException or PartitionBusyException or AggregateException)
                    {
                        // The Functions host retries a failed batch without limit; the redelivery may start earlier.
                        await Task.Delay(500);
                        from = Math.Max(0, committed - random.Next(30));
                    }
                }
                await Task.Delay(200);
            }
        }

        async Task RecommendationsAsync(int worker)
        {
            var random = new Random(200 + worker);
            while (!stop.IsCancellationRequested)
            {
                var user = RandomUser(random);
                await Delay(pace, stop.Token);
                var (status, body) = await SendAsync("GET recommendations", () => new HttpRequestMessage(HttpMethod.Get, $"/api/users/{user}/recommendations?k=5"));
                if (status != HttpStatusCode.OK)
                    continue;
                var answer = JsonNode.Parse(body)!;
                var id = (string)answer["recommendationId"]!;
                tally.ServedImpressions[id] = answer["items"]!.AsArray().Count;
                tally.ServedTo[id] = user;
                tally.ModelsServed.AddOrUpdate((string?)answer["modelVersion"] ?? "none", 1, (_, n) => n + 1);
            }
        }

        async Task PersonalizerAsync(int worker)
        {
            var random = new Random(300 + worker);
            for (var n = 0; !stop.IsCancellationRequested; n++)
            {
                await Delay(pace, stop.Token);
                var user = RandomUser(random);
                var eventId = $"soak-r{worker}-{n}";
                var deferred = n % 5 == 0;
                var actions = items.OrderBy(_ => random.Next()).Take(5).Select(i => new { id = i, features = new[] { new { kind = i[^1..] } } });
                var request = JsonSerializer.Serialize(new { contextFeatures = new object[] { new { userId = user } }, actions, eventId, deferActivation = deferred });
                var (status, body) = await SendAsync("POST rank", () => new HttpRequestMessage(HttpMethod.Post, "/personalizer/v1.0/rank") { Content = new StringContent(request, Encoding.UTF8, "application/json") });
                if (status == HttpStatusCode.BadRequest && body.Contains("already used", StringComparison.Ordinal))
                    continue; // an attempt whose answer was lost had ranked it: its impressions are unknown here, so it is left out of both counts
                if (status != HttpStatusCode.Created && status != HttpStatusCode.OK)
                    continue;
                var shown = JsonNode.Parse(body)!["ranking"]!.AsArray().Count(r => (double)r!["probability"]! > 0);
                if (deferred)
                {
                    if (random.Next(2) == 0)
                        continue; // never activated: nothing shown, nothing logged
                    var (activated, _) = await SendAsync("POST activate", () => new HttpRequestMessage(HttpMethod.Post, $"/personalizer/v1.0/events/{eventId}/activate"));
                    if (activated != HttpStatusCode.NoContent)
                        continue;
                }
                tally.ServedImpressions[eventId] = shown;
                tally.ServedTo[eventId] = user;
                if (random.Next(10) < 7)
                {
                    var (rewarded, _) = await SendAsync("POST reward", () => new HttpRequestMessage(HttpMethod.Post, $"/personalizer/v1.0/events/{eventId}/reward") { Content = new StringContent("{\"value\":1}", Encoding.UTF8, "application/json") });
                    if (rewarded == HttpStatusCode.NoContent)
                        tally.Rewarded[eventId] = user;
                }
            }
        }

        async Task DeletionsAsync()
        {
            var every = duration / (deletable.Count + 1);
            while (!stop.IsCancellationRequested && deletable.TryDequeue(out var user))
            {
                await Delay(every, stop.Token);
                active.TryRemove(user, out _);
                var (status, body) = await SendAsync("DELETE user", () => new HttpRequestMessage(HttpMethod.Delete, $"/api/users/{user}"));
                while (status == 0) // a deletion is idempotent: asked again until answered, so the reconciliation knows the user is gone
                    (status, body) = await SendAsync("DELETE user", () => new HttpRequestMessage(HttpMethod.Delete, $"/api/users/{user}"));
                if (status == HttpStatusCode.Accepted)
                    tally.Deleted[user] = DateTimeOffset.Parse((string)JsonNode.Parse(body)!["deletedAt"]!, CultureInfo.InvariantCulture);
            }
        }

        async Task FaultsAndTrainingAsync()
        {
            await Delay(duration * 0.20, stop.Token);
            await http.PostAsync("/_faults/outage?seconds=5", null);
            consumerFaults.StartOutage(TimeSpan.FromSeconds(5));
            tally.Faults.Enqueue($"storage outage, 5 s, at {clock.Elapsed.TotalSeconds:F0} s");
            await Delay(duration * 0.10, stop.Token);
            await http.PostAsync("/_faults/latency?ms=100&seconds=10", null);
            consumerFaults.AddLatency(TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(10));
            tally.Faults.Enqueue($"storage latency +100 ms, 10 s, at {clock.Elapsed.TotalSeconds:F0} s");
            await Delay(duration * 0.10, stop.Token);
            tally.Faults.Enqueue($"host restart (SIGTERM, new process), at {clock.Elapsed.TotalSeconds:F0} s");
            await host.StopAsync();
            await host.DisposeAsync();
            host = await LocalHostProcess.StartAsync(hostSettings, log, url);
            await Delay(duration * 0.10, stop.Token);
            // Under traffic, on what the traffic logged: the gate decides, and the clients then see which model is served.
            await TrainAsync(http, tally, "mid-run");
        }

        var workers = new List<Task> { EventHubsAsync(), DeletionsAsync(), FaultsAndTrainingAsync() };
        workers.AddRange(Enumerable.Range(0, 2).Select(HttpIngestionAsync));
        workers.AddRange(Enumerable.Range(0, 3).Select(RecommendationsAsync));
        workers.AddRange(Enumerable.Range(0, 3).Select(PersonalizerAsync));
        using (var progress = new PeriodicTimer(TimeSpan.FromSeconds(30)))
        {
            var all = Task.WhenAll(workers);
            while (await Task.WhenAny(all, progress.WaitForNextTickAsync().AsTask()) != all)
                Console.WriteLine($"  {clock.Elapsed:mm\\:ss}: {tally.Requests:N0} requests ({tally.Retries:N0} retries), {tally.AcceptedEvents.Count:N0} events accepted, {tally.ServedImpressions.Count:N0} slates served, {tally.Deleted.Count} deletions, {tally.ServerErrors.Values.Sum()} 5xx, {tally.GaveUp.Values.Sum()} unanswered");
            await all;
        }
        var trafficSeconds = clock.Elapsed.TotalSeconds;

        // The end: the host stopped as a platform stops it (its sinks flushed), the deleted users purged, storage read.
        await host.StopAsync();
        await host.DisposeAsync();
        await using var serving = ServingServices.Connect(storage, ingestion, "models-" + tag, "RankEvents" + tag, purge: new UserDataPurgeOptions { Grace = TimeSpan.Zero });
        var purge = await serving.PurgeDeletedUsersAsync();

        var logged = new List<EventLogRecord>();
        await foreach (var blob in ingestion.EventLog.ListBlobsAsync())
            logged.AddRange(await ingestion.EventLog.ReadBlobAsync(blob.Name));
        var kept = tally.AcceptedEvents.Where(e => !tally.Deleted.ContainsKey(e.Value)).Select(e => e.Key).ToHashSet();
        var loggedIds = logged.Where(r => r.EventId.StartsWith("soak-", StringComparison.Ordinal)).GroupBy(r => r.EventId).ToDictionary(g => g.Key, g => g.Count());
        var lost = kept.Count(id => !loggedIds.ContainsKey(id));
        var duplicated = loggedIds.Values.Sum(n => n - 1);
        var servedToKept = tally.ServedImpressions.Where(s => !tally.Deleted.ContainsKey(tally.ServedTo[s.Key])).ToDictionary(s => s.Key, s => s.Value);
        var impressionsLogged = logged.Count(r => r.Type == "impression" && r.RecommendationId is { } id && servedToKept.ContainsKey(id));
        var deletedRemaining = logged.Count(r => tally.Deleted.TryGetValue(r.UserId, out var at) && r.IngestedAt <= at.UtcDateTime);
        var rewardedKept = tally.Rewarded.Where(r => !tally.Deleted.ContainsKey(r.Value)).Select(r => r.Key).ToList();
        var unjoined = 0;
        foreach (var eventId in rewardedKept)
        {
            var rank = await serving.RankEvents.GetEntityIfExistsAsync<TableEntity>(TableKeys.UserBucket(eventId), TableKeys.Encode(eventId));
            if (!rank.HasValue || rank.Value!.GetDouble("Reward") is null)
                unjoined++;
        }
        var refused = tally.Trainings.Where(t => (string?)t["result"] != "Promoted" && t["candidate_version"] is not null).Select(t => (string)t["candidate_version"]!).ToHashSet();
        var servedRefused = tally.ModelsServed.Keys.Count(refused.Contains);

        var result = new JsonObject
        {
            ["name"] = "soak",
            ["created"] = DateTime.UtcNow.ToString("O", CultureInfo.InvariantCulture),
            ["machine"] = BenchmarkMachine.Describe(),
            ["protocol"] = new JsonObject
            {
                ["target"] = $"the Release local host over Azurite (storage namespace {tag}), with Storage:FaultInjection; this process as the Event Hubs consumer",
                ["world"] = world.Options.ToString(),
                ["traffic"] = $"2 HTTP ingestion clients (batches of 50 events, 10 paces apart), 1 Event Hubs partition (deliveries of 50, one in five redelivered from before the checkpoint, failed ones redelivered from up to 30 earlier), 3 recommendation clients (k=5), 3 Personalizer clients (rank 5 actions, one in five deferred and half of those activated, 70% rewarded), one deletion every duration/(n+1) of the last sixth of the users; a client retries a failed request with the same body for up to 60 s, then gives up on it (counted) and goes on; each client waits {pace.TotalMilliseconds} ms between calls",
                ["faults"] = "a 5 s storage outage at 20% of the run (host and consumer), +100 ms on every storage request for 10 s at 30%, a host restart (SIGTERM, new process) at 40%, a retraining started at 50% (the soak waits for its verdict)",
                ["reconciliation"] = "after SIGTERM and a purge: accepted event ids of users not deleted against event-log rows; impressions served to users not deleted against impression rows with their recommendation or rank id; every reward answered 204 against its rank record",
            },
            ["duration_seconds"] = Math.Round(trafficSeconds),
            ["requests"] = tally.Requests,
            ["client_retries"] = tally.Retries,
            ["events_accepted"] = kept.Count,
            ["events_logged"] = kept.Count(loggedIds.ContainsKey),
            ["lost"] = lost,
            ["duplicated"] = duplicated,
            ["impressions_served"] = servedToKept.Values.Sum(),
            ["impressions_logged"] = impressionsLogged,
            ["rewards"] = rewardedKept.Count,
            ["unjoined_rewards"] = unjoined,
            ["deleted_users"] = tally.Deleted.Count,
            ["deleted_user_events_remaining"] = deletedRemaining,
            ["purge"] = JsonSerializer.SerializeToNode(purge.Removed),
            ["server_errors"] = tally.ServerErrors.Values.Sum(),
            ["server_errors_by_route"] = JsonSerializer.SerializeToNode(tally.ServerErrors.OrderBy(e => e.Key).ToDictionary()),
            ["client_gave_up_by_route"] = JsonSerializer.SerializeToNode(tally.GaveUp.OrderBy(e => e.Key).ToDictionary()),
            ["slowest_answer_ms_by_route"] = JsonSerializer.SerializeToNode(tally.SlowestMilliseconds.OrderBy(e => e.Key).ToDictionary(e => e.Key, e => Math.Round(e.Value))),
            ["faults_injected"] = new JsonArray([.. tally.Faults.Select(f => (JsonNode)f)]),
            ["trainings"] = new JsonArray([.. tally.Trainings]),
            ["models_served"] = JsonSerializer.SerializeToNode(tally.ModelsServed.OrderBy(m => m.Key).ToDictionary()),
            ["refused_models_served"] = servedRefused,
            ["goal"] = "0 lost, 0 duplicated, 0 unjoined rewards, 0 5xx on valid requests, impressions logged = served, no deleted user's event left, no refused model served; with a storage outage and a host restart in the run",
        };
        var path = Path.Combine(outDir, "soak.json");
        await File.WriteAllTextAsync(path, result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        Console.WriteLine($"soak: {kept.Count:N0} events accepted, {lost} lost, {duplicated} duplicated; impressions served {servedToKept.Values.Sum():N0}, logged {impressionsLogged:N0}; " +
            $"{unjoined} unjoined rewards; {tally.ServerErrors.Values.Sum()} 5xx; {deletedRemaining} deleted users' events left; {servedRefused} refused models served -> {path}");
        var reconciled = lost == 0 && duplicated == 0 && unjoined == 0 && deletedRemaining == 0 && servedRefused == 0 && impressionsLogged == servedToKept.Values.Sum();
        return parse.GetValue(Check) && !(reconciled && tally.ServerErrors.IsEmpty && tally.GaveUp.IsEmpty) ? 1 : 0;
    }

    private static async Task Delay(TimeSpan delay, CancellationToken stop)
    {
        try
        {
            await Task.Delay(delay, stop);
        }
        catch (OperationCanceledException)
        {
            // The run is over.
        }
    }

    /// <summary>
    /// POST /api/training (or, answered 409, the run it collided with) and its status until the run ends or 20 minutes
    /// pass; the outcome goes into the tally. A restart of the in-memory local host loses a run: then its id is unknown.
    /// </summary>
    private static async Task TrainAsync(HttpClient http, Tally tally, string when)
    {
        string? instance = null;
        for (var attempt = 0; instance is null; attempt++)
        {
            try
            {
                using var start = await http.PostAsync("/api/training", null);
                instance = (string?)JsonNode.Parse(await start.Content.ReadAsStringAsync())?["instanceId"];
                if (instance is null && attempt >= 30)
                    throw new InvalidOperationException($"POST /api/training answered {(int)start.StatusCode}");
            }
            catch (HttpRequestException) when (attempt < 30)
            {
            }
            if (instance is null)
                await Task.Delay(2_000);
        }
        var deadline = Stopwatch.StartNew();
        string? last = null;
        while (true)
        {
            await Task.Delay(2_000);
            JsonNode status;
            try
            {
                using var response = await http.GetAsync($"/api/training/{instance}");
                var body = await response.Content.ReadAsStringAsync();
                if (response.StatusCode == HttpStatusCode.NotFound)
                {
                    tally.Trainings.Enqueue(new JsonObject { ["when"] = when, ["instance"] = instance, ["status"] = "lost (404 after a restart of the host)" });
                    Console.WriteLine($"  training ({when}): run {instance} is unknown to the host");
                    return;
                }
                status = JsonNode.Parse(body)!;
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or JsonException)
            {
                continue;
            }
            var runtime = (string?)status["status"];
            if (runtime != last)
                Console.WriteLine($"  training ({when}): run {instance} {runtime}");
            last = runtime;
            if (runtime is "Pending" or "Running" && deadline.Elapsed < TimeSpan.FromMinutes(20))
                continue;
            var outcome = status["outcome"];
            var record = new JsonObject
            {
                ["when"] = when,
                ["instance"] = instance,
                ["status"] = runtime,
                ["seconds"] = Math.Round(deadline.Elapsed.TotalSeconds),
                ["result"] = outcome?["result"]?.ToString(),
                ["reason"] = outcome?["reason"]?.ToString() ?? status["failure"]?.ToString(),
                ["candidate_version"] = outcome?["candidateVersion"]?.ToString(),
            };
            tally.Trainings.Enqueue(record);
            Console.WriteLine($"  training ({when}): {record["status"]} {record["result"]}: {record["reason"]} ({record["seconds"]} s)");
            return;
        }
    }
}
