using Recommender.Data;
using TorchSharp;
using TorchSharp.Modules;
using Recommender.ModelContract;
using static TorchSharp.torch;

namespace Recommender.Training.Reinforcement;

/// <summary>
/// The actor's head on top of the encoder's scores, in the units of those scores: log-sharpness, weight per
/// repeated category, weight per time the candidate was shown in the session and not taken, weight on the
/// candidate's affinity with the items the user passed over in this session, weight on the candidate's log
/// popularity in training, and a long-term value per content token (tokens not named: 0).
/// </summary>
public sealed record PolicyHead(double LogSharpness = 0, double Repetition = 0, double Declined = 0, double DeclinedAffinity = 0, double Popularity = 0, IReadOnlyDictionary<string, double>? ContentValues = null)
{
    /// <summary>Parses "repetition=-1;declined=-1;declinedAffinity=-0.2;popularity=-0.5;tag:sensational=-2" (also "sharpness=0.2"): what is not named is 0.</summary>
    public static PolicyHead Parse(string text)
    {
        var head = new PolicyHead();
        var content = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var pair in text.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var equals = pair.LastIndexOf('=');
            if (equals <= 0)
                throw new FormatException($"a head setting is name=value, not '{pair}'");
            var (name, value) = (pair[..equals], double.Parse(pair[(equals + 1)..], System.Globalization.CultureInfo.InvariantCulture));
            switch (name)
            {
                case "sharpness": head = head with { LogSharpness = value }; break;
                case "repetition": head = head with { Repetition = value }; break;
                case "declined": head = head with { Declined = value }; break;
                case "popularity": head = head with { Popularity = value }; break;
                case "declinedAffinity": head = head with { DeclinedAffinity = value }; break;
                default: content[name] = value; break; // a content token
            }
        }
        return head with { ContentValues = content };
    }

    public override string ToString() =>
        string.Join(", ", new[] { ("log-sharpness", LogSharpness), ("repetition", Repetition), ("declined", Declined), ("declined affinity", DeclinedAffinity), ("popularity", Popularity) }
            .Concat((ContentValues ?? new Dictionary<string, double>()).Select(kv => (kv.Key, kv.Value)))
            .Select(t => FormattableString.Invariant($"{t.Item1} {t.Item2:+0.00;-0.00;0}")));
}

/// <summary>
/// The recommendation policy: the pretrained sequence encoder's state for the user's history scored against item
/// vectors, plus the actor's head, a softmax at <paramref name="temperature"/> over the top-<paramref name="candidates"/>
/// items not yet consumed (the actor); and a value head on the same state (the critic, which reads the state without
/// moving the encoder). Policy optimisation trains the head and the critic, and the encoder too when
/// <paramref name="fineTuneEncoder"/>.
/// </summary>
/// <remarks>
/// The head's weights all start at 0, so the first policy is the pretrained one (<see cref="PolicyHead"/>): a
/// log-sharpness on the scores; a weight on how many of the last <see cref="CategoryRepeats.RecentWindow"/> consumed
/// items share the candidate's category; a weight on how often the candidate was already shown in this session and not
/// taken; a weight on its affinity with everything the user passed over in this session, v_c · Σ v_d over the items
/// shown and not taken (a "no" says where the user's taste is not, and moves the candidates near it); a weight on its
/// log popularity; and a long-term value per content token, summed over the candidate's tokens.
/// The encoder was trained on next-item logs, which hold neither sessions of slates nor impressions nor what a pick did
/// to the rest of the session: it has no reason to learn what repetition does to a session, it shows a declined slate
/// again unchanged (its input, the consumed items, did not change) and learns nothing from it, and it ranks an item
/// by how likely it is to be picked, not by what picking it is worth. RL can learn these here. Terms that read the
/// session (declined, declined affinity) are 0 at a session's first step, so they leave the offline ranking as it was.
/// </remarks>
public sealed class SequenceActorCritic : nn.Module, IActorCritic<SessionState>
{
    private readonly SasRecModel encoder;
    private readonly Sequential value;
    private readonly Parameter sharpness = nn.Parameter(zeros(1));
    private readonly Parameter repetition = nn.Parameter(zeros(1));
    private readonly Parameter declined = nn.Parameter(zeros(1));
    private readonly Parameter declinedAffinity = nn.Parameter(zeros(1));
    private readonly Parameter popularity = nn.Parameter(zeros(1));
    /// <summary>log(1 + training interactions) per item [items + 1].</summary>
    private readonly Tensor itemLogPopularity;
    private readonly Parameter contentValue;
    /// <summary>Which content tokens each item has [items + 1, vocabulary] (0/1; row 0 padding).</summary>
    private readonly Tensor itemTokens;
    private readonly IReadOnlyList<string> _vocabulary;
    private readonly CategoryRepeats _repeats;
    private readonly SequenceModelConfig _config;
    private readonly FeatureTable? _userFeatures;
    private readonly int _candidates;
    private readonly Scalar _temperature;
    private readonly double _temperatureValue;
    private readonly bool _fineTuneEncoder;
    private readonly FrozenEncoderStates? _frozenStates;

    /// <param name="itemLogPopularity">log(1 + training interactions) per item number (<see cref="PopularityScorer.LogCounts"/>).</param>
    /// <param name="frozenStates">With a frozen encoder, where its states are computed once (shared with a simulator on the same encoder); one of its own when null.</param>
    public SequenceActorCritic(SasRecModel pretrained, SequenceModelConfig config, FeatureTable? userFeatures, FeatureTable? itemFeatures, float[] itemLogPopularity,
        int candidates = 50, double temperature = 0.2, bool fineTuneEncoder = false, FrozenEncoderStates? frozenStates = null)
        : base(nameof(SequenceActorCritic))
    {
        encoder = pretrained;
        _fineTuneEncoder = fineTuneEncoder;
        if (frozenStates is not null && frozenStates.Encoder != pretrained)
            throw new ArgumentException("the shared states must be of the actor's own encoder", nameof(frozenStates));
        _frozenStates = fineTuneEncoder ? null : frozenStates ?? new FrozenEncoderStates(pretrained, config, userFeatures);
        value = nn.Sequential(nn.Linear(config.Dimension + SessionSummaryWidth, config.Dimension), nn.ReLU(), nn.Linear(config.Dimension, 1));
        _config = config;
        _userFeatures = userFeatures;
        _candidates = candidates;
        _temperature = temperature.ToScalar();
        _temperatureValue = temperature;
        _repeats = new CategoryRepeats(pretrained.ItemCount, itemFeatures);
        _vocabulary = itemFeatures?.Vocabulary ?? ["<pad>"];
        itemTokens = SequenceBatches.TokenMatrix(itemFeatures, pretrained.ItemCount + 1);
        this.itemLogPopularity = tensor(itemLogPopularity);
        contentValue = nn.Parameter(zeros(_vocabulary.Count));
        RegisterComponents();
    }

    public SasRecModel Encoder => encoder;

    /// <summary>The user's state: the encoder's last hidden vector [B, d] (computed once per observation when the encoder is frozen).</summary>
    private Tensor States(IReadOnlyList<SessionState> observations) =>
        _frozenStates?.Of(observations)
        ?? encoder.forward(SequenceBatches.Histories(observations.Select(o => o.History).ToList(), _config.MaxLength, CPU),
            SequenceBatches.UserTokens(_userFeatures, observations.Select(o => o.User).ToList(), CPU))[.., -1, ..];

    /// <summary>The item vectors: the frozen encoder's, computed once, or the encoder's as it trains.</summary>
    private Tensor ItemVectors() => _frozenStates?.ItemVectors() ?? encoder.ItemVectors();

    /// <summary>All item scores for one history (higher is better), with consumed items and padding at -inf.</summary>
    public float[] Scores(SessionState observation)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var scores = States([observation]).matmul(ItemVectors().T)[0].data<float>().ToArray();
        scores[0] = float.NegativeInfinity;
        foreach (var item in observation.History)
            scores[item] = float.NegativeInfinity;
        return scores;
    }

    /// <summary>The actor's shortlist for one history: the encoder's top items not yet consumed.</summary>
    public long[] Candidates(SessionState observation) => Candidates([observation])[0];

    public long[][] Candidates(IReadOnlyList<SessionState> observations)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var scores = States(observations).matmul(ItemVectors().T);
        var consumed = observations.Select(o => new[] { 0L }.Concat(o.History.Select(i => (long)i)).ToArray()).ToList();
        for (var b = 0; b < observations.Count; b++)
            scores[b].index_fill_(0, tensor(consumed[b]), TorchScalars.NegativeInfinity);
        var width = Math.Min(_candidates, (int)scores.shape[1]);
        var top = scores.topk(width, 1).indexes.data<long>().ToArray();
        return Enumerable.Range(0, observations.Count).Select(b => top.AsSpan(b * width, width).ToArray()).ToArray();
    }

    public (Tensor Logits, Tensor Values) Forward(IReadOnlyList<SessionState> observations, IReadOnlyList<long[]> candidates)
    {
        var (rows, width) = (observations.Count, candidates[0].Length);
        var states = States(observations);
        var flat = tensor(candidates.SelectMany(c => c).ToArray());
        var itemVectors = ItemVectors();
        var candidateVectors = itemVectors.index_select(0, flat).view(rows, width, -1);
        var relevance = candidateVectors.matmul(states.unsqueeze(-1)).squeeze(-1);
        var repeats = tensor(observations.SelectMany((o, b) => candidates[b].Select(c => (float)_repeats.Count(o.History, c))).ToArray()).view(rows, width);
        var shown = tensor(observations.SelectMany((o, b) => candidates[b].Select(c => (float)o.TimesShown(c))).ToArray()).view(rows, width);
        var popular = itemLogPopularity.index_select(0, flat).view(rows, width);
        var longTermValue = itemTokens.index_select(0, flat).matmul(contentValue).view(rows, width);
        var declinedAffinities = candidateVectors.matmul(DeclinedVectorSum(observations, itemVectors).unsqueeze(-1)).squeeze(-1);
        // Every head term is in the units of the encoder's scores, all divided by the temperature.
        var logits = (relevance * sharpness.exp()).Plus(repetition * repeats).Plus(declined * shown).Plus(popularity * popular).Plus(longTermValue)
            .Plus(declinedAffinity * declinedAffinities).div(_temperature);
        var values = value.forward(cat([states.detach(), SessionSummary(observations)], 1)).squeeze(-1);
        return (logits, values);
    }

    private const int SessionSummaryWidth = 4;

    /// <summary>
    /// What the critic reads of the session besides the encoder's state, which changes only with picks [B, 4]: slates
    /// shown (/ 10), recent picks (decayed by 0.7 a slate), whether the last slate was picked from (1 before any), and
    /// the slates passed over in a row since the last pick (/ 3). How a session is going says much of how long it will last.
    /// </summary>
    private static Tensor SessionSummary(IReadOnlyList<SessionState> observations)
    {
        var summary = new float[observations.Count * SessionSummaryWidth];
        for (var b = 0; b < observations.Count; b++)
        {
            var responses = observations[b].Responses;
            var missed = responses.Length - 1 - Array.FindLastIndex(responses, r => r.Picked != 0);
            float[] row = [responses.Length / 10f, (float)observations[b].RecentPicks(0.7), responses.Length == 0 || responses[^1].Picked != 0 ? 1 : 0, missed / 3f];
            row.CopyTo(summary, b * SessionSummaryWidth);
        }
        return TorchArrays.Copy(summary, observations.Count, SessionSummaryWidth);
    }

    /// <summary>
    /// Σ v_d over each observation's impressions the user passed over (shown this session and not in the history;
    /// an item shown twice counts twice) [B, d]: where in item space this user's "no" points.
    /// </summary>
    private static Tensor DeclinedVectorSum(IReadOnlyList<SessionState> observations, Tensor itemVectors)
    {
        var declined = observations.SelectMany((o, b) => o.Shown.Where(item => Array.IndexOf(o.History, (int)item) < 0).Select(item => (Owner: (long)b, Item: item))).ToList();
        var sum = zeros(observations.Count, itemVectors.shape[1]);
        return declined.Count == 0 ? sum : sum.index_add(0, tensor(declined.Select(d => d.Owner).ToArray()),
            itemVectors.index_select(0, tensor(declined.Select(d => d.Item).ToArray())), TorchScalars.One);
    }

    /// <summary>What policy optimisation trains: the head and the critic, and the encoder unless it is frozen.</summary>
    public IEnumerable<Parameter> Parameters() => _fineTuneEncoder ? parameters() : NewParameters();

    /// <summary>The head and the critic: they start new (the head at 0), so they train at the head's learning rate.</summary>
    public IEnumerable<Parameter> NewParameters() => [sharpness, repetition, declined, declinedAffinity, popularity, contentValue, .. value.parameters()];

    /// <summary>The head as learned, for reports: the content tokens with the largest values in size first.</summary>
    public PolicyHead Head => HeadWeights(contentTokens: 10);

    /// <summary>The head as learned, with the <paramref name="contentTokens"/> content tokens of the largest values in size (all by default: what a later training continues from).</summary>
    public PolicyHead HeadWeights(int contentTokens = int.MaxValue) => new(sharpness.item<float>(), repetition.item<float>(), declined.item<float>(), declinedAffinity.item<float>(), popularity.item<float>(),
        contentValue.data<float>().ToArray().Select((w, token) => (Token: _vocabulary[token], Value: (double)w)).Skip(1)
            .OrderByDescending(t => Math.Abs(t.Value)).Take(contentTokens).ToDictionary(t => t.Token, t => t.Value));

    /// <summary>
    /// The policy as serving runs it: the per-item terms (popularity and content values) as one bias per item and the
    /// learned sharpness, for the graph (<see cref="PolicyExporter"/>), and the session terms and temperature for the
    /// manifest, all divided by the sharpness so that the graph's policy score stays in the units of its scores:
    /// logit = (score + bias / e^s + session terms / e^s) / (τ / e^s), which is <see cref="Forward"/>'s logit.
    /// </summary>
    public (ExportedPolicyHead Graph, Recommender.ModelContract.ServingPolicy Manifest) Export()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var sharpnessValue = Math.Exp(sharpness.item<float>());
        var bias = (itemLogPopularity * popularity).Plus(itemTokens.matmul(contentValue)).to(ScalarType.Float32).data<float>().ToArray();
        var categories = Enumerable.Range(0, encoder.ItemCount + 1).Select(i => (long)_repeats.Category(i)).ToArray();
        var graph = new ExportedPolicyHead(sharpnessValue, bias, categories);
        var head = new Recommender.ModelContract.PolicyHeadWeights(repetition.item<float>() / sharpnessValue, declined.item<float>() / sharpnessValue,
            declinedAffinity.item<float>() / sharpnessValue, CategoryRepeats.RecentWindow);
        return (graph, new Recommender.ModelContract.ServingPolicy(_temperatureValue / sharpnessValue, _candidates, head));
    }

    /// <summary>
    /// Sets the head by hand (ablations) or to a champion's (a retraining continues from it); a named token the items do
    /// not have is refused, or left out with <paramref name="ignoreUnknownTokens"/> (a token the catalog no longer has).
    /// </summary>
    public void SetHead(PolicyHead head, bool ignoreUnknownTokens = false)
    {
        using var _ = no_grad();
        sharpness.fill_(head.LogSharpness);
        repetition.fill_(head.Repetition);
        declined.fill_(head.Declined);
        declinedAffinity.fill_(head.DeclinedAffinity);
        popularity.fill_(head.Popularity);
        contentValue.zero_();
        foreach (var (token, value) in head.ContentValues ?? new Dictionary<string, double>())
        {
            var index = _vocabulary.ToList().IndexOf(token);
            if (index <= 0 && ignoreUnknownTokens)
                continue;
            if (index <= 0)
                throw new ArgumentException($"no item has the content token '{token}'");
            contentValue[index] = value;
        }
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

    /// <summary>
    /// The policy's ranking of every item after a logged history, as at a session's first step (nothing shown
    /// yet), with the head applied: what offline HR/NDCG of the policy measure, beside the pretrained encoder's.
    /// </summary>
    public ISequenceScorer OfflineRanking(string name) => new OfflineRankingScorer(name, this);

    private sealed class OfflineRankingScorer(string name, SequenceActorCritic policy) : ISequenceScorer
    {
        public string Name => name;

        public float[][] Score(IReadOnlyList<int> users, IReadOnlyList<int[]> histories)
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            var everyItem = Enumerable.Range(0, policy.encoder.ItemCount + 1).Select(i => (long)i).ToArray();
            var logits = policy.Forward(users.Select((u, b) => SessionState.Start(u, histories[b])).ToList(), users.Select(_ => everyItem).ToList()).Logits;
            return Enumerable.Range(0, users.Count).Select(b =>
            {
                var row = logits[b].data<float>().ToArray();
                row[0] = float.NegativeInfinity; // padding
                return row;
            }).ToArray();
        }
    }

    /// <summary>Training mode for the value head only: the encoder stays in evaluation mode (no dropout), so the
    /// log-probabilities of an update match those the rollout recorded.</summary>
    public void Train(bool on)
    {
        train(on);
        encoder.eval();
    }
}
