using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace NetDsl.Runtime.Cpu;

/// <summary>Packing helpers: 8×8 in-register transposes (AVX) that turn matrix rows into panel columns.</summary>
internal static unsafe class Transpose
{
    public static bool IsSupported => Avx.IsSupported;

    /// <summary>
    /// Writes 8 source rows (<paramref name="stride"/> apart, <paramref name="count"/> elements each) as 8
    /// consecutive columns of a panel whose rows are <paramref name="panelStride"/> apart:
    /// <c>panel[p·panelStride + r] = src[r·stride + p]</c>.
    /// </summary>
    public static void Rows(float* src, int stride, int count, float* panel, int panelStride)
    {
        int p = 0;
        for (; p + 8 <= count; p += 8)
        {
            float* s = src + p;
            Block8x8(
                Avx.LoadVector256(s), Avx.LoadVector256(s + stride), Avx.LoadVector256(s + 2 * stride), Avx.LoadVector256(s + 3 * stride),
                Avx.LoadVector256(s + 4 * stride), Avx.LoadVector256(s + 5 * stride), Avx.LoadVector256(s + 6 * stride), Avx.LoadVector256(s + 7 * stride),
                panel + p * panelStride, panelStride);
        }
        for (; p < count; p++)
        {
            float* d = panel + p * panelStride;
            for (int r = 0; r < 8; r++) d[r] = src[(long)r * stride + p];
        }
    }

    /// <summary>
    /// <see cref="Rows"/> for 4 source rows (the last third of a 12-row panel), through 4×4 transposes:
    /// <c>panel[p·panelStride + r] = src[r·stride + p]</c> for r &lt; 4.
    /// </summary>
    public static void Rows4(float* src, int stride, int count, float* panel, int panelStride)
    {
        int p = 0;
        for (; p + 4 <= count; p += 4)
        {
            float* s = src + p;
            var r0 = Sse.LoadVector128(s);
            var r1 = Sse.LoadVector128(s + stride);
            var r2 = Sse.LoadVector128(s + 2 * stride);
            var r3 = Sse.LoadVector128(s + 3 * stride);
            var t0 = Sse.UnpackLow(r0, r1);   // a0 b0 a1 b1
            var t1 = Sse.UnpackHigh(r0, r1);  // a2 b2 a3 b3
            var t2 = Sse.UnpackLow(r2, r3);   // c0 d0 c1 d1
            var t3 = Sse.UnpackHigh(r2, r3);  // c2 d2 c3 d3
            float* d = panel + p * panelStride;
            Sse.Store(d, Sse.MoveLowToHigh(t0, t2));
            Sse.Store(d + panelStride, Sse.MoveHighToLow(t2, t0));
            Sse.Store(d + 2 * panelStride, Sse.MoveLowToHigh(t1, t3));
            Sse.Store(d + 3 * panelStride, Sse.MoveHighToLow(t3, t1));
        }
        for (; p < count; p++)
        {
            float* d = panel + p * panelStride;
            for (int r = 0; r < 4; r++) d[r] = src[(long)r * stride + p];
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Block8x8(Vector256<float> r0, Vector256<float> r1, Vector256<float> r2, Vector256<float> r3,
        Vector256<float> r4, Vector256<float> r5, Vector256<float> r6, Vector256<float> r7, float* dst, int stride)
    {
        var t0 = Avx.UnpackLow(r0, r1); var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3); var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5); var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7); var t7 = Avx.UnpackHigh(r6, r7);
        var u0 = Avx.Shuffle(t0, t2, 0x44); var u1 = Avx.Shuffle(t0, t2, 0xEE);
        var u2 = Avx.Shuffle(t1, t3, 0x44); var u3 = Avx.Shuffle(t1, t3, 0xEE);
        var u4 = Avx.Shuffle(t4, t6, 0x44); var u5 = Avx.Shuffle(t4, t6, 0xEE);
        var u6 = Avx.Shuffle(t5, t7, 0x44); var u7 = Avx.Shuffle(t5, t7, 0xEE);
        Avx.Store(dst, Avx.Permute2x128(u0, u4, 0x20));
        Avx.Store(dst + stride, Avx.Permute2x128(u1, u5, 0x20));
        Avx.Store(dst + 2 * stride, Avx.Permute2x128(u2, u6, 0x20));
        Avx.Store(dst + 3 * stride, Avx.Permute2x128(u3, u7, 0x20));
        Avx.Store(dst + 4 * stride, Avx.Permute2x128(u0, u4, 0x31));
        Avx.Store(dst + 5 * stride, Avx.Permute2x128(u1, u5, 0x31));
        Avx.Store(dst + 6 * stride, Avx.Permute2x128(u2, u6, 0x31));
        Avx.Store(dst + 7 * stride, Avx.Permute2x128(u3, u7, 0x31));
    }
}
