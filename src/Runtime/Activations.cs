using System;
using System.Runtime.CompilerServices;

namespace NetDsl.Runtime;

/// <summary>
/// Scalar activation functions and their derivatives, in float and double. Generated elementwise loops call
/// these; the JIT inlines them. Derivatives are written in terms of what the backward pass keeps
/// (the output for sigmoid and tanh, the input for GELU).
/// </summary>
public static class Activations
{
    private const double InvSqrt2 = 0.70710678118654752440;
    private const double InvSqrt2Pi = 0.39894228040143267794;

    /// <summary>The logistic function.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Sigmoid(float x) => 1f / (1f + MathF.Exp(-x));

    /// <summary>The logistic function.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static double Sigmoid(double x) => 1.0 / (1.0 + Math.Exp(-x));

    /// <summary>Hyperbolic tangent.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Tanh(float x) => MathF.Tanh(x);

    /// <summary>Hyperbolic tangent.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static double Tanh(double x) => Math.Tanh(x);

    /// <summary>Exact GELU: <c>x·Φ(x)</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Gelu(float x) => (float)Gelu((double)x);

    /// <summary>Exact GELU: <c>x·Φ(x)</c>.</summary>
    public static double Gelu(double x) => 0.5 * x * (1.0 + SpecialFunctions.Erf(x * InvSqrt2));

    /// <summary>GELU's derivative: <c>Φ(x) + x·φ(x)</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float GeluGrad(float x) => (float)GeluGrad((double)x);

    /// <summary>GELU's derivative: <c>Φ(x) + x·φ(x)</c>.</summary>
    public static double GeluGrad(double x)
        => 0.5 * (1.0 + SpecialFunctions.Erf(x * InvSqrt2)) + x * InvSqrt2Pi * Math.Exp(-0.5 * x * x);

    /// <summary><c>exp</c>, for generated code that works on either precision.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Exp(float x) => MathF.Exp(x);

    /// <summary><c>exp</c>, for generated code that works on either precision.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static double Exp(double x) => Math.Exp(x);
}

/// <summary>Special functions the BCL lacks.</summary>
public static class SpecialFunctions
{
    private const double TwoOverSqrtPi = 1.12837916709551257390;
    private const double InvSqrtPi = 0.56418958354775628695;

    /// <summary>
    /// The error function to about 1e-15 absolute: its Maclaurin series for |x| &lt; 3 (the largest term is
    /// about 3·10³, so rounding stays near 1e-13 relative to 1), and 1 − erfc(x) from erfc's continued
    /// fraction beyond.
    /// </summary>
    public static double Erf(double x)
    {
        if (double.IsNaN(x)) return double.NaN;
        double ax = Math.Abs(x);
        if (ax < 3.0)
        {
            double x2 = x * x, term = x, sum = x;
            for (int n = 1; n < 200; n++)
            {
                term *= -x2 / n;
                double add = term / (2 * n + 1);
                sum += add;
                if (Math.Abs(add) < 1e-17 * Math.Abs(sum)) break;
            }
            return TwoOverSqrtPi * sum;
        }
        double erfc = ax > 27.0 ? 0.0 : ErfcContinuedFraction(ax);
        return x > 0 ? 1.0 - erfc : erfc - 1.0;
    }

    // erfc(x) = exp(-x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + ...))))), evaluated with Lentz's method.
    private static double ErfcContinuedFraction(double x)
    {
        const double tiny = 1e-300;
        double f = x, c = x, d = 0.0;
        for (int n = 1; n < 500; n++)
        {
            double a = n * 0.5;
            d = x + a * d;
            if (Math.Abs(d) < tiny) d = tiny;
            c = x + a / c;
            if (Math.Abs(c) < tiny) c = tiny;
            d = 1.0 / d;
            double delta = c * d;
            f *= delta;
            if (Math.Abs(delta - 1.0) < 1e-16) break;
        }
        return Math.Exp(-x * x) * InvSqrtPi / f;
    }
}
