using System;
using System.Numerics;

namespace NetDsl.Runtime.Cpu;

/// <summary>Embedding lookups and nearest-neighbour upsampling, forward and backward.</summary>
public static class Lookup
{
    /// <summary>
    /// <c>y[t] = weight[ids[t]]</c> for <paramref name="tokens"/> ids (integers carried in the input's element
    /// type); an id that is not an integer in [0, <paramref name="vocabulary"/>) throws, naming it and its position.
    /// </summary>
    public static void EmbeddingForward<T>(int tokens, int vocabulary, int dim, ReadOnlySpan<T> ids, ReadOnlySpan<T> weight, Span<T> y)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int t = 0; t < tokens; t++)
            weight.Slice(Id(ids, t, vocabulary) * dim, dim).CopyTo(y.Slice(t * dim, dim));
    }

    /// <summary><c>dW (+)= Σ_t onehot(ids[t]) ⊗ dy[t]</c>, in token order.</summary>
    public static void EmbeddingBackward<T>(int tokens, int vocabulary, int dim, ReadOnlySpan<T> ids, ReadOnlySpan<T> dy, Span<T> dWeight, bool accumulate)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (!accumulate) dWeight.Slice(0, vocabulary * dim).Clear();
        for (int t = 0; t < tokens; t++)
            Rows.AddTo(dy.Slice(t * dim, dim), dWeight.Slice(Id(ids, t, vocabulary) * dim, dim));
    }

    private static int Id<T>(ReadOnlySpan<T> ids, int t, int vocabulary) where T : unmanaged, IFloatingPointIeee754<T>
    {
        T v = ids[t];
        if (!(v >= T.Zero && v < T.CreateTruncating(vocabulary)) || T.Floor(v) != v)
            throw new ArgumentOutOfRangeException("input",
                $"Token id {v} at position {t} of the batch is not an integer in [0, {vocabulary}): an embedding with {vocabulary} rows takes ids 0 to {vocabulary - 1}.");
        return int.CreateTruncating(v);
    }

    /// <summary>Nearest upsampling of <paramref name="planes"/> planes of <c>h × w</c> by <paramref name="scale"/>.</summary>
    public static void UpsampleForward<T>(int planes, int h, int w, int scale, ReadOnlySpan<T> x, Span<T> y) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int ow = w * scale;
        for (int p = 0; p < planes; p++)
            for (int i = 0; i < h; i++)
            {
                ReadOnlySpan<T> src = x.Slice((p * h + i) * w, w);
                Span<T> first = y.Slice((p * h + i) * scale * ow, ow);
                for (int j = 0; j < w; j++)
                    first.Slice(j * scale, scale).Fill(src[j]);
                for (int r = 1; r < scale; r++)
                    first.CopyTo(y.Slice(((p * h + i) * scale + r) * ow, ow));
            }
    }

    /// <summary>The gradient of <see cref="UpsampleForward"/>: each input element receives the sum of its block.</summary>
    public static void UpsampleBackward<T>(int planes, int h, int w, int scale, ReadOnlySpan<T> dy, Span<T> dx, bool accumulate)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int ow = w * scale;
        for (int p = 0; p < planes; p++)
            for (int i = 0; i < h; i++)
                for (int j = 0; j < w; j++)
                {
                    T sum = T.Zero;
                    for (int r = 0; r < scale; r++)
                    {
                        ReadOnlySpan<T> row = dy.Slice(((p * h + i) * scale + r) * ow + j * scale, scale);
                        for (int c = 0; c < scale; c++) sum += row[c];
                    }
                    int at = (p * h + i) * w + j;
                    dx[at] = accumulate ? dx[at] + sum : sum;
                }
    }
}
