using System;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace NetDsl.Runtime.Cpu;

/// <summary>Max and average pooling over per-sample <c>[C, H, W]</c> tensors, with PyTorch's semantics.</summary>
public static unsafe class Pooling
{
    /// <summary>
    /// Max pooling. Padding counts as −∞; ties go to the first position in row-major window order and NaN
    /// propagates, as in PyTorch. When <paramref name="argmax"/> is not empty, each output's winning input
    /// position (within its sample) is recorded for the backward pass.
    /// </summary>
    public static void MaxForward<T>(in Window2d g, int batch, ReadOnlySpan<T> x, Span<T> y, Span<int> argmax)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        Require(x.Length, (long)batch * g.InSize, nameof(x));
        Require(y.Length, (long)batch * g.OutSize, nameof(y));
        if (!argmax.IsEmpty) Require(argmax.Length, (long)batch * g.OutSize, nameof(argmax));
        var job = new Job<T> { G = g, X = x, Y = y, Indices = argmax };
        CpuWorkers.Run(ref job, &MaxForwardSamples<T>, batch, align: 1);
    }

    /// <summary>
    /// One sample of <see cref="MaxForward{T}"/> on the calling thread (a fused convolution block's pooling): the
    /// same kernels, so the same outputs and positions. The spans are that sample's.
    /// </summary>
    internal static void MaxForwardSample(in Window2d g, ReadOnlySpan<float> x, Span<float> y, Span<int> argmax)
    {
        Require(x.Length, g.InSize, nameof(x));
        Require(y.Length, g.OutSize, nameof(y));
        if (!argmax.IsEmpty) Require(argmax.Length, g.OutSize, nameof(argmax));
        var job = new Job<float> { G = g, X = x, Y = y, Indices = argmax };
        MaxForwardSamples(ref job, 0, 1);
    }

    /// <summary>One sample of <see cref="MaxBackward{T}"/> (not accumulating) on the calling thread; the spans are that sample's.</summary>
    internal static void MaxBackwardSample(in Window2d g, ReadOnlySpan<float> dy, ReadOnlySpan<int> argmax, Span<float> dx, ReadOnlySpan<float> gate)
    {
        Require(dy.Length, g.OutSize, nameof(dy));
        Require(argmax.Length, g.OutSize, nameof(argmax));
        Require(dx.Length, g.InSize, nameof(dx));
        if (!gate.IsEmpty) Require(gate.Length, g.OutSize, nameof(gate));
        var job = new Job<float> { G = g, Dy = dy, Indices = MemoryMarshal.CreateSpan(ref MemoryMarshal.GetReference(argmax), argmax.Length), Dx = dx, Gate = gate };
        MaxBackwardSamples(ref job, 0, 1);
    }

    /// <summary>
    /// The kernels below index without bounds checks: a buffer too short for the batch is refused here (and by the
    /// fused convolution blocks, which call these kernels per sample).
    /// </summary>
    internal static void Require(int length, long needed, string name)
    {
        if (length < needed)
            throw new ArgumentException($"{name} has {length} elements; this batch and window need at least {needed}.", name);
    }

    private ref struct Job<T> where T : unmanaged
    {
        public Window2d G;
        public ReadOnlySpan<T> X;
        public Span<T> Y;
        public Span<int> Indices;
        public ReadOnlySpan<T> Dy;
        public ReadOnlySpan<T> Gate;
        public Span<T> Dx;
        public bool Accumulate;
    }

    private static void MaxForwardSamples<T>(ref Job<T> j, int b0, int b1) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var g = j.G;
        if (g.Kernel == 2 && g.Stride == 2 && g.Padding == 0)
        {
            MaxForward2x2(ref j, b0, b1);
            return;
        }
        var x = j.X;
        var y = j.Y;
        var argmax = j.Indices;
        bool record = !argmax.IsEmpty;
        int h = g.InHeight, w = g.InWidth, k = g.Kernel, s = g.Stride, pad = g.Padding;
        for (int b = b0; b < b1; b++)
            for (int c = 0; c < g.InChannels; c++)
            {
                int inBase = b * g.InSize + c * h * w;
                int outBase = b * g.OutSize + c * g.OutPixels;
                for (int oy = 0; oy < g.OutHeight; oy++)
                    for (int ox = 0; ox < g.OutWidth; ox++)
                    {
                        T best = T.NegativeInfinity;
                        int bestAt = -1;
                        int y0 = oy * s - pad, x0 = ox * s - pad;
                        for (int ky = 0; ky < k; ky++)
                        {
                            int iy = y0 + ky;
                            if ((uint)iy >= (uint)h) continue;
                            for (int kx = 0; kx < k; kx++)
                            {
                                int ix = x0 + kx;
                                if ((uint)ix >= (uint)w) continue;
                                T v = x[inBase + iy * w + ix];
                                // !(v <= best) is "v > best or v is NaN": the first maximum wins and NaN propagates, as in PyTorch.
                                if (!(v <= best) || bestAt < 0)
                                {
                                    best = v;
                                    bestAt = iy * w + ix;
                                    if (T.IsNaN(v)) goto done;
                                }
                            }
                        }
                    done:
                        int o = outBase + oy * g.OutWidth + ox;
                        y[o] = best;
                        if (record) argmax[o] = c * h * w + bestAt;
                    }
            }
    }

    /// <summary>The common 2×2, stride-2 window without padding, without per-element bounds checks.</summary>
    private static void MaxForward2x2<T>(ref Job<T> j, int b0, int b1) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var g = j.G;
        int h = g.InHeight, w = g.InWidth, oh = g.OutHeight, ow = g.OutWidth;
        bool record = !j.Indices.IsEmpty;
        ref T x = ref MemoryMarshal.GetReference(j.X);
        ref T y = ref MemoryMarshal.GetReference(j.Y);
        ref int idx = ref MemoryMarshal.GetReference(j.Indices);
        for (int b = b0; b < b1; b++)
            for (int c = 0; c < g.InChannels; c++)
            {
                int plane = c * h * w;
                int inBase = b * g.InSize + plane;
                int outBase = b * g.OutSize + c * g.OutPixels;
                for (int oy = 0; oy < oh; oy++)
                {
                    int r0 = inBase + 2 * oy * w, r1 = r0 + w;
                    int o = outBase + oy * ow;
                    int ox = 0;
                    if (typeof(T) == typeof(float) && Vector512.IsHardwareAccelerated)
                        ox = MaxPairs8(ref Unsafe.As<T, float>(ref Unsafe.Add(ref x, r0)), w, ow, ref Unsafe.As<T, float>(ref Unsafe.Add(ref y, o)),
                            ref Unsafe.Add(ref idx, o), record, plane + 2 * oy * w, j.X.Length - r0);
                    for (; ox < ow; ox++)
                    {
                        int at = 2 * ox;
                        T best = Unsafe.Add(ref x, r0 + at);
                        int bestAt = at;
                        if (!T.IsNaN(best))
                        {
                            T v = Unsafe.Add(ref x, r0 + at + 1);
                            if (!(v <= best)) { best = v; bestAt = at + 1; }
                            if (!T.IsNaN(best))
                            {
                                v = Unsafe.Add(ref x, r1 + at);
                                if (!(v <= best)) { best = v; bestAt = w + at; }
                                if (!T.IsNaN(best))
                                {
                                    v = Unsafe.Add(ref x, r1 + at + 1);
                                    if (!(v <= best)) { best = v; bestAt = w + at + 1; }
                                }
                            }
                        }
                        Unsafe.Add(ref y, o + ox) = best;
                        if (record) Unsafe.Add(ref idx, o + ox) = plane + 2 * oy * w + bestAt;
                    }
                }
            }
    }

    private static readonly Vector512<int> EvenOdd = Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
    private static readonly Vector256<int> LaneColumns = Vector256.Create(0, 2, 4, 6, 8, 10, 12, 14);

    /// <summary>
    /// Eight 2×2 windows at a time along a row pair, branch-free (random data makes the scalar comparisons
    /// mispredict): de-interleave even and odd columns, then keep the running maximum and its offset with
    /// masks. A candidate replaces the maximum when it is greater or NaN, unless the maximum is already NaN,
    /// which is the scalar rule. Returns how many outputs it wrote.
    /// </summary>
    private static int MaxPairs8(ref float row0, int w, int ow, ref float y, ref int idx, bool record, int rowBase, int readable)
    {
        int ox = 0;
        for (; ox + 8 <= ow && 2 * ox + 16 <= w; ox += 8)
        {
            var (m, at) = Max8(Vector512.LoadUnsafe(ref row0, (nuint)(2 * ox)), Vector512.LoadUnsafe(ref row0, (nuint)(w + 2 * ox)), w);
            m.StoreUnsafe(ref y, (nuint)ox);
            if (record) (at + LaneColumns + Vector256.Create(rowBase + 2 * ox)).StoreUnsafe(ref idx, (nuint)ox);
        }
        if (ox < ow && ow >= 8)
        {
            // The last windows overlap the previous chunk: recompute eight (the overlap gets the same values).
            ox = ow - 8;
            var (m, at) = Max8(Vector512.LoadUnsafe(ref row0, (nuint)(2 * ox)), Vector512.LoadUnsafe(ref row0, (nuint)(w + 2 * ox)), w);
            m.StoreUnsafe(ref y, (nuint)ox);
            if (record) (at + LaneColumns + Vector256.Create(rowBase + 2 * ox)).StoreUnsafe(ref idx, (nuint)ox);
        }
        else if (ox < ow)
        {
            // Fewer than 8 windows left in a narrow row. Past the row the lanes read the next one where the input
            // goes on (only the first windows are stored); at the input's end, what is left of the two rows is
            // copied into registers padded with −∞, which never wins.
            Vector512<float> top, bottom;
            if (w + 2 * ox + 16 <= readable)
            {
                top = Vector512.LoadUnsafe(ref row0, (nuint)(2 * ox));
                bottom = Vector512.LoadUnsafe(ref row0, (nuint)(w + 2 * ox));
            }
            else
            {
                int inputs = Math.Min(16, w - 2 * ox);
                Span<float> padded = stackalloc float[32];
                padded.Fill(float.NegativeInfinity);
                MemoryMarshal.CreateReadOnlySpan(ref Unsafe.Add(ref row0, 2 * ox), inputs).CopyTo(padded);
                MemoryMarshal.CreateReadOnlySpan(ref Unsafe.Add(ref row0, w + 2 * ox), inputs).CopyTo(padded.Slice(16));
                top = Vector512.Create(padded);
                bottom = Vector512.Create(padded.Slice(16));
            }
            var (m, at) = Max8(top, bottom, w);
            at += LaneColumns + Vector256.Create(rowBase + 2 * ox);
            for (int i = 0; i < ow - ox; i++)
            {
                Unsafe.Add(ref y, ox + i) = m.GetElement(i);
                if (record) Unsafe.Add(ref idx, ox + i) = at.GetElement(i);
            }
        }
        return ow;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector256<float> Max, Vector256<int> Offset) Max8(Vector512<float> row0, Vector512<float> row1, int w)
    {
        var p0 = Vector512.Shuffle(row0, EvenOdd);
        var p1 = Vector512.Shuffle(row1, EvenOdd);
        var m = p0.GetLower();
        var at = Vector256<int>.Zero;
        Take(ref m, ref at, p0.GetUpper(), 1);
        Take(ref m, ref at, p1.GetLower(), w);
        Take(ref m, ref at, p1.GetUpper(), w + 1);
        return (m, at);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Take(ref Vector256<float> m, ref Vector256<int> at, Vector256<float> v, int offset)
    {
        var replace = ~Vector256.LessThanOrEqual(v, m) & Vector256.Equals(m, m);
        m = Vector256.ConditionalSelect(replace, v, m);
        at = Vector256.ConditionalSelect(replace.AsInt32(), Vector256.Create(offset), at);
    }

    /// <summary>
    /// Routes each output gradient to the input position that won the forward max. With <paramref name="gate"/>
    /// (the pooled output), a window passes its gradient only where its maximum is positive: the gradient of a
    /// ReLU (or any <c>x &gt; 0</c> mask) applied to the pooling's input, fused, since the winning input equals the
    /// window's maximum.
    /// </summary>
    public static void MaxBackward<T>(in Window2d g, int batch, ReadOnlySpan<T> dy, ReadOnlySpan<int> argmax, Span<T> dx, bool accumulate, ReadOnlySpan<T> gate = default)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        long outputs = (long)batch * g.OutSize;
        Require(dy.Length, outputs, nameof(dy));
        Require(argmax.Length, outputs, nameof(argmax));
        Require(dx.Length, (long)batch * g.InSize, nameof(dx));
        if (!gate.IsEmpty) Require(gate.Length, outputs, nameof(gate));
        var job = new Job<T> { G = g, Dy = dy, Indices = MemoryMarshal.CreateSpan(ref MemoryMarshal.GetReference(argmax), argmax.Length), Dx = dx, Accumulate = accumulate, Gate = gate };
        CpuWorkers.Run(ref job, &MaxBackwardSamples<T>, batch, align: 1);
    }

    private static void MaxBackwardSamples<T>(ref Job<T> j, int b0, int b1) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var g = j.G;
        var dy = j.Dy;
        var argmax = j.Indices;
        var dx = j.Dx;
        var gate = j.Gate;
        bool gated = !gate.IsEmpty;
        if (!j.Accumulate && g.Kernel == 2 && g.Stride == 2 && g.Padding == 0 && g.InHeight == 2 * g.OutHeight && g.InWidth == 2 * g.OutWidth)
        {
            MaxBackward2x2(ref j, b0, b1);
            return;
        }
        if (!j.Accumulate) dx.Slice(b0 * g.InSize, (b1 - b0) * g.InSize).Clear();
        for (int b = b0; b < b1; b++)
        {
            Span<T> dxb = dx.Slice(b * g.InSize, g.InSize);
            int o0 = b * g.OutSize;
            for (int o = 0; o < g.OutSize; o++)
                if (!gated || gate[o0 + o] > T.Zero) dxb[argmax[o0 + o]] += dy[o0 + o];
        }
    }

    private static readonly Vector512<int> Pairs = Vector512.Create(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    private static readonly Vector512<int> Lanes16 = Vector512.Create(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);

    /// <summary>
    /// 2×2 stride-2 windows that tile the input exactly: every input belongs to one window, so each is written
    /// once (the output gradient where it won, else zero) instead of clearing the input gradient and scattering
    /// into it. A winner gets <c>dy + 0</c>, the scatter's <c>0 + dy</c> (a −0 gradient becomes +0 both ways).
    /// </summary>
    private static void MaxBackward2x2<T>(ref Job<T> j, int b0, int b1) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var g = j.G;
        int h = g.InHeight, w = g.InWidth, ow = g.OutWidth, planeOut = g.OutPixels;
        ref T dy = ref MemoryMarshal.GetReference(j.Dy);
        ref int idx = ref MemoryMarshal.GetReference(j.Indices);
        ref T dx = ref MemoryMarshal.GetReference(j.Dx);
        ref T gate = ref MemoryMarshal.GetReference(j.Gate);
        bool gated = !j.Gate.IsEmpty;
        bool vector = typeof(T) == typeof(float) && Vector512.IsHardwareAccelerated && ow >= 8;
        for (int b = b0; b < b1; b++)
            for (int c = 0; c < g.InChannels; c++)
            {
                int o0 = b * g.OutSize + c * planeOut;
                if (!vector)
                {
                    // Rows of fewer than 8 windows: clear the plane while it is in cache, then one store per window
                    // (a branch per window position would mispredict on random data).
                    Span<T> dxb = j.Dx.Slice(b * g.InSize, g.InSize);
                    dxb.Slice(c * h * w, h * w).Clear();
                    for (int o = o0; o < o0 + planeOut; o++)
                    {
                        T grad = !gated || Unsafe.Add(ref gate, o) > T.Zero ? Unsafe.Add(ref dy, o) : T.Zero;
                        dxb[Unsafe.Add(ref idx, o)] = grad + T.Zero; // a recorded position is checked against its sample
                    }
                    continue;
                }
                ref float dyf = ref Unsafe.As<T, float>(ref dy);
                ref float dxf = ref Unsafe.As<T, float>(ref dx);
                ref float gatef = ref Unsafe.As<T, float>(ref gate);
                for (int oy = 0; oy < g.OutHeight; oy++)
                {
                    int top = c * h * w + 2 * oy * w; // the row pair's first position within the sample
                    int o = o0 + oy * ow, r0 = b * g.InSize + top;
                    for (int ox = 0; ; ox += 8)
                    {
                        // The last eight windows may overlap the previous ones: they get the same values again.
                        if (ox + 8 > ow) ox = ow - 8;
                        var grad = Vector256.LoadUnsafe(ref dyf, (nuint)(o + ox));
                        if (gated) grad = Vector256.ConditionalSelect(Vector256.GreaterThan(Vector256.LoadUnsafe(ref gatef, (nuint)(o + ox)), default), grad, default);
                        var d = Vector512.Shuffle(Vector512.Create(grad, default), Pairs);
                        var at = Vector512.Shuffle(Vector512.Create(Vector256.LoadUnsafe(ref idx, (nuint)(o + ox)), default), Pairs);
                        var position = Lanes16 + Vector512.Create(top + 2 * ox);
                        (Vector512.ConditionalSelect(Vector512.Equals(at, position).AsSingle(), d, default) + Vector512<float>.Zero)
                            .StoreUnsafe(ref dxf, (nuint)(r0 + 2 * ox));
                        (Vector512.ConditionalSelect(Vector512.Equals(at, position + Vector512.Create(w)).AsSingle(), d, default) + Vector512<float>.Zero)
                            .StoreUnsafe(ref dxf, (nuint)(r0 + w + 2 * ox));
                        if (ox + 8 >= ow) break;
                    }
                }
            }
    }

    /// <summary>Average pooling; the divisor is always <c>kernel²</c> (padding counts as zeros).</summary>
    public static void AvgForward<T>(in Window2d g, int batch, ReadOnlySpan<T> x, Span<T> y)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var job = new Job<T> { G = g, X = x, Y = y };
        CpuWorkers.Run(ref job, &AvgForwardSamples<T>, batch, align: 1);
    }

    private static void AvgForwardSamples<T>(ref Job<T> j, int b0, int b1) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var g = j.G;
        var x = j.X;
        var y = j.Y;
        int h = g.InHeight, w = g.InWidth, k = g.Kernel, s = g.Stride, pad = g.Padding;
        T inv = T.One / T.CreateTruncating(k * k);
        for (int b = b0; b < b1; b++)
            for (int c = 0; c < g.InChannels; c++)
            {
                int inBase = b * g.InSize + c * h * w;
                int outBase = b * g.OutSize + c * g.OutPixels;
                for (int oy = 0; oy < g.OutHeight; oy++)
                    for (int ox = 0; ox < g.OutWidth; ox++)
                    {
                        T sum = T.Zero;
                        for (int ky = 0; ky < k; ky++)
                        {
                            int iy = oy * s - pad + ky;
                            if ((uint)iy >= (uint)h) continue;
                            for (int kx = 0; kx < k; kx++)
                            {
                                int ix = ox * s - pad + kx;
                                if ((uint)ix < (uint)w) sum += x[inBase + iy * w + ix];
                            }
                        }
                        y[outBase + oy * g.OutWidth + ox] = sum * inv;
                    }
            }
    }

    /// <summary>Spreads each output gradient evenly over its window.</summary>
    public static void AvgBackward<T>(in Window2d g, int batch, ReadOnlySpan<T> dy, Span<T> dx, bool accumulate)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var job = new Job<T> { G = g, Dy = dy, Dx = dx, Accumulate = accumulate };
        CpuWorkers.Run(ref job, &AvgBackwardSamples<T>, batch, align: 1);
    }

    private static void AvgBackwardSamples<T>(ref Job<T> j, int b0, int b1) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var g = j.G;
        var dy = j.Dy;
        var dx = j.Dx;
        if (!j.Accumulate) dx.Slice(b0 * g.InSize, (b1 - b0) * g.InSize).Clear();
        int h = g.InHeight, w = g.InWidth, k = g.Kernel, s = g.Stride, pad = g.Padding;
        T inv = T.One / T.CreateTruncating(k * k);
        for (int b = b0; b < b1; b++)
            for (int c = 0; c < g.InChannels; c++)
            {
                int inBase = b * g.InSize + c * h * w;
                int outBase = b * g.OutSize + c * g.OutPixels;
                for (int oy = 0; oy < g.OutHeight; oy++)
                    for (int ox = 0; ox < g.OutWidth; ox++)
                    {
                        T share = dy[outBase + oy * g.OutWidth + ox] * inv;
                        for (int ky = 0; ky < k; ky++)
                        {
                            int iy = oy * s - pad + ky;
                            if ((uint)iy >= (uint)h) continue;
                            for (int kx = 0; kx < k; kx++)
                            {
                                int ix = ox * s - pad + kx;
                                if ((uint)ix < (uint)w) dx[inBase + iy * w + ix] += share;
                            }
                        }
                    }
            }
    }
}
