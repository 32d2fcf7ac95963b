using Google.Protobuf;
using Onnx;
using Recommender.Serving;
using static TorchSharp.torch;

namespace Recommender.Training;

/// <summary>
/// Writes a trained <see cref="SasRecModel"/> as an ONNX graph (opset 17) from its weights: TorchSharp
/// has no ONNX exporter, so the forward pass is spelled out here op by op, mirroring
/// <see cref="SasRecModel.forward"/> and <see cref="TransformerBlock.forward"/>. Item vectors (id plus
/// content) are computed once at export and stored as a constant.
/// </summary>
/// <remarks>
/// Inputs: <c>history</c> int64 [batch, maxLength], left-padded with 0; <c>user_tokens</c> int64 [batch, T]
/// (0-padded attribute tokens; only when the model uses user features); <c>k</c> int64 [1].
/// <c>candidate_tokens</c> int64 [candidates, T] (only when the model has item content): content tokens of items
/// the model never saw, 0-padded, scored into <c>candidate_scores</c> [batch, candidates].
/// Outputs: <c>scores</c> float [batch, items + 1] (item 0, padding, is -inf), <c>top_scores</c> float [batch, k],
/// <c>top_items</c> int64 [batch, k] (item numbers), <c>item_embeddings</c> float [items + 1, d] (the item
/// vectors, for explanations: which history item is closest to a recommended one).
/// With a policy head learned by RL (<see cref="Reinforcement.SequenceActorCritic.Export"/>) also <c>top_policy_scores</c>
/// float [batch, k] (each top item's score plus its per-item policy terms over the sharpness) and <c>item_categories</c>
/// int64 [items + 1] (what the head's repetition term counts); serving adds the session terms (<c>SlateRanker</c>).
/// </remarks>
public static class PolicyExporter
{
    public const int Opset = 17;

    public static byte[] Export(SasRecModel model, SequenceModelConfig config, Reinforcement.ExportedPolicyHead? head = null)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        model.eval();
        var weights = model.state_dict().ToDictionary(p => p.Key, p => p.Value.detach().cpu().to(float32));
        float[] W(string name) => weights[name].data<float>().ToArray();
        float[] WT(string name) => weights[name].t().contiguous().data<float>().ToArray(); // Linear: y = x W^T + b
        var d = config.Dimension;
        var items = model.ItemCount + 1;
        var usesUsers = weights.ContainsKey("_userEmbedding.weight");
        var usesContent = weights.ContainsKey("_contentEmbedding.weight");

        var g = new OnnxGraph();
        g.Input("history", TensorProto.Types.DataType.Int64, ["batch", config.MaxLength]);
        if (usesUsers)
            g.Input("user_tokens", TensorProto.Types.DataType.Int64, ["batch", "user_tokens"]);
        g.Input("k", TensorProto.Types.DataType.Int64, [1]);
        if (usesContent)
            g.Input("candidate_tokens", TensorProto.Types.DataType.Int64, ["candidates", "candidate_tokens"]);

        var itemVectors = model.ItemVectors().detach().cpu().to(float32);
        g.Initializer("item_vectors", itemVectors.data<float>().ToArray(), [items, d]);
        g.Initializer("position", W("_positionEmbedding.weight"), [config.MaxLength, d]);
        g.Initializer("sqrt_d", [(float)Math.Sqrt(d)], []);
        g.Initializer("zero_i64", [0L], []);
        g.Initializer("axis_minus1", [-1L], [1]);
        g.Initializer("axis_1", [1L], [1]);
        g.Initializer("last_position", [(long)config.MaxLength - 1], [1]);
        var padding = new float[items];
        padding[0] = float.NegativeInfinity;
        g.Initializer("padding_mask", padding, [items]);
        var causal = new float[config.MaxLength * config.MaxLength];
        for (var row = 0; row < config.MaxLength; row++)
            for (var col = row + 1; col < config.MaxLength; col++)
                causal[row * config.MaxLength + col] = float.NegativeInfinity;
        g.Initializer("causal_mask", causal, [config.MaxLength, config.MaxLength]);

        // x = item_vectors[history] * sqrt(d) + position (+ mean user-attribute vector), masked at padding.
        g.Node("Gather", ["item_vectors", "history"], ["embedded"], ("axis", 0L));
        g.Node("Mul", ["embedded", "sqrt_d"], ["scaled"]);
        g.Node("Add", ["scaled", "position"], ["x_in"]);
        var x = "x_in";
        if (usesUsers)
        {
            g.Initializer("user_embedding", W("_userEmbedding.weight"), weights["_userEmbedding.weight"].shape);
            g.Initializer("one_f", [1f], []);
            g.Node("Gather", ["user_embedding", "user_tokens"], ["user_vectors"], ("axis", 0L));
            MeanOverPresent(g, "user_tokens", "user_vectors", "user_mean");
            g.Node("Unsqueeze", ["user_mean", "axis_1"], ["user_row"]);
            g.Node("Add", [x, "user_row"], ["x_user"]);
            x = "x_user";
        }
        g.Node("Equal", ["history", "zero_i64"], ["is_padding"]);
        g.Node("Not", ["is_padding"], ["is_item"]);
        g.Node("Cast", ["is_item"], ["timeline_2d"], ("to", (long)TensorProto.Types.DataType.Float));
        g.Node("Unsqueeze", ["timeline_2d", "axis_minus1"], ["timeline"]);
        g.Node("Mul", [x, "timeline"], ["x0"]);
        x = "x0";

        for (var b = 0; b < config.Blocks; b++)
        {
            var p = $"_blocks.{b}.";
            var n = $"b{b}_";
            LayerNorm(g, x, W(p + "_attentionNorm.weight"), W(p + "_attentionNorm.bias"), n + "ln1");
            var heads = config.Heads;
            var headDim = d / heads;
            g.Initializer(n + "split", [0L, 0L, heads, headDim], [4]);
            g.Initializer(n + "merge", [0L, 0L, d], [3]);
            g.Initializer(n + "scale", [(float)(1 / Math.Sqrt(headDim))], []);
            foreach (var (part, field) in new[] { ("q", "_query"), ("k", "_key"), ("v", "_value") })
            {
                Linear(g, n + "ln1", WT(p + field + ".weight"), W(p + field + ".bias"), d, n + part);
                g.Node("Reshape", [n + part, n + "split"], [n + part + "_heads"]);
                g.Node("Transpose", [n + part + "_heads"], [n + part + "_t"], ("perm", new long[] { 0, 2, 1, 3 }));
            }
            g.Node("Transpose", [n + "k_t"], [n + "k_tt"], ("perm", new long[] { 0, 1, 3, 2 }));
            g.Node("MatMul", [n + "q_t", n + "k_tt"], [n + "logits"]);
            g.Node("Mul", [n + "logits", n + "scale"], [n + "logits_scaled"]);
            g.Node("Add", [n + "logits_scaled", "causal_mask"], [n + "logits_masked"]);
            g.Node("Softmax", [n + "logits_masked"], [n + "attention"], ("axis", -1L));
            g.Node("MatMul", [n + "attention", n + "v_t"], [n + "attended"]);
            g.Node("Transpose", [n + "attended"], [n + "attended_t"], ("perm", new long[] { 0, 2, 1, 3 }));
            g.Node("Reshape", [n + "attended_t", n + "merge"], [n + "attended_merged"]);
            Linear(g, n + "attended_merged", WT(p + "_output.weight"), W(p + "_output.bias"), d, n + "attention_out");
            g.Node("Add", [x, n + "attention_out"], [n + "x1"]);
            LayerNorm(g, n + "x1", W(p + "_feedForwardNorm.weight"), W(p + "_feedForwardNorm.bias"), n + "ln2");
            Linear(g, n + "ln2", WT(p + "_hidden.weight"), W(p + "_hidden.bias"), d, n + "hidden");
            g.Node("Relu", [n + "hidden"], [n + "relu"]);
            Linear(g, n + "relu", WT(p + "_projection.weight"), W(p + "_projection.bias"), d, n + "ff");
            g.Node("Add", [n + "x1", n + "ff"], [n + "x2"]);
            g.Node("Mul", [n + "x2", "timeline"], [n + "out"]);
            x = n + "out";
        }

        LayerNorm(g, x, W("_finalNorm.weight"), W("_finalNorm.bias"), "final");
        g.Node("Gather", ["final", "last_position"], ["last_3d"], ("axis", 1L));
        g.Node("Squeeze", ["last_3d", "axis_1"], ["state"]);
        g.Node("Gemm", ["state", "item_vectors"], ["raw_scores"], ("transB", 1L)); // one copy of the item matrix serves lookup and scoring
        g.Node("Add", ["raw_scores", "padding_mask"], ["scores"]);
        g.Node("TopK", ["scores", "k"], ["top_scores", "top_items"], ("axis", -1L), ("largest", 1L), ("sorted", 1L));
        if (usesContent)
        {
            // Items the model never saw, from their content tokens alone: the mean content embedding, as
            // SasRecModel.ItemVectors adds it to a known item's id embedding (SasRecModel.NewItemVectors).
            g.Initializer("content_embedding", W("_contentEmbedding.weight"), weights["_contentEmbedding.weight"].shape);
            g.Initializer("one_c", [1f], []);
            g.Node("Gather", ["content_embedding", "candidate_tokens"], ["candidate_token_vectors"], ("axis", 0L));
            g.Node("Equal", ["candidate_tokens", "zero_i64"], ["candidate_pad"]);
            g.Node("Not", ["candidate_pad"], ["candidate_present"]);
            g.Node("Cast", ["candidate_present"], ["candidate_mask2"], ("to", (long)TensorProto.Types.DataType.Float));
            g.Node("Unsqueeze", ["candidate_mask2", "axis_minus1"], ["candidate_mask"]);
            g.Node("Mul", ["candidate_token_vectors", "candidate_mask"], ["candidate_masked"]);
            g.Node("ReduceSum", ["candidate_masked", "axis_1"], ["candidate_sum"], ("keepdims", 0L));
            g.Node("ReduceSum", ["candidate_mask", "axis_1"], ["candidate_count"], ("keepdims", 0L));
            g.Node("Max", ["candidate_count", "one_c"], ["candidate_count1"]);
            g.Node("Div", ["candidate_sum", "candidate_count1"], ["candidate_content"]);
            if (weights.ContainsKey("_generator._hidden.weight"))
            {
                // With a trained ItemEmbeddingGenerator: G(c) + c, G(c) = tanh(c W1ᵀ + b1) W2ᵀ + b2.
                foreach (var (name, key) in new[] { ("generator_w1", "_generator._hidden.weight"), ("generator_b1", "_generator._hidden.bias"), ("generator_w2", "_generator._output.weight"), ("generator_b2", "_generator._output.bias") })
                    g.Initializer(name, W(key), weights[key].shape);
                g.Node("Gemm", ["candidate_content", "generator_w1", "generator_b1"], ["generator_linear"], ("transB", 1L));
                g.Node("Tanh", ["generator_linear"], ["generator_hidden"]);
                g.Node("Gemm", ["generator_hidden", "generator_w2", "generator_b2"], ["generator_id"], ("transB", 1L));
                g.Node("Add", ["candidate_content", "generator_id"], ["candidate_vectors"]);
            }
            else
                g.Node("Identity", ["candidate_content"], ["candidate_vectors"]);
            g.Node("Gemm", ["state", "candidate_vectors"], ["candidate_scores"], ("transB", 1L));
        }
        if (head is not null)
        {
            g.Initializer("policy_item_bias", head.ItemBias.Select(b => (float)(b / head.Sharpness)).ToArray(), [items]);
            g.Node("Gather", ["policy_item_bias", "top_items"], ["top_policy_bias"], ("axis", 0L));
            g.Node("Add", ["top_scores", "top_policy_bias"], ["top_policy_scores"]);
            g.Initializer("item_categories_constant", head.ItemCategories, [items]);
            g.Node("Identity", ["item_categories_constant"], ["item_categories"]);
        }
        g.Node("Identity", ["item_vectors"], ["item_embeddings"]);
        g.Output("scores", TensorProto.Types.DataType.Float, ["batch", items]);
        g.Output("top_scores", TensorProto.Types.DataType.Float, ["batch", "k"]);
        g.Output("top_items", TensorProto.Types.DataType.Int64, ["batch", "k"]);
        g.Output("item_embeddings", TensorProto.Types.DataType.Float, [items, d]);
        if (usesContent)
            g.Output("candidate_scores", TensorProto.Types.DataType.Float, ["batch", "candidates"]);
        if (head is not null)
        {
            g.Output("top_policy_scores", TensorProto.Types.DataType.Float, ["batch", "k"]);
            g.Output("item_categories", TensorProto.Types.DataType.Int64, [items]);
        }
        return g.ToModel("recommender-sasrec", Opset).ToByteArray();
    }

    private static void LayerNorm(OnnxGraph g, string input, float[] scale, float[] bias, string output)
    {
        g.Initializer(output + "_scale", scale, [scale.Length]);
        g.Initializer(output + "_bias", bias, [bias.Length]);
        g.Node("LayerNormalization", [input, output + "_scale", output + "_bias"], [output], ("axis", -1L), ("epsilon", 1e-8f));
    }

    private static void Linear(OnnxGraph g, string input, float[] weightTransposed, float[] bias, int dimension, string output)
    {
        g.Initializer(output + "_w", weightTransposed, [dimension, bias.Length]);
        g.Initializer(output + "_b", bias, [bias.Length]);
        g.Node("MatMul", [input, output + "_w"], [output + "_xw"]);
        g.Node("Add", [output + "_xw", output + "_b"], [output]);
    }

    /// <summary>Mean over axis 1 of <paramref name="vectors"/> [B, T, d] where <paramref name="tokens"/> [B, T] is not 0.</summary>
    private static void MeanOverPresent(OnnxGraph g, string tokens, string vectors, string output)
    {
        g.Node("Equal", [tokens, "zero_i64"], [output + "_pad"]);
        g.Node("Not", [output + "_pad"], [output + "_present"]);
        g.Node("Cast", [output + "_present"], [output + "_mask2"], ("to", (long)TensorProto.Types.DataType.Float));
        g.Node("Unsqueeze", [output + "_mask2", "axis_minus1"], [output + "_mask"]);
        g.Node("Mul", [vectors, output + "_mask"], [output + "_masked"]);
        g.Node("ReduceSum", [output + "_masked", "axis_1"], [output + "_sum"], ("keepdims", 0L));
        g.Node("ReduceSum", [output + "_mask", "axis_1"], [output + "_count"], ("keepdims", 0L));
        g.Node("Max", [output + "_count", "one_f"], [output + "_count1"]);
        g.Node("Div", [output + "_sum", output + "_count1"], [output]);
    }
}
