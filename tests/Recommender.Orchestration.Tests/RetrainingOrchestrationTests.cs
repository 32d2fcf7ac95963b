using Recommender.EventLog;
using Recommender.TestSupport;

namespace Recommender.Orchestration.Tests;

/// <summary>The orchestration in the Durable Task in-process host, over Azurite, with a scripted training job.</summary>
public sealed class RetrainingOrchestrationTests(TrainedRunFixture fixture) : IClassFixture<TrainedRunFixture>
{
    [Fact]
    public async Task A_first_candidate_is_trained_on_a_snapshot_and_promoted_with_each_activity_run_once()
    {
        FakeLauncher launcher = null!;
        await using var loop = await Loop.StartAsync((registry, _) => launcher = new FakeLauncher(registry, fixture.Run));

        var outcome = await loop.RunAsync();

        Assert.Equal(RetrainingResult.Promoted, outcome.Result);
        var current = await loop.Registry.GetCurrentAsync();
        Assert.Equal(outcome.CandidateVersion, current!.Pointer.Version);
        Assert.Contains("no model is promoted yet", current.Pointer.Reason, StringComparison.Ordinal);
        // The orchestrator replayed after every activity and timer, yet the job was started once and
        // polled exactly until it reported success (Running, then Succeeded).
        Assert.Single(launcher.Started);
        Assert.Equal(2, launcher.StatusChecks);
        Assert.Equal(outcome.Snapshot!.Id, launcher.Started[0].SnapshotId);
        Assert.True(await loop.Ingestion.Snapshots.ExistsAsync(outcome.Snapshot.Id));
    }

    [Fact]
    public async Task A_failed_job_is_retried_after_a_backoff_and_the_retry_is_promoted()
    {
        FakeLauncher launcher = null!;
        await using var loop = await Loop.StartAsync((registry, _) => launcher = new FakeLauncher(registry, fixture.Run)
        {
            Outcome = attempt => attempt == 1 ? TrainingJobState.Failed : TrainingJobState.Succeeded,
        });

        var outcome = await loop.RunAsync();

        Assert.Equal(RetrainingResult.Promoted, outcome.Result);
        Assert.Equal(2, launcher.Started.Count);
        Assert.NotEqual(launcher.Started[0].CandidateVersion, launcher.Started[1].CandidateVersion); // versions are immutable
        Assert.Contains("Failed (exit code 1)", outcome.JobAttempts![0], StringComparison.Ordinal);
        Assert.EndsWith(outcome.CandidateVersion!, (await loop.Registry.GetCurrentAsync())!.Pointer.Version, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_job_that_never_ends_is_stopped_at_the_timeout_and_nothing_is_promoted()
    {
        FakeLauncher launcher = null!;
        await using var loop = await Loop.StartAsync((registry, _) => launcher = new FakeLauncher(registry, fixture.Run) { Outcome = _ => TrainingJobState.Running });

        var outcome = await loop.RunAsync();

        Assert.Equal(RetrainingResult.TrainingFailed, outcome.Result);
        Assert.Equal(Loop.FastSettings.MaxJobAttempts, launcher.Started.Count);
        Assert.Equal(["execution-1", "execution-2"], launcher.Stopped);
        Assert.All(outcome.JobAttempts!, a => Assert.Contains("timed out", a, StringComparison.Ordinal));
        Assert.Null(await loop.Registry.GetCurrentAsync());
    }

    [Fact]
    public async Task A_candidate_worse_than_the_champion_is_published_but_not_promoted()
    {
        await using var loop = await Loop.StartAsync((registry, _) => new FakeLauncher(registry, fixture.Run) { CandidateNdcg = 0.40 });
        await FakeLauncher.PublishAsync(loop.Registry, fixture.Run, "champion", ndcg: 0.45);
        Assert.True(await loop.Registry.PromoteAsync("champion", null));

        var outcome = await loop.RunAsync();

        Assert.Equal(RetrainingResult.ChampionKept, outcome.Result);
        Assert.Contains("below the champion's 0.4500", outcome.Reason, StringComparison.Ordinal);
        Assert.Equal("champion", (await loop.Registry.GetCurrentAsync())!.Pointer.Version);
        Assert.NotNull((await loop.Registry.DownloadAsync(outcome.CandidateVersion!)).Manifest); // kept for inspection
    }

    [Fact]
    public async Task The_gate_judges_against_the_champion_measured_on_the_candidates_own_data()
    {
        // The champion recorded 0.45 on its old snapshot, but scores 0.35 on the new one; the candidate 0.40.
        await using var loop = await Loop.StartAsync((registry, _) => new FakeLauncher(registry, fixture.Run) { CandidateNdcg = 0.40, ChampionNdcgOnSameData = 0.35 });
        await FakeLauncher.PublishAsync(loop.Registry, fixture.Run, "champion", ndcg: 0.45);
        Assert.True(await loop.Registry.PromoteAsync("champion", null));

        var outcome = await loop.RunAsync();

        Assert.Equal(RetrainingResult.Promoted, outcome.Result);
        Assert.Equal(0.35, outcome.Verdict!.Champion["ndcg@10"]);
    }

    [Fact]
    public async Task A_corrupt_candidate_fails_the_smoke_test_and_is_not_promoted()
    {
        await using var loop = await Loop.StartAsync((registry, _) => new FakeLauncher(registry, fixture.Run) { CorruptPolicy = true, CandidateNdcg = 0.99 });

        var outcome = await loop.RunAsync();

        Assert.Equal(RetrainingResult.ChampionKept, outcome.Result);
        Assert.Contains("smoke test", outcome.Reason, StringComparison.Ordinal);
        Assert.Null(await loop.Registry.GetCurrentAsync());
    }

    [Fact]
    public async Task A_second_run_on_unchanged_data_does_not_train_and_new_data_starts_one()
    {
        FakeLauncher launcher = null!;
        await using var loop = await Loop.StartAsync((registry, _) => launcher = new FakeLauncher(registry, fixture.Run));
        var first = await loop.RunAsync();

        var second = await loop.RunAsync();
        Assert.Equal(RetrainingResult.UpToDate, second.Result);
        Assert.Equal(first.Snapshot!.Id, second.Snapshot!.Id);
        Assert.Single(launcher.Started);

        // Fewer new events than the threshold start nothing; more do, on a new snapshot.
        Assert.Null(await loop.Trigger.StartIfEnoughNewEventsAsync(loop.Client));
        // New engagements under event ids of their own: every world numbers its events from syn-0, so another world's
        // history as it comes would be dropped as redeliveries of the first one's.
        var otherWorld = new Data.SyntheticWorld(new Data.SyntheticWorldOptions { Users = 30, Items = 40, Seed = 99 });
        var newEngagements = otherWorld.GenerateHistory(DateTimeOffset.UtcNow.AddDays(-1)).Select(e => Events.WireEvent.From(e with { EventId = "seed99-" + e.EventId })).ToList();
        foreach (var batch in newEngagements.Chunk(1000))
            await loop.Ingestion.Ingestor.IngestEventsAsync(batch);
        await Watermarks.PastTheSecondAsync();
        var start = await loop.Trigger.StartIfEnoughNewEventsAsync(loop.Client);
        Assert.NotNull(start);
        var third = (await loop.Client.WaitForInstanceCompletionAsync(start.InstanceId, getInputsAndOutputs: true)).ReadOutputAs<RetrainingOutcome>()!;
        Assert.NotEqual(first.Snapshot.Id, third.Snapshot!.Id);
        Assert.Equal(2, launcher.Started.Count);
    }

    [Fact]
    public async Task Triggers_fired_in_the_same_instant_on_two_instances_start_one_run()
    {
        FakeLauncher launcher = null!;
        await using var loop = await Loop.StartAsync((registry, _) => launcher = new FakeLauncher(registry, fixture.Run));
        // A second app instance: its own trigger over the same storage and task hub.
        var otherInstance = new RetrainingTrigger(loop.Trigger.Options, loop.Ingestion.EventLog, loop.Ingestion.Snapshots);

        using var go = new ManualResetEventSlim();
        var starts = await Task.WhenAll(Enumerable.Range(0, 12).Select(i => Task.Run(async () =>
        {
            go.Wait();
            return await (i % 2 == 0 ? loop.Trigger : otherInstance).StartAsync(loop.Client, i % 3 == 0 ? "schedule" : i % 3 == 1 ? "http" : "new events");
        })).Append(Task.Run(() => { go.Set(); return new RetrainingStart("", false); })));

        var fired = starts[..^1];
        Assert.Single(fired, s => s.Started);
        Assert.Single(fired.Select(s => s.InstanceId).Distinct());
        var outcome = (await loop.Client.WaitForInstanceCompletionAsync(fired[0].InstanceId, getInputsAndOutputs: true)).ReadOutputAs<RetrainingOutcome>()!;
        Assert.Equal(RetrainingResult.Promoted, outcome.Result);
        Assert.Single(launcher.Started);

        // Once it has finished, the next trigger starts a run of its own.
        var next = await otherInstance.StartAsync(loop.Client, "http");
        Assert.True(next.Started);
        Assert.NotEqual(fired[0].InstanceId, next.InstanceId);
    }

    [Fact]
    public async Task Too_little_data_is_refused_before_any_training()
    {
        FakeLauncher launcher = null!;
        await using var loop = await Loop.StartAsync((registry, _) => launcher = new FakeLauncher(registry, fixture.Run),
            Loop.FastSettings with { Snapshot = new SnapshotRequirements { MinEngagements = 1_000_000 } });

        var outcome = await loop.RunAsync();

        Assert.Equal(RetrainingResult.SnapshotRefused, outcome.Result);
        Assert.Contains("fewer than the 1000000 required", outcome.Reason, StringComparison.Ordinal);
        Assert.Empty(launcher.Started);
        Assert.False(await loop.Ingestion.Snapshots.ExistsAsync(outcome.Snapshot!.Id));
    }
}
