using System.Globalization;
using Recommender.Data;

namespace Recommender.Training.Reinforcement;

/// <summary>
/// What each event of a session is worth: a pick (click), what the user did with what they picked (the event log's
/// watch time, like, purchase and rating: <see cref="Engagement"/>), and leaving. Clicks alone by default.
/// </summary>
public sealed record RewardConfig
{
    /// <summary>Reward when the user picks (clicks) an item of the slate.</summary>
    public double Click { get; init; } = 1.0;
    /// <summary>Per item watched to the end (a part of it for a part).</summary>
    public double Watch { get; init; }
    public double Like { get; init; }
    public double Purchase { get; init; }
    /// <summary>Per star of the rating (1 to 5) given to the item picked.</summary>
    public double Rating { get; init; }
    /// <summary>Added when the user leaves (a negative number penalises ending the session).</summary>
    public double Leave { get; init; }

    /// <summary>A step's reward: what the pick earned (<paramref name="picked"/> null: nothing picked), then leaving.</summary>
    public double Of(Engagement? picked, bool left) => (picked is { } e ? Click + Engaged(e) : 0) + (left ? Leave : 0);

    /// <summary>What consuming the pick earned beyond the click.</summary>
    public double Engaged(Engagement e) => Watch * e.Watched + Like * e.Liked + Purchase * e.Purchased + Rating * e.Stars;

    /// <summary>Whether any reward reads what the user did with a pick (else the simulator need not learn it).</summary>
    public bool ReadsEngagement => Watch != 0 || Like != 0 || Purchase != 0 || Rating != 0;

    /// <summary>Parses "click=1,watch=1,like=0.5,purchase=2,rating=0.1,leave=-1" (names as the properties, case-insensitive); a weight not named keeps its default.</summary>
    public static RewardConfig Parse(string text)
    {
        var rewards = new RewardConfig();
        foreach (var pair in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var parts = pair.Split('=');
            if (parts.Length != 2 || !double.TryParse(parts[1], NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
                throw new FormatException($"a reward weight is name=number, not '{pair}'");
            rewards = parts[0].ToLowerInvariant() switch
            {
                "click" => rewards with { Click = value },
                "watch" => rewards with { Watch = value },
                "like" => rewards with { Like = value },
                "purchase" => rewards with { Purchase = value },
                "rating" => rewards with { Rating = value },
                "leave" => rewards with { Leave = value },
                var other => throw new FormatException($"unknown reward '{other}' (click, watch, like, purchase, rating, leave)"),
            };
        }
        return rewards;
    }
}

/// <summary>One step of a session: the slate shown (item numbers), the item picked from it (0: none), and what the user did with it.</summary>
public sealed record SlateResponse(long[] Slate, long Picked, Engagement? Engagement = null);

/// <summary>
/// A user's session so far: who, the items consumed (dataset item numbers, oldest first: the logged history,
/// then this session's picks), and each slate shown in this session with what the user picked from it (or
/// nothing), which the actor reads: impressions the user did not take, and answers to learn the user from.
/// </summary>
public sealed record SessionState(int User, int[] History, SlateResponse[] Responses)
{
    /// <summary>A session's first state: the logged history, nothing shown yet.</summary>
    public static SessionState Start(int user, int[] history) => new(user, history, []);

    /// <summary>Slates shown so far.</summary>
    public int Step => Responses.Length;

    /// <summary>Every item shown in this session, a slate's items each time it was shown.</summary>
    public IEnumerable<long> Shown => Responses.SelectMany(r => r.Slate);

    /// <summary>The state after a slate was shown and <paramref name="chosen"/> (a dataset item number) or nothing was picked, and consumed with <paramref name="engagement"/>.</summary>
    public SessionState After(IReadOnlyList<long> slate, int? chosen, Engagement? engagement = null) =>
        new(User, chosen is { } item ? [.. History, item] : History, [.. Responses, new SlateResponse([.. slate], chosen ?? 0, chosen is null ? null : engagement)]);

    /// <summary>This session's picks, each worth <paramref name="decay"/>^(slates shown since): how the session has been going lately.</summary>
    public double RecentPicks(double decay)
    {
        var recent = 0.0;
        foreach (var response in Responses)
            recent = decay * recent + (response.Picked != 0 ? 1 : 0);
        return recent;
    }

    /// <summary>How often <paramref name="item"/> was shown in this session (not taken, while it is not in the history).</summary>
    public int TimesShown(long item)
    {
        var count = 0;
        foreach (var response in Responses)
            count += Array.IndexOf(response.Slate, item) >= 0 ? 1 : 0;
        return count;
    }
}

/// <summary>
/// The synthetic world as an episodic environment: an episode is one session of one of the given users,
/// who starts as their logged history left them (taste drifted, recent categories) and satisfied, a new
/// visit; each step shows a slate, the world's user picks one item or none (softmax over true appeal,
/// with fatigue), drifts, and may leave. The truth the RL results are judged on.
/// </summary>
/// <param name="population">The world's users as the history that <paramref name="data"/> holds left them (<see cref="SyntheticWorld.UsersAfterHistory"/>).</param>
public sealed class SessionEnvironment(SyntheticWorld world, IReadOnlyList<WorldUser> population, InteractionDataset data, IReadOnlyList<int> users, RewardConfig rewards, int slateSize = 5, int maxSteps = 30)
    : ISlateEnvironment<SessionState>
{
    private WorldUser _user = null!;
    private SessionState _state = null!;

    public int SlateSize => slateSize;

    public SessionState Reset(Random random)
    {
        var u = users[random.Next(users.Count)];
        _user = SyntheticWorld.Clone(population[SyntheticWorld.UserIndex(data.UserIds[u])]);
        _user.Satisfaction = 1;
        _state = SessionState.Start(u, data.Sequences[u]);
        return _state;
    }

    /// <summary>The user as they are now (a copy), to ask what another slate would have earned here.</summary>
    public WorldUser CurrentUser => SyntheticWorld.Clone(_user);

    /// <summary>The true appeal of each dataset item to the user now (item n is world item n - 1; index 0, padding, is -inf): what an oracle would rank by.</summary>
    public double[] TrueAppeal() => [double.NegativeInfinity, .. Enumerable.Range(0, data.ItemCount).Select(i => world.Appeal(_user, i))];

    public (SessionState Next, double Reward, bool Done) Step(IReadOnlyList<long> slate, Random random)
    {
        var (chosen, left, engagement, reward) = Respond(_user, slate, random);
        _state = _state.After(slate, chosen + 1, engagement);
        return (_state, reward, left || _state.Step >= maxSteps);
    }

    /// <summary>The world's answer to a slate (dataset item numbers; item n is world item n - 1) and its reward; changes <paramref name="user"/>.</summary>
    public (int? Chosen, bool Left, Engagement? Engagement, double Reward) Respond(WorldUser user, IReadOnlyList<long> slate, Random random)
    {
        var (chosen, left, engagement) = world.Respond(user, slate.Select(n => (int)n - 1).ToList(), random);
        return (chosen, left, engagement, rewards.Of(engagement, left));
    }
}
