using System;
using ILGPU;

namespace NetDsl.Runtime.Gpu;

/// <summary>
/// The optimizer updates as single kernels over the flat parameter, gradient and state buffers (one thread per
/// parameter), computing exactly what the managed CPU optimizers compute, in the same order.
/// </summary>
internal static class OptimizerKernels
{
    public struct SgdArgs
    {
        public float LearningRate, WeightDecay, Momentum, OneMinusDampening;
        public int First, HasMomentum, Nesterov;
    }

    public struct AdamArgs
    {
        public float StepSize, InvBiasCorrection2Sqrt, Beta1, Beta2, OneMinusBeta1, OneMinusBeta2, Epsilon, WeightDecay, Decay;
        public int HasDecay, Decoupled;
    }

    public static void Sgd(Index1D index, ArrayView<float> p, ArrayView<float> g, ArrayView<float> momentum, SgdArgs a)
    {
        int i = index.X;
        float d = g[i];
        if (a.WeightDecay != 0f) d += a.WeightDecay * p[i];
        if (a.HasMomentum != 0)
        {
            float buf = a.First != 0 ? d : a.Momentum * momentum[i] + a.OneMinusDampening * d;
            momentum[i] = buf;
            d = a.Nesterov != 0 ? d + a.Momentum * buf : buf;
        }
        p[i] -= a.LearningRate * d;
    }

    public static void Adam(Index1D index, ArrayView<float> p, ArrayView<float> g, ArrayView<float> moments, AdamArgs a)
    {
        int i = index.X;
        int n = (int)p.Length;
        float d = g[i];
        if (a.HasDecay != 0)
        {
            if (a.Decoupled != 0) p[i] *= a.Decay;
            else d += a.WeightDecay * p[i];
        }
        float m = a.Beta1 * moments[i] + a.OneMinusBeta1 * d;
        float v = a.Beta2 * moments[n + i] + a.OneMinusBeta2 * d * d;
        moments[i] = m;
        moments[n + i] = v;
        float denom = MathF.Sqrt(v) * a.InvBiasCorrection2Sqrt + a.Epsilon;
        p[i] -= a.StepSize * (m / denom);
    }

    /// <summary>State elements per parameter: momentum for SGD with momentum, two moments for Adam.</summary>
    public static int StatePerParameter(Optimizer optimizer) => optimizer switch
    {
        global::NetDsl.Runtime.Sgd s => s.Momentum != 0 ? 1 : 0,
        global::NetDsl.Runtime.Adam => 2,
        _ => throw new NotSupportedException($"{optimizer.GetType().Name} has no device kernel."),
    };
}
