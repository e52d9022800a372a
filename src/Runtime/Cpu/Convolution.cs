using System;
using System.Numerics;

namespace NetDsl.Runtime.Cpu;

/// <summary>
/// 2-D convolution through im2col and GEMM, one sample at a time so the column buffer stays
/// <c>C·k² × OH·OW</c> regardless of the batch.
/// </summary>
public static class Convolution
{
    /// <summary>The scratch elements <see cref="Forward"/> and the backward passes need.</summary>
    public static int ScratchSize(in Window2d g) => g.ColumnRows * g.OutPixels;

    /// <summary><c>y[b] = W · im2col(x[b])</c>; the bias is added separately (or fused by the generator).</summary>
    public static void Forward<T>(in Window2d g, int batch, ReadOnlySpan<T> x, ReadOnlySpan<T> w, Span<T> y, Span<T> scratch)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        Span<T> col = scratch.Slice(0, ScratchSize(g));
        for (int b = 0; b < batch; b++)
        {
            Im2Col(g, x.Slice(b * g.InSize, g.InSize), col);
            Gemm.Multiply(false, false, g.OutChannels, g.OutPixels, g.ColumnRows, w, col, y.Slice(b * g.OutSize, g.OutSize), accumulate: false);
        }
    }

    /// <summary><c>dW (+)= Σ_b dy[b] · im2col(x[b])ᵀ</c>.</summary>
    public static void BackwardWeight<T>(in Window2d g, int batch, ReadOnlySpan<T> x, ReadOnlySpan<T> dy, Span<T> dw, bool accumulate, Span<T> scratch)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        Span<T> col = scratch.Slice(0, ScratchSize(g));
        if (!accumulate) dw.Slice(0, g.OutChannels * g.ColumnRows).Clear();
        for (int b = 0; b < batch; b++)
        {
            Im2Col(g, x.Slice(b * g.InSize, g.InSize), col);
            Gemm.Multiply(false, true, g.OutChannels, g.ColumnRows, g.OutPixels, dy.Slice(b * g.OutSize, g.OutSize), col, dw, accumulate: true);
        }
    }

    /// <summary><c>dx[b] (+)= col2im(Wᵀ · dy[b])</c>.</summary>
    public static void BackwardData<T>(in Window2d g, int batch, ReadOnlySpan<T> dy, ReadOnlySpan<T> w, Span<T> dx, bool accumulate, Span<T> scratch)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        Span<T> col = scratch.Slice(0, ScratchSize(g));
        for (int b = 0; b < batch; b++)
        {
            Gemm.Multiply(true, false, g.ColumnRows, g.OutPixels, g.OutChannels, w, dy.Slice(b * g.OutSize, g.OutSize), col, accumulate: false);
            Span<T> dxb = dx.Slice(b * g.InSize, g.InSize);
            if (!accumulate) dxb.Clear();
            Col2Im(g, col, dxb);
        }
    }

    /// <summary>Unfolds one sample into columns: row <c>(c,ky,kx)</c>, column <c>(oy,ox)</c>.</summary>
    public static void Im2Col<T>(in Window2d g, ReadOnlySpan<T> x, Span<T> col) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int k = g.Kernel, s = g.Stride, pad = g.Padding, oh = g.OutHeight, ow = g.OutWidth, h = g.InHeight, w = g.InWidth;
        int row = 0;
        for (int c = 0; c < g.InChannels; c++)
        {
            ReadOnlySpan<T> xc = x.Slice(c * h * w, h * w);
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++, row++)
                {
                    Span<T> dst = col.Slice(row * oh * ow, oh * ow);
                    for (int oy = 0; oy < oh; oy++)
                    {
                        int iy = oy * s - pad + ky;
                        Span<T> drow = dst.Slice(oy * ow, ow);
                        if ((uint)iy >= (uint)h) { drow.Clear(); continue; }
                        ReadOnlySpan<T> srow = xc.Slice(iy * w, w);
                        if (s == 1)
                        {
                            // Contiguous run: ox in [lo, hi) maps to ix = ox - pad + kx inside the row.
                            int lo = Math.Max(0, pad - kx), hi = Math.Min(ow, w + pad - kx);
                            if (lo > 0) drow.Slice(0, Math.Min(lo, ow)).Clear();
                            if (hi > lo) srow.Slice(lo - pad + kx, hi - lo).CopyTo(drow.Slice(lo, hi - lo));
                            if (hi < ow) drow.Slice(Math.Max(hi, 0)).Clear();
                        }
                        else
                        {
                            for (int ox = 0; ox < ow; ox++)
                            {
                                int ix = ox * s - pad + kx;
                                drow[ox] = (uint)ix < (uint)w ? srow[ix] : T.Zero;
                            }
                        }
                    }
                }
        }
    }

    /// <summary>Folds columns back onto one sample, adding overlapping contributions.</summary>
    public static void Col2Im<T>(in Window2d g, ReadOnlySpan<T> col, Span<T> x) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int k = g.Kernel, s = g.Stride, pad = g.Padding, oh = g.OutHeight, ow = g.OutWidth, h = g.InHeight, w = g.InWidth;
        int row = 0;
        for (int c = 0; c < g.InChannels; c++)
        {
            Span<T> xc = x.Slice(c * h * w, h * w);
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++, row++)
                {
                    ReadOnlySpan<T> src = col.Slice(row * oh * ow, oh * ow);
                    for (int oy = 0; oy < oh; oy++)
                    {
                        int iy = oy * s - pad + ky;
                        if ((uint)iy >= (uint)h) continue;
                        Span<T> xrow = xc.Slice(iy * w, w);
                        ReadOnlySpan<T> srow = src.Slice(oy * ow, ow);
                        for (int ox = 0; ox < ow; ox++)
                        {
                            int ix = ox * s - pad + kx;
                            if ((uint)ix < (uint)w) xrow[ix] += srow[ox];
                        }
                    }
                }
        }
    }
}
