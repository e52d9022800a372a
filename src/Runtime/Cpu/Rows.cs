using System;
using System.Numerics;

namespace NetDsl.Runtime.Cpu;

/// <summary>
/// Operations along one axis of a tensor viewed as <c>[outer, n, inner]</c>: softmax, log-softmax,
/// bias reductions and concatenation.
/// </summary>
public static unsafe class Rows
{
    /// <summary>Softmax along the middle axis, subtracting the maximum for stability.</summary>
    public static void SoftmaxForward<T>(int outer, int n, int inner, ReadOnlySpan<T> x, Span<T> y, bool log)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int o = 0; o < outer; o++)
            for (int i = 0; i < inner; i++)
            {
                int at = o * n * inner + i;
                T max = T.NegativeInfinity;
                for (int j = 0; j < n; j++) max = T.Max(max, x[at + j * inner]);
                T sum = T.Zero;
                for (int j = 0; j < n; j++) sum += T.Exp(x[at + j * inner] - max);
                if (log)
                {
                    T lse = max + T.Log(sum);
                    for (int j = 0; j < n; j++) y[at + j * inner] = x[at + j * inner] - lse;
                }
                else
                {
                    T inv = T.One / sum;
                    for (int j = 0; j < n; j++) y[at + j * inner] = T.Exp(x[at + j * inner] - max) * inv;
                }
            }
    }

    /// <summary>
    /// Softmax backward from the saved output: <c>dx = y·(dy − Σ dy·y)</c>; for log-softmax
    /// <c>dx = dy − exp(y)·Σ dy</c>.
    /// </summary>
    public static void SoftmaxBackward<T>(int outer, int n, int inner, ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> dx, bool log, bool accumulate)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int o = 0; o < outer; o++)
            for (int i = 0; i < inner; i++)
            {
                int at = o * n * inner + i;
                T dot = T.Zero;
                if (log) for (int j = 0; j < n; j++) dot += dy[at + j * inner];
                else for (int j = 0; j < n; j++) dot += dy[at + j * inner] * y[at + j * inner];
                for (int j = 0; j < n; j++)
                {
                    int e = at + j * inner;
                    T g = log ? dy[e] - T.Exp(y[e]) * dot : y[e] * (dy[e] - dot);
                    dx[e] = accumulate ? dx[e] + g : g;
                }
            }
    }

    /// <summary>The bias gradient: <c>db[c] (+)= Σ_{o,i} dy[o, c, i]</c>.</summary>
    public static void SumToChannels<T>(int outer, int channels, int inner, ReadOnlySpan<T> dy, Span<T> db, bool accumulate)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var job = new SumJob<T> { Outer = outer, Channels = channels, Inner = inner, Dy = dy, Db = db, Accumulate = accumulate };
        // Channels are independent: split over the workers, each channel still summed over the batch in order.
        if ((long)outer * channels * inner >= MinParallelElements && channels >= 2)
            CpuWorkers.Run(ref job, &SumChannels<T>, channels, align: inner == 1 ? 16 : 1);
        else SumChannels(ref job, 0, channels);
    }

    /// <summary>Below this many elements a bias gradient is not worth a second thread.</summary>
    private const int MinParallelElements = 1 << 16;

    private ref struct SumJob<T> where T : unmanaged
    {
        public int Outer, Channels, Inner;
        public ReadOnlySpan<T> Dy;
        public Span<T> Db;
        public bool Accumulate;
    }

    private static void SumChannels<T>(ref SumJob<T> j, int c0, int c1) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int channels = j.Channels, inner = j.Inner, count = c1 - c0;
        Span<T> db = j.Db.Slice(c0, count);
        if (!j.Accumulate) db.Clear();
        for (int o = 0; o < j.Outer; o++)
        {
            int rowBase = o * channels * inner;
            if (inner == 1)
                AddTo(j.Dy.Slice(rowBase + c0, count), db);
            else
                for (int c = 0; c < count; c++)
                    db[c] += Sum(j.Dy.Slice(rowBase + (c0 + c) * inner, inner));
        }
    }

    /// <summary>
    /// Copies <paramref name="part"/>, viewed as <c>[outer, partN·inner]</c>, into columns
    /// <c>[offset·inner, (offset+partN)·inner)</c> of <paramref name="whole"/>, viewed as <c>[outer, wholeN·inner]</c>.
    /// </summary>
    public static void CopyIntoSlice<T>(int outer, int partN, int wholeN, int offset, int inner, ReadOnlySpan<T> part, Span<T> whole, bool accumulate = false)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int partRow = partN * inner, wholeRow = wholeN * inner;
        for (int o = 0; o < outer; o++)
        {
            ReadOnlySpan<T> src = part.Slice(o * partRow, partRow);
            Span<T> dst = whole.Slice(o * wholeRow + offset * inner, partRow);
            if (accumulate) AddTo(src, dst);
            else src.CopyTo(dst);
        }
    }

    /// <summary>The reverse of <see cref="CopyIntoSlice"/>: <c>part (+)= whole[:, slice]</c>.</summary>
    public static void CopyFromSlice<T>(int outer, int partN, int wholeN, int offset, int inner, ReadOnlySpan<T> whole, Span<T> part, bool accumulate)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int partRow = partN * inner, wholeRow = wholeN * inner;
        for (int o = 0; o < outer; o++)
        {
            ReadOnlySpan<T> src = whole.Slice(o * wholeRow + offset * inner, partRow);
            Span<T> dst = part.Slice(o * partRow, partRow);
            if (accumulate) AddTo(src, dst);
            else src.CopyTo(dst);
        }
    }

    /// <summary><c>y += x</c>.</summary>
    public static void AddTo<T>(ReadOnlySpan<T> x, Span<T> y) where T : unmanaged, IFloatingPointIeee754<T>
        => Gemm.Axpy(T.One, x, y);

    /// <summary>Sum of the elements.</summary>
    public static T Sum<T>(ReadOnlySpan<T> x) where T : unmanaged, IFloatingPointIeee754<T>
    {
        T s = T.Zero;
        int i = 0;
        if (Vector.IsHardwareAccelerated && x.Length >= Vector<T>.Count)
        {
            // Four independent sums: one would wait on the adder's latency at every vector.
            Vector<T> a0 = Vector<T>.Zero, a1 = Vector<T>.Zero, a2 = Vector<T>.Zero, a3 = Vector<T>.Zero;
            var vx = System.Runtime.InteropServices.MemoryMarshal.Cast<T, Vector<T>>(x);
            int v = 0;
            for (; v + 4 <= vx.Length; v += 4)
            {
                a0 += vx[v]; a1 += vx[v + 1]; a2 += vx[v + 2]; a3 += vx[v + 3];
            }
            for (; v < vx.Length; v++) a0 += vx[v];
            s = Vector.Sum((a0 + a1) + (a2 + a3));
            i = vx.Length * Vector<T>.Count;
        }
        for (; i < x.Length; i++) s += x[i];
        return s;
    }
}
