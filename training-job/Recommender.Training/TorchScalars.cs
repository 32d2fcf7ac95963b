using System.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Recommender.Training;

/// <summary>
/// Keeping TorchSharp's Scalars alive while libtorch reads them. A C# number passed to a TorchSharp operation
/// becomes a <see cref="Scalar"/> that nothing references once its native handle is read, so a collection can
/// finalize it while libtorch still reads it: a rare crash in long runs ("Scalar toDouble: Expected false to be
/// true", seen here in training, in the RL stage's actor and inside Adam's step; dotnet/TorchSharp#1434). Code that
/// runs per step passes one of these process-long Scalars, a Scalar field of its own or a <c>using</c> local, instead of a bare number,
/// adds tensors with <see cref="Plus"/> (TorchSharp's + makes a Scalar for alpha = 1 on every call; its - makes none) and
/// squares them with <c>pow(Two)</c> (its square() is pow(2)). Optimizer steps, whose Scalars TorchSharp makes inside, run with the collector held off, which
/// holds while no other thread allocates much meanwhile (none does in the training job). The collection that finalizes a
/// Scalar under libtorch is one another thread starts: <c>ScalarLifetimeTests</c> makes one constant, and crashed in
/// a few seconds before the tensor arithmetic used these.
/// </summary>
internal static class TorchScalars
{
    public static readonly Scalar NegativeInfinity = double.NegativeInfinity.ToScalar();
    public static readonly Scalar Zero = 0.ToScalar();
    public static readonly Scalar One = 1.0.ToScalar();
    /// <summary>The exponent of a square, an integer as in TorchSharp's own square().</summary>
    public static readonly Scalar Two = 2.ToScalar();
    /// <summary>alpha = 1 of add, an integer as the operator's own (so it also serves integer tensors).</summary>
    private static readonly Scalar UnitAlpha = 1.ToScalar();

    /// <summary>a + b, as the + operator computes it, with a held alpha.</summary>
    public static Tensor Plus(this Tensor a, Tensor b) => a.add(b, UnitAlpha);

    /// <summary>Managed memory an optimizer step may allocate while the collector is held off (its wrappers and Scalars need far less).</summary>
    private const long StepAllocationBudget = 16 * 1024 * 1024;

    /// <summary>The no-GC region is process-wide: models trained side by side (test fixtures) take turns at it.</summary>
    private static readonly Lock NoGCRegion = new();

    /// <summary><c>optimizer.step()</c> inside a no-GC region, so none of the Scalars it makes is finalized under libtorch.</summary>
    public static void StepWithoutCollection(this torch.optim.Optimizer optimizer)
    {
        lock (NoGCRegion)
        {
            var held = GCSettings.LatencyMode != GCLatencyMode.NoGCRegion && GC.TryStartNoGCRegion(StepAllocationBudget);
            try
            {
                optimizer.step();
            }
            finally
            {
                if (held && GCSettings.LatencyMode == GCLatencyMode.NoGCRegion)
                    GC.EndNoGCRegion();
            }
        }
    }
}
