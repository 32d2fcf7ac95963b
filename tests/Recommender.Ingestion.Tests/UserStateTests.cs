using Recommender.Events;
using Recommender.Ingestion;
using Recommender.TestSupport;

namespace Recommender.Ingestion.Tests;

public sealed class UserStateTests
{
    private static Interaction Click(int n, string item, InteractionType type = InteractionType.Click) =>
        new($"e{n}", "u", item, type, null, TestEvents.Start.AddSeconds(n));

    [Fact]
    public void Applying_a_delivery_twice_changes_nothing_the_second_time()
    {
        var once = UserState.Empty("u").Apply("d1", [Click(1, "a"), Click(2, "b")]);
        var twice = once.Apply("d1", [Click(1, "a"), Click(2, "b")]);

        Assert.Same(once, twice);
        Assert.Equal(2, twice.TotalInteractions);
    }

    [Fact]
    public void Recent_items_are_engagements_in_time_order_and_bounded()
    {
        var state = UserState.Empty("u")
            .Apply("late", Enumerable.Range(100, UserState.MaxRecentItems).Select(n => Click(n, $"i{n}")))
            .Apply("early", [Click(1, "old"), Click(2, "seen", InteractionType.Impression), Click(3, "skipped", InteractionType.Skip)]);

        Assert.Equal(UserState.MaxRecentItems, state.Recent.Count);
        Assert.DoesNotContain(state.Recent, r => r.ItemId is "seen" or "skipped" or "old"); // old fell off the front
        Assert.Equal("i149", state.Recent[^1].ItemId);
        Assert.Equal(1, state.Counts[InteractionType.Impression]);
        Assert.Equal(TestEvents.Start.AddSeconds(149), state.LastSeen);
    }

    [Fact]
    public void Only_the_most_recent_delivery_keys_are_remembered()
    {
        var state = UserState.Empty("u");
        for (var i = 0; i < UserState.MaxAppliedDeliveries + 5; i++)
            state = state.Apply($"d{i}", [Click(i, "a")]);

        Assert.Equal(UserState.MaxAppliedDeliveries, state.AppliedDeliveries.Count);
        Assert.False(state.HasApplied("d0"));
        Assert.True(state.HasApplied($"d{UserState.MaxAppliedDeliveries + 4}"));
    }

    [Theory]
    [InlineData("plain")]
    [InlineData("a/b\\c#d?e%f")]
    [InlineData("%2F")]
    public void Table_keys_encode_forbidden_characters_reversibly(string id)
    {
        var key = TableKeys.Encode(id);

        Assert.Equal(-1, key.AsSpan().IndexOfAny("/\\#?"));
        Assert.Equal(id, TableKeys.Decode(key));
    }
}
