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

    private sealed unsafe class State<T>(Adam settings, int count) : OptimizerState<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        private readonly T[] _m = new T[count];
        private readonly T[] _v = new T[count];

        public override (string Name, T[] Values)[] Buffers => [("exp_avg", _m), ("exp_avg_sq", _v)];

        private struct Job
        {
            public T* P, G, M, V;
            public T StepSize, InvBc2Sqrt, B1, B2, OneMinusB1, OneMinusB2, Eps, Wd, Decay;
            public bool Decoupled, HasDecay;
        }

        public override void Step(Span<T> p, ReadOnlySpan<T> g)
        {
            RequireLength(count, p.Length, g.Length);
            long t = StepCount + 1;
            double lrD = settings.LearningRate;
            // As torch.optim.Adam: bias corrections in double, then step_size = lr / bc1 and
            // denom = sqrt(v) / sqrt(bc2) + eps.
            double bc1 = 1 - Math.Pow(settings.Beta1, t);
            double bc2Sqrt = Math.Sqrt(1 - Math.Pow(settings.Beta2, t));
            fixed (T* pp = p, pg = g, pm = _m, pv = _v)
            {
                T b1 = T.CreateTruncating(settings.Beta1), b2 = T.CreateTruncating(settings.Beta2);
                var job = new Job
                {
                    P = pp, G = pg, M = pm, V = pv,
                    StepSize = T.CreateTruncating(lrD / bc1),
                    InvBc2Sqrt = T.CreateTruncating(1.0 / bc2Sqrt),
                    B1 = b1, B2 = b2, OneMinusB1 = T.One - b1, OneMinusB2 = T.One - b2,
                    Eps = T.CreateTruncating(settings.Epsilon),
                    Wd = T.CreateTruncating(settings.WeightDecay),
                    Decay = T.One - T.CreateTruncating(lrD * settings.WeightDecay),
                    Decoupled = settings.Decoupled,
                    HasDecay = settings.WeightDecay != 0,
                };
                if (p.Length >= 1 << 16) Cpu.CpuWorkers.Run(ref job, &Update, p.Length, align: 1024);
                else Update(ref job, 0, p.Length);
            }
            StepCount = t;
        }

        // The same arithmetic in the same order for the SIMD lanes and the scalar tail, so results do not depend on alignment.
        private static void Update(ref Job j, int start, int end)
        {
            int i = start;
            if (Vector.IsHardwareAccelerated)
            {
                var stepSize = new Vector<T>(j.StepSize);
                var invBc2 = new Vector<T>(j.InvBc2Sqrt);
                var b1 = new Vector<T>(j.B1);
                var b2 = new Vector<T>(j.B2);
                var c1 = new Vector<T>(j.OneMinusB1);
                var c2 = new Vector<T>(j.OneMinusB2);
                var eps = new Vector<T>(j.Eps);
                var wd = new Vector<T>(j.Wd);
                var decay = new Vector<T>(j.Decay);
                for (; i <= end - Vector<T>.Count; i += Vector<T>.Count)
                {
                    var param = Vector.Load(j.P + i);
                    var d = Vector.Load(j.G + i);
                    if (j.HasDecay)
                    {
                        if (j.Decoupled) param *= decay;
                        else d += wd * param;
                    }
                    var m = b1 * Vector.Load(j.M + i) + c1 * d;
                    var v = b2 * Vector.Load(j.V + i) + c2 * d * d;
                    Vector.Store(m, j.M + i);
                    Vector.Store(v, j.V + i);
                    var denom = Vector.SquareRoot(v) * invBc2 + eps;
                    Vector.Store(param - stepSize * (m / denom), j.P + i);
                }
            }
            for (; i < end; i++)
            {
                T param = j.P[i];
                T d = j.G[i];
                if (j.HasDecay)
                {
                    if (j.Decoupled) param *= j.Decay;
                    else d += j.Wd * param;
                }
                T m = j.M[i] = j.B1 * j.M[i] + j.OneMinusB1 * d;
                T v = j.V[i] = j.B2 * j.V[i] + j.OneMinusB2 * d * d;
                T denom = T.Sqrt(v) * j.InvBc2Sqrt + j.Eps;
                j.P[i] = param - j.StepSize * (m / denom);
            }
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
