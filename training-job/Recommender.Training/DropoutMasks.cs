using System.Runtime.CompilerServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Recommender.Training;

/// <summary>
/// Inverted dropout (keep each element with probability 1-p, scale what is kept by 1/(1-p)) whose masks .NET draws
/// on CPU. libtorch's CPU dropout draws one Mersenne Twister number per element, serially, which made dropout the
/// larger part of a training step's forward pass on SASRec's configurations (the training-vs-pytorch benchmark
/// measures it); xoshiro256** (Blackman and Vigna) gives four 16-bit draws per 64-bit word, many times faster.
/// On a GPU the native dropout runs. A model holds one instance seeded by its own seed, so a CPU run repeats
/// exactly whatever else in the process draws from torch's generator.
/// </summary>
public sealed class DropoutMasks
{
    private ulong _s0, _s1, _s2, _s3;

    public DropoutMasks(int seed)
    {
        // xoshiro's state from SplitMix64, as its authors recommend (an all-zero state would stay zero).
        var x = (ulong)seed;
        _s0 = SplitMix64(ref x);
        _s1 = SplitMix64(ref x);
        _s2 = SplitMix64(ref x);
        _s3 = SplitMix64(ref x);
    }

    /// <summary><paramref name="x"/> with dropout at rate <paramref name="p"/> when training; <paramref name="x"/> itself otherwise.</summary>
    public Tensor Apply(Tensor x, double p, bool training)
    {
        if (!training || p <= 0)
            return x;
        if (x.device_type != DeviceType.CPU || x.dtype != ScalarType.Float32)
            return nn.functional.dropout(x, p, training: true);
        return x * Mask(x.shape, p);
    }

    /// <summary>A float mask of the given shape: 1/(1-p) where an element is kept, 0 where it is dropped.</summary>
    public Tensor Mask(long[] shape, double p)
    {
        // Drawn straight into the tensor's own storage: no managed buffer is kept between calls (packed batches have a
        // different shape every step, and buffers cached per shape grew without bound).
        var mask = empty(shape, ScalarType.Float32);
        var kept = BitConverter.SingleToInt32Bits((float)(1 / (1 - p)));
        // A 16-bit draw u is kept when u >= p * 2^16: exact for p = 0.5, within 2^-16 of p otherwise. Written without
        // a branch: (u - threshold) >> 31 is all ones exactly when u is dropped, and a random branch mispredicts half the time.
        var threshold = (int)Math.Round(p * 65536);
        var bits = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, int>(mask.bytes);
        var i = 0;
        for (; i + 4 <= bits.Length; i += 4)
        {
            var r = Next();
            bits[i] = kept & ~(((int)(r & 0xFFFF) - threshold) >> 31);
            bits[i + 1] = kept & ~(((int)((r >> 16) & 0xFFFF) - threshold) >> 31);
            bits[i + 2] = kept & ~(((int)((r >> 32) & 0xFFFF) - threshold) >> 31);
            bits[i + 3] = kept & ~(((int)(r >> 48) - threshold) >> 31);
        }
        for (var r = Next(); i < bits.Length; i++, r >>= 16)
            bits[i] = kept & ~(((int)(r & 0xFFFF) - threshold) >> 31);
        return mask;
    }

    /// <summary>xoshiro256**: the next 64 random bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong Next()
    {
        var result = ulong.RotateLeft(_s1 * 5, 7) * 9;
        var t = _s1 << 17;
        _s2 ^= _s0;
        _s3 ^= _s1;
        _s1 ^= _s2;
        _s0 ^= _s3;
        _s2 ^= t;
        _s3 = ulong.RotateLeft(_s3, 45);
        return result;
    }

    private static ulong SplitMix64(ref ulong x)
    {
        var z = x += 0x9E3779B97F4A7C15;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
        return z ^ (z >> 31);
    }
}
