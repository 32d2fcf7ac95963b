using Onnx;
using Recommender.ModelContract;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Recommender.Training;

/// <summary>
/// TorchSharp layers written as ONNX ops from the modules' own weights. TorchSharp has no ONNX exporter, so each
/// model spells its graph out beside its <c>forward</c> with these (<see cref="SasRecModel.ToOnnx"/>): a weight is
/// read from the module that holds it, never looked up by its state-dict name.
/// </summary>
internal static class OnnxLayers
{
    /// <summary>Constants every graph here shares, written once by <see cref="Constants"/>.</summary>
    public const string ZeroI64 = "zero_i64", AxisMinus1 = "axis_minus1", Axis1 = "axis_1", OneF = "one_f";

    public static void Constants(OnnxGraph g)
    {
        g.Initializer(ZeroI64, [0L], []);
        g.Initializer(AxisMinus1, [-1L], [1]);
        g.Initializer(Axis1, [1L], [1]);
        g.Initializer(OneF, [1f], []);
    }

    /// <summary>A tensor's values as float32, row-major.</summary>
    public static float[] Floats(Tensor t) => t.detach().cpu().to(float32).contiguous().data<float>().ToArray();

    /// <summary>A tensor as a named initializer of the same shape.</summary>
    public static void Initializer(OnnxGraph g, string name, Tensor t) => g.Initializer(name, Floats(t), t.shape);

    public static void LayerNorm(OnnxGraph g, string input, LayerNorm norm, string output)
    {
        Initializer(g, output + "_scale", norm.weight!);
        Initializer(g, output + "_bias", norm.bias!);
        g.Node("LayerNormalization", [input, output + "_scale", output + "_bias"], [output], ("axis", -1L), ("epsilon", (float)SasRecModel.NormEpsilon));
    }

    /// <summary>y = x Wᵀ + b for an input of any rank (MatMul and Add; Gemm takes rank 2 only).</summary>
    public static void Linear(OnnxGraph g, string input, Linear linear, string output)
    {
        Initializer(g, output + "_w", linear.weight!.t());
        Initializer(g, output + "_b", linear.bias!);
        g.Node("MatMul", [input, output + "_w"], [output + "_xw"]);
        g.Node("Add", [output + "_xw", output + "_b"], [output]);
    }

    /// <summary>Mean over axis 1 of <paramref name="vectors"/> [B, T, d] where <paramref name="tokens"/> [B, T] is not 0 (0 pads).</summary>
    public static void MeanOverPresent(OnnxGraph g, string tokens, string vectors, string output)
    {
        g.Node("Equal", [tokens, ZeroI64], [output + "_pad"]);
        g.Node("Not", [output + "_pad"], [output + "_present"]);
        g.Node("Cast", [output + "_present"], [output + "_mask2"], ("to", (long)TensorProto.Types.DataType.Float));
        g.Node("Unsqueeze", [output + "_mask2", AxisMinus1], [output + "_mask"]);
        g.Node("Mul", [vectors, output + "_mask"], [output + "_masked"]);
        g.Node("ReduceSum", [output + "_masked", Axis1], [output + "_sum"], ("keepdims", 0L));
        g.Node("ReduceSum", [output + "_mask", Axis1], [output + "_count"], ("keepdims", 0L));
        g.Node("Max", [output + "_count", OneF], [output + "_count1"]);
        g.Node("Div", [output + "_sum", output + "_count1"], [output]);
    }
}
