using System;
using NetDsl.Runtime.Cpu;
using NetDsl.Runtime.Tests.Support;
using Xunit;

namespace NetDsl.Runtime.Tests;

/// <summary>The CPU kernels against naive loops in double.</summary>
public class KernelTests
{
    [Theory]
    [InlineData(false, false, 7, 9, 5)]
    [InlineData(false, true, 7, 9, 5)]
    [InlineData(true, false, 7, 9, 5)]
    [InlineData(true, true, 7, 9, 5)]
    [InlineData(false, true, 1, 33, 70)]
    [InlineData(true, false, 65, 17, 3)]
    [InlineData(false, false, 157, 70, 300)]
    [InlineData(false, true, 157, 70, 300)]
    [InlineData(true, false, 157, 70, 300)]
    [InlineData(true, true, 157, 70, 300)]
    [InlineData(false, true, 64, 256, 784)]
    [InlineData(false, true, 3, 256, 784)]
    [InlineData(true, false, 300, 97, 129)]
    [InlineData(false, false, 13, 2100, 33)]
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
}
