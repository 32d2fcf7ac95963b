using Recommender.Events;
using Recommender.Ingestion;

namespace Recommender.TestSupport;

/// <summary>Asserts that storage holds exactly the expected interactions: each once in the log, each counted once in its user's state.</summary>
public static class LogAssert
{
    public static async Task ExactlyAsync(IngestionServices services, IEnumerable<WireEvent> expectedInteractions)
    {
        var expected = expectedInteractions.ToList();

        // The raw log, without the snapshot reader's de-duplication: a duplicate here is a bug.
        var rows = new List<EventLogRecord>();
        await foreach (var blob in services.EventLog.ListBlobsAsync())
        {
            rows.AddRange(await services.EventLog.ReadBlobAsync(blob.Name));
        }
        Assert.Equal(expected.Select(e => e.EventId!).Order(), rows.Select(r => r.EventId).Order());

        foreach (var user in expected.GroupBy(e => e.UserId!))
        {
            var state = await services.UserStates.GetAsync(user.Key);
            Assert.NotNull(state);
            Assert.Equal(user.Count(), state.TotalInteractions);
            var engaged = user.Where(e => EventParser.TryParseType(e.Type, out var t) && t.IsEngagement())
                .OrderBy(e => e.Timestamp).TakeLast(UserState.MaxRecentItems).Select(e => e.ItemId!);
            Assert.Equal(engaged, state.Recent.Select(r => r.ItemId));
        }
    }
}
