using static TorchSharp.torch;

namespace Recommender.Training;

/// <summary>
/// Tensors from C# arrays in libtorch's own memory. <c>torch.tensor(array)</c> wraps the pinned managed array,
/// whose address (and so its alignment) differs from process to process; MKL's matrix products take different
/// code paths for differently aligned inputs, so a product over such a tensor can differ in the last bit between
/// two runs of the same seed, and a long RL run then drifts apart (seen after ~10 PPO iterations). Arrays that go
/// into a matrix product are copied through here; element-wise inputs and indices do not need it.
/// </summary>
internal static class TorchArrays
{
    /// <summary>A copy of <paramref name="values"/> shaped <paramref name="shape"/> (one dimension when none is given), in 64-byte aligned native memory.</summary>
    public static Tensor Copy(float[] values, params long[] shape)
    {
        using var wrapped = tensor(values, shape.Length == 0 ? [values.LongLength] : shape);
        return wrapped.clone();
    }
}
