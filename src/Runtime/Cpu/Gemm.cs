using System;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace NetDsl.Runtime.Cpu;

/// <summary>
/// Dense matrix multiply on row-major matrices: <c>C[M,N] (+)= op(A)·op(B)</c>, where <c>op(A)</c> is
/// <c>A[M,K]</c> or, transposed, <c>A[K,M]</c>ᵀ, and likewise <c>op(B)</c> is <c>B[K,N]</c> or <c>B[N,K]</c>ᵀ.
/// Without accumulation C is overwritten.
/// </summary>
public static class Gemm
{
    /// <summary>Computes <c>C (+)= op(A)·op(B)</c>.</summary>
    public static void Multiply<T>(bool transA, bool transB, int m, int n, int k,
        ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> c, bool accumulate)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (m == 0 || n == 0) return;
        if (a.Length < (long)m * k || b.Length < (long)k * n || c.Length < (long)m * n)
            throw new ArgumentException($"GEMM operands are too small for M={m}, N={n}, K={k}: A has {a.Length}, B has {b.Length}, C has {c.Length} elements.");
        c = c.Slice(0, m * n);
        if (typeof(T) == typeof(float) && Sgemm.IsAccelerated)
        {
            Sgemm.Multiply(transA, transB, m, n, k,
                MemoryMarshal.Cast<T, float>(a), MemoryMarshal.Cast<T, float>(b), MemoryMarshal.Cast<T, float>(c), accumulate);
            return;
        }
        if (!accumulate) c.Clear();
        if (k == 0) return;

        if (!transA && !transB) MultiplyNN(m, n, k, a, b, c);
        else if (!transA && transB) MultiplyNT(m, n, k, a, b, c);
        else if (transA && !transB) MultiplyTN(m, n, k, a, b, c);
        else MultiplyTT(m, n, k, a, b, c);
    }

    /// <summary>
    /// Computes <c>C (+)= op(A)·op(B)</c>, then runs <paramref name="epilogue"/> (a fused elementwise loop over C's
    /// elements, chunks a multiple of <paramref name="period"/>): a Linear layer's bias and activation. Large
    /// products with at least as many rows as columns split by rows, and each worker runs the epilogue on its own
    /// rows while they are in cache, saving a second parallel region and a pass over C.
    /// </summary>
    public static unsafe void Multiply<T, TEpilogue>(bool transA, bool transB, int m, int n, int k,
        ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> c, bool accumulate, ref TEpilogue epilogue, int period)
        where T : unmanaged, IFloatingPointIeee754<T>
        where TEpilogue : IElementwise, allows ref struct
    {
        if (m == 0 || n == 0) return;
        if (typeof(T) == typeof(float) && Sgemm.IsAccelerated && a.Length >= (long)m * k && b.Length >= (long)k * n && c.Length >= (long)m * n)
        {
            fixed (T* pa = a, pb = b, pc = c)
                if (Sgemm.MultiplyByRows(transA, transB, m, n, k, (float*)pa, (float*)pb, (float*)pc, accumulate, ref epilogue, period))
                    return;
        }
        Multiply(transA, transB, m, n, k, a, b, c, accumulate);
        CpuWorkers.ForEach(ref epilogue, m * n, period);
    }

    // C[i,:] += A[i,p] * B[p,:]
    private static void MultiplyNN<T>(int m, int n, int k, ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> c)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int i = 0; i < m; i++)
        {
            Span<T> ci = c.Slice(i * n, n);
            ReadOnlySpan<T> ai = a.Slice(i * k, k);
            for (int p = 0; p < k; p++)
            {
                T s = ai[p];
                if (s == T.Zero) continue;
                Axpy(s, b.Slice(p * n, n), ci);
            }
        }
    }

    // C[i,j] += dot(A[i,:], B[j,:])
    private static void MultiplyNT<T>(int m, int n, int k, ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> c)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int i = 0; i < m; i++)
        {
            ReadOnlySpan<T> ai = a.Slice(i * k, k);
            Span<T> ci = c.Slice(i * n, n);
            for (int j = 0; j < n; j++)
                ci[j] += Dot(ai, b.Slice(j * k, k));
        }
    }

    // A is [K,M]: C[i,:] += A[p,i] * B[p,:]
    private static void MultiplyTN<T>(int m, int n, int k, ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> c)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int p = 0; p < k; p++)
        {
            ReadOnlySpan<T> ap = a.Slice(p * m, m);
            ReadOnlySpan<T> bp = b.Slice(p * n, n);
            for (int i = 0; i < m; i++)
            {
                T s = ap[i];
                if (s == T.Zero) continue;
                Axpy(s, bp, c.Slice(i * n, n));
            }
        }
    }

    // A is [K,M], B is [N,K]: C[i,j] += sum_p A[p,i] B[j,p]
    private static void MultiplyTT<T>(int m, int n, int k, ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> c)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                T s = T.Zero;
                for (int p = 0; p < k; p++) s += a[p * m + i] * b[j * k + p];
                c[i * n + j] += s;
            }
    }

    /// <summary><c>y += alpha·x</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Axpy<T>(T alpha, ReadOnlySpan<T> x, Span<T> y) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated && x.Length >= Vector<T>.Count)
        {
            var va = new Vector<T>(alpha);
            var vx = MemoryMarshal.Cast<T, Vector<T>>(x);
            var vy = MemoryMarshal.Cast<T, Vector<T>>(y);
            for (int v = 0; v < vx.Length; v++) vy[v] += va * vx[v];
            i = vx.Length * Vector<T>.Count;
        }
        for (; i < x.Length; i++) y[i] += alpha * x[i];
    }

    /// <summary>The dot product of two equally long vectors.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T Dot<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> y) where T : unmanaged, IFloatingPointIeee754<T>
    {
        T s = T.Zero;
        int i = 0;
        if (Vector.IsHardwareAccelerated && x.Length >= Vector<T>.Count)
        {
            var acc = Vector<T>.Zero;
            var vx = MemoryMarshal.Cast<T, Vector<T>>(x);
            var vy = MemoryMarshal.Cast<T, Vector<T>>(y.Slice(0, x.Length));
            for (int v = 0; v < vx.Length; v++) acc += vx[v] * vy[v];
            s = Vector.Sum(acc);
            i = vx.Length * Vector<T>.Count;
        }
        for (; i < x.Length; i++) s += x[i] * y[i];
        return s;
    }
}
