using Recommender.Data;
using Recommender.TestSupport;
using Recommender.TrainingJob;

namespace Recommender.Training.Tests;

/// <summary>Events in through ingestion, a training dataset out of the event log (Azurite).</summary>
public sealed class EventLogSourceTests
{
    [Fact]
    public async Task The_event_log_yields_the_worlds_engagements_with_catalog_features_and_without_deleted_users()
    {
        var services = await Azurite.CreateServicesAsync();
        var options = new SyntheticWorldOptions { Users = 60, Items = 40, Seed = 3 };
        var world = new SyntheticWorld(options);
        var expected = world.GenerateHistory(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));

        var (accepted, rejected) = await IngestionTraffic.SendAsync(services, options, progress: null);
        await IngestionTraffic.SendAsync(services, options, progress: null); // a second run counts nothing twice
        await services.Deletion.DeleteAsync(SyntheticWorld.UserId(0));
        var data = await DataSources.OpenEventLogAsync(services);

        Assert.Equal(0, rejected);
        Assert.Equal(expected.Count + options.Items + options.Users, accepted);
        Assert.DoesNotContain(SyntheticWorld.UserId(0), data.UserIds);
        Assert.Equal(expected.Count(e => e.UserId != SyntheticWorld.UserId(0)), data.InteractionCount);
        var user = SyntheticWorld.UserId(1);
        Assert.Equal(expected.Where(e => e.UserId == user).Select(e => e.ItemId), data.Sequences[data.UserIds.ToList().IndexOf(user)].Select(i => data.ItemIds[i]));
        var item = data.ItemIds[1];
        Assert.Contains(data.ItemFeatures!.Tokens[1], t => data.ItemFeatures.Vocabulary[t].StartsWith("category:", StringComparison.Ordinal));
        Assert.NotEmpty(item);
    }
}
