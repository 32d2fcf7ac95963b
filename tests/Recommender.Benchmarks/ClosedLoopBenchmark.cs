using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Recommender.Data;
using Recommender.Ingestion;
using Recommender.Storage;

/// <summary>
/// The product's learning loop closed over HTTP, with the synthetic world as the users: each round, world users
/// (the ground truth) ask for recommendations (<c>GET /api/users/{id}/recommendations?k=5&amp;sessionId=...</c>) and
/// answer the served slates through <c>POST /api/events</c> (a click on what they pick); then the orchestration
/// retrains (<c>POST /api/training</c>: snapshot, training job, gate, promotion) and the next round is served by
/// whatever it promoted. Each round records the model served, its path, the true return per session from the
/// world, and the gate's off-policy estimate of that model with its effective sample size.
/// </summary>
/// <remarks>
/// Without <c>--url</c> it sets up a product of its own in the running Azurite (every container and table tagged,
/// <c>Storage:Namespace</c>): the world's catalog, profiles and organic history sent through ingestion, the local
/// host started with the real training job, and a first training (round 0's model, the supervised one).
/// Users keep their state (taste, fatigue) from round to round; a session starts satisfied.
/// </remarks>
internal static class ClosedLoopBenchmark
{
    private static readonly Option<string> World = new("--world") { Description = "Synthetic world options", DefaultValueFactory = _ => "users=1000,items=500,seed=7,clickbait=0.1" };
    private static readonly Option<int> Rounds = new("--rounds") { Description = "Rounds", DefaultValueFactory = _ => 3 };
    // 1,000 a round: with 500 the simulator, PPO and the gate's held-out sessions had half the data, and the gain stopped
    // growing after the first round (README, the learning loop's results).
    private static readonly Option<int> Sessions = new("--sessions") { Description = "Sessions served per round", DefaultValueFactory = _ => 1000 };
    private static readonly Option<int> Seed = new("--seed") { Description = "Random seed", DefaultValueFactory = _ => 1 };
    private static readonly Option<int> Concurrency = new("--concurrency") { Description = "Requests in flight", DefaultValueFactory = _ => 8 };
    private static readonly Option<int> EvaluationSessions = new("--evaluation-sessions") { Description = "In-process sessions per model when judging a round", DefaultValueFactory = _ => 4000 };
    private static readonly Option<string> Training = new("--training") { Description = "Settings passed to training-job retrain", DefaultValueFactory = _ => "--epochs 30 --evaluateEvery 10 --dimension 32 --blocks 2 --maxLength 30 --dropout 0.2 --learningRate 0.003" };
    private static readonly Option<string> Storage = BenchmarkCommand.StorageConnection();
    private static readonly Option<string> Url = new("--url") { Description = "A running host to use instead of starting one", DefaultValueFactory = _ => "" };
    private static readonly Option<string> Namespace = new("--namespace") { Description = "Storage namespace of an existing host", DefaultValueFactory = _ => "" };
    private static readonly Option<string> Name = BenchmarkCommand.ResultName("closed-loop");

    public static Command Command() => BenchmarkCommand.Create("closed-loop", "The learning loop over HTTP: world users answer what is served, the orchestration retrains, round after round", RunAsync, World, Rounds, Sessions, Seed, Concurrency, EvaluationSessions, Training, Storage, Url, Namespace, Name);

    private const int SlateSize = 5;
    private const int MaxSessionSteps = 30;
    private static readonly TimeSpan SessionIdle = TimeSpan.FromSeconds(5);

    private static async Task RunAsync(ParseResult parse, string outDir)
    {
        var worldText = parse.GetValue(World)!;
        var world = new SyntheticWorld(SyntheticWorldOptions.Parse(worldText));
        var rounds = parse.GetValue(Rounds);
        var sessionsPerRound = parse.GetValue(Sessions);
        var seed = parse.GetValue(Seed);
        var concurrency = parse.GetValue(Concurrency);
        var evaluationSessions = parse.GetValue(EvaluationSessions);
        var training = parse.GetValue(Training)!;
        var clock = Stopwatch.StartNew();

        var storage = parse.GetValue(Storage)!;
        await using var host = parse.GetValue(Url)! is { Length: > 0 } url
            ? LocalHost.Existing(new Uri(url), storage, parse.GetValue(Namespace)!)
            : await LocalHost.StartAsync(world, storage, training, outDir);
        using var http = new HttpClient { BaseAddress = host.Url, Timeout = TimeSpan.FromMinutes(2) };
        if (host.Started)
        {
            Console.WriteLine("round 0's model: the first training on the organic history");
            var first = await TrainAsync(http);
            Console.WriteLine($"  {first["result"]}: {first["reason"]}");
            await WaitUntilServedAsync(http, (string?)first["candidate_version"]);
        }

        // Round 0's model, to measure every later one against on the same users at the same moment: the world's users
        // change from round to round (tastes drift, fatigue carries over), so its return at round 0 is not a fixed mark.
        using var baseline = await LoadServedModelAsync(host);
        var users = world.UsersAfterHistory().Select(SyntheticWorld.Clone).ToArray();
        var servedSessions = new Dictionary<string, ServedSession>(StringComparer.Ordinal);
        var results = new JsonArray();
        JsonObject? lastTraining = null;
        for (var round = 0; round <= rounds; round++)
        {
            using var current = await LoadServedModelAsync(host);
            var evaluation = Evaluate(current, baseline, world, await CaptureAsync(host.Ingestion, users), evaluationSessions, HashCode.Combine(seed, round));
            var served = await ServeRoundAsync(http, host.Ingestion, world, users, round, sessionsPerRound, seed, concurrency, servedSessions);
            var entry = new JsonObject
            {
                ["round"] = round,
                ["model_version"] = served.Versions.Count == 1 ? served.Versions.Single() : string.Join(",", served.Versions),
                ["path"] = string.Join(",", served.Paths),
                ["true_return"] = served.Return.Mean,
                ["true_return_ci95"] = served.Return.HalfWidth,
                ["evaluation"] = new JsonObject
                {
                    ["sessions"] = evaluationSessions, ["return"] = evaluation.Served.Mean, ["return_ci95"] = evaluation.Served.HalfWidth,
                    ["round0_model_return"] = evaluation.Baseline.Mean, ["round0_model_return_ci95"] = evaluation.Baseline.HalfWidth,
                },
                ["gain_over_round0_model"] = evaluation.Gain,
                ["gain_over_round0_model_ci95"] = evaluation.GainHalfWidth,
                ["sessions"] = served.Return.Samples,
                ["decisions"] = served.Decisions,
                ["click_rate"] = served.Clicks / (double)served.Decisions,
                ["seconds"] = Math.Round(served.Seconds, 1),
            };
            // The replay the gate's estimates are held against, checked on the round's own sessions: each started again in
            // process from its user as the session found it should earn what it earned over HTTP, up to sampling.
            var roundSessions = servedSessions.Where(s => s.Key.StartsWith($"r{round}-", StringComparison.Ordinal)).Select(s => s.Value).ToList();
            var replayed = Recommender.Training.Reinforcement.Estimate.Of(Replay(current, world, roundSessions.Select(s => s.Start).ToList(), Replicated(evaluationSessions, roundSessions.Count), HashCode.Combine(seed, round, 23)));
            entry["replay_check"] = new JsonObject
            {
                ["realized"] = served.Return.Mean, ["realized_ci95"] = served.Return.HalfWidth, ["replayed"] = replayed.Mean, ["replayed_ci95"] = replayed.HalfWidth,
                ["relative_difference"] = replayed.Mean / served.Return.Mean - 1,
            };
            // The gate's estimate of the model now serving, from the training that promoted (or kept) it.
            var judged = lastTraining is null ? null : (string?)lastTraining["result"] == "Promoted" ? "candidate" : "champion";
            entry["ope_reward"] = judged is null ? null : lastTraining!["verdict"]?[judged]?["rl.ope_reward"]?.DeepClone();
            entry["ess"] = judged is null ? null : lastTraining!["verdict"]?[judged]?["rl.ope_ess"]?.DeepClone();
            // And how far it was from that model's true return on the sessions it was estimated from.
            entry["ope_relative_error"] = judged is null ? null : lastTraining!["ope_relative_error"]?[judged]?.DeepClone();
            entry["training_before"] = lastTraining?.DeepClone();
            results.Add(entry);
            Console.WriteLine(FormattableString.Invariant($"round {round}: model {entry["model_version"]} ({entry["path"]}), true return per session over HTTP {served.Return}; in process {evaluation.Served} against round 0's model's {evaluation.Baseline} ({evaluation.Gain:+0.0%;-0.0%} ± {evaluation.GainHalfWidth:0.0%}), ") +
                FormattableString.Invariant($"{served.Decisions} decisions, gate's estimate {entry["ope_reward"]?.ToJsonString() ?? "-"} (ESS {entry["ess"]?.ToJsonString() ?? "-"})  [{served.Seconds:F0} s]"));
            Console.WriteLine(FormattableString.Invariant($"  the round's sessions replayed in process from their starts: {replayed} (over HTTP {served.Return})"));
            if (round == rounds)
                break;
            await Task.Delay(SessionIdle + TimeSpan.FromSeconds(1)); // the round's last sessions close before the snapshot
            // The users as this round left them, the population the next round serves.
            var loggedUsers = await CaptureAsync(host.Ingestion, users);
            lastTraining = await TrainAsync(http);
            Console.WriteLine($"  retraining: {lastTraining["result"]}: {lastTraining["reason"]}  [{lastTraining["seconds"]} s]");
            if ((string?)lastTraining["candidate_version"] is { } candidateVersion)
            {
                using var candidate = await LoadModelAsync(host, candidateVersion);
                lastTraining["rl_seconds"] = candidate.Manifest.Metrics?["rl.seconds"]?.DeepClone(); // the RL stage's time, stage by stage
                // The gate's paired estimate of the candidate's gain over the champion, and every estimator of both (rl.ope).
                lastTraining["ope_gain"] = candidate.Manifest.Metrics?[Recommender.ModelContract.MetricKeys.OffPolicyGain]?.DeepClone();
                lastTraining["ope_estimators"] = new JsonObject
                {
                    ["candidate"] = candidate.Manifest.Metrics?["rl.ope"]?.DeepClone(),
                    ["champion"] = candidate.Manifest.Metrics?[Recommender.ModelContract.MetricKeys.Champion]?["rl.ope"]?.DeepClone(),
                };
                // The truth the gate's estimates are about: each model's expected return on the held-out sessions they read, each
                // session started again many times from its user as it was then (hidden state, online history). Both models
                // on the same random numbers; the population's return beside it.
                var heldOut = await HeldOutSessionsAsync(host, candidateVersion, servedSessions);
                var truth = Evaluate(candidate, current, world, heldOut.Select(s => s.Start).ToList(), Replicated(evaluationSessions, heldOut.Count), HashCode.Combine(seed, round, 17));
                var population = Evaluate(candidate, current, world, loggedUsers, evaluationSessions, HashCode.Combine(seed, round, 19));
                lastTraining["true_return_on_held_out_sessions"] = new JsonObject
                {
                    ["sessions"] = heldOut.Count, ["replicates_per_session"] = heldOut.Count == 0 ? 0 : Replicated(evaluationSessions, heldOut.Count) / heldOut.Count,
                    ["candidate"] = truth.Served.Mean, ["candidate_ci95"] = truth.Served.HalfWidth, ["champion"] = truth.Baseline.Mean, ["champion_ci95"] = truth.Baseline.HalfWidth,
                    // What the champion earned on those sessions over HTTP: the one draw of each that the estimates saw.
                    ["champion_realized"] = heldOut.Count == 0 ? null : heldOut.Average(s => s.Return),
                    ["gain"] = heldOut.Count == 0 ? null : truth.Gain, ["gain_ci95"] = heldOut.Count == 0 ? null : truth.GainHalfWidth,
                };
                lastTraining["true_return_after_round"] = new JsonObject
                {
                    ["sessions"] = evaluationSessions, ["candidate"] = population.Served.Mean, ["candidate_ci95"] = population.Served.HalfWidth,
                    ["champion"] = population.Baseline.Mean, ["champion_ci95"] = population.Baseline.HalfWidth,
                };
                double? Error(string who, double actual) => (double?)lastTraining["verdict"]?[who]?["rl.ope_reward"] is { } estimate && heldOut.Count > 0 ? estimate / actual - 1 : null;
                lastTraining["ope_relative_error"] = new JsonObject { ["candidate"] = Error("candidate", truth.Served.Mean), ["champion"] = Error("champion", truth.Baseline.Mean) };
                lastTraining["ope_relative_error_to_population"] = new JsonObject { ["candidate"] = Error("candidate", population.Served.Mean), ["champion"] = Error("champion", population.Baseline.Mean) };
                Console.WriteLine(FormattableString.Invariant($"  true return on the {heldOut.Count} held-out sessions the gate read: candidate {truth.Served}, champion {truth.Baseline} (realized over HTTP {lastTraining["true_return_on_held_out_sessions"]!["champion_realized"]?.ToJsonString() ?? "-"}); gate's DR off by {lastTraining["ope_relative_error"]!.ToJsonString()}"));
                Console.WriteLine(FormattableString.Invariant($"  on the population after the round: candidate {population.Served}, champion {population.Baseline}; DR off by {lastTraining["ope_relative_error_to_population"]!.ToJsonString()}"));
            }
            if ((string?)lastTraining["result"] == "Promoted")
                await WaitUntilServedAsync(http, (string?)lastTraining["candidate_version"]);
        }

        var result = new JsonObject
        {
            ["name"] = "closed-loop",
            ["created"] = DateTime.UtcNow.ToString("O", CultureInfo.InvariantCulture),
            ["machine"] = BenchmarkMachine.Describe(),
            ["world"] = worldText,
            ["protocol"] = new JsonObject
            {
                ["sessions_per_round"] = sessionsPerRound, ["slate_size"] = SlateSize, ["max_session_steps"] = MaxSessionSteps, ["session_seed"] = seed,
                ["concurrency"] = concurrency, ["reward"] = "1 per click (the world's user picks one item of the slate or none, by true appeal; may leave after each slate)",
                ["true_return"] = "mean over the round's sessions of the clicks per session, from the world's truth, through the HTTP path",
                ["evaluation"] = "before the round: the model serving and round 0's model, each on the same sessions of copies of the world's users as they are then (online state read from storage, same random numbers), served in process through SlateRanker and logged nowhere",
                ["ope_truth"] = "after a retraining: the candidate and the champion on the held-out sessions the gate's estimates read (the job's ope-sessions.json), each started again from copies of its user as the session found them (hidden state, online history and profile), replicated to about the evaluation's number of sessions, same random numbers for both; ope_relative_error = rl.ope_reward / that - 1. ope_relative_error_to_population holds it against the same models on every world user as the round left them",
                ["replay_check"] = "each round's own sessions started again in process from their captured starts, replicated like ope_truth, with the model that served them; replayed should equal realized up to sampling, or the truth the estimates are held against is off",
                ["users"] = "every world user, chosen at random per session over HTTP; a user's state carries over between sessions and rounds. In process, each user equally often",
                ["training"] = training, ["host"] = host.Description,
            },
            ["rounds"] = results,
            ["return_gain_last_over_round0"] = results.Count > 1 ? (double)results[^1]!["true_return"]! / (double)results[0]!["true_return"]! - 1 : null,
            ["return_gain_last_over_round0_model"] = results[^1]!["gain_over_round0_model"]?.DeepClone(),
            ["seconds"] = Math.Round(clock.Elapsed.TotalSeconds),
        };
        var path = Path.Combine(outDir, parse.GetValue(Name)! + ".json");
        await File.WriteAllTextAsync(path, result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        await File.WriteAllTextAsync(Path.ChangeExtension(path, ".html"), Report(result));
        Console.WriteLine($"wrote {path} and {Path.ChangeExtension(path, ".html")}");
    }

    private sealed record RoundResult(Recommender.Training.Reinforcement.Estimate Return, int Decisions, int Clicks, SortedSet<string> Versions, SortedSet<string> Paths, double Seconds);

    /// <summary>A session served over HTTP: its user as it found them, and what it earned.</summary>
    private sealed record ServedSession(SessionStart Start, double Return);

    /// <summary>
    /// One round of sessions, <paramref name="concurrency"/> at a time, each with a user nobody else is serving at the
    /// moment; every session's start and return is added to <paramref name="served"/> by its session id.
    /// </summary>
    private static async Task<RoundResult> ServeRoundAsync(HttpClient http, IngestionServices ingestion, SyntheticWorld world, WorldUser[] users,
        int round, int sessions, int seed, int concurrency, Dictionary<string, ServedSession> served)
    {
        var clock = Stopwatch.StartNew();
        var returns = new double[sessions];
        int decisions = 0, clicks = 0, next = -1;
        var versions = new SortedSet<string>(StringComparer.Ordinal);
        var paths = new SortedSet<string>(StringComparer.Ordinal);
        var busy = new HashSet<int>();
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
        {
            int n;
            while ((n = Interlocked.Increment(ref next)) < sessions)
            {
                var random = new Random(HashCode.Combine(seed, round, n));
                int u;
                lock (busy)
                {
                    do u = random.Next(users.Length); while (!busy.Add(u));
                }
                try
                {
                    var sessionId = $"r{round}-s{n}";
                    users[u].Satisfaction = 1; // a new visit
                    var start = await CaptureAsync(ingestion, users[u]);
                    var (reward, steps, picked, version, path) = await SessionAsync(http, world, users[u], sessionId, new Random(HashCode.Combine(seed, round, n, 7)));
                    returns[n] = reward;
                    lock (served)
                        served[sessionId] = new ServedSession(start, reward);
                    Interlocked.Add(ref decisions, steps);
                    Interlocked.Add(ref clicks, picked);
                    lock (versions)
                    {
                        versions.Add(version);
                        paths.Add(path);
                    }
                }
                finally
                {
                    lock (busy)
                        busy.Remove(u);
                }
            }
        })));
        return new RoundResult(Recommender.Training.Reinforcement.Estimate.Of(returns), decisions, clicks, versions, paths, clock.Elapsed.TotalSeconds);
    }

    /// <summary>Two models' returns per session on the same users as they are now, with the same random numbers, and the first's gain over the second.</summary>
    private sealed record PairedEvaluation(Recommender.Training.Reinforcement.Estimate Served, Recommender.Training.Reinforcement.Estimate Baseline, double Gain, double GainHalfWidth);

    /// <summary>A copy of a world user as a session finds them: their hidden state, and their online history and profile as storage holds them.</summary>
    private sealed record SessionStart(WorldUser User, List<string> History, string[]? Profile);

    /// <summary>Every world user as they are now.</summary>
    private static async Task<IReadOnlyList<SessionStart>> CaptureAsync(IngestionServices ingestion, WorldUser[] users) =>
        await Task.WhenAll(users.Select(u => CaptureAsync(ingestion, u)));

    private static async Task<SessionStart> CaptureAsync(IngestionServices ingestion, WorldUser user)
    {
        var id = SyntheticWorld.UserId(user.Index);
        var state = await ingestion.UserStates.GetAsync(id);
        var profile = await ingestion.Catalog.GetProfileAsync(id);
        return new SessionStart(SyntheticWorld.Clone(user), (state?.Recent ?? []).Select(r => r.ItemId).ToList(),
            profile is null ? null : Recommender.Events.FeatureTokens.OfProfile(profile.Attributes));
    }

    /// <summary>
    /// The sessions the candidate's off-policy estimates read (the training job publishes their ids beside the version), as
    /// this benchmark served them. The round's own sessions: the estimates read only those the champion logged.
    /// </summary>
    private static async Task<IReadOnlyList<ServedSession>> HeldOutSessionsAsync(LocalHost host, string version, Dictionary<string, ServedSession> served)
    {
        var file = await Registry(host).DownloadTrainingFileAsync(version, Recommender.Training.Reinforcement.ProductPolicyStage.EvaluationSessionsFile);
        if (file is null)
            return [];
        var read = JsonSerializer.Deserialize(file, Recommender.Training.Reinforcement.ReinforcementJsonContext.Default.EvaluatedSessionArray)!;
        var missing = read.Where(s => !served.ContainsKey(s.SessionId)).Select(s => s.SessionId).ToList();
        if (missing.Count > 0)
            throw new InvalidOperationException($"the estimates read {missing.Count} sessions this run did not serve, e.g. {missing[0]}");
        return read.Select(s => served[s.SessionId]).ToList();
    }

    /// <summary>At least <paramref name="sessions"/>, a whole number of times <paramref name="starts"/>: each start replicated equally.</summary>
    private static int Replicated(int sessions, int starts) => starts == 0 ? 0 : (sessions + starts - 1) / starts * starts;

    /// <summary>
    /// Two models on <paramref name="sessions"/> sessions each, in this process and logged nowhere: session s a fresh copy of
    /// start s mod their number (each start equally often), served as the recommendation route serves them
    /// (<see cref="Recommender.Serving.SlateRanker"/>), both models with the same users and random numbers. Many more
    /// sessions than a round serves over HTTP, so the gain is measured precisely.
    /// </summary>
    private static PairedEvaluation Evaluate(Recommender.Serving.PolicyModel served, Recommender.Serving.PolicyModel baseline, SyntheticWorld world, IReadOnlyList<SessionStart> starts, int sessions, int seed)
    {
        if (starts.Count == 0 || sessions == 0)
            return new PairedEvaluation(Recommender.Training.Reinforcement.Estimate.Of([]), Recommender.Training.Reinforcement.Estimate.Of([]), double.NaN, double.NaN);
        var (a, b) = (Replay(served, world, starts, sessions, seed), Replay(baseline, world, starts, sessions, seed));
        var gain = Recommender.Training.Reinforcement.Estimate.Gain(a, b);
        return new PairedEvaluation(Recommender.Training.Reinforcement.Estimate.Of(a), Recommender.Training.Reinforcement.Estimate.Of(b), gain.Mean, gain.HalfWidth);
    }

    /// <summary>
    /// The returns of <paramref name="sessions"/> in-process sessions of <paramref name="model"/>, session s a fresh copy
    /// of start s mod their number; the same <paramref name="seed"/> gives every model the same random numbers.
    /// </summary>
    private static double[] Replay(Recommender.Serving.PolicyModel model, SyntheticWorld world, IReadOnlyList<SessionStart> starts, int sessions, int seed) =>
        Enumerable.Range(0, sessions).Select(s =>
        {
            var start = starts[s % starts.Count];
            return EvaluationSession(model, world, SyntheticWorld.Clone(start.User), start.History, start.Profile, new Random(HashCode.Combine(seed, s, 13)));
        }).ToArray();

    /// <summary>A session of a copy of a user served by <paramref name="model"/> as the recommendation route would serve it, in this process and logged nowhere.</summary>
    private static double EvaluationSession(Recommender.Serving.PolicyModel model, SyntheticWorld world, WorldUser user, IReadOnlyList<string> recent, string[]? profile, Random random)
    {
        user.Satisfaction = 1;
        var history = recent.ToList();
        var userTokens = model.UserTokens(profile);
        var session = new List<IReadOnlyList<int>>();
        double reward = 0;
        for (var step = 0; step < MaxSessionSteps; step++)
        {
            var numbers = model.ItemNumbers(history.TakeLast(UserState.MaxRecentItems));
            var seen = numbers.ToHashSet();
            var ranking = Recommender.Serving.SlateRanker.Rank(model, new Recommender.Serving.RankingInput(numbers, userTokens, session), i => !seen.Contains(i), seen.Count,
                new Recommender.Serving.ExplorationOptions());
            var slate = Recommender.Serving.SlatePolicy.Draw(ranking.Logits, Math.Min(SlateSize, ranking.Candidates.Count), ranking.Exploration, random)
                .Select(c => ranking.Candidates[c.Candidate].Item).ToList();
            var items = slate.Select(i => model.Manifest.ItemIds[i]).ToList();
            var (chosen, left, _) = world.Respond(user, items.Select(SyntheticWorld.ItemIndex).ToList(), random);
            session.Add(slate);
            if (chosen is { } item)
            {
                reward += 1;
                history.Add(SyntheticWorld.ItemId(item));
            }
            if (left)
                break;
        }
        return reward;
    }

    /// <summary>The model serving now (round 0's, before any retraining of this run), loaded from the host's registry.</summary>
    private static async Task<Recommender.Serving.PolicyModel> LoadServedModelAsync(LocalHost host)
    {
        var current = await Registry(host).GetCurrentAsync() ?? throw new InvalidOperationException("no model is being served yet");
        return await LoadModelAsync(host, current.Pointer.Version);
    }

    /// <summary>A published model, served or not, loaded from the host's registry.</summary>
    private static async Task<Recommender.Serving.PolicyModel> LoadModelAsync(LocalHost host, string version)
    {
        var (manifest, policy) = await Registry(host).DownloadAsync(version);
        return Recommender.Serving.PolicyModel.Load(manifest, policy);
    }

    private static Recommender.ModelContract.ModelRegistry Registry(LocalHost host) =>
        new(StorageAccount.Connect(host.Storage).Blobs.GetBlobContainerClient(host.ModelContainer));

    /// <summary>One session of one world user over HTTP: slates until they leave or the session reaches its length.</summary>
    private static async Task<(double Reward, int Steps, int Picked, string Version, string Path)> SessionAsync(HttpClient http, SyntheticWorld world, WorldUser user, string sessionId, Random random)
    {
        var userId = SyntheticWorld.UserId(user.Index);
        double reward = 0;
        int steps = 0, picked = 0;
        string version = "", path = "";
        for (var step = 0; step < MaxSessionSteps; step++)
        {
            using var response = await http.GetAsync($"/api/users/{userId}/recommendations?k={SlateSize}&sessionId={sessionId}");
            response.EnsureSuccessStatusCode();
            var served = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
            (version, path) = ((string)served["modelVersion"]!, (string)served["path"]!);
            var items = served["items"]!.AsArray().Select(i => (string)i!["itemId"]!).ToList();
            var (chosen, left, _) = world.Respond(user, items.Select(SyntheticWorld.ItemIndex).ToList(), random);
            steps++;
            if (chosen is { } item)
            {
                picked++;
                reward += 1;
                var position = items.IndexOf(SyntheticWorld.ItemId(item));
                var click = new JsonArray(new JsonObject
                {
                    ["userId"] = userId, ["itemId"] = SyntheticWorld.ItemId(item), ["type"] = "click", ["timestamp"] = DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture),
                    ["recommendationId"] = (string)served["recommendationId"]!, ["position"] = position, ["sessionId"] = sessionId,
                });
                using var posted = await http.PostAsync("/api/events", new StringContent(click.ToJsonString(), Encoding.UTF8, "application/json"));
                posted.EnsureSuccessStatusCode();
            }
            if (left)
                break;
        }
        return (reward, steps, picked, version, path);
    }

    /// <summary>
    /// Until serving has swapped to <paramref name="version"/> (it checks the registry's pointer every few seconds), so a
    /// round is served by one model: asked for a probe user who has no history, whose impressions training leaves out.
    /// </summary>
    private static async Task WaitUntilServedAsync(HttpClient http, string? version)
    {
        for (var attempt = 0; attempt < 120; attempt++)
        {
            using var response = await http.GetAsync("/api/users/closed-loop-probe/recommendations?k=1");
            if (response.IsSuccessStatusCode && (string?)JsonNode.Parse(await response.Content.ReadAsStringAsync())!["modelVersion"] == version)
                return;
            await Task.Delay(TimeSpan.FromSeconds(1));
        }
        throw new TimeoutException($"serving did not swap to {version} within 2 minutes");
    }

    /// <summary><c>POST /api/training</c>, then its status until the run ends: the outcome, with the gate's figures.</summary>
    private static async Task<JsonObject> TrainAsync(HttpClient http)
    {
        var clock = Stopwatch.StartNew();
        using var start = await http.PostAsync("/api/training", null);
        var started = JsonNode.Parse(await start.Content.ReadAsStringAsync())!;
        if (!start.IsSuccessStatusCode)
            throw new InvalidOperationException($"POST /api/training answered {(int)start.StatusCode}: {started.ToJsonString()}");
        var status = (string)started["statusUri"]!;
        while (true)
        {
            await Task.Delay(TimeSpan.FromSeconds(3));
            var state = JsonNode.Parse(await http.GetStringAsync(new Uri(status).PathAndQuery))!;
            if ((string?)state["status"] is "Running" or "Pending")
                continue;
            var outcome = state["outcome"]?.AsObject() ?? throw new InvalidOperationException($"training ended without an outcome: {state.ToJsonString()}");
            return new JsonObject
            {
                ["result"] = outcome["result"]?.DeepClone(),
                ["reason"] = outcome["reason"]?.DeepClone(),
                ["candidate_version"] = outcome["candidateVersion"]?.DeepClone(),
                ["verdict"] = outcome["verdict"]?.DeepClone(),
                ["snapshot"] = outcome["snapshot"]?["statistics"]?.DeepClone(),
                ["seconds"] = Math.Round(clock.Elapsed.TotalSeconds),
            };
        }
    }

    private static string Report(JsonObject result)
    {
        var rounds = result["rounds"]!.AsArray();
        double Round(JsonNode? r) => (int)r!["round"]!;
        return new Recommender.Training.HtmlReport("The learning loop, closed over HTTP", $"World {(string?)result["world"]}; {result["protocol"]!["sessions_per_round"]} sessions a round.")
            .LineChart("true return per session over HTTP, by round", rounds.Select(r => (Round(r), (double?)(double)r!["true_return"]!)), "round", "return per session")
            .LineChart("gain over round 0's model on the same users, by round", rounds.Select(r => (Round(r), (double?)(100 * (double)r!["gain_over_round0_model"]!))), "round", "gain (%)")
            .Table(["round", "model", "path", "true return per session (HTTP)", "in process", "round 0's model, same users", "gain", "gate's DR estimate", "its error", "ESS", "decisions"],
                rounds.Select(r =>
                {
                    var evaluation = r!["evaluation"]!;
                    return (IReadOnlyList<string>)[$"{r["round"]}", $"{r["model_version"]}", $"{r["path"]}",
                        FormattableString.Invariant($"{(double)r["true_return"]!:F3} ± {(double)r["true_return_ci95"]!:F3}"),
                        FormattableString.Invariant($"{(double)evaluation["return"]!:F3}"), FormattableString.Invariant($"{(double)evaluation["round0_model_return"]!:F3}"),
                        FormattableString.Invariant($"{(double)r["gain_over_round0_model"]!:+0.0%;-0.0%} ± {(double)r["gain_over_round0_model_ci95"]!:0.0%}"),
                        Figure(r["ope_reward"], "F3"), Figure(r["ope_relative_error"], "+0.0%;-0.0%"), Figure(r["ess"], "F0"), $"{r["decisions"]}"];
                }))
            .ToString();
    }

    private static string Figure(JsonNode? value, string format) => value is null ? "-" : ((double)value).ToString(format, CultureInfo.InvariantCulture);

    /// <summary>The host the loop talks to: one it started (and stops), or one already running.</summary>
    private sealed class LocalHost : IAsyncDisposable
    {
        private LocalHostProcess? _process;

        public required Uri Url { get; init; }
        public required string Description { get; init; }
        public required string Storage { get; init; }
        /// <summary>
        /// The host's storage: the users' online state as a session finds it, read from the table every time. The host is
        /// another process, so a cached read could be seconds stale (the cache's bound), missing the clicks of the user's
        /// last session: a replay from there could show again what the user already took.
        /// </summary>
        public required IngestionServices Ingestion { get; init; }
        public required string ModelContainer { get; init; }
        public bool Started => _process is not null;

        private static readonly UserStateStoreOptions Uncached = new() { Cache = new() { MaxStaleness = TimeSpan.Zero, MaxStalenessWhileStorageLags = TimeSpan.Zero } };

        /// <param name="tag">The host's storage namespace (empty: none, as the demo runs).</param>
        public static LocalHost Existing(Uri url, string storage, string tag) => url.IsLoopback
            ? new LocalHost
            {
                Url = url, Description = $"an existing host at {url}", Storage = storage, ModelContainer = tag.Length == 0 ? "models" : "models-" + tag,
                Ingestion = IngestionServices.Connect(storage, tag.Length == 0 ? StorageLayout.Default : StorageLayout.Default.WithNamespace(tag), userStates: Uncached),
            }
            : throw new ArgumentException("the closed loop only targets loopback addresses");

        /// <summary>A product of its own: the world's data through ingestion into tagged storage, and the local host over it.</summary>
        public static async Task<LocalHost> StartAsync(SyntheticWorld world, string storage, string training, string outDir)
        {
            var tag = "loop" + Guid.NewGuid().ToString("N")[..8];
            var ingestion = IngestionServices.Connect(storage, StorageLayout.Default.WithNamespace(tag), userStates: Uncached);
            await Recommender.TrainingJob.IngestionTraffic.SendAsync(ingestion, world.Options, Console.Out);

            var jobDll = Path.Combine(AppContext.BaseDirectory, "training-job.dll");
            var log = Path.GetFullPath(Path.Combine(outDir, $"closed-loop-host-{tag}.log"));
            string[] settings = ["--Logging:LogLevel:Default=Warning", "--AzureWebJobsStorage", storage, "--Storage:Namespace", tag,
                "--TrainingJob:Launcher", "local", "--TrainingJob:Command", $"dotnet {jobDll}", "--TrainingJob:Settings", training,
                "--Retraining:PollInterval", "00:00:02", "--Retraining:RetryBackoff", "00:00:05", "--Retraining:JobTimeout", "00:45:00",
                "--Retraining:Snapshot:Decisions:SessionIdle", SessionIdle.ToString("c", CultureInfo.InvariantCulture)];
            var process = await LocalHostProcess.StartAsync(settings, log);
            var url = process.Url;
            Console.WriteLine($"local host on {url}, storage namespace {tag}, log {log}");
            return new LocalHost
            {
                Url = url, Description = $"the local host with storage namespace {tag} (log {log})", _process = process,
                Storage = storage, ModelContainer = "models-" + tag, Ingestion = ingestion,
            };
        }

        public async ValueTask DisposeAsync()
        {
            if (_process is not null)
                await _process.DisposeAsync();
        }
    }
}
