using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Recommender.Training;

/// <summary>
/// A SASRec-style causal Transformer over a user's item sequence (Kang &amp; McAuley 2018), with side
/// information fused in: an item is its id embedding plus the mean of its content-token embeddings;
/// the user's attribute tokens add one vector to every position. Plain export-friendly ops only
/// (embedding, layer norm, causal attention, feed-forward), so it can be written to ONNX.
/// </summary>
public sealed class SasRecModel : Module<Tensor, Tensor?, Tensor>
{
    private readonly SequenceModelConfig _config;
    /// <summary>√d, as a Scalar this model holds (see <see cref="TorchScalars"/>).</summary>
    private readonly Scalar _embeddingScale;
    private readonly Embedding _itemEmbedding;
    private readonly Embedding _positionEmbedding;
    private readonly Embedding? _contentEmbedding;
    private readonly Embedding? _userEmbedding;
    private readonly Dropout _dropout;
    private readonly ModuleList<TransformerBlock> _blocks;
    private readonly LayerNorm _finalNorm;
    private readonly Tensor? _itemTokens;
    private readonly MetaLearning.ItemEmbeddingGenerator? _generator;

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
                _generator = new MetaLearning.ItemEmbeddingGenerator(d);
        }
        if (config.UserFeatures && userVocabulary > 1)
            _userEmbedding = Embedding(userVocabulary, d, padding_idx: 0);
        _dropout = Dropout(config.Dropout);
        _blocks = new ModuleList<TransformerBlock>(Enumerable.Range(0, config.Blocks).Select(_ => new TransformerBlock(d, config.Heads, config.Dropout)).ToArray());
        _finalNorm = LayerNorm(d, eps: 1e-8);

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
    public MetaLearning.ItemEmbeddingGenerator? Generator => _generator;

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
    /// (0-padded attribute tokens) or null.
    /// </summary>
    public override Tensor forward(Tensor sequences, Tensor? userTokens)
    {
        var items = ItemVectors();
        var length = sequences.shape[1];
        var x = items.index_select(0, sequences.flatten()).view(sequences.shape[0], length, -1).mul(_embeddingScale);
        x = x.Plus(_positionEmbedding.forward(arange(length, device: sequences.device)).unsqueeze(0));
        if (_userEmbedding is not null && userTokens is not null)
        {
            var mask = userTokens.ne(TorchScalars.Zero).unsqueeze(-1).to(x.dtype);
            var user = (_userEmbedding.forward(userTokens) * mask).sum(1) / mask.sum(1).clamp_min(TorchScalars.One);
            x = x.Plus(user.unsqueeze(1));
        }
        var timeline = sequences.ne(TorchScalars.Zero).unsqueeze(-1).to(x.dtype);
        x = _dropout.forward(x) * timeline;
        foreach (var block in _blocks)
            x = block.forward(x) * timeline;
        return _finalNorm.forward(x);
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

/// <summary>Pre-norm Transformer block: causal multi-head self-attention and a position-wise feed-forward, each with a residual.</summary>
public sealed class TransformerBlock : Module<Tensor, Tensor>
{
    private readonly LayerNorm _attentionNorm;
    private readonly Linear _query, _key, _value, _output;
    private readonly LayerNorm _feedForwardNorm;
    private readonly Linear _hidden, _projection;
    private readonly Dropout _dropout;
    private readonly int _heads;
    private readonly double _attentionDropout;

    public TransformerBlock(int dimension, int heads, double dropout) : base(nameof(TransformerBlock))
    {
        _heads = heads;
        _attentionDropout = dropout;
        _attentionNorm = LayerNorm(dimension, eps: 1e-8);
        _query = Linear(dimension, dimension);
        _key = Linear(dimension, dimension);
        _value = Linear(dimension, dimension);
        _output = Linear(dimension, dimension);
        _feedForwardNorm = LayerNorm(dimension, eps: 1e-8);
        _hidden = Linear(dimension, dimension);
        _projection = Linear(dimension, dimension);
        _dropout = Dropout(dropout);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var (b, l, d) = (x.shape[0], x.shape[1], x.shape[2]);
        var h = _attentionNorm.forward(x);
        Tensor Heads(Linear projection) => projection.forward(h).view(b, l, _heads, d / _heads).transpose(1, 2);
        var attended = functional.scaled_dot_product_attention(Heads(_query), Heads(_key), Heads(_value),
            p: training ? _attentionDropout : 0.0, is_casual: true);
        x = x.Plus(_dropout.forward(_output.forward(attended.transpose(1, 2).reshape(b, l, d))));
        var f = _feedForwardNorm.forward(x);
        return x.Plus(_dropout.forward(_projection.forward(_dropout.forward(functional.relu(_hidden.forward(f))))));
    }
}
