using Onnx;
using Recommender.ModelContract;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Recommender.Training;

/// <summary>
/// A SASRec-style causal Transformer over a user's item sequence (Kang &amp; McAuley 2018), with side
/// information fused in: an item is its id embedding plus the mean of its content-token embeddings;
/// the user's attribute tokens add one vector to every position. Plain export-friendly ops only
/// (embedding, layer norm, causal attention, feed-forward), so it can be written to ONNX: <see cref="ToOnnx"/>
/// spells the same function as ONNX ops, kept beside <see cref="forward"/> so the two change together.
/// </summary>
public sealed class SasRecModel : Module<Tensor, Tensor?, Tensor>
{
    /// <summary>The epsilon of every layer norm here (SASRec's), in training and in the exported graph.</summary>
    public const double NormEpsilon = 1e-8;
    private readonly SequenceModelConfig _config;
    /// <summary>√d, as a Scalar this model holds (see <see cref="TorchScalars"/>).</summary>
    private readonly Scalar _embeddingScale;
    private readonly Embedding _itemEmbedding;
    private readonly Embedding _positionEmbedding;
    private readonly Embedding? _contentEmbedding;
    private readonly Embedding? _userEmbedding;
    private readonly DropoutMasks _dropout;
    private readonly ModuleList<TransformerBlock> _blocks;
    private readonly LayerNorm _finalNorm;
    private readonly Tensor? _itemTokens;
    private readonly ItemEmbeddingGenerator? _generator;

    public SasRecModel(SequenceModelConfig config, int itemCount, int[][]? itemTokens, int contentVocabulary, int userVocabulary)
        : base(nameof(SasRecModel))
    {
        _config = config;
        _embeddingScale = Math.Sqrt(config.Dimension).ToScalar();
        ItemCount = itemCount;
        var d = config.Dimension;
        _itemEmbedding = Embedding(itemCount + 1, d, padding_idx: 0);
        _positionEmbedding = Embedding(config.MaxLength, d);
        if (config.ItemContent && itemTokens is not null && contentVocabulary > 1)
        {
            _contentEmbedding = Embedding(contentVocabulary, d, padding_idx: 0);
            _itemTokens = PadTokens(itemTokens);
            if (config.ItemGenerator)
                _generator = new ItemEmbeddingGenerator(d);
        }
        if (config.UserFeatures && userVocabulary > 1)
            _userEmbedding = Embedding(userVocabulary, d, padding_idx: 0);
        _dropout = new DropoutMasks(config.Seed);
        _blocks = new ModuleList<TransformerBlock>(Enumerable.Range(0, config.Blocks).Select(_ => new TransformerBlock(d, config.Heads, config.Dropout, _dropout)).ToArray());
        _finalNorm = LayerNorm(d, eps: NormEpsilon);

        RegisterComponents();
        if (_itemTokens is not null)
            register_buffer("item_tokens", _itemTokens, persistent: false);
        // SASRec's initialisation: Xavier-normal weights, padding row zero.
        foreach (var (name, parameter) in named_parameters())
        {
            if (parameter.dim() > 1)
                init.xavier_normal_(parameter);
        }
        using (no_grad())
        {
            _itemEmbedding.weight![0].zero_();
            _contentEmbedding?.weight![0].zero_();
            _userEmbedding?.weight![0].zero_();
        }

    }

    public int ItemCount { get; }

    /// <summary>Every item's vector, [items + 1, d]: id embedding plus the mean embedding of its content tokens.</summary>
    public Tensor ItemVectors() => ContentVectors() is { } content ? _itemEmbedding.weight!.Plus(content) : _itemEmbedding.weight!;

    /// <summary>The content-to-embedding generator for new items, when configured (<see cref="SequenceModelConfig.ItemGenerator"/>).</summary>
    public ItemEmbeddingGenerator? Generator => _generator;

    /// <summary>Vectors of items the model never saw, from their content vectors [K, d]: G(c) + c with a generator, else c.</summary>
    public Tensor NewItemVectors(Tensor content) => _generator?.NewItemVectors(content) ?? content;

    /// <summary>The content part of every item's vector, [items + 1, d] (mean of its content-token embeddings), or null without content.</summary>
    public Tensor? ContentVectors()
    {
        if (_contentEmbedding is null || _itemTokens is null)
            return null;
        var tokens = _itemTokens;
        var mask = tokens.ne(TorchScalars.Zero).unsqueeze(-1).to(_contentEmbedding.weight!.dtype);
        return (_contentEmbedding.forward(tokens) * mask).sum(1) / mask.sum(1).clamp_min(TorchScalars.One);
    }

    /// <summary>
    /// Hidden states [B, L, d] for left-padded item sequences [B, L]; <paramref name="userTokens"/> [B, T]
    /// (0-padded attribute tokens) or null. A padded position's state is the final norm of zero (its bias), as if
    /// it had gone through the blocks and been masked after each.
    /// </summary>
    /// <remarks>
    /// The blocks work on the real positions only, packed into rows [P, d]: everything but attention is
    /// position-wise, and short histories (most of them, in the data sets here) are mostly padding. Attention
    /// unpacks to [B, L, d], where a padded position's key and value are those of a zero input (see
    /// <see cref="TransformerBlock.forward"/>), so the result is the same as running every position.
    /// </remarks>
    public override Tensor forward(Tensor sequences, Tensor? userTokens)
    {
        var (b, length) = (sequences.shape[0], sequences.shape[1]);
        var real = sequences.flatten().nonzero().squeeze(1);                                   // [P] flat indices b * L + t
        var x = ItemVectors().index_select(0, sequences.flatten().index_select(0, real)).mul(_embeddingScale);
        x = x.Plus(_positionEmbedding.forward(real.remainder(length)));
        if (_userEmbedding is not null && userTokens is not null)
        {
            var mask = userTokens.ne(TorchScalars.Zero).unsqueeze(-1).to(x.dtype);
            var user = (_userEmbedding.forward(userTokens) * mask).sum(1) / mask.sum(1).clamp_min(TorchScalars.One);
            x = x.Plus(user.index_select(0, real.div(length, rounding_mode: RoundingMode.floor)));
        }
        x = _dropout.Apply(x, _config.Dropout, training);
        var layout = new PackedPositions(real, b, length);
        foreach (var block in _blocks)
            x = block.forward(x, layout);
        var padded = _finalNorm.bias!.expand(b * length, -1);
        return padded.index_copy(0, real, _finalNorm.forward(x)).view(b, length, -1);
    }

    /// <summary>Whether the model reads user attribute tokens (the graph then has a <c>user_tokens</c> input).</summary>
    public bool UsesUserTokens => _userEmbedding is not null;

    /// <summary>Whether items have content (the graph can then score new items from their content tokens).</summary>
    public bool UsesItemContent => _contentEmbedding is not null && _itemTokens is not null;

    /// <summary>
    /// <see cref="forward"/> as ONNX ops: the hidden states [batch, L, d] of <paramref name="history"/> (int64
    /// [batch, L], left-padded), with the item vectors under the initializer <paramref name="itemVectors"/> and the
    /// user tokens under <paramref name="userTokens"/> when the model reads them. The graph runs every position and
    /// zeroes a padded one after the embedding and each block, which is what the packed forward computes (the
    /// export tests hold the two equal). Needs <see cref="OnnxLayers.Constants"/>; returns the states' name.
    /// </summary>
    internal string ToOnnx(OnnxGraph g, string itemVectors, string history, string? userTokens)
    {
        var length = _config.MaxLength;
        OnnxLayers.Initializer(g, "position", _positionEmbedding.weight!);
        g.Initializer("sqrt_d", [(float)Math.Sqrt(_config.Dimension)], []);
        var causal = new float[length * length];
        for (var row = 0; row < length; row++)
            for (var col = row + 1; col < length; col++)
                causal[row * length + col] = float.NegativeInfinity;
        g.Initializer("causal_mask", causal, [length, length]);

        // x = item_vectors[history] * sqrt(d) + position (+ mean user-attribute vector), zero at padding.
        g.Node("Gather", [itemVectors, history], ["embedded"], ("axis", 0L));
        g.Node("Mul", ["embedded", "sqrt_d"], ["scaled"]);
        g.Node("Add", ["scaled", "position"], ["x_in"]);
        var x = "x_in";
        if (_userEmbedding is not null && userTokens is not null)
        {
            OnnxLayers.Initializer(g, "user_embedding", _userEmbedding.weight!);
            g.Node("Gather", ["user_embedding", userTokens], ["user_vectors"], ("axis", 0L));
            OnnxLayers.MeanOverPresent(g, userTokens, "user_vectors", "user_mean");
            g.Node("Unsqueeze", ["user_mean", OnnxLayers.Axis1], ["user_row"]);
            g.Node("Add", [x, "user_row"], ["x_user"]);
            x = "x_user";
        }
        g.Node("Equal", [history, OnnxLayers.ZeroI64], ["is_padding"]);
        g.Node("Not", ["is_padding"], ["is_item"]);
        g.Node("Cast", ["is_item"], ["timeline_2d"], ("to", (long)TensorProto.Types.DataType.Float));
        g.Node("Unsqueeze", ["timeline_2d", OnnxLayers.AxisMinus1], ["timeline"]);
        g.Node("Mul", [x, "timeline"], ["x0"]);
        x = "x0";
        for (var b = 0; b < _blocks.Count; b++)
            x = _blocks[b].ToOnnx(g, x, $"b{b}_", "causal_mask", "timeline");
        OnnxLayers.LayerNorm(g, x, _finalNorm, "final");
        return "final";
    }

    /// <summary>
    /// <see cref="ContentVectors"/> and <see cref="NewItemVectors"/> as ONNX ops: the vectors [K, d] of items the model
    /// never saw, from their 0-padded content tokens <paramref name="candidateTokens"/> [K, T]; returns their name.
    /// </summary>
    internal string NewItemVectorsToOnnx(OnnxGraph g, string candidateTokens)
    {
        OnnxLayers.Initializer(g, "content_embedding", _contentEmbedding!.weight!);
        g.Node("Gather", ["content_embedding", candidateTokens], ["candidate_token_vectors"], ("axis", 0L));
        OnnxLayers.MeanOverPresent(g, candidateTokens, "candidate_token_vectors", "candidate_content");
        if (_generator is not null)
            return _generator.NewItemVectorsToOnnx(g, "candidate_content", "candidate_vectors");
        g.Node("Identity", ["candidate_content"], ["candidate_vectors"]);
        return "candidate_vectors";
    }

    private static Tensor PadTokens(int[][] rows)
    {
        var width = Math.Max(1, rows.Max(r => r.Length));
        var flat = new long[rows.Length * width];
        for (var r = 0; r < rows.Length; r++)
        {
            for (var t = 0; t < rows[r].Length; t++)
                flat[r * width + t] = rows[r][t];
        }
        return tensor(flat, [rows.Length, width]);
    }
}

/// <summary>Where the real positions of a left-padded batch [B, L] are: flat indices b * L + t of its rows [P, d].</summary>
public sealed record PackedPositions(Tensor Real, long Batch, long Length);

/// <summary>Pre-norm Transformer block: causal multi-head self-attention and a position-wise feed-forward, each with a residual.</summary>
public sealed class TransformerBlock : Module<Tensor, PackedPositions, Tensor>
{
    private readonly LayerNorm _attentionNorm;
    private readonly Linear _query, _key, _value, _output;
    private readonly LayerNorm _feedForwardNorm;
    private readonly Linear _hidden, _projection;
    private readonly DropoutMasks _dropout;
    private readonly double _dropoutRate;
    private readonly int _heads;
    /// <summary>1/sqrt(head dimension), as a Scalar this block holds (see <see cref="TorchScalars"/>).</summary>
    private readonly Scalar _scoreScale;

    public TransformerBlock(int dimension, int heads, double dropout, DropoutMasks masks) : base(nameof(TransformerBlock))
    {
        _heads = heads;
        _scoreScale = (1 / Math.Sqrt(dimension / heads)).ToScalar();
        _dropoutRate = dropout;
        _dropout = masks;
        _attentionNorm = LayerNorm(dimension, eps: SasRecModel.NormEpsilon);
        _query = Linear(dimension, dimension);
        _key = Linear(dimension, dimension);
        _value = Linear(dimension, dimension);
        _output = Linear(dimension, dimension);
        _feedForwardNorm = LayerNorm(dimension, eps: SasRecModel.NormEpsilon);
        _hidden = Linear(dimension, dimension);
        _projection = Linear(dimension, dimension);
        RegisterComponents();
    }

    /// <summary>
    /// The block on the real positions' rows <paramref name="x"/> [P, d]. A padded position's input is zero, so its
    /// normed input is the norm's bias and its key and value are the same vector at every padded position: attention
    /// sees them as a block over all positions would.
    /// </summary>
    public override Tensor forward(Tensor x, PackedPositions positions)
    {
        var (b, l, d) = (positions.Batch, positions.Length, x.shape[1]);
        var h = _attentionNorm.forward(x);
        var atZero = _attentionNorm.bias!.unsqueeze(0);                                      // the normed input of a padded position
        Tensor Heads(Tensor rows, Tensor padding) =>
            padding.expand(b * l, -1).index_copy(0, positions.Real, rows).view(b, l, _heads, d / _heads).transpose(1, 2);
        var attended = Attention(
            Heads(_query.forward(h), zeros(1, d, x.dtype, x.device)),                        // a padded query's result is discarded
            Heads(_key.forward(h), _key.forward(atZero)),
            Heads(_value.forward(h), _value.forward(atZero)));
        var rows = attended.transpose(1, 2).reshape(b * l, d).index_select(0, positions.Real); // [P, d]
        x = x.Plus(Dropout(_output.forward(rows)));
        var f = _feedForwardNorm.forward(x);
        return x.Plus(Dropout(_projection.forward(Dropout(functional.relu(_hidden.forward(f))))));
    }

    /// <summary>
    /// <see cref="forward"/> as ONNX ops on every position of <paramref name="x"/> [batch, L, d], named with
    /// <paramref name="name"/>: causal attention through <paramref name="causalMask"/> [L, L] (0 or -inf), and the
    /// output zeroed at padding (<paramref name="timeline"/> [batch, L, 1], 1 at an item) as the next block expects.
    /// </summary>
    internal string ToOnnx(OnnxGraph g, string x, string name, string causalMask, string timeline)
    {
        var d = _query.weight!.shape[0];
        var headDim = d / _heads;
        OnnxLayers.LayerNorm(g, x, _attentionNorm, name + "ln1");
        g.Initializer(name + "split", [0L, 0L, _heads, headDim], [4]);
        g.Initializer(name + "merge", [0L, 0L, d], [3]);
        g.Initializer(name + "scale", [(float)(1 / Math.Sqrt(headDim))], []);
        foreach (var (part, linear) in new[] { ("q", _query), ("k", _key), ("v", _value) })
        {
            OnnxLayers.Linear(g, name + "ln1", linear, name + part);
            g.Node("Reshape", [name + part, name + "split"], [name + part + "_heads"]);
            g.Node("Transpose", [name + part + "_heads"], [name + part + "_t"], ("perm", new long[] { 0, 2, 1, 3 }));
        }
        g.Node("Transpose", [name + "k_t"], [name + "k_tt"], ("perm", new long[] { 0, 1, 3, 2 }));
        g.Node("MatMul", [name + "q_t", name + "k_tt"], [name + "logits"]);
        g.Node("Mul", [name + "logits", name + "scale"], [name + "logits_scaled"]);
        g.Node("Add", [name + "logits_scaled", causalMask], [name + "logits_masked"]);
        g.Node("Softmax", [name + "logits_masked"], [name + "attention"], ("axis", -1L));
        g.Node("MatMul", [name + "attention", name + "v_t"], [name + "attended"]);
        g.Node("Transpose", [name + "attended"], [name + "attended_t"], ("perm", new long[] { 0, 2, 1, 3 }));
        g.Node("Reshape", [name + "attended_t", name + "merge"], [name + "attended_merged"]);
        OnnxLayers.Linear(g, name + "attended_merged", _output, name + "attention_out");
        g.Node("Add", [x, name + "attention_out"], [name + "x1"]);
        OnnxLayers.LayerNorm(g, name + "x1", _feedForwardNorm, name + "ln2");
        OnnxLayers.Linear(g, name + "ln2", _hidden, name + "hidden");
        g.Node("Relu", [name + "hidden"], [name + "relu"]);
        OnnxLayers.Linear(g, name + "relu", _projection, name + "ff");
        g.Node("Add", [name + "x1", name + "ff"], [name + "x2"]);
        g.Node("Mul", [name + "x2", timeline], [name + "out"]);
        return name + "out";
    }

    private Tensor Dropout(Tensor x) => _dropout.Apply(x, _dropoutRate, training);

    /// <summary>
    /// Causal scaled dot-product attention, with dropout on the attention weights while training. Fused where that
    /// is fast (inference, GPU); spelled out when training on CPU, so its dropout draws from <see cref="DropoutMasks"/>:
    /// the fused kernel's own dropout goes through libtorch's slow CPU generator.
    /// </summary>
    private Tensor Attention(Tensor q, Tensor k, Tensor v)
    {
        if (!training || _dropoutRate <= 0 || q.device_type != DeviceType.CPU)
            return functional.scaled_dot_product_attention(q, k, v, p: training ? _dropoutRate : 0.0, is_casual: true);
        var l = q.shape[2];
        var scores = q.matmul(k.transpose(-2, -1)).mul(_scoreScale);
        using var future = ones(l, l, ScalarType.Bool, q.device).triu(1);
        var weights = functional.softmax(scores.masked_fill(future, TorchScalars.NegativeInfinity), -1);
        return Dropout(weights).matmul(v);
    }
}
