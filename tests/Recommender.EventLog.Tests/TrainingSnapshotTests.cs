using Recommender.EventLog;
using Recommender.Events;
using Recommender.Data;
using Recommender.Storage;
using Recommender.TestSupport;
using Recommender.TrainingJob;

namespace Recommender.EventLog.Tests;

/// <summary>Training snapshots over Azurite: what is frozen, what is left out, when one is refused.</summary>
public sealed class TrainingSnapshotTests
{
    private static readonly SnapshotRequirements Small = new() { MinEngagements = 100, MinTrainableUsers = 5 };

    [Fact]
    public async Task A_snapshot_freezes_the_engagements_written_before_its_watermark_without_deleted_users()
    {
        var services = await Azurite.CreateServicesAsync();
        var world = new SyntheticWorldOptions { Users = 40, Items = 30, Seed = 21 };
        await IngestionTraffic.SendAsync(services, world, progress: null);
        await services.Deletion.DeleteAsync(SyntheticWorld.UserId(0));
        await Watermarks.PastTheSecondAsync();
        var watermark = DateTimeOffset.UtcNow;
        await IngestionTraffic.SendAsync(services, world with { Seed = 22 }, progress: null); // after the watermark

        var snapshot = await services.Snapshots.CreateAsync(watermark, Small);
        var again = await services.Snapshots.CreateAsync(watermark, Small);
        var (engagements, content, _, _) = await services.Snapshots.ReadAsync(snapshot.Id);

        var expected = new SyntheticWorld(world).GenerateHistory(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        Assert.True(snapshot.Accepted, snapshot.RefusedBecause);
        Assert.Equal(snapshot.Id, again.Id); // same data, same id
        Assert.Equal(expected.Count(e => e.UserId != SyntheticWorld.UserId(0)), engagements.Count);
        Assert.DoesNotContain(engagements, e => e.UserId == SyntheticWorld.UserId(0));
        Assert.True(snapshot.Statistics.DeletedUserEvents > 0);
        Assert.True(engagements.Zip(engagements.Skip(1)).All(p => p.First.Timestamp <= p.Second.Timestamp));
        Assert.Equal(world.Items, content.Count);
        Assert.Equal((snapshot.Id, snapshot.Watermark), await services.Snapshots.GetLatestAsync() is { } latest ? (latest.Id, latest.Watermark) : default);
        // The traffic after the watermark is what the next snapshot adds.
        var later = new SyntheticWorld(world with { Seed = 22 }).GenerateHistory(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        Assert.Equal(later.Count, await services.EventLog.CountEventsWrittenSinceAsync(snapshot.Watermark));
    }

    [Fact]
    public async Task A_snapshot_keeps_the_decisions_served_with_their_responses_and_the_profiles_and_drops_a_deleted_users()
    {
        var services = await Azurite.CreateServicesAsync();
        var world = new SyntheticWorldOptions { Users = 40, Items = 30, Seed = 21 };
        await IngestionTraffic.SendAsync(services, world, progress: null);
        var shownAt = DateTimeOffset.UtcNow.AddMinutes(-1);
        foreach (var (user, recommendation) in new[] { (SyntheticWorld.UserId(1), "rec-kept"), (SyntheticWorld.UserId(2), "rec-deleted") })
        {
            await services.Ingestor.IngestEventsAsync(new Recommender.Serving.SlateImpressions(user, recommendation, "s1", shownAt, ["item3", "item4"], [0.6, 0.3],
                new Dictionary<string, string> { ["modelVersion"] = "v1", ["path"] = "sequence" }).ToEvents());
            await services.Ingestor.IngestEventsAsync([WireEvent.From(new Interaction($"click-{recommendation}", user, "item4", InteractionType.Click, null, shownAt.AddSeconds(5),
                "s1", recommendation, 1))]);
        }
        await services.Deletion.DeleteAsync(SyntheticWorld.UserId(2));
        await Watermarks.PastTheSecondAsync();

        var snapshot = await services.Snapshots.CreateAsync(DateTimeOffset.UtcNow, Small);
        var contents = await services.Snapshots.ReadAsync(snapshot.Id);

        var decision = Assert.Single(contents.Decisions);
        Assert.Equal(("rec-kept", SyntheticWorld.UserId(1), "s1"), (decision.RecommendationId, decision.UserId, decision.SessionId));
        Assert.Equal((1, false, 0.6 * 0.3), (decision.PickedPosition, decision.PickedOrganically, decision.SlateProbability!.Value));
        Assert.Equal(world.Users - 1, contents.UserProfiles.Count);
        Assert.DoesNotContain(SyntheticWorld.UserId(2), contents.UserProfiles.Keys);
        Assert.Equal((1, 1, 1.0), (snapshot.Statistics.Decisions!.Decisions, snapshot.Statistics.Decisions.WithResponse, snapshot.Statistics.Decisions.PropensityCoverage));
        Assert.Equal(world.Users - 1, snapshot.Statistics.Profiles);
    }

    [Fact]
    public async Task Events_that_do_not_train_the_model_leave_the_snapshot_id_unchanged()
    {
        var services = await Azurite.CreateServicesAsync();
        await IngestionTraffic.SendAsync(services, new SyntheticWorldOptions { Users = 40, Items = 30, Seed = 21 }, progress: null);
        await Watermarks.PastTheSecondAsync();
        var before = await services.Snapshots.CreateAsync(DateTimeOffset.UtcNow, Small);

        await services.Ingestor.IngestEventsAsync([TestEvents.Interaction(1, userId: SyntheticWorld.UserId(1), type: "impression")]);
        await Watermarks.PastTheSecondAsync();
        var after = await services.Snapshots.CreateAsync(DateTimeOffset.UtcNow, Small);

        Assert.Equal(before.Statistics.Events + 1, after.Statistics.Events);
        Assert.Equal(before.Id, after.Id);
    }

    [Fact]
    public async Task An_unreadable_log_blob_refuses_the_snapshot_and_names_the_blob()
    {
        var services = await Azurite.CreateServicesAsync();
        await IngestionTraffic.SendAsync(services, new SyntheticWorldOptions { Users = 40, Items = 30, Seed = 21 }, progress: null);
        await services.EventLog.Container.UploadBlobAsync(StorageLayout.EventLogPrefix + "2026/01/01/00/broken.parquet", BinaryData.FromString("not parquet"));
        await Watermarks.PastTheSecondAsync();

        var snapshot = await services.Snapshots.CreateAsync(DateTimeOffset.UtcNow, Small);

        Assert.False(snapshot.Accepted);
        Assert.Contains("broken.parquet", snapshot.RefusedBecause, StringComparison.Ordinal);
        Assert.False(await services.Snapshots.ExistsAsync(snapshot.Id));
        await Assert.ThrowsAsync<InvalidOperationException>(() => services.Snapshots.ReadAsync(snapshot.Id));
    }
}
