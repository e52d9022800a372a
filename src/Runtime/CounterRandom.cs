using System.Runtime.CompilerServices;

namespace NetDsl.Runtime;

/// <summary>
/// Counter-based random numbers: a stateless hash of (key, counter), so any element's value can be computed
/// independently, in any order, on any thread, and recomputed later (dropout masks in the backward pass).
/// The mixing function is SplitMix64's finalizer.
/// </summary>
public static class CounterRandom
{
    /// <summary>A 64-bit hash of <paramref name="key"/> and <paramref name="counter"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Hash(ulong key, ulong counter)
    {
        ulong z = key + (counter + 1) * 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>A uniform double in [0, 1) for (key, counter).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static double Uniform(ulong key, ulong counter) => (Hash(key, counter) >> 11) * (1.0 / (1UL << 53));

    /// <summary>A standard normal double for (key, counter), by the Box–Muller transform of two uniforms.</summary>
    public static double Normal(ulong key, ulong counter)
    {
        double u1 = 1.0 - Uniform(key, 2 * counter), u2 = Uniform(key, 2 * counter + 1);
        return System.Math.Sqrt(-2.0 * System.Math.Log(u1)) * System.Math.Cos(2.0 * System.Math.PI * u2);
    }

    /// <summary>
    /// Whether dropout keeps element <paramref name="index"/>: true with probability <c>1 - p</c>, where the
    /// caller passes <paramref name="threshold"/> = <c>p · 2^32</c> (the generator emits it as a constant).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Keep(ulong seed, long index, uint threshold) => (uint)(Hash(seed, (ulong)index) >> 32) >= threshold;

    /// <summary>Derives an independent key for a sub-stream (a layer, a step).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Derive(ulong key, ulong stream) => Hash(key ^ 0xD1B54A32D192ED03UL, stream);
}
