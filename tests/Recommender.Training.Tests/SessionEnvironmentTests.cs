using Recommender.Data;
using Recommender.Training.Reinforcement;

namespace Recommender.Training.Tests;

/// <summary>The RL environment over the synthetic world: where a session starts, and what the actor may observe of it.</summary>
[Trait("Kind", "Unit")]
public sealed class SessionEnvironmentTests
{
    private static readonly SyntheticWorld World = new(new SyntheticWorldOptions { Users = 120, Items = 60, Seed = 5 });
    private static readonly InteractionDataset Data = World.ToDataset(World.GenerateHistory(DateTimeOffset.UnixEpoch.AddYears(50)));

    [Fact]
    public void A_session_starts_from_the_user_as_the_logged_history_left_them_and_satisfied()
    {
        var after = World.UsersAfterHistory();
        var users = Enumerable.Range(0, Data.UserCount).Where(u => Data.Sequences[u].Length > 0).ToList();
        var environment = new SessionEnvironment(World, after, Data, users, new RewardConfig());

        var state = environment.Reset(new Random(4));

        var truth = after[SyntheticWorld.UserIndex(Data.UserIds[state.User])];
        Assert.Equal(truth.Taste, environment.CurrentUser.Taste);
        Assert.Equal(truth.RecentCategories, environment.CurrentUser.RecentCategories);
        Assert.Equal(1.0, environment.CurrentUser.Satisfaction);
        Assert.Equal(Data.Sequences[state.User], state.History);
        Assert.Empty(state.Shown);
    }

    [Fact]
    public void Every_slate_shown_is_remembered_and_only_a_pick_joins_the_history()
    {
        var environment = new SessionEnvironment(World, World.UsersAfterHistory(), Data, [0, 1, 2], new RewardConfig(), slateSize: 3);
        var random = new Random(9);
        var state = environment.Reset(random);
        var history = state.History.Length;
        long[] slate = [1, 2, 3];

        for (var step = 0; step < 4; step++)
        {
            var before = state;
            (state, var reward, var done) = environment.Step(slate, random);
            Assert.Equal(before.Shown.Count() + 3, state.Shown.Count());
            Assert.Equal(reward > 0 ? before.History.Length + 1 : before.History.Length, state.History.Length);
            // The answer is kept with the slate it answers: the item picked, or 0 for none, and what the user did with it.
            Assert.Equal(slate, state.Responses[^1].Slate);
            Assert.Equal(reward > 0 ? state.History[^1] : 0, state.Responses[^1].Picked);
            Assert.Equal(reward > 0, state.Responses[^1].Engagement is not null);
            if (reward > 0)
                Assert.Contains((long)state.History[^1], slate);
            if (done)
                break;
        }
        Assert.Equal(state.Step, state.TimesShown(1));
        Assert.Equal(0, state.TimesShown(4));
        Assert.True(state.History.Length >= history);
    }

    [Fact]
    public void A_step_earns_the_click_what_the_user_did_with_the_pick_and_the_leave_penalty()
    {
        var rewards = RewardConfig.Parse("click=1, watch=2, like=0.5, purchase=3, rating=0.1, leave=-4");
        var engagement = new Engagement(Watched: 0.5, Liked: 1, Purchased: 0, Stars: 3);

        Assert.Equal(1 + 2 * 0.5 + 0.5 + 0.1 * 3, rewards.Of(engagement, left: false), 12);
        Assert.Equal(1 + 2 * 0.5 + 0.5 + 0.1 * 3 - 4, rewards.Of(engagement, left: true), 12);
        Assert.Equal(-4, rewards.Of(null, left: true));
        Assert.Equal(0, rewards.Of(null, left: false));
        // Clicks alone by default, whatever the user did with the pick.
        Assert.Equal(1, new RewardConfig().Of(engagement, left: true));
        Assert.False(new RewardConfig().ReadsEngagement);
        Assert.Throws<FormatException>(() => RewardConfig.Parse("dwell=1"));
    }

    [Fact]
    public void A_head_is_read_from_text_and_what_it_does_not_name_is_zero()
    {
        var head = PolicyHead.Parse("repetition=-1;declined=-0.5;tag:sensational=-2");

        Assert.Equal((0.0, -1.0, -0.5, 0.0, 0.0), (head.LogSharpness, head.Repetition, head.Declined, head.DeclinedAffinity, head.Popularity));
        Assert.Equal(-0.25, PolicyHead.Parse("declinedAffinity=-0.25").DeclinedAffinity);
        Assert.Equal(-2.0, head.ContentValues!["tag:sensational"]);
        Assert.Throws<FormatException>(() => PolicyHead.Parse("repetition"));
    }
}
