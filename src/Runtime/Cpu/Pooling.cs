using System;
using System.Numerics;

namespace NetDsl.Runtime.Cpu;

/// <summary>Max and average pooling over per-sample <c>[C, H, W]</c> tensors, with PyTorch's semantics.</summary>
public static class Pooling
{
    /// <summary>
    /// Max pooling. Padding counts as −∞; ties go to the first position in row-major window order and NaN
    /// propagates, as in PyTorch. When <paramref name="argmax"/> is not empty, each output's winning input
    /// position (within its sample) is recorded for the backward pass.
    /// </summary>
    public static void MaxForward<T>(in Window2d g, int batch, ReadOnlySpan<T> x, Span<T> y, Span<int> argmax)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        bool record = !argmax.IsEmpty;
        int h = g.InHeight, w = g.InWidth, k = g.Kernel, s = g.Stride, pad = g.Padding;
        for (int b = 0; b < batch; b++)
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
                                if (v > best || T.IsNaN(v) || bestAt < 0)
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

    /// <summary>Routes each output gradient to the input position that won the forward max.</summary>
    public static void MaxBackward<T>(in Window2d g, int batch, ReadOnlySpan<T> dy, ReadOnlySpan<int> argmax, Span<T> dx, bool accumulate)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (!accumulate) dx.Slice(0, batch * g.InSize).Clear();
        for (int b = 0; b < batch; b++)
        {
            Span<T> dxb = dx.Slice(b * g.InSize, g.InSize);
            int o0 = b * g.OutSize;
            for (int o = 0; o < g.OutSize; o++)
                dxb[argmax[o0 + o]] += dy[o0 + o];
        }
    }

    /// <summary>Average pooling; the divisor is always <c>kernel²</c> (padding counts as zeros).</summary>
    public static void AvgForward<T>(in Window2d g, int batch, ReadOnlySpan<T> x, Span<T> y)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int h = g.InHeight, w = g.InWidth, k = g.Kernel, s = g.Stride, pad = g.Padding;
        T inv = T.One / T.CreateTruncating(k * k);
        for (int b = 0; b < batch; b++)
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
        if (!accumulate) dx.Slice(0, batch * g.InSize).Clear();
        int h = g.InHeight, w = g.InWidth, k = g.Kernel, s = g.Stride, pad = g.Padding;
        T inv = T.One / T.CreateTruncating(k * k);
        for (int b = 0; b < batch; b++)
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
