using System;
using System.Collections.Generic;
using System.Globalization;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using NetDsl.Runtime.Cpu;
using NetDsl.Testing;

// Runs the CPU kernels on every GEMM shape of GemmCases (overwriting, accumulating, on sub-blocks of larger
// matrices, with a bias-and-ReLU epilogue, and with op(B) declared constant: packed once and reused), max pooling forward and backward (ties, NaN, padding, odd sizes) and
// convolution forward and backward, and the fused convolution blocks, each against a naive loop in double; and the activations' scalar forms against
// their vector lanes, bit for bit. Prints the instruction sets the JIT uses,
// one line per check ("ok" or "FAIL" and the worst element), and a last line "checks N failed F"; exits with F.
// The Runtime tests run it with DOTNET_EnableAVX512=0, DOTNET_EnableAVX2=0 and DOTNET_EnableHWIntrinsic=0, so the
// AVX2 and scalar kernels, which the machine's own test process never reaches, are checked too.
var culture = CultureInfo.InvariantCulture;
Console.WriteLine($"isa avx512 {(Vector512.IsHardwareAccelerated ? 1 : 0)} avx2 {(Avx2.IsSupported ? 1 : 0)} fma {(Fma.IsSupported ? 1 : 0)} simd {(System.Numerics.Vector.IsHardwareAccelerated ? 1 : 0)}");
int checks = 0, failed = 0;

void Report(string name, string? failure)
{
    checks++;
    if (failure is null) Console.WriteLine($"{name}: ok");
    else
    {
        failed++;
        Console.WriteLine($"{name}: FAIL {failure}");
    }
}

// |actual − expected| ≤ rtol·(|expected| + max|expected|), as the Runtime tests' Numerics.AssertClose.
string? Close(ReadOnlySpan<double> expected, ReadOnlySpan<float> actual, double rtol)
{
    double scale = 0;
    foreach (double e in expected) scale = Math.Max(scale, Math.Abs(e));
    for (int i = 0; i < expected.Length; i++)
    {
        double e = expected[i], a = actual[i];
        if (!(Math.Abs(a - e) <= rtol * (Math.Abs(e) + scale)))
            return string.Create(culture, $"element {i} is {actual[i]:R}, the reference {e:R} (tolerance {rtol} relative, scale {scale:G4})");
    }
    return null;
}

// Bitwise equality, NaN equal to NaN.
string? Same(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual)
{
    for (int i = 0; i < expected.Length; i++)
        if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]) && !(float.IsNaN(expected[i]) && float.IsNaN(actual[i])))
            return string.Create(culture, $"element {i} is {actual[i]:R}, expected {expected[i]:R}");
    return null;
}

// Bitwise equality, NaN payloads and signs included.
string? Identical(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual)
{
    for (int i = 0; i < expected.Length; i++)
        if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
            return string.Create(culture, $"element {i} is {actual[i]:R} (0x{BitConverter.SingleToInt32Bits(actual[i]):X8}), expected {expected[i]:R} (0x{BitConverter.SingleToInt32Bits(expected[i]):X8})");
    return null;
}

float[] Uniform(int count, int seed)
{
    var random = new Random(seed);
    var values = new float[count];
    for (int i = 0; i < count; i++) values[i] = (float)(2 * random.NextDouble() - 1);
    return values;
}

// ---- GEMM ------------------------------------------------------------------------------------------------------
foreach (var (ta, tb, m, n, k) in GemmCases.All)
{
    string shape = string.Create(culture, $"{(ta ? 'T' : 'N')}{(tb ? 'T' : 'N')} {m}x{n}x{k}");
    // Sub-blocks of larger matrices: every leading dimension 5 above the width (0 for the contiguous runs).
    foreach (int pad in new[] { 0, 5 })
    {
        int lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
        var a = Uniform((ta ? k : m) * lda, 1);
        var b = Uniform((tb ? n : k) * ldb, 2);
        var c0 = Uniform(m * ldc, 3);
        var product = new double[m * ldc];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double s = 0;
                for (int p = 0; p < k; p++)
                    s += (double)(ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]);
                product[i * ldc + j] = s;
            }
        foreach (bool accumulate in new[] { true, false })
        {
            var c = (float[])c0.Clone();
            var expected = new double[c.Length];
            for (int i = 0; i < c.Length; i++)
                expected[i] = i % ldc >= n ? c0[i] : product[i] + (accumulate ? c0[i] : 0); // padding columns stay as they were
            if (pad == 0) Gemm.Multiply<float>(ta, tb, m, n, k, a, b, c, accumulate);
            else
                unsafe
                {
                    fixed (float* pa = a, pb = b, pc = c)
                        Sgemm.Multiply(ta, tb, m, n, k, pa, lda, pb, ldb, pc, ldc, accumulate);
                }
            Report($"gemm {shape}{(pad > 0 ? " strided" : "")} {(accumulate ? "+=" : "=")}", Close(expected, c, 1e-5));
        }
        if (pad == 0)
        {
            // A Linear layer's forward: the product, then bias and ReLU as the epilogue (split by rows where it pays).
            var bias = Uniform(n, 4);
            var c = new float[m * n];
            var expected = new double[m * n];
            for (int i = 0; i < m * n; i++) expected[i] = Math.Max(product[i] + bias[i % n], 0);
            var epilogue = new BiasRelu { C = c, Bias = bias };
            Gemm.Multiply<float, BiasRelu>(ta, tb, m, n, k, a, b, c, accumulate: false, ref epilogue, n);
            Report($"gemm {shape} + bias, relu", Close(expected, c, 1e-5));

            // op(B) declared constant (an inference session's weights): packed on the first call, reused by the
            // second; both must equal the per-call packing bit for bit, with and without the epilogue.
            var plain = new float[m * n];
            Gemm.Multiply<float>(ta, tb, m, n, k, a, b, plain, accumulate: false);
            var first = new float[m * n];
            var second = new float[m * n];
            var fused = new float[m * n];
            unsafe
            {
                fixed (float* pb = b)
                {
                    var constants = new ConstantOperands(pb, b.Length);
                    using (constants.Enter())
                    {
                        Gemm.Multiply<float>(ta, tb, m, n, k, a, b, first, accumulate: false);
                        Gemm.Multiply<float>(ta, tb, m, n, k, a, b, second, accumulate: false);
                        var constantEpilogue = new BiasRelu { C = fused, Bias = bias };
                        Gemm.Multiply<float, BiasRelu>(ta, tb, m, n, k, a, b, fused, accumulate: false, ref constantEpilogue, n);
                    }
                }
            }
            Report($"gemm {shape} constant B", Same(plain, first) ?? Same(plain, second));
            Report($"gemm {shape} constant B + bias, relu", Same(c, fused));
        }
    }
}

// ---- max pooling -----------------------------------------------------------------------------------------------
foreach (var (channels, h, w, size, stride, padding) in new[] { (3, 28, 28, 2, 2, 0), (2, 14, 14, 2, 2, 0), (1, 4, 32, 2, 2, 0), (2, 7, 9, 2, 2, 0), (2, 9, 9, 3, 2, 1) })
{
    int oh = (h + 2 * padding - size) / stride + 1, ow = (w + 2 * padding - size) / stride + 1;
    var g = new Window2d(channels, h, w, channels, oh, ow, size, stride, padding);
    const int batch = 3;
    var random = new Random(5);
    var x = new float[batch * g.InSize];
    // Ties (1), NaN and plain values.
    for (int i = 0; i < x.Length; i++) x[i] = random.Next(5) switch { 0 => 1f, 1 => float.NaN, _ => (float)(random.NextDouble() - 0.5) };
    var y = new float[batch * g.OutSize];
    var argmax = new int[y.Length];
    Pooling.MaxForward<float>(g, batch, x, y, argmax);
    // The rule: padding is −∞, the first maximum in row-major window order wins, NaN wins and stops the search.
    var expectedY = new float[y.Length];
    var expectedAt = new int[y.Length];
    for (int s = 0; s < batch; s++)
        for (int c = 0; c < channels; c++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++)
                {
                    float best = float.NegativeInfinity;
                    int at = -1;
                    for (int ky = 0; ky < size && !float.IsNaN(best); ky++)
                        for (int kx = 0; kx < size && !float.IsNaN(best); kx++)
                        {
                            int iy = oy * stride - padding + ky, ix = ox * stride - padding + kx;
                            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                            float v = x[s * g.InSize + (c * h + iy) * w + ix];
                            if (at < 0 || !(v <= best))
                            {
                                best = v;
                                at = (c * h + iy) * w + ix;
                            }
                        }
                    int o = s * g.OutSize + (c * oh + oy) * ow + ox;
                    expectedY[o] = best;
                    expectedAt[o] = at;
                }
    string window = string.Create(culture, $"{channels}x{h}x{w} k{size} s{stride} p{padding}");
    string? wrongAt = null;
    for (int i = 0; i < y.Length && wrongAt is null; i++)
        if (argmax[i] != expectedAt[i]) wrongAt = $"output {i} picked input {argmax[i]}, expected {expectedAt[i]}";
    Report($"max pool {window} forward", Same(expectedY, y) ?? wrongAt);

    var dy = Uniform(y.Length, 6);
    for (int i = 0; i < dy.Length; i += 5) dy[i] = -0f;
    foreach (bool gated in new[] { false, true })
    {
        // Clear, then add each output's gradient at its recorded input; gated: a ReLU's gradient after the pooling.
        var expected = new float[x.Length];
        for (int s = 0; s < batch; s++)
            for (int o = 0; o < g.OutSize; o++) expected[s * g.InSize + argmax[s * g.OutSize + o]] += dy[s * g.OutSize + o];
        if (gated)
            for (int i = 0; i < x.Length; i++) expected[i] = x[i] > 0 ? expected[i] : 0f;
        var dx = new float[x.Length];
        Array.Fill(dx, 7f);
        Pooling.MaxBackward<float>(g, batch, dy, argmax, dx, accumulate: false, gate: gated ? y : default);
        Report($"max pool {window} backward{(gated ? " gated" : "")}", Same(expected, dx));
    }
}

// ---- convolution -----------------------------------------------------------------------------------------------
foreach (var (cin, h, w, cout, size, stride, padding, batch) in new[] { (1, 28, 28, 32, 3, 1, 1, 4), (32, 14, 14, 64, 3, 1, 1, 2), (3, 7, 7, 4, 3, 2, 1, 3), (2, 9, 8, 5, 5, 1, 2, 2) })
{
    int oh = (h + 2 * padding - size) / stride + 1, ow = (w + 2 * padding - size) / stride + 1;
    var g = new Window2d(cin, h, w, cout, oh, ow, size, stride, padding);
    var x = Uniform(batch * g.InSize, 7);
    var weights = Uniform(cout * cin * size * size, 8);
    var dy = Uniform(batch * g.OutSize, 9);
    var expectedY = new double[dy.Length];
    var expectedDx = new double[x.Length];
    var expectedDw = new double[weights.Length];
    for (int s = 0; s < batch; s++)
        for (int oc = 0; oc < cout; oc++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++)
                {
                    int o = s * g.OutSize + (oc * oh + oy) * ow + ox;
                    for (int ic = 0; ic < cin; ic++)
                        for (int ky = 0; ky < size; ky++)
                            for (int kx = 0; kx < size; kx++)
                            {
                                int iy = oy * stride - padding + ky, ix = ox * stride - padding + kx;
                                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                                int xi = s * g.InSize + (ic * h + iy) * w + ix, wi = ((oc * cin + ic) * size + ky) * size + kx;
                                expectedY[o] += (double)x[xi] * weights[wi];
                                expectedDx[xi] += (double)dy[o] * weights[wi];
                                expectedDw[wi] += (double)dy[o] * x[xi];
                            }
                }
    string shape = string.Create(culture, $"{cin}x{h}x{w} -> {cout} k{size} s{stride} p{padding} batch {batch}");
    var y = new float[dy.Length];
    Convolution.Forward<float>(g, batch, x, weights, y);
    Report($"conv {shape} forward", Close(expectedY, y, 1e-5));
    var dx = new float[x.Length];
    Convolution.BackwardData<float>(g, batch, dy, weights, dx, accumulate: false);
    Report($"conv {shape} input gradient", Close(expectedDx, dx, 1e-5));
    var dw = new float[weights.Length];
    Convolution.BackwardWeight<float>(g, batch, x, dy, dw, accumulate: false);
    Report($"conv {shape} weight gradient", Close(expectedDw, dw, 1e-5));
}

// ---- fused convolution blocks ---------------------------------------------------------------------------------
// conv → bias → ReLU → 2×2 max pooling in one call, and its gradients (gated pooling gradient, bias and weight), for
// a first layer (9 column rows: the backward runs fused by blocks of 8 samples), against naive loops in double.
{
    var conv = new Window2d(1, 12, 12, 6, 12, 12, 3, 1, 1);
    var pool = new Window2d(6, 12, 12, 6, 6, 6, 2, 2, 0);
    const int batch = 20;
    var x = Uniform(batch * conv.InSize, 17);
    var weights = Uniform(6 * 9, 18);
    var bias = Uniform(6, 19);
    double Act(int s, int oc, int oy, int ox)
    {
        double sum = bias[oc];
        for (int ky = 0; ky < 3; ky++)
            for (int kx = 0; kx < 3; kx++)
            {
                int iy = oy - 1 + ky, ix = ox - 1 + kx;
                if (iy >= 0 && iy < 12 && ix >= 0 && ix < 12) sum += (double)x[s * 144 + iy * 12 + ix] * weights[oc * 9 + ky * 3 + kx];
            }
        return Math.Max(sum, 0);
    }
    var pooled = new float[batch * pool.OutSize];
    var argmax = new int[pooled.Length];
    Convolution.ForwardReluMaxPool(conv, pool, batch, x, weights, bias, new float[batch * conv.OutSize], pooled, argmax);
    var expectedPooled = new double[pooled.Length];
    for (int s = 0; s < batch; s++)
        for (int oc = 0; oc < 6; oc++)
            for (int py = 0; py < 6; py++)
                for (int px = 0; px < 6; px++)
                    expectedPooled[s * pool.OutSize + (oc * 6 + py) * 6 + px] = Math.Max(Math.Max(Act(s, oc, 2 * py, 2 * px), Act(s, oc, 2 * py, 2 * px + 1)),
                        Math.Max(Act(s, oc, 2 * py + 1, 2 * px), Act(s, oc, 2 * py + 1, 2 * px + 1)));
    Report("conv block forward (conv, bias, relu, max pool)", Close(expectedPooled, pooled, 1e-5));

    // The gradient flows to each window's recorded winner where the pooled output is positive.
    var dPooled = Uniform(pooled.Length, 20);
    var expectedDw = new double[weights.Length];
    var expectedDb = new double[6];
    for (int s = 0; s < batch; s++)
        for (int oc = 0; oc < 6; oc++)
            for (int p = 0; p < pool.OutPixels; p++)
            {
                int o = s * pool.OutSize + oc * pool.OutPixels + p;
                if (!(pooled[o] > 0)) continue;
                int at = argmax[o] - oc * 144, oy = at / 12, ox = at % 12;
                expectedDb[oc] += dPooled[o];
                for (int ky = 0; ky < 3; ky++)
                    for (int kx = 0; kx < 3; kx++)
                    {
                        int iy = oy - 1 + ky, ix = ox - 1 + kx;
                        if (iy >= 0 && iy < 12 && ix >= 0 && ix < 12) expectedDw[oc * 9 + ky * 3 + kx] += (double)dPooled[o] * x[s * 144 + iy * 12 + ix];
                    }
            }
    var dw = new float[weights.Length];
    var db = new float[6];
    Convolution.BackwardWeightThroughMaxPool(conv, pool, batch, x, dPooled, argmax, pooled, new float[batch * conv.OutSize], dw, accumulate: false, db, biasAccumulate: false);
    Report("conv block weight gradient (through the gated max pool)", Close(expectedDw, dw, 1e-5));
    Report("conv block bias gradient (through the gated max pool)", Close(expectedDb, db, 1e-5));
}

// ---- activation lanes -----------------------------------------------------------------------------------------
// A fused loop's scalar tail must give each element the bits its vector body would (Lanes' scalar forms), or results
// would depend on where a thread's chunk starts. Specials, then values spread over every exponent that matters.
{
    var inputs = new List<float> { 0f, -0f, 1f, -1f, float.NaN, -float.NaN, BitConverter.Int32BitsToSingle(0x7FC12345), float.PositiveInfinity, float.NegativeInfinity, float.Epsilon, -float.Epsilon,
        1e-30f, -1e-30f, 1e-7f, 20f, -20f, 40f, 87f, -87f, 88f, 89f, -104f, float.MaxValue, float.MinValue };
    var random = new Random(11);
    while (inputs.Count % System.Numerics.Vector<float>.Count != 0 || inputs.Count < 200_000)
        inputs.Add((float)((random.NextDouble() - 0.5) * Math.Pow(2, random.Next(-30, 8))));
    var x = inputs.ToArray();
    foreach (var (name, vector, scalar) in new (string, Func<System.Numerics.Vector<float>, System.Numerics.Vector<float>>, Func<float, float>)[]
             { ("tanh", Lanes.Tanh, Lanes.Tanh), ("sigmoid", Lanes.Sigmoid, Lanes.Sigmoid), ("exp", Lanes.Exp, Lanes.Exp) })
    {
        var lanes = new float[x.Length];
        var tails = new float[x.Length];
        for (int i = 0; i < x.Length; i += System.Numerics.Vector<float>.Count)
            vector(new System.Numerics.Vector<float>(x, i)).CopyTo(lanes, i);
        for (int i = 0; i < x.Length; i++) tails[i] = scalar(x[i]);
        Report($"lanes {name}: scalar tail as the vector lanes", Identical(lanes, tails));
    }
}

Console.WriteLine($"checks {checks} failed {failed}");
return failed;

/// <summary>C = max(C + bias[column], 0) over elements [start, end), chunks starting on a row.</summary>
internal ref struct BiasRelu : IElementwise
{
    public Span<float> C;
    public ReadOnlySpan<float> Bias;

    public void Run(int start, int end)
    {
        for (int i = start; i < end; i++) C[i] = MathF.Max(C[i] + Bias[i % Bias.Length], 0f);
    }
}
