using System;
using System.Numerics;
using System.Runtime.CompilerServices;

namespace NetDsl.Runtime.Cpu;

/// <summary>
/// SIMD lanes for generated elementwise loops: loads, stores and the activation functions on
/// <see cref="Vector{T}"/>, so a fused loop processes a register of elements per iteration (the scalar tail
/// handles the rest). Float activations use vectorized exp; double ones stay exact (double is for numerical
/// checking, not speed). Each activation also has a scalar form, for the tail, that computes exactly what a lane
/// computes: an element's result then does not depend on whether it falls in the vector body or the tail, so a
/// sample's outputs do not depend on the batch it runs in, nor on how a batch is split.
/// </summary>
public static class Lanes
{
    /// <summary>Loads the lanes starting at element <paramref name="i"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector<T> Load<T>(ReadOnlySpan<T> span, int i) where T : unmanaged => new(span.Slice(i));

    /// <summary>Loads the lanes starting at element <paramref name="i"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector<T> Load<T>(Span<T> span, int i) where T : unmanaged => new(span.Slice(i));

    /// <summary>Stores the lanes at element <paramref name="i"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store<T>(Span<T> span, int i, Vector<T> value) where T : unmanaged => value.CopyTo(span.Slice(i));

    /// <summary><c>max(x, 0)</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector<T> Relu<T>(Vector<T> x) where T : unmanaged => Vector.Max(x, Vector<T>.Zero);

    /// <summary><c>x &gt; 0 ? x : slope·x</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector<T> LeakyRelu<T>(Vector<T> x, T slope) where T : unmanaged
        => Vector.ConditionalSelect(Vector.GreaterThan(x, Vector<T>.Zero), x, x * new Vector<T>(slope));

    /// <summary><c>a &gt; 0 ? b : 0</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector<T> PositiveMask<T>(Vector<T> a, Vector<T> b) where T : unmanaged
        => Vector.ConditionalSelect(Vector.GreaterThan(a, Vector<T>.Zero), b, Vector<T>.Zero);

    /// <summary><c>a &gt; 0 ? b : slope·b</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector<T> LeakyMask<T>(Vector<T> a, Vector<T> b, T slope) where T : unmanaged
        => Vector.ConditionalSelect(Vector.GreaterThan(a, Vector<T>.Zero), b, b * new Vector<T>(slope));

    /// <summary><c>y·(1 − y)</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector<T> SigmoidGrad<T>(Vector<T> y) where T : unmanaged => y * (Vector<T>.One - y);

    /// <summary><c>1 − y²</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector<T> TanhGrad<T>(Vector<T> y) where T : unmanaged => Vector<T>.One - y * y;

    /// <summary>The logistic function, <c>1 / (1 + exp(−x))</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector<float> Sigmoid(Vector<float> x) => Vector<float>.One / (Vector<float>.One + Exp(-x));

    /// <summary>The logistic function, <c>1 / (1 + exp(−x))</c>, lane by lane with <see cref="Math.Exp"/>.</summary>
    public static Vector<double> Sigmoid(Vector<double> x)
    {
        Span<double> lanes = stackalloc double[Vector<double>.Count];
        x.CopyTo(lanes);
        for (int i = 0; i < lanes.Length; i++) lanes[i] = Sigmoid(lanes[i]);
        return new Vector<double>(lanes);
    }

    /// <summary>One lane of <see cref="Sigmoid(Vector{float})"/>, bit for bit.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Sigmoid(float x) => 1f / (1f + Exp(-x));

    /// <summary>One lane of <see cref="Sigmoid(Vector{double})"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static double Sigmoid(double x) => 1.0 / (1.0 + Math.Exp(-x));

    /// <summary>One lane of <see cref="Tanh(Vector{float})"/>, bit for bit.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Tanh(float x)
    {
        if (float.IsNaN(x)) return x;
        float y = MathF.Min(MathF.Abs(x) * 2f, 40f);
        float p = ReducedExp(y, out float f, out float scale);
        float t = MathF.FusedMultiplyAdd(scale, p * f, scale - 1f);
        float r = t / (t + 2f);
        return BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(r) | (BitConverter.SingleToInt32Bits(x) & int.MinValue));
    }

    /// <summary>One lane of <see cref="Tanh(Vector{double})"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static double Tanh(double x) => Math.Tanh(x);

    /// <summary>One lane of <see cref="Exp(Vector{float})"/>, bit for bit.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Exp(float x)
    {
        if (float.IsNaN(x)) return x;
        float clamped = MathF.Min(MathF.Max(x, -87f), 88f);
        float p = ReducedExp(clamped, out float f, out float scale);
        return MathF.FusedMultiplyAdd(p, f, 1f) * scale;
    }

    /// <summary>One lane of the vector <see cref="ReducedExp(Vector{float}, out Vector{float}, out Vector{float})"/>: the same operations in the same order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float ReducedExp(float x, out float f, out float scale)
    {
        float shifted = MathF.FusedMultiplyAdd(x, InvLn2, RoundMagic);
        int n = BitConverter.SingleToInt32Bits(shifted) - BitConverter.SingleToInt32Bits(RoundMagic);
        float nf = shifted - RoundMagic;
        f = MathF.FusedMultiplyAdd(nf, -Ln2Hi, x);
        f = MathF.FusedMultiplyAdd(nf, -Ln2Lo, f);
        float p = MathF.FusedMultiplyAdd(F7, f, F6);
        p = MathF.FusedMultiplyAdd(p, f, F5);
        p = MathF.FusedMultiplyAdd(p, f, F4);
        p = MathF.FusedMultiplyAdd(p, f, F3);
        p = MathF.FusedMultiplyAdd(p, f, F2);
        p = MathF.FusedMultiplyAdd(p, f, 1f);
        scale = BitConverter.Int32BitsToSingle((n + 127) << 23);
        return p;
    }

    /// <summary>
    /// tanh to about 2.4e-7 relative: <c>t / (t + 2)</c> with <c>t = e^(2|x|) − 1</c>, and the sign restored.
    /// <c>e^y − 1</c> is computed without cancellation as <c>2^n·q + (2^n − 1)</c>, where <c>q = e^f − 1</c> is a
    /// polynomial with no constant term (f = y − n·ln 2), so small arguments keep their relative accuracy without a
    /// separate series, and one exponential and one division serve the whole range (2|x| is clamped at 40, where
    /// the quotient is 1 in float).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector<float> Tanh(Vector<float> x)
    {
        var y = Vector.MinNative(Vector.Abs(x) * new Vector<float>(2f), new Vector<float>(40f));
        var p = ReducedExp(y, out var f, out var scale);
        var t = Vector.FusedMultiplyAdd(scale, p * f, scale - Vector<float>.One);
        var r = t / (t + new Vector<float>(2f));
        r |= x & new Vector<float>(-0f); // r ≥ 0: take x's sign
        return Vector.ConditionalSelect(Vector.Equals(x, x), r, x); // NaN stays NaN
    }

    // e^x = 2^n · e^f with n = round(x/ln 2) and f = x − n·ln 2 (in two parts, Cody–Waite), |f| ≤ ln2/2;
    // e^f by its Taylor series to f⁷ (truncation error below 6e-9).
    private const float InvLn2 = 1.44269504088896341f, Ln2Hi = 0.693145751953125f, Ln2Lo = 1.42860676533018705e-06f;
    private const float RoundMagic = 12582912f; // 1.5·2²³: adding it rounds to an integer, kept in the low mantissa bits
    private const float F2 = 1f / 2, F3 = 1f / 6, F4 = 1f / 24, F5 = 1f / 120, F6 = 1f / 720, F7 = 1f / 5040;

    /// <summary>
    /// e^x in single precision to about 2e-7 relative, natively in float lanes (<see cref="Vector.Exp(Vector{float})"/>
    /// widens to double, at twice the cost). Arguments are clamped to [−87, 88], where the result stays a normal
    /// float: below it returns e^−87 ≈ 1.6e-38 instead of a denormal or zero, above it 1.7e38 instead of ∞; NaN
    /// returns NaN.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector<float> Exp(Vector<float> x) => Vector.ConditionalSelect(Vector.Equals(x, x), ExpOfNumber(x), x);

    /// <summary><see cref="Exp(Vector{float})"/> without restoring NaN (a NaN lane comes out as e^−87).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector<float> ExpOfNumber(Vector<float> x)
    {
        var clamped = Vector.MinNative(Vector.MaxNative(x, new Vector<float>(-87f)), new Vector<float>(88f));
        var p = ReducedExp(clamped, out var f, out var scale);
        return Vector.FusedMultiplyAdd(p, f, Vector<float>.One) * scale;
    }

    /// <summary>
    /// The shared core of <see cref="ExpOfNumber"/> and <see cref="Tanh(Vector{float})"/> for |x| ≤ 88: splits
    /// x = n·ln 2 + f and returns <c>p = 1 + f/2 + f²/6 + … + f⁶/7!</c>, so that <c>e^f = 1 + f·p</c> and
    /// <c>e^x = 2^n·e^f</c> with <paramref name="scale"/> = 2^n.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector<float> ReducedExp(Vector<float> x, out Vector<float> f, out Vector<float> scale)
    {
        var magic = new Vector<float>(RoundMagic);
        var shifted = Vector.FusedMultiplyAdd(x, new Vector<float>(InvLn2), magic);
        var n = Vector.AsVectorInt32(shifted) - Vector.AsVectorInt32(magic);
        var nf = shifted - magic;
        f = Vector.FusedMultiplyAdd(nf, new Vector<float>(-Ln2Hi), x);
        f = Vector.FusedMultiplyAdd(nf, new Vector<float>(-Ln2Lo), f);
        var p = Vector.FusedMultiplyAdd(new Vector<float>(F7), f, new Vector<float>(F6));
        p = Vector.FusedMultiplyAdd(p, f, new Vector<float>(F5));
        p = Vector.FusedMultiplyAdd(p, f, new Vector<float>(F4));
        p = Vector.FusedMultiplyAdd(p, f, new Vector<float>(F3));
        p = Vector.FusedMultiplyAdd(p, f, new Vector<float>(F2));
        p = Vector.FusedMultiplyAdd(p, f, Vector<float>.One);
        scale = Vector.AsVectorSingle(Vector.ShiftLeft(n + new Vector<int>(127), 23));
        return p;
    }

    /// <summary>tanh, lane by lane with <see cref="Math.Tanh"/>.</summary>
    public static Vector<double> Tanh(Vector<double> x)
    {
        Span<double> lanes = stackalloc double[Vector<double>.Count];
        x.CopyTo(lanes);
        for (int i = 0; i < lanes.Length; i++) lanes[i] = Math.Tanh(lanes[i]);
        return new Vector<double>(lanes);
    }
}
