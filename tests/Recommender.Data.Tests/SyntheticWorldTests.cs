using Recommender.Data;
using Recommender.Events;

namespace Recommender.Data.Tests;

[Trait("Kind", "Unit")]
public sealed class SyntheticWorldTests
{
    private static readonly DateTimeOffset Start = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly SyntheticWorldOptions Small = new() { Users = 200, Items = 150, Seed = 11 };

    [Fact]
    public void The_same_seed_gives_the_same_world_and_history()
    {
        var a = new SyntheticWorld(Small).GenerateHistory(Start);
        var b = new SyntheticWorld(Small).GenerateHistory(Start);
        var c = new SyntheticWorld(Small with { Seed = 12 }).GenerateHistory(Start);

        Assert.Equal(a, b);
        Assert.NotEqual(a.Select(e => e.ItemId), c.Select(e => e.ItemId));
    }

    [Fact]
    public void Generating_history_does_not_change_the_worlds_users()
    {
        var world = new SyntheticWorld(Small);
        var before = world.Users.Select(u => u.Taste.ToArray()).ToList();

        world.GenerateHistory(Start);

        Assert.Equal(before, world.Users.Select(u => u.Taste.ToArray()).ToList());
    }

    [Fact]
    public void Popularity_is_skewed()
    {
        var history = new SyntheticWorld(Small with { Users = 500 }).GenerateHistory(Start);
        var counts = history.GroupBy(e => e.ItemId).Select(g => g.Count()).OrderDescending().ToList();

        var topTenth = counts.Take(Small.Items / 10).Sum() / (double)history.Count;
        Assert.True(topTenth > 0.25, $"top 10% of items have {topTenth:P0} of interactions");
    }

    [Fact]
    public void Users_choose_items_that_match_their_hidden_taste()
    {
        var world = new SyntheticWorld(Small);
        var history = world.GenerateHistory(Start);
        var user = world.Users[0];
        var chosen = history.Where(e => e.UserId == SyntheticWorld.UserId(0)).Select(e => int.Parse(e.ItemId![4..], System.Globalization.CultureInfo.InvariantCulture)).ToList();

        var fresh = SyntheticWorld.Clone(user);
        fresh.RecentCategories.Clear();
        var meanChosen = chosen.Average(i => world.Appeal(fresh, i));
        var meanAll = Enumerable.Range(0, Small.Items).Average(i => world.Appeal(fresh, i));
        Assert.True(meanChosen > meanAll, $"chosen {meanChosen:F2} vs all {meanAll:F2}");
    }

    [Fact]
    public void Repeating_a_category_tires_the_user()
    {
        var world = new SyntheticWorld(Small);
        var user = SyntheticWorld.Clone(world.Users[3]);
        var item = 5;
        var fresh = world.Appeal(user, item);

        for (var i = 0; i < 3; i++)
            user.RecentCategories.Add(world.ItemCategory[item]);

        Assert.Equal(fresh - 3 * Small.FatiguePerRepeat, world.Appeal(user, item), 9);
    }

    [Fact]
    public void An_unsatisfied_user_leaves_sooner()
    {
        var world = new SyntheticWorld(Small);
        var random = new Random(1);
        double MeanSessionLength(bool served) => Enumerable.Range(0, 500).Average(_ =>
        {
            var user = SyntheticWorld.Clone(world.Users[0]);
            for (var step = 1; step < 200; step++)
            {
                int? item = served ? Enumerable.Range(0, Small.Items).MaxBy(i => world.Appeal(user, i)) : null;
                if (world.Step(user, item, random))
                    return step;
            }
            return 200;
        });

        var satisfied = MeanSessionLength(served: true);
        var unsatisfied = MeanSessionLength(served: false);
        Assert.True(satisfied > 1.5 * unsatisfied, $"served {satisfied:F1} steps, not served {unsatisfied:F1}");
    }

    [Fact]
    public void Users_after_the_history_are_where_it_left_them()
    {
        var world = new SyntheticWorld(Small);
        var history = world.GenerateHistory(Start);

        var after = world.UsersAfterHistory();

        Assert.NotEqual(world.Users[0].Taste, after[0].Taste); // tastes drifted along the history
        Assert.Equal(after[0].Taste, world.UsersAfterHistory()[0].Taste);
        var lastConsumed = history.Where(e => e.UserId == SyntheticWorld.UserId(0)).TakeLast(Small.FatigueWindow)
            .Select(e => world.ItemCategory[SyntheticWorld.ItemIndex(e.ItemId!)]);
        Assert.Equal(lastConsumed, after[0].RecentCategories);
    }

    [Fact]
    public void Clickbait_is_picked_more_and_ends_sessions_sooner_and_a_world_without_it_is_unchanged()
    {
        var baited = new SyntheticWorld(Small with { ClickbaitShare = 0.2 });
        var plain = new SyntheticWorld(Small);
        var bait = Enumerable.Range(0, Small.Items).Where(i => baited.IsClickbait[i]).ToList();
        Assert.InRange(bait.Count, 15, 45);
        Assert.All(bait, i => Assert.Contains("sensational", baited.ItemTags[i]));
        Assert.Equal(plain.GenerateHistory(Start), new SyntheticWorld(Small with { ClickbaitShare = 0 }).GenerateHistory(Start));

        // The same user, offered one clickbait and one honest item of equal appeal without the lure, picks the bait more often...
        var user = SyntheticWorld.Clone(baited.Users[0]);
        var honest = Enumerable.Range(0, Small.Items).Where(i => !baited.IsClickbait[i]).MinBy(i => Math.Abs(baited.Appeal(user, i) - (baited.Appeal(user, bait[0]) - Small.ClickbaitLure)));
        var random = new Random(2);
        var picks = Enumerable.Range(0, 2000).Select(_ => baited.Respond(SyntheticWorld.Clone(user), [bait[0], honest], random).Chosen).ToList();
        Assert.True(picks.Count(p => p == bait[0]) > 1.5 * picks.Count(p => p == honest), $"bait {picks.Count(p => p == bait[0])}, honest {picks.Count(p => p == honest)}");
        // ...and is likelier to leave after consuming it.
        double LeaveRate(int item) => Enumerable.Range(0, 4000).Average(_ => baited.Step(SyntheticWorld.Clone(user), item, random) ? 1.0 : 0.0);
        Assert.True(LeaveRate(bait[0]) > LeaveRate(honest) + 0.2, $"leave after bait {LeaveRate(bait[0]):F2}, after honest {LeaveRate(honest):F2}");
        // Picked more, but watched, liked and rated as the honest item is: the lure shows in the clicks, not in what follows.
        Engagement EngagementWith(int item) => Enumerable.Range(0, 50).Select(_ => baited.Respond(SyntheticWorld.Clone(user), [item], random))
            .First(answer => answer.Chosen == item).Engagement!.Value;
        Assert.Equal(EngagementWith(honest).Watched, EngagementWith(bait[0]).Watched, 1);
    }

    [Fact]
    public void What_a_user_does_with_a_pick_follows_how_much_it_satisfied_them()
    {
        var world = new SyntheticWorld(Small);
        var user = SyntheticWorld.Clone(world.Users[3]);
        var byAppeal = Enumerable.Range(0, Small.Items).OrderBy(i => world.Appeal(user, i)).ToList();
        var (worst, best) = (Engagement.FromSatisfaction(world.Satisfaction(user, byAppeal[0])), Engagement.FromSatisfaction(world.Satisfaction(user, byAppeal[^1])));

        Assert.True(best.Watched > worst.Watched && best.Stars > worst.Stars, $"best {best}, worst {worst}");
        Assert.Equal(new Engagement(1, 1, 1, 5), Engagement.FromSatisfaction(1));
        Assert.Equal(new Engagement(0.5, 0, 0, 3), Engagement.FromSatisfaction(0.5));
        // The world's answer carries it for a pick, and nothing for none.
        var random = new Random(1);
        var answers = Enumerable.Range(0, 200).Select(_ => world.Respond(SyntheticWorld.Clone(user), [byAppeal[^1]], random)).ToList();
        Assert.All(answers, a => Assert.Equal(a.Chosen is not null, a.Engagement is not null));
        Assert.Contains(answers, a => a.Chosen is null);
    }

    [Fact]
    public void The_world_emits_valid_product_events_and_a_dataset_with_features()
    {
        var world = new SyntheticWorld(Small);
        var parser = new EventParser();
        var events = world.CatalogAndProfileEvents(Start).ToList();
        var data = world.ToDataset(world.GenerateHistory(Start));

        Assert.All(events, e => Assert.True(parser.Parse(e.ToUtf8Json(), Start).IsValid));
        Assert.Equal(Small.Items + Small.Users, events.Count);
        Assert.Equal(Small.Items, data.ItemCount);
        Assert.Equal(3, data.ItemFeatures!.Tokens[1].Length); // category and two tags
        Assert.Equal(2, data.UserFeatures!.Tokens[0].Length);
    }

    [Fact]
    public void The_datasets_item_tokens_are_the_ones_serving_reads_from_the_catalog_the_world_sends()
    {
        // A model trained on the world's dataset meets the items through the catalog when served: same names, or no content.
        var world = new SyntheticWorld(Small);
        var data = world.ToDataset(world.GenerateHistory(Start));
        var parser = new EventParser();
        var catalog = world.CatalogAndProfileEvents(Start)
            .Select(e => parser.Parse(e.ToUtf8Json(), Start.AddDays(1)).Item)
            .OfType<CatalogItem>()
            .ToDictionary(i => i.ItemId);

        for (var row = 1; row < data.ItemIds.Count; row++)
        {
            var trained = data.ItemFeatures!.Tokens[row].Select(t => data.ItemFeatures.Vocabulary[t]);
            Assert.Equal(FeatureTokens.OfItem(catalog[data.ItemIds[row]]).Distinct(), trained);
        }
    }
}
