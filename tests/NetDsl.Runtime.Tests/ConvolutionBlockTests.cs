using System;
using System.Reflection;
using NetDsl.Runtime.Cpu;
using NetDsl.Runtime.Tests.Support;
using Xunit;

namespace NetDsl.Runtime.Tests;

/// <summary>
/// The fused convolution blocks (conv + bias + ReLU + max pool forward; gated max-pool gradient + bias and weight
/// gradients backward) against the same steps run one after another through memory (the runtime's internal
/// Convolution.FuseBlocks switch off), bit for bit, and the unpooled buffers left untouched when fused. The switch
/// is process-wide, so these tests run alone.
/// </summary>
[Collection(nameof(WholeProcess))]
public sealed class ConvolutionBlockTests
{
    private static readonly FieldInfo Fuse = typeof(Convolution).GetField("FuseBlocks", BindingFlags.NonPublic | BindingFlags.Static)!;

    private static T Unfused<T>(Func<T> run)
    {
        Fuse.SetValue(null, false);
        try { return run(); }
        finally { Fuse.SetValue(null, true); }
    }

    private static void AssertBits(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i]), $"{what}[{i}]: unfused {expected[i]}, fused {actual[i]}");
    }

    /// <summary>
    /// A first layer with 2×2 pooling (28×28 planes: whole vectors), a deeper one with 9×9 planes (a scalar tail in
    /// the bias-and-ReLU loop) and an overlapping 3×3 stride-2 padded pooling window, a batch of one, with and without
    /// recorded positions.
    /// </summary>
    [Theory]
    [InlineData(1, 28, 28, 8, 3, 1, 2, 2, 0, 3, true)]
    [InlineData(3, 9, 9, 5, 3, 1, 3, 2, 1, 2, true)]
    [InlineData(4, 12, 12, 6, 5, 2, 2, 2, 0, 1, false)]
    public void ForwardBlockMatchesItsSteps(int c, int h, int w, int o, int k, int pad, int poolK, int poolS, int poolPad, int batch, bool record)
    {
        int oh = h + 2 * pad - k + 1, ow = w + 2 * pad - k + 1;
        var conv = new Window2d(c, h, w, o, oh, ow, k, 1, pad);
        int ph = (oh + 2 * poolPad - poolK) / poolS + 1, pw = (ow + 2 * poolPad - poolK) / poolS + 1;
        var pool = new Window2d(o, oh, ow, o, ph, pw, poolK, poolS, poolPad);
        var x = Numerics.Uniform<float>(batch * conv.InSize, 21);
        var wt = Numerics.Uniform<float>(o * conv.ColumnRows, 22);
        var bias = Numerics.Uniform<float>(o, 23, -0.5, 0.5);

        (float[] Y, float[] Pooled, int[] Argmax) Run()
        {
            var y = new float[batch * conv.OutSize];
            Array.Fill(y, 7f);
            var pooled = new float[batch * pool.OutSize];
            Array.Fill(pooled, float.NaN);
            var argmax = record ? new int[pooled.Length] : null;
            Convolution.ForwardReluMaxPool(conv, pool, batch, x, wt, bias, y, pooled, argmax);
            return (y, pooled, argmax ?? []);
        }

        var fused = Run();
        var steps = Unfused(Run);
        AssertBits(steps.Pooled, fused.Pooled, "pooled");
        Assert.Equal(steps.Argmax, fused.Argmax);
        Assert.All(fused.Y, v => Assert.Equal(7f, v));
        // The unfused block wrote the activation: ReLU'd (some zeros, none negative), its maxima where recorded.
        Assert.Contains(steps.Y, v => v == 0f);
        Assert.DoesNotContain(steps.Y, v => v < 0f);
        if (record)
            for (int i = 0; i < steps.Pooled.Length; i++)
                Assert.Equal(steps.Pooled[i], steps.Y[i / pool.OutSize * conv.OutSize + steps.Argmax[i]]);
    }

    /// <summary>
    /// A first layer's backward (9 column rows: blocks of 8 samples, the last one partial at 20) fused, and a 2-channel
    /// input (18 rows, split by rows over the threads), which runs the steps in turn; overwriting and accumulating,
    /// with and without a bias.
    /// </summary>
    [Theory]
    [InlineData(1, 20, true, false)]
    [InlineData(1, 16, true, true)]
    [InlineData(1, 24, false, false)]
    [InlineData(2, 20, true, true)]
    public void BackwardBlockMatchesItsSteps(int c, int batch, bool withBias, bool accumulate)
    {
        var conv = new Window2d(c, 12, 12, 6, 12, 12, 3, 1, 1);
        var pool = new Window2d(6, 12, 12, 6, 6, 6, 2, 2, 0);
        var x = Numerics.Uniform<float>(batch * conv.InSize, 31);
        var wt = Numerics.Uniform<float>(6 * conv.ColumnRows, 32);
        var bias = Numerics.Uniform<float>(6, 33, -0.5, 0.5);
        var pooled = new float[batch * pool.OutSize];
        var argmax = new int[pooled.Length];
        Unfused(() =>
        {
            Convolution.ForwardReluMaxPool(conv, pool, batch, x, wt, bias, new float[batch * conv.OutSize], pooled, argmax);
            return 0;
        });
        var dPooled = Numerics.Uniform<float>(pooled.Length, 34);

        (float[] Dy, float[] Dw, float[] Db) Run()
        {
            var dy = new float[batch * conv.OutSize];
            Array.Fill(dy, 7f);
            var dw = Numerics.Uniform<float>(6 * conv.ColumnRows, 35);
            var db = withBias ? Numerics.Uniform<float>(6, 36) : [];
            Convolution.BackwardWeightThroughMaxPool(conv, pool, batch, x, dPooled, argmax, pooled, dy, dw, accumulate, db, biasAccumulate: accumulate);
            return (dy, dw, db);
        }

        var fused = Run();
        var steps = Unfused(Run);
        AssertBits(steps.Dw, fused.Dw, "dW");
        AssertBits(steps.Db, fused.Db, "db");
        if (c == 1) Assert.All(fused.Dy, v => Assert.Equal(7f, v));
        // The steps' gradient is the gated pooling gradient: zero wherever the window's maximum was not positive.
        Assert.Contains(steps.Dy, v => v == 0f);
        Assert.Contains(steps.Dy, v => v != 0f && v != 7f);
    }
}
