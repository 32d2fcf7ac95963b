using Recommender.Data;

namespace Recommender.Training.Reinforcement;

/// <summary>What each event of a session is worth (the world answers with a pick or none, and may leave).</summary>
public sealed record RewardConfig
{
    /// <summary>Reward when the user picks (clicks) an item of the slate.</summary>
    public double Click { get; init; } = 1.0;
    /// <summary>Added when the user leaves (a negative number penalises ending the session).</summary>
    public double Leave { get; init; }
}

/// <summary>A user's session so far: who, and the items consumed (dataset item numbers), oldest first.</summary>
public sealed record SessionState(int User, int[] History, int Step);

/// <summary>
/// The synthetic world as an episodic environment: an episode is one session of one of the given users,
/// starting from their logged history; each step shows a slate, the world's user picks one item or none
/// (softmax over true appeal, with fatigue), drifts, and may leave. The truth the RL results are judged on.
/// </summary>
public sealed class SessionEnvironment(SyntheticWorld world, InteractionDataset data, IReadOnlyList<int> users, RewardConfig rewards, int slateSize = 5, int maxSteps = 30)
    : ISlateEnvironment<SessionState>
{
    private WorldUser _user = null!;
    private SessionState _state = null!;

    public int SlateSize => slateSize;

    public SessionState Reset(Random random)
    {
        var u = users[random.Next(users.Count)];
        _user = SyntheticWorld.Clone(world.Users[SyntheticWorld.UserIndex(data.UserIds[u])]);
        _state = new SessionState(u, data.Sequences[u], 0);
        return _state;
    }

    /// <summary>The user as they are now (a copy), to ask what another slate would have earned here.</summary>
    public WorldUser CurrentUser => SyntheticWorld.Clone(_user);

    public (SessionState Next, double Reward, bool Done) Step(IReadOnlyList<long> slate, Random random)
    {
        var (chosen, left, reward) = Respond(_user, slate, random);
        var history = chosen is { } item ? [.. _state.History, item + 1] : _state.History;
        _state = new SessionState(_state.User, history, _state.Step + 1);
        return (_state, reward, left || _state.Step >= maxSteps);
    }

    /// <summary>The world's answer to a slate (dataset item numbers; item n is world item n - 1) and its reward; changes <paramref name="user"/>.</summary>
    public (int? Chosen, bool Left, double Reward) Respond(WorldUser user, IReadOnlyList<long> slate, Random random)
    {
        var (chosen, left) = world.Respond(user, slate.Select(n => (int)n - 1).ToList(), random);
        return (chosen, left, (chosen is null ? 0 : rewards.Click) + (left ? rewards.Leave : 0));
    }
}
