using Recommender.Data;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Recommender.Training.Reinforcement;

/// <summary>
/// The recommendation policy: the pretrained sequence encoder's state for the user's history scored
/// against item vectors, a softmax at <paramref name="temperature"/> over the top-<paramref name="candidates"/>
/// items not yet consumed (the actor); and a value head on the same state (the critic, which reads the state
/// without moving the encoder). Starts from the pretrained weights, which PPO fine-tunes.
/// </summary>
/// <remarks>
/// Beside the encoder the actor has two session-level weights, both 0 at the start (so the first policy is
/// the pretrained one): a log-sharpness on the scores, and a weight on how many of the last
/// <see cref="CategoryRepeats.RecentWindow"/> consumed items share the candidate's category. The encoder was trained on
/// next-item logs and has no reason to learn what repetition does to a session; RL can learn it here.
/// </remarks>
public sealed class SequenceActorCritic : nn.Module, IActorCritic<SessionState>
{
    /// <summary>The head's weights are stored divided by this, so Adam (with the encoder's small learning rate) moves them usefully.</summary>
    private const double HeadScale = 30;

    private readonly SasRecModel encoder;
    private readonly Sequential value;
    private readonly Parameter sharpness = nn.Parameter(zeros(1));
    private readonly Parameter repetition = nn.Parameter(zeros(1));
    private readonly CategoryRepeats _repeats;
    private readonly SequenceModelConfig _config;
    private readonly FeatureTable? _userFeatures;
    private readonly int _candidates;
    private readonly double _temperature;

    public SequenceActorCritic(SasRecModel pretrained, SequenceModelConfig config, FeatureTable? userFeatures, FeatureTable? itemFeatures, int candidates = 50, double temperature = 0.2)
        : base(nameof(SequenceActorCritic))
    {
        encoder = pretrained;
        value = nn.Sequential(nn.Linear(config.Dimension, config.Dimension), nn.ReLU(), nn.Linear(config.Dimension, 1));
        _config = config;
        _userFeatures = userFeatures;
        _candidates = candidates;
        _temperature = temperature;
        _repeats = new CategoryRepeats(pretrained.ItemCount, itemFeatures);
        RegisterComponents();
    }

    public SasRecModel Encoder => encoder;

    /// <summary>The user's state: the encoder's last hidden vector [B, d].</summary>
    private Tensor States(IReadOnlyList<SessionState> observations) =>
        encoder.forward(SequenceBatches.Histories(observations.Select(o => o.History).ToList(), _config.MaxLength, CPU),
            SequenceBatches.UserTokens(_userFeatures, observations.Select(o => o.User).ToList(), CPU))[.., -1, ..];

    /// <summary>All item scores for one history (higher is better), with consumed items and padding at -inf.</summary>
    public float[] Scores(SessionState observation)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var scores = States([observation]).matmul(encoder.ItemVectors().T)[0].data<float>().ToArray();
        scores[0] = float.NegativeInfinity;
        foreach (var item in observation.History)
            scores[item] = float.NegativeInfinity;
        return scores;
    }

    public long[] Candidates(SessionState observation)
    {
        var scores = Scores(observation);
        return Enumerable.Range(0, scores.Length).OrderByDescending(i => scores[i]).Take(_candidates).Select(i => (long)i).ToArray();
    }

    public (Tensor Logits, Tensor Values) Forward(IReadOnlyList<SessionState> observations, IReadOnlyList<long[]> candidates)
    {
        var states = States(observations);
        var items = encoder.ItemVectors().index_select(0, tensor(candidates.SelectMany(c => c).ToArray()))
            .view(observations.Count, candidates[0].Length, -1);
        var relevance = items.matmul(states.unsqueeze(-1)).squeeze(-1) / _temperature;
        var repeats = tensor(observations.SelectMany((o, b) => candidates[b].Select(c => (float)_repeats.Count(o.History, c))).ToArray()).view(observations.Count, -1);
        var logits = relevance * (sharpness * HeadScale).exp() + repetition * HeadScale * repeats;
        var values = value.forward(states.detach()).squeeze(-1);
        return (logits, values);
    }

    public IEnumerable<Parameter> Parameters() => parameters();

    /// <summary>The learned session weights (log-sharpness, weight per repeated category), for reports.</summary>
    public (double LogSharpness, double Repetition) SessionWeights => (sharpness.item<float>() * HeadScale, repetition.item<float>() * HeadScale);

    /// <summary>Sets the session weights by hand (ablations).</summary>
    public void SetSessionWeights(double logSharpness, double repetitionWeight)
    {
        using var _ = no_grad();
        sharpness.fill_(logSharpness / HeadScale);
        repetition.fill_(repetitionWeight / HeadScale);
    }

    /// <summary>The policy's K most likely candidates (its deterministic form).</summary>
    public IReadOnlyList<long> TopK(SessionState state, int k)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var candidates = Candidates(state);
        var logits = Forward([state], [candidates]).Logits[0].data<float>().ToArray();
        return Enumerable.Range(0, candidates.Length).OrderByDescending(i => logits[i]).Take(k).Select(i => candidates[i]).ToList();
    }

    /// <summary>Training mode for the value head only: the encoder stays in evaluation mode (no dropout), so the
    /// log-probabilities of an update match those the rollout recorded.</summary>
    public void Train(bool on)
    {
        train(on);
        encoder.eval();
    }
}
