using System.Globalization;
using Recommender.EventLog;
using Recommender.Events;
using Recommender.TestSupport;

namespace Recommender.EventLog.Tests;

/// <summary>How a snapshot joins served slates to what followed them (<see cref="ServedDecisions"/>), on hand-made logs.</summary>
[Trait("Kind", "Unit")]
public sealed class ServedDecisionsTests
{
    private static readonly DecisionJoinOptions Options = new() { OrganicResponseWindow = TimeSpan.FromMinutes(10), SessionIdle = TimeSpan.FromMinutes(30) };
    private static readonly DateTimeOffset Later = TestEvents.Start.AddDays(1);

    private static EventLogRecord Record(string id, string user, string? item, InteractionType type, int minute, string? recommendation = null, int? position = null,
        double? value = null, string? session = null, Dictionary<string, string>? context = null) =>
        EventLogRecord.From(new Interaction(id, user, item, type, value, TestEvents.Start.AddMinutes(minute), session, recommendation, position, context), "d", null, TestEvents.Start);

    /// <summary>A slate's impressions as serving logs them: one per position, with its propensity and the model that served it.</summary>
    private static IEnumerable<EventLogRecord> Slate(string recommendation, string user, int minute, string? session, params (string Item, double Propensity)[] items) =>
        items.Select((x, position) => Record($"{recommendation}-{position}", user, x.Item, InteractionType.Impression, minute, recommendation, position, session: session,
            context: new() { ["propensity"] = x.Propensity.ToString("R", CultureInfo.InvariantCulture), ["modelVersion"] = "v1", ["path"] = "sequence" }));

    private static List<EventLogRecord> Log(params IEnumerable<EventLogRecord>[] parts) =>
        parts.SelectMany(p => p).OrderBy(r => r.Timestamp).ThenBy(r => r.EventId, StringComparer.Ordinal).ToList();

    [Fact]
    public void A_click_carrying_the_recommendation_id_is_the_slates_response_with_what_the_user_did_with_it()
    {
        var log = Log(Slate("r1", "u1", 0, "s1", ("a", 0.5), ("b", 0.4), ("c", 0.25)),
        [
            Record("c1", "u1", "b", InteractionType.Click, 1, "r1", 1, session: "s1"),
            Record("v1", "u1", "b", InteractionType.View, 2, "r1", 1, value: 0.8),
            Record("s1", "u1", "b", InteractionType.Rating, 3, "r1", 1, value: 4),
            Record("w1", "u1", null, InteractionType.Reward, 4, "r1", value: 0.7),
            Record("x1", "u1", "a", InteractionType.Click, 5), // an organic click of another item later: not the response, there was one
        ]);

        var (decisions, statistics) = ServedDecisions.Join(log, Later, Options);

        var d = Assert.Single(decisions);
        Assert.Equal(["a", "b", "c"], d.Items);
        Assert.Equal(1, d.PickedPosition);
        Assert.False(d.PickedOrganically);
        Assert.Equal((0.8, 4.0, false), (d.Watched, d.Stars, d.Liked));
        Assert.Equal((0.7, 1), (d.Reward, d.Rewards));
        Assert.Equal(0.5 * 0.4 * 0.25, d.SlateProbability!.Value, 12);
        Assert.Equal(("v1", "sequence", DecisionSource.Recommendations, "s1"), (d.ModelVersion, d.Path, d.Source, d.Session));
        Assert.True(d.SessionEnded); // a day before the snapshot
        Assert.Equal((1, 1, 0, 1, 0, 1.0), (statistics.Decisions, statistics.WithResponse, statistics.OrganicResponses, statistics.RewardsJoined, statistics.UnjoinedRewards, statistics.PropensityCoverage));
    }

    [Theory]
    [InlineData(5, true)]   // within the window, before the next slate
    [InlineData(15, false)] // after the 10-minute window
    public void An_organic_engagement_of_a_shown_item_within_the_window_counts_and_says_so(int minute, bool joined)
    {
        var log = Log(Slate("r1", "u1", 0, null, ("a", 0.5), ("b", 0.5)), [Record("c1", "u1", "b", InteractionType.Purchase, minute)]);

        var d = Assert.Single(ServedDecisions.Join(log, Later, Options).Decisions);

        Assert.Equal(joined ? 1 : null, d.PickedPosition);
        Assert.Equal(joined, d.PickedOrganically);
        Assert.Equal(joined, d.Purchased);
    }

    [Fact]
    public void An_organic_engagement_after_the_next_slate_belongs_to_that_slate()
    {
        var log = Log(Slate("r1", "u1", 0, null, ("a", 0.5), ("b", 0.5)), Slate("r2", "u1", 2, null, ("b", 0.5), ("c", 0.5)),
            [Record("c1", "u1", "b", InteractionType.Click, 3)]);

        var decisions = ServedDecisions.Join(log, Later, Options).Decisions;

        Assert.Null(decisions.Single(d => d.RecommendationId == "r1").PickedPosition);
        Assert.Equal(0, decisions.Single(d => d.RecommendationId == "r2").PickedPosition);
    }

    [Fact]
    public void A_personalizer_rank_and_its_reward_are_a_decision_of_their_own_source_and_a_reward_for_no_slate_is_counted()
    {
        var rank = new[] { ("x", 0.7), ("y", 0.3) }.Select((a, position) => Record($"ev1-{position}", "u2", a.Item1, InteractionType.Impression, 0, "ev1", position,
            context: new() { ["propensity"] = a.Item2.ToString(CultureInfo.InvariantCulture), ["api"] = "personalizer", ["modelVersion"] = "v1" }));
        var log = Log(rank, [Record("ev1-reward", "u2", "x", InteractionType.Reward, 1, "ev1", value: 1), Record("lost", "u2", "x", InteractionType.Reward, 2, "never-ranked", value: 1)]);

        var (decisions, statistics) = ServedDecisions.Join(log, Later, Options);

        var d = Assert.Single(decisions);
        Assert.Equal(DecisionSource.Personalizer, d.Source);
        Assert.Equal(1.0, d.Reward);
        Assert.Null(d.PickedPosition); // a reward is not an engagement
        Assert.Equal((1, 1, 1), (statistics.PersonalizerRanks, statistics.RewardsJoined, statistics.UnjoinedRewards));
    }

    [Fact]
    public void Sessions_are_the_clients_ids_or_runs_of_slates_and_the_last_one_ends_only_once_it_has_been_idle()
    {
        var named = Log(Slate("a1", "u1", 0, "s1", ("a", 1)), Slate("a2", "u1", 1, "s1", ("b", 1)), Slate("a3", "u1", 2, "s2", ("c", 1)));
        var unnamed = Log(Slate("b1", "u2", 0, null, ("a", 1)), Slate("b2", "u2", 10, null, ("b", 1)), Slate("b3", "u2", 100, null, ("c", 1)));
        var watermark = TestEvents.Start.AddMinutes(110); // the last slates are 108 and 10 minutes old

        var decisions = ServedDecisions.Join(Log(named, unnamed), watermark, Options).Decisions.ToDictionary(d => d.RecommendationId);

        Assert.Equal([false, true, true], new[] { "a1", "a2", "a3" }.Select(id => decisions[id].SessionEnded));
        Assert.Equal(["s1", "s1", "s2"], new[] { "a1", "a2", "a3" }.Select(id => decisions[id].Session));
        Assert.Equal([false, true, false], new[] { "b1", "b2", "b3" }.Select(id => decisions[id].SessionEnded)); // b3's session is still open
        Assert.Equal(decisions["b1"].Session, decisions["b2"].Session);
        Assert.NotEqual(decisions["b2"].Session, decisions["b3"].Session);
    }
}
