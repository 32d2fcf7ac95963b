using Recommender.EventLog;
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

        // What the table holds, not what this instance's cache says (another writer may have written since).
        var stored = new UserStateStore(services.UserStates.Table);
        foreach (var user in expected.GroupBy(e => e.UserId!))
        {
            var state = await stored.GetAsync(user.Key);
            Assert.NotNull(state);
            Assert.Equal(user.Count(), state.TotalInteractions);
            var engaged = user.Where(e => EventParser.TryParseType(e.Type, out var t) && t.IsEngagement())
                .OrderBy(e => e.Timestamp).TakeLast(UserState.MaxRecentItems).Select(e => e.ItemId!);
            Assert.Equal(engaged, state.Recent.Select(r => r.ItemId));
        }
    }
}
