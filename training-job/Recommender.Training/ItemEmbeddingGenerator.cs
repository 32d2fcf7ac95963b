using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Recommender.Training;

/// <summary>
/// The model's generator of new items' vectors (Meta-Embedding, Pan et al. 2019): a small network that predicts an item's
/// id embedding from its content, so that an item with no interactions is scored as <c>v = G(c) + c</c> (c: the model's
/// mean content-token embedding) instead of <c>e_id + c</c> with an id row that never learned anything. Part of the
/// model (<see cref="SasRecModel.Generator"/>) and of its exported graph; it is trained by meta-learning
/// (MetaLearning.ItemGeneratorTraining).
/// </summary>
public sealed class ItemEmbeddingGenerator : Module<Tensor, Tensor>
{
    private readonly Linear _hidden, _output;

    public ItemEmbeddingGenerator(int dimension) : base(nameof(ItemEmbeddingGenerator))
    {
        _hidden = Linear(dimension, dimension);
        _output = Linear(dimension, dimension);
        RegisterComponents();
    }

    /// <summary>Predicted id embeddings [K, d] from content vectors [K, d].</summary>
    public override Tensor forward(Tensor content) => _output.forward(functional.tanh(_hidden.forward(content)));

    /// <summary>The vectors new items are scored with, G(c) + c, from their content vectors [K, d].</summary>
    public Tensor NewItemVectors(Tensor content) => content.Plus(forward(content));

    /// <summary><see cref="NewItemVectors"/> as ONNX ops: G(c) + c, G(c) = tanh(c W1ᵀ + b1) W2ᵀ + b2, from content vectors [K, d].</summary>
    internal string NewItemVectorsToOnnx(Recommender.ModelContract.OnnxGraph g, string content, string output)
    {
        foreach (var (name, linear) in new[] { ("generator_1", _hidden), ("generator_2", _output) })
        {
            OnnxLayers.Initializer(g, name + "_w", linear.weight!);
            OnnxLayers.Initializer(g, name + "_b", linear.bias!);
        }
        g.Node("Gemm", [content, "generator_1_w", "generator_1_b"], ["generator_linear"], ("transB", 1L));
        g.Node("Tanh", ["generator_linear"], ["generator_hidden"]);
        g.Node("Gemm", ["generator_hidden", "generator_2_w", "generator_2_b"], ["generator_id"], ("transB", 1L));
        g.Node("Add", [content, "generator_id"], [output]);
        return output;
    }

    /// <summary>The item table with the rows of <paramref name="items"/> replaced by generated vectors (G(c) + c).</summary>
    public Tensor ItemTable(Tensor itemVectors, Tensor contentVectors, long[] items)
    {
        using var _ = no_grad();
        var index = tensor(items, device: itemVectors.device);
        return itemVectors.index_copy(0, index, NewItemVectors(contentVectors.index_select(0, index)));
    }
}
