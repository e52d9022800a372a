using System;
using System.Numerics;
using Xunit.Sdk;

namespace NetDsl.Runtime.Tests.Support;

public static class Numerics
{
    /// <summary>
    /// Asserts <c>|actual − expected| ≤ rtol·|expected| + rtol·max|expected|</c> elementwise: relative to each
    /// element, with a floor at the tensor's own scale so elements that are tiny next to their neighbours (sums
    /// that nearly cancel) are judged at the precision the tensor as a whole carries.
    /// </summary>
    public static void AssertClose<T>(ReadOnlySpan<T> expected, ReadOnlySpan<T> actual, double rtol, string what)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (expected.Length != actual.Length)
            throw new XunitException($"{what}: expected {expected.Length} elements, got {actual.Length}.");
        double scale = 0;
        foreach (var e in expected) scale = Math.Max(scale, Math.Abs(double.CreateTruncating(e)));
        double worst = 0;
        int worstAt = -1;
        for (int i = 0; i < expected.Length; i++)
        {
            double e = double.CreateTruncating(expected[i]), a = double.CreateTruncating(actual[i]);
            double excess = Math.Abs(a - e) - (rtol * Math.Abs(e) + rtol * scale);
            if (double.IsNaN(a) != double.IsNaN(e) || excess > worst)
            {
                worst = double.IsNaN(excess) ? double.PositiveInfinity : excess;
                worstAt = i;
            }
        }
        if (worstAt >= 0)
            throw new XunitException($"{what}: element {worstAt} is {actual[worstAt]} but the reference is {expected[worstAt]} (tolerance {rtol} relative, tensor scale {scale:G4}).");
    }

    /// <summary>Seeded uniform values in [lo, hi).</summary>
    public static T[] Uniform<T>(int count, int seed, double lo = -1, double hi = 1) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var rng = new Random(seed);
        var values = new T[count];
        for (int i = 0; i < count; i++) values[i] = T.CreateTruncating(lo + (hi - lo) * rng.NextDouble());
        return values;
    }

    public static int[] Labels(int count, int classes, int seed)
    {
        var rng = new Random(seed);
        var labels = new int[count];
        for (int i = 0; i < count; i++) labels[i] = rng.Next(classes);
        return labels;
    }
}
