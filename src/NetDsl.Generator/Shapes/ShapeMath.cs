using System.Linq;

namespace NetDsl.Generator.Shapes;

/// <summary>Shape arithmetic and formatting.</summary>
internal static class ShapeMath
{
    /// <summary>The largest element count a buffer may have: spans index with Int32.</summary>
    public const long MaxElements = int.MaxValue;

    /// <summary>
    /// Elements from one cache-line boundary to the next that suit every element type (64 bytes of floats, 128 of
    /// doubles). Parameter tensors and planned activation buffers start on multiples of it, so with their arena on a
    /// line every tensor is read and written by whole 512-bit vectors that do not straddle lines.
    /// </summary>
    public const int LineElements = 16;

    /// <summary><paramref name="elements"/> rounded up to a multiple of <see cref="LineElements"/>.</summary>
    public static long ToLine(long elements) => (elements + LineElements - 1) / LineElements * LineElements;

    /// <summary>Product of dimensions, saturating at <see cref="long.MaxValue"/> instead of overflowing.</summary>
    public static long Product(int[] dims)
    {
        long n = 1;
        foreach (int d in dims)
        {
            if (d != 0 && n > long.MaxValue / d) return long.MaxValue;
            n *= d;
        }
        return n;
    }

    /// <summary><c>[B,64,8,8]</c>.</summary>
    public static string WithBatch(int[] dims) => "[B" + string.Concat(dims.Select(d => "," + Invariant.Format(d))) + "]";

    /// <summary><c>[64,8,8]</c>.</summary>
    public static string PerSample(int[] dims) => "[" + string.Join(",", dims.Select(Invariant.Format)) + "]";

    /// <summary><c>64x8x8</c>.</summary>
    public static string Factors(int[] dims) => string.Join("x", dims.Select(Invariant.Format));

    /// <summary>The output size of a convolution or pooling window along one axis; may be zero or negative.</summary>
    public static long WindowOutput(long input, int kernel, int stride, int padding)
    {
        long span = input + 2L * padding - kernel;
        long floor = span >= 0 ? span / stride : (span - (stride - 1)) / stride;
        return floor + 1;
    }
}
