using System.IO.Hashing;
using System.Text;

namespace Recommender.Serving;

/// <summary>
/// The contextual bandit behind Personalizer's Rank: a linear model of the reward of showing an action in a context,
/// over hashed features, learned by importance-free squared-loss regression on the action that was shown (the direct
/// method: epsilon-greedy exploration gives every action data in every context) with AdaGrad steps, and epsilon-greedy
/// over its predictions. The features of a (context, action) pair, as Personalizer's default quadratic interactions:
/// <list type="bullet">
/// <item>each action feature alone (its id among them): what is good anywhere;</item>
/// <item>each context feature times each action feature: what is good where;</item>
/// <item>the whole context (all its features together) times each action feature: what is good in exactly this
/// context, which a sum of pairwise terms cannot express when the best action depends on a combination.</item>
/// </list>
/// Weights live in a sparse dictionary keyed by the 64-bit hash of the feature's name, so the model's size is what it
/// learned, not a fixed table.
/// </summary>
public sealed class ContextualBandit
{
    /// <summary>AdaGrad's base step: large, as Personalizer's <c>-l 0.5</c>, because features are mostly one-hot.</summary>
    public const double LearningRate = 0.5;

    private readonly Dictionary<ulong, (double Weight, double SquaredGradients)> _weights;

    public ContextualBandit() : this(new Dictionary<ulong, (double, double)>()) { }

    private ContextualBandit(Dictionary<ulong, (double, double)> weights) => _weights = weights;

    /// <summary>How many weights the model has learned.</summary>
    public int Size => _weights.Count;

    /// <summary>Events learned from so far.</summary>
    public long Events { get; private set; }

    /// <summary>The predicted reward of each action in the context.</summary>
    public double[] Predict(IReadOnlyList<Feature> context, IReadOnlyList<IReadOnlyList<Feature>> actions) =>
        actions.Select(action => Interactions(context, action).Sum(f => f.Value * (_weights.TryGetValue(f.Hash, out var w) ? w.Weight : 0))).ToArray();

    /// <summary>One step towards <paramref name="reward"/> for the action that was shown.</summary>
    public void Learn(IReadOnlyList<Feature> context, IReadOnlyList<Feature> shownAction, double reward)
    {
        var features = Interactions(context, shownAction).ToList();
        var error = features.Sum(f => f.Value * (_weights.TryGetValue(f.Hash, out var w) ? w.Weight : 0)) - reward;
        foreach (var (hash, value) in features)
        {
            var gradient = error * value;
            var (weight, squares) = _weights.GetValueOrDefault(hash);
            squares += gradient * gradient;
            if (squares > 0)
                weight -= LearningRate * gradient / Math.Sqrt(squares);
            _weights[hash] = (weight, squares);
        }
        Events++;
    }

    /// <summary>
    /// Epsilon-greedy over the predictions: the best action (the first given among equals) with probability
    /// 1 - epsilon + epsilon/n, each other with epsilon/n. Personalizer's probability of each action being the one shown.
    /// </summary>
    public static double[] Probabilities(IReadOnlyList<double> predictions, double epsilon)
    {
        var n = predictions.Count;
        var best = 0;
        for (var i = 1; i < n; i++)
        {
            if (predictions[i] > predictions[best])
                best = i;
        }
        return Enumerable.Range(0, n).Select(i => (i == best ? 1 - epsilon : 0) + epsilon / n).ToArray();
    }

    /// <summary>
    /// The hashed features of each (context, action) pair, one row per action, padded with hash 0 and value 0 to the
    /// widest: the inputs of the exported ONNX model (<see cref="BanditOnnxExport"/>), whose scores are
    /// <see cref="Predict"/>'s.
    /// </summary>
    public static (long[] Hashes, float[] Values, int Width) InteractionRows(IReadOnlyList<Feature> context, IReadOnlyList<IReadOnlyList<Feature>> actions)
    {
        var rows = actions.Select(a => Interactions(context, a).ToList()).ToList();
        var width = Math.Max(1, rows.Max(r => r.Count));
        var hashes = new long[rows.Count * width];
        var values = new float[rows.Count * width];
        for (var i = 0; i < rows.Count; i++)
        {
            for (var j = 0; j < rows[i].Count; j++)
            {
                hashes[i * width + j] = unchecked((long)rows[i][j].Hash);
                values[i * width + j] = (float)rows[i][j].Value;
            }
        }
        return (hashes, values, width);
    }

    /// <summary>Every learned weight by the hash of its feature, for the export.</summary>
    public IEnumerable<(ulong Hash, double Weight)> Weights => _weights.Select(w => (w.Key, w.Value.Weight));

    private readonly record struct HashedFeature(ulong Hash, double Value);

    private static IEnumerable<HashedFeature> Interactions(IReadOnlyList<Feature> context, IReadOnlyList<Feature> action)
    {
        var whole = string.Join('\u001f', context.Select(f => f.Name).Order(StringComparer.Ordinal));
        foreach (var a in action)
        {
            yield return new HashedFeature(Hash("a", a.Name), a.Value);
            foreach (var c in context)
                yield return new HashedFeature(Hash(c.Name, a.Name), c.Value * a.Value);
            if (context.Count > 1)
                yield return new HashedFeature(Hash("whole:" + whole, a.Name), a.Value);
        }
    }

    private static ulong Hash(string left, string right) => XxHash64.HashToUInt64(Encoding.UTF8.GetBytes(left + "\u001e" + right));

    /// <summary>The weights as stored: hash, weight, AdaGrad's sum of squared gradients.</summary>
    public BanditWeights Export() => new(Events, _weights.Select(w => new BanditWeight(w.Key, w.Value.Weight, w.Value.SquaredGradients)).OrderBy(w => w.Hash).ToList());

    public static ContextualBandit Import(BanditWeights weights) =>
        new(weights.Weights.ToDictionary(w => w.Hash, w => (w.Weight, w.SquaredGradients))) { Events = weights.Events };
}

public sealed record BanditWeight(ulong Hash, double Weight, double SquaredGradients);

public sealed record BanditWeights(long Events, List<BanditWeight> Weights);
