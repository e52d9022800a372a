using System;
using NetDsl.Runtime.Cpu;
using NetDsl.Runtime.Tests.Support;
using NetDsl.Testing;
using Xunit;

namespace NetDsl.Runtime.Tests;

/// <summary>The CPU kernels against naive loops in double.</summary>
public class KernelTests
{
    public static TheoryData<bool, bool, int, int, int> GemmShapes()
    {
        var data = new TheoryData<bool, bool, int, int, int>();
        foreach (var (ta, tb, m, n, k) in GemmCases.All) data.Add(ta, tb, m, n, k);
        return data;
    }

    [Theory]
    [MemberData(nameof(GemmShapes))]
    public void GemmMatchesNaive(bool ta, bool tb, int m, int n, int k)
    {
        var a = Numerics.Uniform<float>(m * k, 1);
        var b = Numerics.Uniform<float>(k * n, 2);
        var c = Numerics.Uniform<float>(m * n, 3);
        var expected = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double s = c[i * n + j];
                for (int p = 0; p < k; p++)
                    s += (double)(ta ? a[p * m + i] : a[i * k + p]) * (tb ? b[j * k + p] : b[p * n + j]);
                expected[i * n + j] = s;
            }
        Gemm.Multiply<float>(ta, tb, m, n, k, a, b, c, accumulate: true);
        Numerics.AssertClose<double>(expected, Array.ConvertAll(c, v => (double)v), 1e-5, "C += A·B");
        Gemm.Multiply<float>(ta, tb, m, n, k, a, b, c, accumulate: false);
        for (int i = 0; i < m * n; i++) expected[i] -= Numerics.Uniform<float>(m * n, 3)[i];
        Numerics.AssertClose<double>(expected, Array.ConvertAll(c, v => (double)v), 1e-5, "C = A·B");
    }

    /// <summary>Sub-blocks of larger matrices (leading dimensions above the widths), every transpose combination.</summary>
    [Theory]
    [InlineData(false, false, 12, 20, 7)]
    [InlineData(false, true, 20, 6, 33)]
    [InlineData(true, false, 9, 40, 18)]
    [InlineData(true, true, 40, 5, 11)]
    [InlineData(false, true, 70, 150, 90)]
    public unsafe void StridedGemmMatchesNaive(bool ta, bool tb, int m, int n, int k)
    {
        const int pad = 5;
        int lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
        var a = Numerics.Uniform<float>((ta ? k : m) * lda, 1);
        var b = Numerics.Uniform<float>((tb ? n : k) * ldb, 2);
        var c = Numerics.Uniform<float>(m * ldc, 3);
        var before = (float[])c.Clone();
        fixed (float* pa = a, pb = b, pc = c)
            Sgemm.Multiply(ta, tb, m, n, k, pa, lda, pb, ldb, pc, ldc, accumulate: true);
        var expected = new double[m * ldc];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < ldc; j++)
            {
                double s = before[i * ldc + j];
                if (j < n)
                    for (int p = 0; p < k; p++)
                        s += (double)(ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]);
                expected[i * ldc + j] = s;
            }
        // The padding columns of C must come through untouched.
        Numerics.AssertClose<double>(expected, Array.ConvertAll(c, v => (double)v), 1e-5, "C += A·B on sub-blocks");
    }

    /// <summary>
    /// A slice of C's columns computed alone equals the same columns of the whole product bit for bit, whichever
    /// path each size takes (direct, narrow, packed): a convolution's weight gradient splits its columns by
    /// thread, and its result must not depend on the split.
    /// </summary>
    [Theory]
    [InlineData(false, true, 64, 288, 1024)]
    [InlineData(false, true, 32, 75, 300)]
    [InlineData(false, false, 40, 200, 600)]
    [InlineData(true, false, 48, 100, 270)]
    public unsafe void ColumnSlicesMatchTheWholeProductExactly(bool ta, bool tb, int m, int n, int k)
    {
        var a = Numerics.Uniform<float>(m * k, 1);
        var b = Numerics.Uniform<float>(k * n, 2);
        var whole = new float[m * n];
        int lda = ta ? m : k, ldb = tb ? k : n;
        fixed (float* pa = a, pb = b, pw = whole)
            Sgemm.Multiply(ta, tb, m, n, k, pa, lda, pb, ldb, pw, n, accumulate: false);
        foreach (int width in new[] { 1, 8, 9, 16, 40, n / 2 })
        {
            var sliced = new float[m * n];
            fixed (float* pa = a, pb = b, ps = sliced)
                for (int j = 0; j < n; j += width)
                {
                    int cols = Math.Min(width, n - j);
                    float* bj = tb ? pb + (long)j * ldb : pb + j;
                    Sgemm.Multiply(ta, tb, m, cols, k, pa, lda, bj, ldb, ps + j, n, accumulate: false);
                }
            for (int i = 0; i < whole.Length; i++)
                Assert.True(BitConverter.SingleToInt32Bits(whole[i]) == BitConverter.SingleToInt32Bits(sliced[i]),
                    $"slices of {width} columns: element {i} is {sliced[i]:R}, the whole product gives {whole[i]:R}");
        }
    }

    /// <summary>
    /// A product with an epilogue (bias and ReLU, as a Linear layer's forward) equals the product followed by the
    /// epilogue over all of C, bit for bit, whether it splits by rows (each worker running the epilogue on its own
    /// rows) or not; the epilogue sees every element once, in chunks that start on its period.
    /// </summary>
    [Theory]
    [InlineData(false, true, 256, 256, 784, 256, false, true)]
    [InlineData(false, true, 64, 256, 784, 256, false, false)]   // fewer rows than columns: multiply, then the epilogue
    [InlineData(false, false, 300, 40, 96, 64, true, true)]      // a period that is not a whole number of rows
    [InlineData(true, false, 200, 30, 256, 30, false, true)]     // A stored transposed
    [InlineData(false, true, 256, 10, 128, 10, false, false)]    // small: one thread
    public unsafe void GemmEpilogueMatchesMultiplyThenEpilogue(bool ta, bool tb, int m, int n, int k, int period, bool accumulate, bool splits)
    {
        var a = Numerics.Uniform<float>(m * k, 1);
        var b = Numerics.Uniform<float>(k * n, 2);
        var bias = Numerics.Uniform<float>(n, 3);
        var expected = Numerics.Uniform<float>(m * n, 4);
        var actual = (float[])expected.Clone();
        Gemm.Multiply<float>(ta, tb, m, n, k, a, b, expected, accumulate);
        var seen = new int[m * n];
        var misaligned = new int[1];
        var after = new BiasRelu { C = expected, Bias = bias, Seen = new int[m * n], Misaligned = new int[1], Period = period };
        after.Run(0, m * n);

        var epilogue = new BiasRelu { C = actual, Bias = bias, Seen = seen, Misaligned = misaligned, Period = period };
        Gemm.Multiply<float, BiasRelu>(ta, tb, m, n, k, a, b, actual, accumulate, ref epilogue, period);
        for (int i = 0; i < m * n; i++)
            Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i]),
                $"element {i} is {actual[i]:R}; the product and then the epilogue give {expected[i]:R}");
        Assert.All(seen, count => Assert.Equal(1, count));
        Assert.Equal(0, misaligned[0]);

        // Whether the split by rows was taken: it needs a second worker.
        var again = new BiasRelu { C = actual, Bias = bias, Seen = new int[m * n], Misaligned = misaligned, Period = period };
        fixed (float* pa = a, pb = b, pc = actual)
            Assert.Equal(splits && CpuWorkers.Count > 1, Sgemm.MultiplyByRows(ta, tb, m, n, k, pa, pb, pc, accumulate: false, ref again, period));
    }

    /// <summary>C = max(C + bias[column], 0), counting the elements each call touches and chunks off the period.</summary>
    private ref struct BiasRelu : IElementwise
    {
        public Span<float> C;
        public ReadOnlySpan<float> Bias;
        public Span<int> Seen;
        public Span<int> Misaligned;
        public int Period;

        public void Run(int start, int end)
        {
            if (start % Period != 0 || end % Period != 0 && end != C.Length)
                System.Threading.Interlocked.Increment(ref Misaligned[0]);
            for (int i = start; i < end; i++)
            {
                C[i] = MathF.Max(C[i] + Bias[i % Bias.Length], 0f);
                Seen[i]++;
            }
        }
    }

    /// <summary>
    /// The convolution weight gradient against a naive sum, in float on both of its split schemes: by column rows
    /// (3 channels × 3 × 3 = 27 rows) and, for a first layer's 9 rows, by fixed blocks of samples (20 samples: two
    /// blocks of 8 and one of 4), overwriting and accumulating.
    /// </summary>
    [Theory]
    [InlineData(1, 20)]
    [InlineData(3, 20)]
    [InlineData(1, 5)]
    public void ConvolutionWeightGradientMatchesNaive(int channels, int batch)
    {
        var g = new Window2d(channels, 9, 9, 6, 9, 9, 3, 1, 1);
        var x = Numerics.Uniform<float>(batch * g.InSize, 1);
        var dy = Numerics.Uniform<float>(batch * g.OutSize, 2);
        var start = Numerics.Uniform<float>(6 * g.ColumnRows, 3);
        var expected = new double[start.Length];
        for (int oc = 0; oc < 6; oc++)
            for (int ic = 0; ic < channels; ic++)
                for (int ky = 0; ky < 3; ky++)
                    for (int kx = 0; kx < 3; kx++)
                    {
                        double sum = 0;
                        for (int b = 0; b < batch; b++)
                            for (int oy = 0; oy < 9; oy++)
                                for (int ox = 0; ox < 9; ox++)
                                {
                                    int iy = oy - 1 + ky, ix = ox - 1 + kx;
                                    if (iy < 0 || iy >= 9 || ix < 0 || ix >= 9) continue;
                                    sum += (double)x[b * g.InSize + (ic * 9 + iy) * 9 + ix] * dy[b * g.OutSize + (oc * 9 + oy) * 9 + ox];
                                }
                        expected[(oc * channels + ic) * 9 + ky * 3 + kx] = sum;
                    }
        var dw = new float[start.Length];
        Convolution.BackwardWeight<float>(g, batch, x, dy, dw, accumulate: false);
        Numerics.AssertClose<double>(expected, Array.ConvertAll(dw, v => (double)v), 1e-5, "dW");
        dw = (float[])start.Clone();
        Convolution.BackwardWeight<float>(g, batch, x, dy, dw, accumulate: true);
        for (int i = 0; i < expected.Length; i++) expected[i] += start[i];
        Numerics.AssertClose<double>(expected, Array.ConvertAll(dw, v => (double)v), 1e-5, "dW += ...");
    }

    /// <summary>The float activations' lanes against double precision, over their whole range and at the edges.</summary>
    [Fact]
    public void FloatLanesMatchDoublePrecision()
    {
        double worstExp = 0, worstTanh = 0, worstSigmoid = 0;
        for (double v = -90; v <= 90; v += 0.0071)
        {
            var x = new System.Numerics.Vector<float>((float)v);
            double xf = (float)v;
            double e = Math.Exp(xf);
            if (xf > -87 && xf < 88) worstExp = Math.Max(worstExp, Math.Abs(Lanes.Exp(x)[0] - e) / e);
            double t = Math.Tanh(xf);
            worstTanh = Math.Max(worstTanh, Math.Abs(Lanes.Tanh(x)[0] - t) / Math.Max(Math.Abs(t), 1e-30));
            double s = 1 / (1 + Math.Exp(-xf));
            if (s > 1e-30) worstSigmoid = Math.Max(worstSigmoid, Math.Abs(Lanes.Sigmoid(x)[0] - s) / s);
        }
        // Small arguments, log-spaced from 1e-30 to 10 with both signs: tanh's e^(2|x|) − 1 must not cancel there.
        for (int i = 0; i <= 20000; i++)
        {
            double magnitude = Math.Pow(10, -30 + 31.0 * i / 20000);
            foreach (double v in (double[])[magnitude, -magnitude])
            {
                double xf = (float)v, t = Math.Tanh(xf);
                worstTanh = Math.Max(worstTanh, Math.Abs(Lanes.Tanh(new System.Numerics.Vector<float>((float)v))[0] - t) / Math.Abs(t));
            }
        }
        Assert.True(worstExp < 3e-7, $"exp: worst relative error {worstExp:E2}, expected below 3e-7");
        Assert.True(worstTanh < 3e-7, $"tanh: worst relative error {worstTanh:E2}, expected below 3e-7");
        Assert.True(worstSigmoid < 3e-7, $"sigmoid: worst relative error {worstSigmoid:E2}, expected below 3e-7");
        var nan = new System.Numerics.Vector<float>(float.NaN);
        Assert.True(float.IsNaN(Lanes.Exp(nan)[0]) && float.IsNaN(Lanes.Tanh(nan)[0]) && float.IsNaN(Lanes.Sigmoid(nan)[0]), "NaN must stay NaN");
        Assert.Equal(-1f, Lanes.Tanh(new System.Numerics.Vector<float>(float.NegativeInfinity))[0]);
        Assert.Equal(1f, Lanes.Tanh(new System.Numerics.Vector<float>(1e4f))[0]);
        Assert.Equal(1e-30f, Lanes.Tanh(new System.Numerics.Vector<float>(1e-30f))[0]);
        Assert.InRange(Lanes.Sigmoid(new System.Numerics.Vector<float>(-1e4f))[0], 0f, 1e-37f);
        Assert.Equal(1f, Lanes.Sigmoid(new System.Numerics.Vector<float>(1e4f))[0]);
    }

    [Theory]
    [InlineData(3, 7, 7, 4, 3, 1, 1)]
    [InlineData(2, 8, 6, 3, 3, 2, 1)]
    [InlineData(1, 5, 5, 2, 5, 1, 2)]
    public void ConvolutionMatchesNaive(int c, int h, int w, int o, int k, int s, int pad)
    {
        int oh = (h + 2 * pad - k) / s + 1, ow = (w + 2 * pad - k) / s + 1;
        var g = new Window2d(c, h, w, o, oh, ow, k, s, pad);
        const int batch = 2;
        var x = Numerics.Uniform<double>(batch * g.InSize, 1);
        var wt = Numerics.Uniform<double>(o * c * k * k, 2);
        var y = new double[batch * g.OutSize];
        Convolution.Forward<double>(g, batch, x, wt, y);
        var expected = new double[y.Length];
        for (int b = 0; b < batch; b++)
            for (int oc = 0; oc < o; oc++)
                for (int oy = 0; oy < oh; oy++)
                    for (int ox = 0; ox < ow; ox++)
                    {
                        double sum = 0;
                        for (int ic = 0; ic < c; ic++)
                            for (int ky = 0; ky < k; ky++)
                                for (int kx = 0; kx < k; kx++)
                                {
                                    int iy = oy * s - pad + ky, ix = ox * s - pad + kx;
                                    if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                                    sum += x[b * g.InSize + (ic * h + iy) * w + ix] * wt[((oc * c + ic) * k + ky) * k + kx];
                                }
                        expected[b * g.OutSize + (oc * oh + oy) * ow + ox] = sum;
                    }
        Numerics.AssertClose<double>(expected, y, 1e-12, "convolution");
    }

    /// <summary>
    /// Max pooling's backward pass, which writes each 2×2 window of an exactly tiled input once, against the
    /// plain clear-and-scatter rule, bit for bit: widths with whole, overlapping and scalar-only chunks of eight
    /// windows, ties, NaN, −0 gradients, and an odd size that leaves inputs outside every window; and gated by the
    /// pooled output, against a ReLU's gradient applied after it.
    /// </summary>
    [Theory]
    [InlineData(3, 28, 28)]
    [InlineData(2, 14, 14)]
    [InlineData(2, 6, 6)]
    [InlineData(1, 4, 32)]
    [InlineData(2, 7, 9)]
    public void MaxPoolBackwardMatchesScatter(int c, int h, int w)
    {
        var g = new Window2d(c, h, w, c, h / 2, w / 2, 2, 2, 0);
        const int batch = 3;
        var random = new Random(5);
        var x = new float[batch * g.InSize];
        for (int i = 0; i < x.Length; i++) x[i] = random.Next(4) switch { 0 => 1f, 1 => float.NaN, _ => (float)random.NextDouble() };
        var y = new float[batch * g.OutSize];
        var argmax = new int[y.Length];
        var dy = new float[y.Length];
        for (int i = 0; i < dy.Length; i++) dy[i] = i % 5 == 0 ? -0f : (float)(random.NextDouble() - 0.5);
        // The plain rule: clear, then add each output's gradient at its recorded position; optionally a ReLU's
        // gradient (x > 0 ? d : 0) after it. The kernel must match it bit for bit in float, and in double.
        void Check(bool gated, string what)
        {
            Pooling.MaxForward<float>(g, batch, x, y, argmax);
            var expected = new float[x.Length];
            for (int b = 0; b < batch; b++)
                for (int o = 0; o < g.OutSize; o++) expected[b * g.InSize + argmax[b * g.OutSize + o]] += dy[b * g.OutSize + o];
            if (gated)
                for (int i = 0; i < x.Length; i++) expected[i] = x[i] > 0 ? expected[i] : 0f;
            var dx = new float[x.Length];
            Array.Fill(dx, 7f); // every element must be written
            Pooling.MaxBackward<float>(g, batch, dy, argmax, dx, accumulate: false, gate: gated ? y : default);
            for (int i = 0; i < x.Length; i++)
                Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(dx[i]), $"{what} dx[{i}]: expected {expected[i]}, got {dx[i]}");
            var dxd = new double[x.Length];
            Array.Fill(dxd, 7.0);
            Pooling.MaxBackward<double>(g, batch, Array.ConvertAll(dy, v => (double)v), argmax, dxd, accumulate: false,
                gate: gated ? Array.ConvertAll(y, v => (double)v) : default);
            for (int i = 0; i < x.Length; i++) Assert.Equal((double)expected[i], dxd[i]);
        }

        Check(gated: false, "plain");
        // Gated by the pooled output, with about half the maxima negative.
        for (int i = 0; i < x.Length; i++) x[i] -= 0.5f;
        Check(gated: true, "gated");
    }

    /// <summary>
    /// A bias gradient split over the workers by channel equals, bit for bit, each channel summed alone (one thread,
    /// the same batch order), and the double-precision sum within 1e-5.
    /// </summary>
    [Theory]
    [InlineData(64, 32, 784)]
    [InlineData(300, 256, 1)]
    [InlineData(3, 5, 7)]
    public void BiasGradientSplitByChannelMatchesEachChannelAlone(int outer, int channels, int inner)
    {
        var random = new Random(9);
        var dy = new float[outer * channels * inner];
        for (int i = 0; i < dy.Length; i++) dy[i] = (float)(random.NextDouble() - 0.5);
        var db = new float[channels];
        Array.Fill(db, 0.25f);
        Rows.SumToChannels<float>(outer, channels, inner, dy, db, accumulate: true);
        var one = new float[outer * inner];
        for (int c = 0; c < channels; c++)
        {
            for (int o = 0; o < outer; o++) Array.Copy(dy, (o * channels + c) * inner, one, o * inner, inner);
            var alone = new[] { 0.25f };
            Rows.SumToChannels<float>(outer, 1, inner, one, alone, accumulate: true);
            Assert.True(BitConverter.SingleToInt32Bits(alone[0]) == BitConverter.SingleToInt32Bits(db[c]), $"channel {c}: {db[c]} against {alone[0]} alone");
            double exact = 0.25;
            foreach (float v in one) exact += v;
            Assert.True(Math.Abs(db[c] - exact) <= 1e-5 * Math.Max(1, Math.Abs(exact)), $"channel {c}: {db[c]} against {exact}");
        }
    }

    [Fact]
    public void MaxPoolingRefusesBuffersTooShortForTheBatch()
    {
        var g = new Window2d(2, 4, 4, 2, 2, 2, 2, 2, 0);
        var ex = Assert.Throws<ArgumentException>(() => Pooling.MaxBackward<float>(g, 2, new float[16], new int[16], new float[63], accumulate: false));
        Assert.Equal("dx", ex.ParamName);
        Assert.Contains("at least 64", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => Pooling.MaxBackward<float>(g, 2, new float[16], new int[16], new float[64], accumulate: false, gate: new float[15]));
        Assert.Equal("gate", ex.ParamName);
        ex = Assert.Throws<ArgumentException>(() => Pooling.MaxForward<float>(g, 2, new float[64], new float[15], new int[16]));
        Assert.Equal("y", ex.ParamName);
    }
}
