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

    private sealed class State<T>(Sgd settings, int count) : OptimizerState<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        private readonly T[] _momentum = settings.Momentum != 0 ? new T[count] : [];

        public override (string Name, T[] Values)[] Buffers => settings.Momentum != 0 ? [("momentum_buffer", _momentum)] : [];

        public override void Step(Span<T> p, ReadOnlySpan<T> g)
        {
            T lr = T.CreateTruncating(settings.LearningRate);
            T wd = T.CreateTruncating(settings.WeightDecay);
            T mu = T.CreateTruncating(settings.Momentum);
            T damp = T.One - T.CreateTruncating(settings.Dampening);
            bool first = StepCount == 0, hasMomentum = settings.Momentum != 0, nesterov = settings.Nesterov;
            for (int i = 0; i < p.Length; i++)
            {
                T d = g[i];
                if (wd != T.Zero) d += wd * p[i];
                if (hasMomentum)
                {
                    T buf = first ? d : mu * _momentum[i] + damp * d;
                    _momentum[i] = buf;
                    d = nesterov ? d + mu * buf : buf;
                }
                p[i] -= lr * d;
            }
            StepCount++;
        }
    }
}
