using System.Text.Json;
using System.Text.Json.Nodes;
using Recommender.Data;
using Recommender.EventLog;
using Recommender.ModelContract;
using Recommender.Serving;
using Recommender.Training;
using Recommender.Training.Reinforcement;

namespace Recommender.Training.Tests;

/// <summary>The product's logs as the RL stage reads them (<see cref="ProductLogs"/>), and when the stage does not run.</summary>
[Trait("Kind", "Unit")]
public sealed class ProductPolicyStageTests
{
    private static readonly DateTime Start = new(2026, 11, 1, 12, 0, 0, DateTimeKind.Utc);

    private static ServedDecision Decision(string id, string user, string session, int minute, string[] items, int? picked = null, bool ended = false, string source = DecisionSource.Recommendations) =>
        new(id, user, session, session, Start.AddMinutes(minute), source, "v1", "sequence", items, items.Select(_ => (double?)0.5).ToArray(),
            picked, false, picked is null ? null : 0.9, false, false, null, null, 0, ended);

    private static (InteractionDataset Data, long[][] Ticks) Dataset()
    {
        // u1 engaged with a, b before the session, then c (picked at minute 1) and e (picked at minute 3) during it.
        var engagements = new (string User, string Item, int Minute)[] { ("u1", "a", -20), ("u1", "b", -10), ("u1", "c", 1), ("u1", "e", 3), ("u2", "a", -5) };
        var data = InteractionDataset.FromInteractions("test", engagements.Select(e => (e.User, e.Item, Start.AddMinutes(e.Minute).Ticks)), ["a", "b", "c", "d", "e", "f"]);
        var ticks = data.UserIds.Select(u => engagements.Where(e => e.User == u).Select(e => Start.AddMinutes(e.Minute).Ticks).Order().ToArray()).ToArray();
        return (data, ticks);
    }

    [Fact]
    public void Logged_sessions_rebuild_each_slates_state_from_the_engagements_before_it_and_the_session_so_far()
    {
        var (data, ticks) = Dataset();
        ServedDecision[] decisions =
        [
            Decision("r1", "u1", "s1", 0, ["c", "d"], picked: 0),
            Decision("r2", "u1", "s1", 2, ["d", "f"]),
            Decision("r3", "u1", "s1", 3, ["e", "f"], picked: 0, ended: true),
            Decision("r4", "u1", "s2", 5, ["x-unknown", "f"]),                           // an item the data does not know
            Decision("p1", "u2", "p", 0, ["a", "b"], source: DecisionSource.Personalizer), // Personalizer's ranks are not RL's
        ];

        var logs = ProductLogs.From(data, ticks, decisions, horizon: 30);

        var session = Assert.Single(logs.Sessions);
        Assert.Equal(3, session.Decisions.Count);
        int Item(string id) => data.ItemIds.ToList().IndexOf(id);
        Assert.Equal([Item("a"), Item("b")], session.Decisions[0].State.History);
        Assert.Equal([Item("a"), Item("b"), Item("c")], session.Decisions[1].State.History);      // c was picked before the second slate
        Assert.Equal([Item("c"), 0L], session.Decisions[2].State.Responses.Select(r => r.Picked)); // the session so far: c taken, then nothing
        Assert.Equal([false, false, true], session.Decisions.Select(d => d.Left));               // it ended before the horizon: the user left
        Assert.Equal(0.9, session.Decisions[0].Engagement!.Value.Watched);
        Assert.Equal(0.25, session.Decisions[0].LoggedProbability);
        Assert.Equal((1, 1), ((int)logs.Counts["left_out_unknown_item"]!, (int)logs.Counts["personalizer_ranks"]!));
    }

    [Fact]
    public void A_session_that_reaches_the_horizon_was_cut_not_left()
    {
        var (data, ticks) = Dataset();
        var decisions = Enumerable.Range(0, 3).Select(i => Decision($"r{i}", "u2", "s", i, ["c", "d"], ended: i == 2)).ToArray();

        var logs = ProductLogs.From(data, ticks, decisions, horizon: 3);

        Assert.True(logs.Sessions.Single().Closed);
        Assert.DoesNotContain(logs.Sessions.Single().Decisions, d => d.Left);
    }

    [Theory]
    [InlineData(true, "1 logged recommendation decisions, fewer than the 1000 required")]
    [InlineData(false, "turned off")]
    public void With_too_few_logged_decisions_or_turned_off_the_stage_is_skipped_saying_why_and_the_pretrained_model_is_served_sampled(bool enabled, string reason)
    {
        var (data, ticks) = Dataset();
        var logs = ProductLogs.From(data, ticks, [Decision("r1", "u1", "s1", 0, ["c", "d"], picked: 0, ended: true)], horizon: 30);
        var run = Directory.CreateTempSubdirectory("skipped-stage-").FullName;
        var config = new PolicyStageConfig { Enabled = enabled, MinDecisions = 1000, Temperature = 0.3 };

        var result = new ProductPolicyStage(config).Train(logs, data, run);

        Assert.Equal("skipped", (string?)result.Metrics["rl.stage"]);
        Assert.Contains(reason, (string?)result.Metrics["rl.skipped_because"], StringComparison.Ordinal);
        Assert.Equal(1, (int)result.Metrics["rl.decisions"]!["decisions"]!);
        var policy = JsonSerializer.Deserialize(File.ReadAllText(Path.Combine(run, ProductPolicyStage.PolicyFile)), TrainingJsonContext.Default.ServingPolicy)!;
        Assert.Equal(new ServingPolicy(0.3, 50), policy);
        Assert.Null(result.Simulator);
    }

    [Theory]
    [InlineData(1000, 500)] // the first retraining: one round's sessions, half held out rather than 30%
    [InlineData(3000, 900)] // enough logs: the share
    [InlineData(600, 300)]  // never more than half: the simulator keeps the rest
    [InlineData(2, 1)]
    public void The_latest_sessions_are_held_out_by_share_but_at_least_the_minimum_up_to_half(int sessions, int heldOut) =>
        Assert.Equal(heldOut, new ProductPolicyStage(new PolicyStageConfig { HeldOutShare = 0.3, MinHeldOutSessions = 500 }).HeldOutCount(sessions));
}
