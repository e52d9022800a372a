using System;
using System.Numerics;

namespace NetDsl.Runtime;

/// <summary>
/// Stochastic gradient descent, PyTorch's <c>torch.optim.SGD</c>: optional momentum (with dampening),
/// Nesterov momentum and L2 weight decay added to the gradient. Over a full batch it is plain gradient descent,
/// <c>θ ← θ − lr·∇J(θ)</c>.
/// </summary>
public sealed class Sgd : Optimizer
{
    /// <summary>Creates the optimizer.</summary>
    public Sgd(double lr, double momentum = 0, double dampening = 0, bool nesterov = false, double weightDecay = 0)
        : base(lr, weightDecay)
    {
        if (!(momentum >= 0) || double.IsInfinity(momentum))
            throw new ArgumentOutOfRangeException(nameof(momentum), momentum, "Momentum must be a finite number >= 0.");
        if (nesterov && (momentum <= 0 || dampening != 0))
            throw new ArgumentException("Nesterov momentum requires momentum > 0 and zero dampening.", nameof(nesterov));
        Momentum = momentum;
        Dampening = dampening;
        Nesterov = nesterov;
    }

    /// <summary>The momentum factor (0 for none).</summary>
    public double Momentum { get; }

    /// <summary>Dampening of the momentum.</summary>
    public double Dampening { get; }

    /// <summary>Whether to use Nesterov momentum.</summary>
    public bool Nesterov { get; }

    /// <inheritdoc />
    public override OptimizerState<T> CreateState<T>(int parameterCount) => new State<T>(this, parameterCount);

    private sealed unsafe class State<T>(Sgd settings, int count) : OptimizerState<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        private readonly T[] _momentum = settings.Momentum != 0 ? new T[count] : [];

        public override (string Name, T[] Values)[] Buffers => settings.Momentum != 0 ? [("momentum_buffer", _momentum)] : [];

        private struct Job
        {
            public T* P, G, M;
            public T Lr, Wd, Mu, Damp;
            public bool First, HasMomentum, Nesterov;
        }

        public override void Step(Span<T> p, ReadOnlySpan<T> g)
        {
            RequireLength(count, p.Length, g.Length);
            fixed (T* pp = p, pg = g, pm = _momentum)
            {
                var job = new Job
                {
                    P = pp, G = pg, M = pm,
                    Lr = T.CreateTruncating(settings.LearningRate),
                    Wd = T.CreateTruncating(settings.WeightDecay),
                    Mu = T.CreateTruncating(settings.Momentum),
                    Damp = T.One - T.CreateTruncating(settings.Dampening),
                    First = StepCount == 0,
                    HasMomentum = settings.Momentum != 0,
                    Nesterov = settings.Nesterov,
                };
                if (p.Length >= 1 << 16) Cpu.CpuWorkers.Run(ref job, &Update, p.Length, align: 1024);
                else Update(ref job, 0, p.Length);
            }
            StepCount++;
        }

        // The same arithmetic in the same order for the SIMD lanes and the scalar tail, so results do not depend on alignment.
        private static void Update(ref Job j, int start, int end)
        {
            int i = start;
            if (Vector.IsHardwareAccelerated)
            {
                // The job's fields in locals: the stores below could alias it, so the JIT would reload them every lane.
                T* pp = j.P, pg = j.G, pm = j.M;
                var lr = new Vector<T>(j.Lr);
                var wd = new Vector<T>(j.Wd);
                var mu = new Vector<T>(j.Mu);
                var damp = new Vector<T>(j.Damp);
                bool hasDecay = j.Wd != T.Zero, hasMomentum = j.HasMomentum, first = j.First, nesterov = j.Nesterov;
                for (; i <= end - Vector<T>.Count; i += Vector<T>.Count)
                {
                    var param = Vector.Load(pp + i);
                    var d = Vector.Load(pg + i);
                    if (hasDecay) d += wd * param;
                    if (hasMomentum)
                    {
                        var buf = first ? d : mu * Vector.Load(pm + i) + damp * d;
                        Vector.Store(buf, pm + i);
                        d = nesterov ? d + mu * buf : buf;
                    }
                    Vector.Store(param - lr * d, pp + i);
                }
            }
            for (; i < end; i++)
            {
                T d = j.G[i];
                if (j.Wd != T.Zero) d += j.Wd * j.P[i];
                if (j.HasMomentum)
                {
                    T buf = j.First ? d : j.Mu * j.M[i] + j.Damp * d;
                    j.M[i] = buf;
                    d = j.Nesterov ? d + j.Mu * buf : buf;
                }
                j.P[i] -= j.Lr * d;
            }
        }
    }
}
