using System;
using System.Numerics;

namespace NetDsl.Runtime;

/// <summary>
/// Adam, PyTorch's <c>torch.optim.Adam</c>: bias-corrected first and second moment estimates; weight decay,
/// when set, is L2 added to the gradient (for decoupled decay use <see cref="AdamW"/>).
/// </summary>
public class Adam : Optimizer
{
    /// <summary>Creates the optimizer with PyTorch's defaults.</summary>
    public Adam(double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8, double weightDecay = 0)
        : this(lr, beta1, beta2, eps, weightDecay, decoupled: false)
    {
    }

    private protected Adam(double lr, double beta1, double beta2, double eps, double weightDecay, bool decoupled)
        : base(lr, weightDecay)
    {
        if (!(beta1 >= 0 && beta1 < 1)) throw new ArgumentOutOfRangeException(nameof(beta1), beta1, "beta1 must be in [0, 1).");
        if (!(beta2 >= 0 && beta2 < 1)) throw new ArgumentOutOfRangeException(nameof(beta2), beta2, "beta2 must be in [0, 1).");
        if (!(eps >= 0) || double.IsInfinity(eps)) throw new ArgumentOutOfRangeException(nameof(eps), eps, "eps must be a finite number >= 0.");
        Beta1 = beta1;
        Beta2 = beta2;
        Epsilon = eps;
        Decoupled = decoupled;
    }

    /// <summary>Decay of the first moment.</summary>
    public double Beta1 { get; }

    /// <summary>Decay of the second moment.</summary>
    public double Beta2 { get; }

    /// <summary>Added to the denominator for stability.</summary>
    public double Epsilon { get; }

    /// <summary>Whether weight decay is decoupled from the gradient (AdamW).</summary>
    public bool Decoupled { get; }

    /// <inheritdoc />
    public override OptimizerState<T> CreateState<T>(int parameterCount) => new State<T>(this, parameterCount);

    private sealed class State<T>(Adam settings, int count) : OptimizerState<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        private readonly T[] _m = new T[count];
        private readonly T[] _v = new T[count];

        public override (string Name, T[] Values)[] Buffers => [("exp_avg", _m), ("exp_avg_sq", _v)];

        public override void Step(Span<T> p, ReadOnlySpan<T> g)
        {
            long t = StepCount + 1;
            double lrD = settings.LearningRate;
            // As torch.optim.Adam: bias corrections in double, then step_size = lr / bc1 and
            // denom = sqrt(v) / sqrt(bc2) + eps.
            double bc1 = 1 - Math.Pow(settings.Beta1, t);
            double bc2Sqrt = Math.Sqrt(1 - Math.Pow(settings.Beta2, t));
            T stepSize = T.CreateTruncating(lrD / bc1);
            T invBc2Sqrt = T.CreateTruncating(1.0 / bc2Sqrt);
            T b1 = T.CreateTruncating(settings.Beta1), b2 = T.CreateTruncating(settings.Beta2);
            T oneMinusB1 = T.One - b1, oneMinusB2 = T.One - b2;
            T eps = T.CreateTruncating(settings.Epsilon);
            T wd = T.CreateTruncating(settings.WeightDecay);
            T decay = T.One - T.CreateTruncating(lrD * settings.WeightDecay);
            bool decoupled = settings.Decoupled, hasDecay = settings.WeightDecay != 0;
            for (int i = 0; i < p.Length; i++)
            {
                T d = g[i];
                if (hasDecay)
                {
                    if (decoupled) p[i] *= decay;
                    else d += wd * p[i];
                }
                T m = _m[i] = b1 * _m[i] + oneMinusB1 * d;
                T v = _v[i] = b2 * _v[i] + oneMinusB2 * d * d;
                T denom = T.Sqrt(v) * invBc2Sqrt + eps;
                p[i] -= stepSize * (m / denom);
            }
            StepCount = t;
        }
    }
}

/// <summary>
/// AdamW, PyTorch's <c>torch.optim.AdamW</c>: Adam with decoupled weight decay
/// (<c>θ ← θ·(1 − lr·λ)</c> before the Adam update); PyTorch's default λ is 0.01.
/// </summary>
public sealed class AdamW : Adam
{
    /// <summary>Creates the optimizer with PyTorch's defaults.</summary>
    public AdamW(double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8, double weightDecay = 1e-2)
        : base(lr, beta1, beta2, eps, weightDecay, decoupled: true)
    {
    }
}
