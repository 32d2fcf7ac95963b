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
    public double[] Predict(IReadOnlyList<Feature> context, IReadOnlyList<IReadOnlyList<Feature>> actions)
    {
        var whole = WholeContext(context);
        var predictions = new double[actions.Count];
        var features = new List<HashedFeature>();
        for (var i = 0; i < actions.Count; i++)
        {
            features.Clear();
            AddInteractions(context, whole, actions[i], features);
            foreach (var (hash, value) in features)
                predictions[i] += value * (_weights.TryGetValue(hash, out var w) ? w.Weight : 0);
        }
        return predictions;
    }

    /// <summary>One step towards <paramref name="reward"/> for the action that was shown.</summary>
    public void Learn(IReadOnlyList<Feature> context, IReadOnlyList<Feature> shownAction, double reward)
    {
        var features = new List<HashedFeature>();
        AddInteractions(context, WholeContext(context), shownAction, features);
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
        var whole = WholeContext(context);
        var rows = actions.Select(a =>
        {
            var row = new List<HashedFeature>();
            AddInteractions(context, whole, a, row);
            return row;
        }).ToList();
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

    /// <summary>The name of the whole context as one feature (null for a context of one feature or none, which its pairs already say).</summary>
    private static string? WholeContext(IReadOnlyList<Feature> context) =>
        context.Count > 1 ? "whole:" + string.Join('\u001f', context.Select(f => f.Name).Order(StringComparer.Ordinal)) : null;

    /// <summary>The features of the pair (context, action), added to <paramref name="features"/>.</summary>
    private static void AddInteractions(IReadOnlyList<Feature> context, string? wholeContext, IReadOnlyList<Feature> action, List<HashedFeature> features)
    {
        foreach (var a in action)
        {
            features.Add(new HashedFeature(Hash("a", a.Name), a.Value));
            foreach (var c in context)
                features.Add(new HashedFeature(Hash(c.Name, a.Name), c.Value * a.Value));
            if (wholeContext is not null)
                features.Add(new HashedFeature(Hash(wholeContext, a.Name), a.Value));
        }
    }

    /// <summary>
    /// XxHash64 of the UTF-8 of <c>left + "\u001e" + right</c>, encoded into a stack buffer: Rank hashes every (context,
    /// action) feature pair, and a string and a byte array for each were most of what a request allocated.
    /// </summary>
    private static ulong Hash(string left, string right)
    {
        var length = Encoding.UTF8.GetMaxByteCount(left.Length + 1 + right.Length);
        Span<byte> bytes = length <= 1024 ? stackalloc byte[length] : new byte[length];
        var written = Encoding.UTF8.GetBytes(left, bytes);
        bytes[written++] = 0x1e;
        written += Encoding.UTF8.GetBytes(right, bytes[written..]);
        return XxHash64.HashToUInt64(bytes[..written]);
    }

    /// <summary>The weights as stored: hash, weight, AdaGrad's sum of squared gradients.</summary>
    public BanditWeights Export() => new(Events, _weights.Select(w => new BanditWeight(w.Key, w.Value.Weight, w.Value.SquaredGradients)).OrderBy(w => w.Hash).ToList());

    public static ContextualBandit Import(BanditWeights weights) =>
        new(weights.Weights.ToDictionary(w => w.Hash, w => (w.Weight, w.SquaredGradients))) { Events = weights.Events };
}

public sealed record BanditWeight(ulong Hash, double Weight, double SquaredGradients);

public sealed record BanditWeights(long Events, List<BanditWeight> Weights);
