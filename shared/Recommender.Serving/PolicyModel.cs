using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Onnx;
using Recommender.ModelContract;

namespace Recommender.Serving;

/// <summary>A model that failed to load or failed its smoke check.</summary>
public sealed class InvalidModelException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>One recommended item: its catalog id, the model's item number and score.</summary>
public readonly record struct ScoredItem(string ItemId, int ItemNumber, float Score);

/// <summary>
/// A published policy loaded into ONNX Runtime (one intra-op thread, no spinning: the machine is shared
/// and spinning threads cost more in tail latency than they save). Thread-safe. Reference-counted so a
/// hot swap never disposes a session that a request is still using (see <see cref="ModelSwitcher"/>).
/// </summary>
public sealed class PolicyModel : IDisposable
{
    // One session per group of outputs asked for together (OnnxGraph.Part): ONNX Runtime runs a whole graph per call, so
    // the ranking every request runs must not carry the exact score of every item, which a large catalog's two-stage
    // ranking exists to avoid computing.
    private readonly InferenceSession _scoring;
    private readonly InferenceSession _ranking;
    private readonly InferenceSession? _contentScoring;
    private readonly Dictionary<string, int> _itemNumbers;
    private readonly bool _takesUserTokens;
    private readonly bool _takesCandidateTokens;
    private readonly Dictionary<string, int> _contentTokens;
    private readonly Dictionary<string, int> _userTokens;
    private readonly bool _hasPolicyScores;
    private readonly RunOptions _runOptions = new();
    private readonly string[] _inputNames;
    private readonly long[] _historyShape;
    // The history input of each thread serving, rewritten per request instead of allocated.
    private readonly ThreadLocal<long[]> _histories;
    private int _references = 1;
    private float[] _itemEmbeddings = [];
    private int _dimension;
    private long[] _itemCategories = [];

    private PolicyModel(ModelManifest manifest, ModelProto graph, Func<ModelProto, InferenceSession> open)
    {
        Manifest = manifest;
        var inputs = graph.Graph.Input.Select(i => i.Name).ToHashSet();
        var outputs = graph.Graph.Output.Select(o => o.Name).ToHashSet();
        foreach (var name in new[] { PolicyGraph.History, PolicyGraph.K })
        {
            if (!inputs.Contains(name))
                throw new InvalidModelException($"model {manifest.Version} has no input '{name}'");
        }
        _itemNumbers = manifest.ItemIds.Select((id, i) => (id, i)).Where(x => x.i > 0).ToDictionary(x => x.id, x => x.i);
        _takesUserTokens = inputs.Contains(PolicyGraph.UserTokens);
        _takesCandidateTokens = inputs.Contains(PolicyGraph.CandidateTokens);
        _contentTokens = (manifest.ContentVocabulary ?? []).Select((t, i) => (t, i)).Where(x => x.i > 0).ToDictionary(x => x.t, x => x.i);
        _userTokens = (manifest.UserVocabulary ?? []).Select((t, i) => (t, i)).Where(x => x.i > 0).ToDictionary(x => x.t, x => x.i);
        _hasPolicyScores = outputs.Contains(PolicyGraph.TopPolicyScores);
        _inputNames = [PolicyGraph.History, PolicyGraph.K, .. _takesUserTokens ? [PolicyGraph.UserTokens] : Array.Empty<string>(),
            .. _takesCandidateTokens ? [PolicyGraph.CandidateTokens] : Array.Empty<string>()];
        _historyShape = [1, manifest.MaxLength];
        _histories = new ThreadLocal<long[]>(() => new long[manifest.MaxLength]);
        try
        {
            _scoring = open(OnnxGraph.Part(graph, ScoresAndTop));
            _ranking = open(OnnxGraph.Part(graph, _hasPolicyScores ? TopWithPolicyScores : Top));
            if (outputs.Contains(PolicyGraph.CandidateScores))
                _contentScoring = open(OnnxGraph.Part(graph, CandidateScoresOnly));
            LoadConstants(graph, outputs, open);
        }
        catch
        {
            Release();
            throw;
        }
    }

    private static readonly string[] ScoresAndTop = [PolicyGraph.Scores, PolicyGraph.TopScores, PolicyGraph.TopItems];
    private static readonly string[] Top = [PolicyGraph.TopScores, PolicyGraph.TopItems];
    private static readonly string[] TopWithPolicyScores = [PolicyGraph.TopScores, PolicyGraph.TopItems, PolicyGraph.TopPolicyScores];
    private static readonly string[] CandidateScoresOnly = [PolicyGraph.CandidateScores];
    private static readonly long[] ScalarShape = [1];

    public ModelManifest Manifest { get; }

    public string Version => Manifest.Version;

    /// <summary>Loads, smoke-checks and unloads a policy (the promotion gate's check); throws <see cref="InvalidModelException"/> when it is unusable.</summary>
    public static void SmokeTest(ModelManifest manifest, byte[] onnx) => Load(manifest, onnx).Dispose();

    /// <summary>
    /// How the product opens an ONNX Runtime session (the caller disposes the options): one thread per request, no
    /// spinning, because the host serves many requests at once on few cores and a spinning thread takes a core from them.
    /// </summary>
    public static SessionOptions NewSessionOptions()
    {
        var options = new SessionOptions { IntraOpNumThreads = 1, InterOpNumThreads = 1 };
        options.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
        return options;
    }

    /// <summary>Loads and smoke-checks a policy; throws <see cref="InvalidModelException"/> when it is unusable.</summary>
    public static PolicyModel Load(ModelManifest manifest, byte[] onnx)
    {
        using var options = NewSessionOptions();
        PolicyModel model;
        try
        {
            var graph = ModelProto.Parser.ParseFrom(onnx);
            model = new PolicyModel(manifest, graph, part => new InferenceSession(part.ToByteArray(), options));
        }
        catch (Exception ex) when (ex is OnnxRuntimeException or InvalidProtocolBufferException or ArgumentException)
        {
            throw new InvalidModelException($"model {manifest.Version} does not load: {ex.Message}", ex);
        }
        try
        {
            // Smoke check: an empty and a one-item history give finite scores for every item and k results.
            var k = Math.Min(10, manifest.ItemIds.Count - 1);
            foreach (var history in new[] { Array.Empty<int>(), [1] })
            {
                var scores = model.Score(history, null, out var top, k);
                if (scores.Length != manifest.ItemIds.Count || scores.Skip(1).Any(s => !float.IsFinite(s)) || top.Length != k)
                    throw new InvalidModelException($"model {manifest.Version} failed its smoke check (scores {scores.Length} for {manifest.ItemIds.Count} items)");
            }
            if (manifest.Policy?.Head is not null && (!model._hasPolicyScores || model._itemCategories.Length != manifest.ItemIds.Count || model._dimension == 0))
                throw new InvalidModelException($"model {manifest.Version} has a policy head but its graph lacks top_policy_scores, item_categories or item_embeddings");
            return model;
        }
        catch (Exception ex) when (ex is OnnxRuntimeException or InvalidOperationException or ArgumentException)
        {
            model.Dispose();
            throw new InvalidModelException($"model {manifest.Version} failed its smoke check: {ex.Message}", ex);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    public bool TryGetItemNumber(string itemId, out int number) => _itemNumbers.TryGetValue(itemId, out number);

    /// <summary>The model's numbers of the catalog ids it knows, in order; ids it never saw are left out.</summary>
    public List<int> ItemNumbers(IEnumerable<string> itemIds) =>
        itemIds.Select(id => _itemNumbers.GetValueOrDefault(id)).Where(n => n > 0).ToList();

    /// <summary>
    /// The explanation of a recommendation: the history item closest to it in the model's item space
    /// (largest dot product of item vectors), or null when the model has no item vectors or the history is empty.
    /// </summary>
    public int? ClosestInHistory(int item, IReadOnlyList<int> history)
    {
        if (_dimension == 0 || history.Count == 0)
            return null;
        int? best = null;
        var bestScore = float.NegativeInfinity;
        var target = _itemEmbeddings.AsSpan(item * _dimension, _dimension);
        foreach (var h in history)
        {
            var score = System.Numerics.Tensors.TensorPrimitives.Dot(target, _itemEmbeddings.AsSpan(h * _dimension, _dimension));
            if (score > bestScore)
                (best, bestScore) = (h, score);
        }
        return best;
    }

    /// <summary>The graph's constant outputs, read once through a session of their own: the item vectors and, for a policy, each item's category.</summary>
    private void LoadConstants(ModelProto graph, HashSet<string> outputs, Func<ModelProto, InferenceSession> open)
    {
        string[] constants = [.. new[] { PolicyGraph.ItemEmbeddings, PolicyGraph.ItemCategories }.Where(outputs.Contains)];
        if (constants.Length == 0)
            return;
        using var session = open(OnnxGraph.Part(graph, constants));
        using var results = Run(session, [], null, 1, constants);
        for (var n = 0; n < constants.Length; n++)
        {
            if (constants[n] == PolicyGraph.ItemEmbeddings)
            {
                _dimension = (int)results[n].GetTensorTypeAndShape().Shape[1];
                _itemEmbeddings = results[n].GetTensorDataAsSpan<float>().ToArray();
            }
            else
                _itemCategories = results[n].GetTensorDataAsSpan<long>().ToArray();
        }
    }

    /// <summary>An item's vector in the model's space (empty when the graph has none).</summary>
    public ReadOnlySpan<float> ItemVector(int item) => _dimension == 0 ? [] : _itemEmbeddings.AsSpan(item * _dimension, _dimension);

    /// <summary>Each item's category (an id; -1: none), as the policy's repetition term counts them; empty without a policy head.</summary>
    public IReadOnlyList<long> ItemCategories => _itemCategories;

    /// <summary>Whether the model reads user attributes (it takes <c>user_tokens</c> and knows some).</summary>
    public bool ReadsUserAttributes => _takesUserTokens && _userTokens.Count > 0;

    /// <summary>The model's numbers of a user's profile tokens (<see cref="Events.FeatureTokens.OfProfile"/>), unknown ones left out; null when the model reads no user attributes or none is known.</summary>
    public long[]? UserTokens(IEnumerable<string>? profileTokens)
    {
        if (!_takesUserTokens || profileTokens is null)
            return null;
        var known = profileTokens.Select(t => (long)_userTokens.GetValueOrDefault(t)).Where(n => n > 0).ToArray();
        return known.Length == 0 ? null : known;
    }

    /// <summary>Scores of every item (index = item number; 0 is padding, -inf) for one history of item numbers, and the model's top-k.</summary>
    public float[] Score(IReadOnlyList<int> history, long[]? userTokens, out (int Item, float Score)[] top, int k)
    {
        using var results = Run(_scoring, history, userTokens, k, ScoresAndTop);
        top = TopOf(results[1], results[2]);
        return results[0].GetTensorDataAsSpan<float>().ToArray();
    }

    /// <summary>Only the model's top-k for one history: the score vector stays inside ONNX Runtime (cheaper on large catalogs).</summary>
    public (int Item, float Score)[] TopK(IReadOnlyList<int> history, long[]? userTokens, int k)
    {
        using var results = Run(_ranking, history, userTokens, k, Top);
        return TopOf(results[0], results[1]);
    }

    /// <summary>
    /// The model's top-k for one history with each item's policy score (the graph's <c>top_policy_scores</c>: the score
    /// with a learned policy's per-item terms; the score itself when the graph has none).
    /// </summary>
    public (int Item, float Score, float PolicyScore)[] TopKWithPolicyScores(IReadOnlyList<int> history, long[]? userTokens, int k)
    {
        if (!_hasPolicyScores)
            return TopK(history, userTokens, k).Select(t => (t.Item, t.Score, t.Score)).ToArray();
        using var results = Run(_ranking, history, userTokens, k, TopWithPolicyScores);
        var top = TopOf(results[0], results[1]);
        var policy = results[2].GetTensorDataAsSpan<float>();
        var scored = new (int Item, float Score, float PolicyScore)[top.Length];
        for (var n = 0; n < top.Length; n++)
            scored[n] = (top[n].Item, top[n].Score, policy[n]);
        return scored;
    }

    /// <summary>Whether the model adapts to this history: it carries adaptation parameters and the history is at most their <see cref="UserAdaptationParameters.MaxHistory"/> long.</summary>
    public bool AdaptsTo(IReadOnlyList<int> history) =>
        Manifest.UserAdaptation is { } adaptation && _dimension > 0 && history.Count >= 1 && history.Count <= adaptation.MaxHistory;

    /// <summary>
    /// Scores of every item for a short history after few-shot adaptation (<see cref="ServingTimeAdaptation"/>, as the
    /// training job meta-learned it): the graph scores each prefix of the history, the pairs (scores before item
    /// t, item t) adapt u from the manifest's u₀, and the whole history's scores move by V u.
    /// </summary>
    public float[] AdaptedScores(IReadOnlyList<int> history, long[]? userTokens)
    {
        var parameters = Manifest.UserAdaptation ?? throw new InvalidOperationException($"model {Version} carries no user adaptation");
        var prefixScores = Enumerable.Range(1, history.Count).Select(t => Score(history.Take(t).ToList(), userTokens, out _, 1)).ToList();
        var u = ServingTimeAdaptation.Adapt(prefixScores[..^1], history.Skip(1).ToList(), _itemEmbeddings, _dimension, parameters);
        var scores = prefixScores[^1];
        for (var i = 1; i < scores.Length; i++)
            scores[i] += System.Numerics.Tensors.TensorPrimitives.Dot(u, _itemEmbeddings.AsSpan(i * _dimension, _dimension));
        return scores;
    }

    /// <summary>Whether items the model never saw can be scored from their content tokens.</summary>
    public bool ScoresContent => _takesCandidateTokens && _contentTokens.Count > 0;

    /// <summary>
    /// Scores of items the model never saw, from their content tokens (as <see cref="ContentTokens"/> names
    /// them) for one history; a candidate none of whose tokens the model knows gets null.
    /// </summary>
    public float?[] ScoreByContent(IReadOnlyList<int> history, IReadOnlyList<IReadOnlyList<string>> candidateTokens)
    {
        if (!ScoresContent || candidateTokens.Count == 0)
            return new float?[candidateTokens.Count];
        var ids = candidateTokens.Select(tokens => tokens.Select(t => _contentTokens.GetValueOrDefault(t)).Where(i => i > 0).Distinct().ToArray()).ToList();
        var width = Math.Max(1, ids.Max(i => i.Length));
        var tokens = new long[ids.Count * width];
        for (var c = 0; c < ids.Count; c++)
            for (var t = 0; t < ids[c].Length; t++)
                tokens[c * width + t] = ids[c][t];
        using var results = Run(_contentScoring!, history, null, 1, CandidateScoresOnly, (tokens, [ids.Count, width]));
        var scores = results[0].GetTensorDataAsSpan<float>().ToArray();
        return ids.Select((known, c) => known.Length > 0 ? scores[c] : (float?)null).ToArray();
    }

    /// <summary>
    /// One run of the graph for one history: the inputs over arrays (the history in this thread's own, left-padded), the
    /// outputs asked for by name, every native value disposed when the caller disposes the results, none left to a finalizer.
    /// </summary>
    private IDisposableReadOnlyCollection<OrtValue> Run(InferenceSession session, IReadOnlyList<int> history, long[]? userTokens, int k, string[] outputs,
        (long[] Values, long[] Shape)? candidateTokens = null)
    {
        var length = Manifest.MaxLength;
        var buffer = _histories.Value!;
        var take = Math.Min(length, history.Count);
        Array.Clear(buffer, 0, length - take);
        for (var t = 0; t < take; t++)
            buffer[length - take + t] = history[history.Count - take + t];
        var inputs = new OrtValue[_inputNames.Length];
        try
        {
            inputs[0] = OrtValue.CreateTensorValueFromMemory(buffer, _historyShape);
            inputs[1] = OrtValue.CreateTensorValueFromMemory(new long[] { Math.Clamp(k, 1, Manifest.ItemIds.Count - 1) }, ScalarShape);
            var next = 2;
            if (_takesUserTokens)
            {
                var tokens = userTokens is { Length: > 0 } ? userTokens : [0L];
                inputs[next++] = OrtValue.CreateTensorValueFromMemory(tokens, [1, tokens.Length]);
            }
            if (_takesCandidateTokens)
            {
                var (values, shape) = candidateTokens ?? ([0L], [1, 1]);
                inputs[next] = OrtValue.CreateTensorValueFromMemory(values, shape);
            }
            return session.Run(_runOptions, _inputNames, inputs, outputs);
        }
        finally
        {
            foreach (var input in inputs)
                input?.Dispose();
        }
    }

    private static (int Item, float Score)[] TopOf(OrtValue scores, OrtValue items)
    {
        var s = scores.GetTensorDataAsSpan<float>();
        var i = items.GetTensorDataAsSpan<long>();
        var top = new (int, float)[i.Length];
        for (var n = 0; n < top.Length; n++)
            top[n] = ((int)i[n], s[n]);
        return top;
    }

    /// <summary>The best <paramref name="k"/> items for a history of catalog ids; unknown ids are skipped.</summary>
    public IReadOnlyList<ScoredItem> Recommend(IReadOnlyList<string> historyItemIds, int k)
    {
        return TopK(ItemNumbers(historyItemIds), null, k).Select(t => new ScoredItem(Manifest.ItemIds[t.Item], t.Item, t.Score)).ToList();
    }

    internal bool TryAcquire()
    {
        while (true)
        {
            var references = Volatile.Read(ref _references);
            if (references == 0)
                return false;
            if (Interlocked.CompareExchange(ref _references, references + 1, references) == references)
                return true;
        }
    }

    /// <summary>Releases the caller's reference (the one <see cref="Load"/> returns); for models not handed to a <see cref="ModelSwitcher"/>.</summary>
    public void Dispose() => Release();

    internal void Release()
    {
        if (Interlocked.Decrement(ref _references) == 0)
        {
            _scoring?.Dispose();
            _ranking?.Dispose();
            _contentScoring?.Dispose();
            _runOptions.Dispose();
            _histories.Dispose();
        }
    }
}
