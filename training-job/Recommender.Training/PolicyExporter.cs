using Google.Protobuf;
using Onnx;
using Recommender.ModelContract;
using static TorchSharp.torch;

namespace Recommender.Training;

/// <summary>
/// Writes a trained <see cref="SasRecModel"/> as the ONNX graph serving runs (opset 17): the model's own graph
/// (<see cref="SasRecModel.ToOnnx"/>, spelled beside its forward), then scoring, top-k, new items and the policy
/// head. Item vectors (id plus content) are computed once at export and stored as a constant.
/// </summary>
/// <remarks>
/// Inputs: <c>history</c> int64 [batch, maxLength], left-padded with 0; <c>user_tokens</c> int64 [batch, T]
/// (0-padded attribute tokens; only when the model uses user features); <c>k</c> int64 [1].
/// <c>candidate_tokens</c> int64 [candidates, T] (only when the model has item content): content tokens of items
/// the model never saw, 0-padded, scored into <c>candidate_scores</c> [batch, candidates].
/// Outputs: <c>scores</c> float [batch, items + 1] (item 0, padding, is -inf), <c>top_scores</c> float [batch, k],
/// <c>top_items</c> int64 [batch, k] (item numbers), <c>item_embeddings</c> float [items + 1, d] (the item
/// vectors, for explanations: which history item is closest to a recommended one).
/// With a policy head learned by RL (the RL stage's actor, exported as <see cref="ExportedPolicyHead"/>) also <c>top_policy_scores</c>
/// float [batch, k] (each top item's score plus its per-item policy terms over the sharpness) and <c>item_categories</c>
/// int64 [items + 1] (what the head's repetition term counts); serving adds the session terms (<c>SlateRanker</c>).
/// </remarks>
public static class PolicyExporter
{
    public const int Opset = 17;

    public static byte[] Export(SasRecModel model, SequenceModelConfig config, ExportedPolicyHead? head = null)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        model.eval();
        var d = config.Dimension;
        var items = model.ItemCount + 1;

        var g = new OnnxGraph();
        g.Input(PolicyGraph.History, TensorProto.Types.DataType.Int64, ["batch", config.MaxLength]);
        if (model.UsesUserTokens)
            g.Input(PolicyGraph.UserTokens, TensorProto.Types.DataType.Int64, ["batch", "user_tokens"]);
        g.Input(PolicyGraph.K, TensorProto.Types.DataType.Int64, [1]);
        if (model.UsesItemContent)
            g.Input(PolicyGraph.CandidateTokens, TensorProto.Types.DataType.Int64, ["candidates", "candidate_tokens"]);

        OnnxLayers.Constants(g);
        var itemVectors = model.ItemVectors();
        OnnxLayers.Initializer(g, "item_vectors", itemVectors);
        g.Initializer("last_position", [(long)config.MaxLength - 1], [1]);
        var padding = new float[items];
        padding[0] = float.NegativeInfinity;
        g.Initializer("padding_mask", padding, [items]);

        // The model's own graph (SasRecModel.ToOnnx), then the scores of the last position's state.
        var states = model.ToOnnx(g, "item_vectors", PolicyGraph.History, model.UsesUserTokens ? PolicyGraph.UserTokens : null);
        g.Node("Gather", [states, "last_position"], ["last_3d"], ("axis", 1L));
        g.Node("Squeeze", ["last_3d", OnnxLayers.Axis1], ["state"]);
        g.Node("Gemm", ["state", "item_vectors"], ["raw_scores"], ("transB", 1L)); // one copy of the item matrix serves lookup and scoring
        g.Node("Add", ["raw_scores", "padding_mask"], [PolicyGraph.Scores]);
        if (config.ShortlistAbove > 0 && model.ItemCount > config.ShortlistAbove)
            TopKInTwoStages(g, itemVectors.data<float>().ToArray(), d, items, config.ShortlistSize);
        else
            g.Node("TopK", [PolicyGraph.Scores, PolicyGraph.K], [PolicyGraph.TopScores, PolicyGraph.TopItems], ("axis", -1L), ("largest", 1L), ("sorted", 1L));
        if (model.UsesItemContent)
        {
            // Items the model never saw, from their content tokens alone (SasRecModel.NewItemVectors).
            var candidates = model.NewItemVectorsToOnnx(g, PolicyGraph.CandidateTokens);
            g.Node("Gemm", ["state", candidates], [PolicyGraph.CandidateScores], ("transB", 1L));
        }
        if (head is not null)
        {
            g.Initializer("policy_item_bias", head.ItemBias.Select(b => (float)(b / head.Sharpness)).ToArray(), [items]);
            g.Node("Gather", ["policy_item_bias", PolicyGraph.TopItems], ["top_policy_bias"], ("axis", 0L));
            g.Node("Add", [PolicyGraph.TopScores, "top_policy_bias"], [PolicyGraph.TopPolicyScores]);
            g.Initializer("item_categories_constant", head.ItemCategories, [items]);
            g.Node("Identity", ["item_categories_constant"], [PolicyGraph.ItemCategories]);
        }
        g.Node("Identity", ["item_vectors"], [PolicyGraph.ItemEmbeddings]);
        g.Output(PolicyGraph.Scores, TensorProto.Types.DataType.Float, ["batch", items]);
        g.Output(PolicyGraph.TopScores, TensorProto.Types.DataType.Float, ["batch", "k"]);
        g.Output(PolicyGraph.TopItems, TensorProto.Types.DataType.Int64, ["batch", "k"]);
        g.Output(PolicyGraph.ItemEmbeddings, TensorProto.Types.DataType.Float, [items, d]);
        if (model.UsesItemContent)
            g.Output(PolicyGraph.CandidateScores, TensorProto.Types.DataType.Float, ["batch", "candidates"]);
        if (head is not null)
        {
            g.Output(PolicyGraph.TopPolicyScores, TensorProto.Types.DataType.Float, ["batch", "k"]);
            g.Output(PolicyGraph.ItemCategories, TensorProto.Types.DataType.Int64, [items]);
        }
        return g.ToModel("recommender-sasrec", Opset).ToByteArray();
    }

    /// <summary>
    /// The top-k of a large catalog without reading its fp32 item matrix whole (<see cref="SequenceModelConfig.ShortlistAbove"/>):
    /// <list type="number">
    /// <item>every item's approximate score: the state quantized to uint8 per request (DynamicQuantizeLinear) times an
    /// int8 copy of the item vectors, each item's row with its own symmetric scale (its largest |v| maps to 127);</item>
    /// <item>the best max(shortlist, k) items by that score re-scored exactly against their fp32 vectors;</item>
    /// <item>the top-k of the shortlist by exact score, as item numbers.</item>
    /// </list>
    /// The full <c>scores</c> output stays exact; only <c>top_scores</c> and <c>top_items</c> come through the shortlist.
    /// </summary>
    private static void TopKInTwoStages(OnnxGraph g, float[] vectors, int d, int items, int shortlist)
    {
        var quantized = new sbyte[d * items]; // [d, items]: MatMulInteger's B
        var scales = new float[items];
        for (var i = 0; i < items; i++)
        {
            var row = vectors.AsSpan(i * d, d);
            var largest = MathF.Abs(System.Numerics.Tensors.TensorPrimitives.MaxMagnitude(row));
            scales[i] = largest > 0 ? largest / 127f : 1f;
            for (var j = 0; j < d; j++)
                quantized[j * items + i] = (sbyte)Math.Clamp(MathF.Round(row[j] / scales[i]), -127f, 127f);
        }
        g.Initializer("item_vectors_int8", quantized, [d, items]);
        g.Initializer("item_scales", scales, [items]);
        g.Initializer("shortlist_size", [(long)shortlist], [1]);
        g.Initializer("catalog_size", [(long)items], [1]);

        // 1. Approximate scores (the state's own scale and zero point are common to every item: ranking ignores the first).
        g.Node("DynamicQuantizeLinear", ["state"], ["state_uint8", "state_scale", "state_zero_point"]);
        g.Node("MatMulInteger", ["state_uint8", "item_vectors_int8", "state_zero_point"], ["approximate_int32"]);
        g.Node("Cast", ["approximate_int32"], ["approximate_unscaled"], ("to", (long)TensorProto.Types.DataType.Float));
        g.Node("Mul", ["approximate_unscaled", "item_scales"], ["approximate_scores"]);
        // 2. The shortlist, re-scored exactly (padding gets -inf as in the exact path).
        g.Node("Max", [PolicyGraph.K, "shortlist_size"], ["shortlist_wanted"]);
        g.Node("Min", ["shortlist_wanted", "catalog_size"], ["shortlist_k"]);
        g.Node("TopK", ["approximate_scores", "shortlist_k"], ["shortlist_approximate_scores", "shortlist"], ("axis", -1L), ("largest", 1L), ("sorted", 0L));
        g.Node("Gather", ["item_vectors", "shortlist"], ["shortlist_vectors"], ("axis", 0L));
        g.Node("Einsum", ["state", "shortlist_vectors"], ["shortlist_raw_scores"], ("equation", "bd,bcd->bc"));
        g.Node("Gather", ["padding_mask", "shortlist"], ["shortlist_padding"], ("axis", 0L));
        g.Node("Add", ["shortlist_raw_scores", "shortlist_padding"], ["shortlist_scores"]);
        // 3. The top-k of the shortlist.
        g.Node("TopK", ["shortlist_scores", PolicyGraph.K], [PolicyGraph.TopScores, "top_positions"], ("axis", -1L), ("largest", 1L), ("sorted", 1L));
        g.Node("GatherElements", ["shortlist", "top_positions"], [PolicyGraph.TopItems], ("axis", 1L));
    }
}
