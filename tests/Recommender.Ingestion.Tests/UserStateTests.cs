using Recommender.Events;
using Recommender.Ingestion;
using Recommender.Storage;
using Recommender.TestSupport;

namespace Recommender.Ingestion.Tests;

[Trait("Kind", "Unit")]
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

    private static IEnumerable<Interaction> Impressions(string recommendation, int second, string? session, params string[] items) =>
        items.Select((item, position) => new Interaction($"{recommendation}-{position}", "u", item, InteractionType.Impression, null,
            TestEvents.Start.AddSeconds(second), session, recommendation, position));

    [Fact]
    public void Served_slates_are_kept_once_each_in_their_positions_and_bounded()
    {
        var state = UserState.Empty("u").Apply("serve-1", Impressions("r1", 1, "s1", "b", "a"));
        var again = state.Apply("serve-1-redelivered-with-another-key", Impressions("r1", 1, "s1", "b", "a"));
        for (var i = 2; i < UserState.MaxRecentSlates + 10; i++)
            state = state.Apply($"serve-{i}", Impressions($"r{i}", i, "s1", "c"));
        var stale = state.Apply("late-redelivery-of-r1", Impressions("r1", 1, "s1", "b", "a"));

        Assert.Same(again, again.Apply("x", Impressions("r1", 1, "s1", "b", "a")));
        Assert.Equal(["b", "a"], again.Slates.Single().Items);
        Assert.Equal(2, again.Counts[InteractionType.Impression]);
        Assert.Equal(UserState.MaxRecentSlates, state.Slates.Count);
        Assert.Same(state, stale); // older than every slate kept: it was applied once and has fallen off
        Assert.Empty(state.AppliedDeliveries);
    }

    [Fact]
    public void Slates_applied_as_slates_make_the_state_their_impressions_make()
    {
        var start = UserState.Empty("u").Apply("clicks", [Click(0, "a")]);
        var slates = Enumerable.Range(1, UserState.MaxRecentSlates + 5)
            .Select(i => new ShownSlate($"r{i}", i % 2 == 0 ? "s1" : null, TestEvents.Start.AddSeconds(i), [$"x{i}", $"y{i}"])).ToList();

        var asImpressions = slates.Aggregate(start, (state, slate) => state.Apply($"serve-{slate.RecommendationId}",
            Impressions(slate.RecommendationId, (int)(slate.ShownAt - TestEvents.Start).TotalSeconds, slate.SessionId, [.. slate.Items])));
        var asSlates = start.ApplyShown(slates.Skip(10).ToList()).ApplyShown(slates); // out of order, with repeats

        static string Describe(ShownSlate s) => $"{s.RecommendationId} {s.SessionId} {s.ShownAt:O} {string.Join(',', s.Items)}";
        Assert.Equal(asImpressions.Slates.Select(Describe), asSlates.Slates.Select(Describe));
        Assert.Equal(asImpressions.Counts[InteractionType.Impression], asSlates.Counts[InteractionType.Impression]);
        Assert.Equal(asImpressions.LastSeen, asSlates.LastSeen);
        Assert.Equal(start.Recent, asSlates.Recent);
        Assert.Same(asSlates, asSlates.ApplyShown(slates)); // applied already: nothing to write
    }

    [Fact]
    public void A_client_batch_retried_after_a_hundred_recommendations_is_applied_once()
    {
        var clicks = new[] { Click(1, "a"), Click(2, "b") };
        var state = UserState.Empty("u").Apply("http-client-batch", clicks);
        for (var i = 0; i < 100; i++)
            state = state.Apply($"http-serve-{i}", Impressions($"rec{i}", 10 + i, null, "x", "y"));

        var retried = state.Apply("http-client-batch", clicks);

        Assert.Same(state, retried);
        Assert.Equal(2, retried.Counts[InteractionType.Click]);
        Assert.Equal(["a", "b"], retried.Recent.Select(r => r.ItemId));
    }

    [Fact]
    public void A_requests_session_is_the_clients_session_id_or_the_slates_less_than_the_idle_time_apart()
    {
        var state = UserState.Empty("u")
            .Apply("1", Impressions("r1", 0, "s1", "a"))
            .Apply("2", Impressions("r2", 60, "s2", "b"))
            .Apply("3", Impressions("r3", 4000, null, "c"))
            .Apply("4", Impressions("r4", 4100, null, "d"));
        var now = TestEvents.Start.AddSeconds(4200);

        Assert.Equal(["r1"], state.SessionSlates("s1", now, TimeSpan.FromMinutes(30)).Select(s => s.RecommendationId));
        Assert.Equal(["r3", "r4"], state.SessionSlates(null, now, TimeSpan.FromMinutes(30)).Select(s => s.RecommendationId));
        Assert.Empty(state.SessionSlates(null, now.AddHours(1), TimeSpan.FromMinutes(30)));
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
