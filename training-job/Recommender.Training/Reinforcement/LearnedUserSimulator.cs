using System.Text.Json.Nodes;
using Recommender.Data;
using static TorchSharp.torch;

namespace Recommender.Training.Reinforcement;

/// <summary>One logged decision: the state before it, the slate shown, the slot chosen (null: none), whether the user then left, and what they did with their pick.</summary>
public sealed record LoggedStep(SessionState State, long[] Slate, int? Chosen, bool Left, Engagement? Engagement = null);

/// <summary>Settings of the learned user simulator, with documented defaults.</summary>
public sealed record SimulatorConfig
{
    /// <summary>Sessions of the logging policy recorded from the training users (the "event log").</summary>
    public int LoggedSessions { get; init; } = 1500;
    /// <summary>Share of logged sessions kept out of fitting to measure fidelity.</summary>
    public double HeldOutShare { get; init; } = 0.2;
    /// <summary>Full-batch Adam steps for each of the two models.</summary>
    public int Steps { get; init; } = 300;
    public double LearningRate { get; init; } = 0.05;
    /// <summary>Recent clicks decay by this factor per step (the leave model's memory of how the session went, <see cref="SessionState.RecentPicks"/>).</summary>
    public double RecentClickDecay { get; init; } = 0.7;
}

/// <summary>
/// A user simulator learned from logs, in the spirit of KuaiSim: an immediate-response model and a
/// leave-session model, fitted by maximum likelihood to logged sessions, then used as the environment
/// policies train in (as they would on real data, where the true user is not available).
/// <code>
/// response:  P(pick slot i | state, slate) = softmax over the slate and "none" (logit 0) of
///            w_a·affinity_i + w_r·repeats_i + w_p·log popularity_i + b
///            affinity_i = h·v_i (the frozen pretrained encoder's state and item vector),
///            repeats_i = items of the same category among the last 5 consumed
/// leave:     P(leave | step) = σ(u_0 + u_c·clicked + u_r·recent clicks + Σ_t u_t·[the item picked has content token t])
/// engaged:   E[signal | item i picked] = e_a·affinity_i + e_r·repeats_i + e_p·log popularity_i + e_0 + Σ_t e_t·[i has token t],
///            one least-squares fit for each of watched share, like, purchase and stars (only when the reward reads them)
/// </code>
/// Seven numbers and one per content token on top of the encoder: enough to learn fatigue, the pull of popularity
/// and which kinds of item end sessions from logs, small enough to read and to fit in a second.
/// </summary>
public sealed class LearnedUserSimulator
{
    private readonly FrozenEncoderStates _states;
    private readonly CategoryRepeats _repeats;
    private readonly float[] _logPopularity;
    private readonly SimulatorConfig _config;
    private Tensor _response;    // [4]: w_a, w_r, w_p, b
    private Tensor _leave;       // [3 + vocabulary]: u_0, u_c, u_r, then u_t per content token
    private Tensor[]? _engaged;  // per signal (watched, liked, purchased, stars) [4 + vocabulary]: e_a, e_r, e_p, e_0, then e_t per content token
    /// <summary>Content tokens per item [items + 1, vocabulary] (0/1), and their names.</summary>
    private readonly Tensor _itemTokens;
    private readonly IReadOnlyList<string> _vocabulary;

    /// <param name="states">The frozen encoder's states (the simulator reads the encoder, never trains it).</param>
    public LearnedUserSimulator(FrozenEncoderStates states, InteractionDataset data, LeaveOneOutSplit split, SimulatorConfig config)
    {
        (_states, _config) = (states, config);
        states.Encoder.eval(); // frozen: no dropout in its states
        _repeats = new CategoryRepeats(data.ItemCount, data.ItemFeatures);
        _logPopularity = new PopularityScorer(split, data.ItemCount).LogCounts();
        _itemTokens = SequenceBatches.TokenMatrix(data.ItemFeatures, data.ItemCount + 1);
        _vocabulary = data.ItemFeatures?.Vocabulary ?? ["<pad>"];
        (_response, _leave) = (zeros(4).DetachFromDisposeScope(), zeros(3 + _vocabulary.Count).DetachFromDisposeScope());
    }

    public SimulatorConfig Config => _config;

    /// <summary>The fitted weights, for reports: response (affinity, repeats, popularity, bias) and leave (bias, clicked, recent clicks, then one per content token).</summary>
    public (float[] Response, float[] Leave) Weights => (_response.data<float>().ToArray(), _leave.data<float>().ToArray());

    /// <summary>Response features [steps, slate, 3]: affinity, repeats, log popularity.</summary>
    private Tensor Features(IReadOnlyList<SessionState> states, IReadOnlyList<long[]> slates)
    {
        using var _ = no_grad();
        var slateSize = slates[0].Length;
        var rows = new List<Tensor>();
        for (var start = 0; start < states.Count; start += 256)
        {
            var batch = Enumerable.Range(start, Math.Min(256, states.Count - start)).ToArray();
            var h = _states.Of(batch.Select(b => states[b]).ToList());
            var items = _states.ItemVectors().index_select(0, tensor(batch.SelectMany(b => slates[b]).ToArray())).view(batch.Length, slateSize, -1);
            var affinity = items.matmul(h.unsqueeze(-1)).squeeze(-1);
            var repeats = tensor(batch.SelectMany(b => slates[b].Select(i => (float)_repeats.Count(states[b].History, i))).ToArray()).view(batch.Length, slateSize);
            var popularity = tensor(batch.SelectMany(b => slates[b].Select(i => _logPopularity[i])).ToArray()).view(batch.Length, slateSize);
            rows.Add(stack([affinity, repeats, popularity], -1));
        }
        return cat(rows);
    }

    /// <summary>Logits over the slate and "none" (last) [steps, slate + 1].</summary>
    private static Tensor ResponseLogits(Tensor features, Tensor weights) =>
        cat([features.matmul(weights[..3]).Plus(weights[3]), zeros(features.shape[0], 1)], 1);

    /// <summary>
    /// Leave features [steps, 3 + vocabulary]: 1, whether an item was picked, the recent clicks before the step
    /// (<see cref="SessionState.RecentPicks"/> of its state), the picked item's content tokens (<paramref name="picked"/> 0: none).
    /// </summary>
    private Tensor LeaveFeatures(IReadOnlyList<long> picked, IReadOnlyList<SessionState> states) =>
        cat([stack([ones(picked.Count), tensor(picked.Select(p => p > 0 ? 1f : 0f).ToArray()), tensor(states.Select(s => (float)s.RecentPicks(_config.RecentClickDecay)).ToArray())], 1),
            _itemTokens.index_select(0, tensor(picked.ToArray()))], 1);

    private static long Picked(LoggedStep step) => step.Chosen is { } slot ? step.Slate[slot] : 0;

    /// <summary>
    /// Engagement features of picked items [picks, 4 + vocabulary]: the response features (affinity, repeats, log
    /// popularity), 1, and the item's content tokens.
    /// </summary>
    private Tensor EngagementFeatures(IReadOnlyList<SessionState> states, IReadOnlyList<long> picked) =>
        cat([Features(states, picked.Select(i => new[] { i }).ToList()).squeeze(1), ones(picked.Count, 1), _itemTokens.index_select(0, tensor(picked.ToArray()))], 1);

    /// <summary>What the simulated user does with each picked item: the fitted signals, clamped to their ranges (null when not fitted).</summary>
    private Engagement[]? PredictEngagement(IReadOnlyList<SessionState> states, IReadOnlyList<long> picked)
    {
        if (_engaged is null)
            return null;
        using var scope = NewDisposeScope();
        var features = EngagementFeatures(states, picked);
        var signals = _engaged.Select(w => features.matmul(w).to(ScalarType.Float64).data<double>().ToArray()).ToArray();
        return Enumerable.Range(0, picked.Count).Select(i => new Engagement(Math.Clamp(signals[0][i], 0, 1), Math.Clamp(signals[1][i], 0, 1),
            Math.Clamp(signals[2][i], 0, 1), Math.Clamp(signals[3][i], 1, 5))).ToArray();
    }

    /// <summary>The four signals of an engagement, in the order of the engagement model's fits.</summary>
    private static double[] Signals(Engagement e) => [e.Watched, e.Liked, e.Purchased, e.Stars];

    /// <summary>
    /// Fits the response and leave models by maximum likelihood on the logged steps, and, when <paramref name="engagement"/>
    /// (the logs record what users did with their picks, and the reward reads it), the engagement model by least squares.
    /// </summary>
    public void Fit(IReadOnlyList<LoggedStep> logs, bool engagement = false)
    {
        var features = Features(logs.Select(l => l.State).ToList(), logs.Select(l => l.Slate).ToList());
        var slateSize = logs[0].Slate.Length;
        var chosen = tensor(logs.Select(l => (long)(l.Chosen ?? slateSize)).ToArray());
        var leaveFeatures = LeaveFeatures(logs.Select(Picked).ToList(), logs.Select(l => l.State).ToList());
        var left = tensor(logs.Select(l => l.Left ? 1f : 0f).ToArray());

        _response = Minimise(4, w => nn.functional.cross_entropy(ResponseLogits(features, w), chosen));
        _leave = Minimise((int)_leave.shape[0], u => nn.functional.binary_cross_entropy_with_logits(leaveFeatures.matmul(u), left));

        var picks = logs.Where(l => l.Engagement is not null).ToList();
        if (!engagement || picks.Count == 0)
            return;
        var engagementFeatures = EngagementFeatures(picks.Select(l => l.State).ToList(), picks.Select(Picked).ToList());
        _engaged = Enumerable.Range(0, 4).Select(signal =>
        {
            var observed = tensor(picks.Select(l => (float)Signals(l.Engagement!.Value)[signal]).ToArray());
            return Minimise((int)engagementFeatures.shape[1], e => nn.functional.mse_loss(engagementFeatures.matmul(e), observed));
        }).ToArray();
    }

    /// <summary>The weights [<paramref name="size"/>] that minimise <paramref name="loss"/>, in memory of their own (kept past any dispose scope).</summary>
    private Tensor Minimise(int size, Func<Tensor, Tensor> loss)
    {
        var weights = nn.Parameter(zeros(size));
        var optimizer = optim.Adam([weights], _config.LearningRate);
        for (var step = 0; step < _config.Steps; step++)
        {
            using var scope = NewDisposeScope();
            optimizer.zero_grad();
            loss(weights).backward();
            optimizer.StepWithoutCollection();
        }
        return weights.detach().clone().DetachFromDisposeScope();
    }

    /// <summary>The simulated user's answer to a slate: the slot picked (or none), whether they leave, and (when fitted) what they do with the pick.</summary>
    public (int? Chosen, bool Left, Engagement? Engagement) Respond(SessionState state, IReadOnlyList<long> slate, Random random)
    {
        using var scope = NewDisposeScope();
        var logits = ResponseLogits(Features([state], [slate.ToArray()]), _response)[0].to(ScalarType.Float64).data<double>().ToArray();
        var pick = SlateDistribution.Sample(logits, 1, random)[0];
        int? chosen = pick < slate.Count ? pick : null;
        var leave = LeaveProbabilities([chosen is { } slot ? slate[slot] : 0], [state])[0];
        var engagement = chosen is { } picked ? PredictEngagement([state], [slate[picked]])?[0] : null;
        return (chosen, random.NextDouble() < leave, engagement);
    }

    /// <summary>
    /// The simulator's expected reward of each of <paramref name="slates"/> (all one length) shown in one state:
    /// Click · P(a pick) + Σ_j P(pick j) · (what engaging with j earns, when the reward reads it) + Leave · P(leaving),
    /// P(leaving) averaged over what the user picks, or none. The reward model of the doubly robust off-policy estimate.
    /// </summary>
    public double[] ExpectedRewards(SessionState state, IReadOnlyList<long[]> slates, RewardConfig rewards)
    {
        using var scope = NewDisposeScope();
        var k = slates[0].Length;
        var probabilities = ResponseLogits(Features(Enumerable.Repeat(state, slates.Count).ToList(), slates), _response)
            .softmax(1).to(ScalarType.Float64).data<double>().ToArray(); // [slates, k + 1], "none" last
        // P(leave) after each outcome: each slot's item picked, then none picked (0).
        var leave = rewards.Leave == 0 ? null
            : LeaveProbabilities(slates.SelectMany(slate => slate.Append(0L)).ToList(), Enumerable.Repeat(state, slates.Count * (k + 1)).ToList());
        var engaged = rewards.ReadsEngagement ? PredictEngagement(Enumerable.Repeat(state, slates.Count * k).ToList(), slates.SelectMany(slate => slate).ToList()) : null;
        return Enumerable.Range(0, slates.Count).Select(s =>
        {
            var p = probabilities.AsSpan(s * (k + 1), k + 1);
            var leaving = 0.0;
            for (var j = 0; leave is not null && j <= k; j++)
                leaving += p[j] * leave[s * (k + 1) + j];
            var reward = rewards.Click * (1 - p[k]) + rewards.Leave * leaving;
            for (var j = 0; engaged is not null && j < k; j++)
                reward += p[j] * rewards.Engaged(engaged[s * k + j]);
            return reward;
        }).ToArray();
    }

    /// <summary>
    /// What the simulated user may do with one slate: the chance of picking each slot and of picking none (last), the
    /// chance of leaving after each of those outcomes, and (when fitted) what they would do with each slot's item.
    /// </summary>
    public (double[] Pick, double[] Leave, Engagement[]? Engaged) Outcomes(SessionState state, long[] slate)
    {
        using var scope = NewDisposeScope();
        var pick = ResponseLogits(Features([state], [slate]), _response).softmax(1)[0].to(ScalarType.Float64).data<double>().ToArray();
        var leave = LeaveProbabilities([.. slate, 0L], Enumerable.Repeat(state, slate.Length + 1).ToList());
        return (pick, leave, PredictEngagement(Enumerable.Repeat(state, slate.Length).ToList(), slate));
    }

    private double[] LeaveProbabilities(IReadOnlyList<long> picked, IReadOnlyList<SessionState> states)
    {
        using var scope = NewDisposeScope();
        return LeaveFeatures(picked, states).matmul(_leave).sigmoid().to(ScalarType.Float64).data<double>().ToArray();
    }

    /// <summary>
    /// Fidelity to held-out logs: per-decision log-likelihood against a constant-rate baseline (picks
    /// uniform over the slate at the logged click rate), predicted against observed click and leave rates,
    /// and how well each model separates the outcomes (AUC).
    /// </summary>
    public JsonObject Fidelity(IReadOnlyList<LoggedStep> heldOut, IReadOnlyList<LoggedStep> fitted)
    {
        using var scope = NewDisposeScope();
        var (response, leave) = Weights;
        var slateSize = heldOut[0].Slate.Length;
        var probabilities = ResponseLogits(Features(heldOut.Select(l => l.State).ToList(), heldOut.Select(l => l.Slate).ToList()), _response)
            .softmax(1).to(ScalarType.Float64);
        var rows = Enumerable.Range(0, heldOut.Count).Select(i => probabilities[i].data<double>().ToArray()).ToArray();
        // The baseline's click rate with one pseudo-click and one pseudo-skip (Laplace): logs with no click at all, or only
        // clicks, still give a finite likelihood; probabilities are clipped as log loss clips them, for the same reason.
        var clickRate = (fitted.Count(l => l.Chosen is not null) + 1.0) / (fitted.Count + 2.0);
        const double floor = 1e-12;
        double modelLogLikelihood = 0, baselineLogLikelihood = 0;
        for (var i = 0; i < heldOut.Count; i++)
        {
            var slot = heldOut[i].Chosen ?? slateSize;
            modelLogLikelihood += Math.Log(Math.Max(rows[i][slot], floor));
            baselineLogLikelihood += Math.Log(slot == slateSize ? 1 - clickRate : clickRate / slateSize);
        }
        var predictedClick = rows.Select(r => 1 - r[slateSize]).ToArray();
        var clicked = heldOut.Select(l => l.Chosen is not null).ToArray();
        var predictedLeave = LeaveProbabilities(heldOut.Select(Picked).ToList(), heldOut.Select(l => l.State).ToList());
        var left = heldOut.Select(l => l.Left).ToArray();
        return new JsonObject
        {
            ["decisions"] = heldOut.Count,
            ["log_likelihood_per_decision"] = modelLogLikelihood / heldOut.Count,
            ["baseline_log_likelihood_per_decision"] = baselineLogLikelihood / heldOut.Count,
            ["click_rate_observed"] = clicked.Average(c => c ? 1.0 : 0.0),
            ["click_rate_predicted"] = predictedClick.Average(),
            ["click_auc"] = JsonNumbers.Finite(Auc(predictedClick, clicked)), // null when the held-out decisions are all clicks or all skips
            ["leave_rate_observed"] = left.Average(l => l ? 1.0 : 0.0),
            ["leave_rate_predicted"] = predictedLeave.Average(),
            ["leave_auc"] = JsonNumbers.Finite(Auc(predictedLeave, left)),
            ["response_weights"] = new JsonObject { ["affinity"] = response[0], ["repeats"] = response[1], ["log_popularity"] = response[2], ["bias"] = response[3] },
            ["leave_weights"] = new JsonObject { ["bias"] = leave[0], ["clicked"] = leave[1], ["recent_clicks"] = leave[2] },
            // The content tokens whose picks the leave model finds most telling, either way.
            ["leave_weights_by_content"] = new JsonObject(leave.Skip(4).Select((u, t) => (Token: _vocabulary[t + 1], Weight: u)).OrderByDescending(t => Math.Abs(t.Weight)).Take(5)
                .Select(t => KeyValuePair.Create(t.Token, (JsonNode?)Math.Round(t.Weight, 4)))),
            ["engagement_r2"] = EngagementFit(heldOut.Where(l => l.Engagement is not null).ToList()),
        };
    }

    /// <summary>R² of each predicted engagement signal on held-out picks (null when the engagement model was not fitted).</summary>
    private JsonObject? EngagementFit(IReadOnlyList<LoggedStep> picks)
    {
        if (picks.Count < 2 || PredictEngagement(picks.Select(l => l.State).ToList(), picks.Select(Picked).ToList()) is not { } predicted)
            return null;
        string[] names = ["watched", "liked", "purchased", "stars"];
        return new JsonObject(names.Select((name, signal) =>
        {
            var observed = picks.Select(l => Signals(l.Engagement!.Value)[signal]).ToArray();
            var mean = observed.Average();
            var total = observed.Sum(o => (o - mean) * (o - mean));
            var residual = observed.Select((o, i) => (o - Signals(predicted[i])[signal]) * (o - Signals(predicted[i])[signal])).Sum();
            return KeyValuePair.Create(name, (JsonNode?)(total > 0 ? 1 - residual / total : null));
        }));
    }

    /// <summary>Area under the ROC curve: the chance that a positive outranks a negative (ties count half).</summary>
    public static double Auc(IReadOnlyList<double> scores, IReadOnlyList<bool> labels)
    {
        var order = Enumerable.Range(0, scores.Count).OrderBy(i => scores[i]).ToArray();
        double rankSum = 0;
        var i0 = 0;
        while (i0 < order.Length)
        {
            var i1 = i0;
            while (i1 + 1 < order.Length && scores[order[i1 + 1]] == scores[order[i0]])
                i1++;
            var averageRank = (i0 + i1) / 2.0 + 1;
            for (var k = i0; k <= i1; k++)
                rankSum += labels[order[k]] ? averageRank : 0;
            i0 = i1 + 1;
        }
        var positives = labels.Count(l => l);
        var negatives = labels.Count - positives;
        return positives == 0 || negatives == 0 ? double.NaN : (rankSum - positives * (positives + 1) / 2.0) / ((double)positives * negatives);
    }
}

/// <summary>Sessions answered by a <see cref="LearnedUserSimulator"/> instead of the world: what policies train in when the true user is unknown.</summary>
public sealed class LearnedSessionEnvironment(LearnedUserSimulator simulator, InteractionDataset data, IReadOnlyList<int> users, RewardConfig rewards, int slateSize = 5, int maxSteps = 30)
    : ISlateEnvironment<SessionState>
{
    private SessionState _state = null!;

    public int SlateSize => slateSize;

    public SessionState Reset(Random random)
    {
        var u = users[random.Next(users.Count)];
        _state = SessionState.Start(u, data.Sequences[u]);
        return _state;
    }

    public (SessionState Next, double Reward, bool Done) Step(IReadOnlyList<long> slate, Random random)
    {
        var (chosen, left, engagement) = simulator.Respond(_state, slate, random);
        _state = _state.After(slate, chosen is { } slot ? (int)slate[slot] : null, engagement);
        var reward = rewards.Of(chosen is null ? null : engagement ?? default, left);
        return (_state, reward, left || _state.Step >= maxSteps);
    }

    /// <summary>
    /// Records sessions of <paramref name="policy"/> in <paramref name="truth"/> as the event log would hold
    /// them: each decision with its state, slate, the slot picked and whether the user left (a session cut at
    /// <paramref name="maxSteps"/> did not leave).
    /// </summary>
    public static List<List<LoggedStep>> Record(ISlateEnvironment<SessionState> truth, SlatePolicyFunction policy, int sessions, int maxSteps, Random random)
    {
        var log = new List<List<LoggedStep>>();
        for (var s = 0; s < sessions; s++)
        {
            var session = new List<LoggedStep>();
            var state = truth.Reset(random);
            var done = false;
            while (!done)
            {
                var slate = policy(state, random).ToArray();
                (var next, _, done) = truth.Step(slate, random);
                int? chosen = next.History.Length > state.History.Length ? Array.IndexOf(slate, (long)next.History[^1]) : null;
                session.Add(new LoggedStep(state, slate, chosen, done && next.Step < maxSteps, next.Responses[^1].Engagement));
                state = next;
            }
            log.Add(session);
        }
        return log;
    }
}
