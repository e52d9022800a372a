using System;
using System.Numerics;

namespace NetDsl.Runtime.Cpu;

/// <summary>
/// Batch and layer normalization, forward and backward, with PyTorch's formulas: the batch variance is the
/// biased one, the running variance moves toward the unbiased one, and every sum is accumulated in the
/// element type in a fixed order (so results do not depend on the number of threads).
/// </summary>
public static unsafe class Normalization
{
    // ---- batch normalization: x viewed as [batch, channels, inner], statistics per channel ------------------

    /// <summary>
    /// Training forward: normalizes with the batch's statistics, writes them to <paramref name="mean"/> and
    /// <paramref name="invStd"/> (1/√(var + eps)), and updates the running statistics in place
    /// (<c>running = (1 − momentum)·running + momentum·batch</c>, the variance unbiased) and the batch count.
    /// </summary>
    public static void BatchNormTraining<T>(int batch, int channels, int inner, double eps, double momentum,
        ReadOnlySpan<T> x, ReadOnlySpan<T> weight, ReadOnlySpan<T> bias, Span<T> y, Span<T> mean, Span<T> invStd,
        Span<T> runningMean, Span<T> runningVar, Span<T> count)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        long n = (long)batch * inner;
        if (n < 2)
            throw new InvalidOperationException($"Batch normalization in training needs more than one value per channel (batch {batch} × {inner}); PyTorch refuses this too. Use a batch of 2 or more.");
        fixed (T* px = x, pw = weight, pb = bias, py = y, pm = mean, ps = invStd, prm = runningMean, prv = runningVar)
        {
            var job = new BatchNormJob<T>
            {
                X = px, Weight = weight.IsEmpty ? null : pw, Bias = bias.IsEmpty ? null : pb, Y = py, Mean = pm, InvStd = ps,
                RunningMean = prm, RunningVar = prv, Batch = batch, Channels = channels, Inner = inner, Eps = eps, Momentum = momentum,
            };
            CpuWorkers.Run(ref job, &TrainChannels, channels, 1);
        }
        count[0] += T.One;
    }

    /// <summary>Inference forward: normalizes with the running statistics.</summary>
    public static void BatchNormInference<T>(int batch, int channels, int inner, double eps,
        ReadOnlySpan<T> x, ReadOnlySpan<T> weight, ReadOnlySpan<T> bias, ReadOnlySpan<T> runningMean, ReadOnlySpan<T> runningVar, Span<T> y)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int c = 0; c < channels; c++)
        {
            T scale = T.One / T.Sqrt(runningVar[c] + T.CreateTruncating(eps));
            T shift = -runningMean[c] * scale;
            if (!weight.IsEmpty)
            {
                scale *= weight[c];
                shift = shift * weight[c] + bias[c];
            }
            for (int b = 0; b < batch; b++)
                ScaleShift(x.Slice((b * channels + c) * inner, inner), y.Slice((b * channels + c) * inner, inner), scale, shift);
        }
    }

    /// <summary>
    /// Backward through the training forward: with x̂ = (x − μ)·s, <c>dβ = Σ dy</c>, <c>dγ = Σ dy·x̂</c>,
    /// <c>dx = γ·s·(dy − dβ/N − x̂·dγ/N)</c>. Empty spans skip a gradient.
    /// </summary>
    public static void BatchNormBackward<T>(int batch, int channels, int inner,
        ReadOnlySpan<T> x, ReadOnlySpan<T> dy, ReadOnlySpan<T> mean, ReadOnlySpan<T> invStd, ReadOnlySpan<T> weight,
        Span<T> dx, Span<T> dWeight, Span<T> dBias, bool accumulateInput, bool accumulateWeight, bool accumulateBias)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        fixed (T* px = x, pdy = dy, pm = mean, ps = invStd, pw = weight, pdx = dx, pdw = dWeight, pdb = dBias)
        {
            var job = new BatchNormJob<T>
            {
                X = px, DY = pdy, Mean = pm, InvStd = ps, Weight = weight.IsEmpty ? null : pw, DX = dx.IsEmpty ? null : pdx,
                DWeight = dWeight.IsEmpty ? null : pdw, DBias = dBias.IsEmpty ? null : pdb, Batch = batch, Channels = channels, Inner = inner,
                AccumulateInput = accumulateInput, AccumulateWeight = accumulateWeight, AccumulateBias = accumulateBias,
            };
            CpuWorkers.Run(ref job, &BackwardChannels, channels, 1);
        }
    }

    private struct BatchNormJob<T> where T : unmanaged
    {
        public T* X, Weight, Bias, Y, Mean, InvStd, RunningMean, RunningVar, DY, DX, DWeight, DBias;
        public int Batch, Channels, Inner;
        public double Eps, Momentum;
        public bool AccumulateInput, AccumulateWeight, AccumulateBias;
    }

    private static void TrainChannels<T>(ref BatchNormJob<T> job, int from, int to) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int inner = job.Inner, channels = job.Channels;
        long n = (long)job.Batch * inner;
        T count = T.CreateTruncating(n);
        T m = T.CreateTruncating(job.Momentum);
        for (int c = from; c < to; c++)
        {
            T sum = T.Zero;
            for (int b = 0; b < job.Batch; b++)
                sum += Rows.Sum(new ReadOnlySpan<T>(job.X + ((long)b * channels + c) * inner, inner));
            T mu = sum / count;
            T sq = T.Zero;
            for (int b = 0; b < job.Batch; b++)
            {
                T* row = job.X + ((long)b * channels + c) * inner;
                for (int i = 0; i < inner; i++)
                {
                    T d = row[i] - mu;
                    sq += d * d;
                }
            }
            T variance = sq / count;
            T s = T.One / T.Sqrt(variance + T.CreateTruncating(job.Eps));
            job.Mean[c] = mu;
            job.InvStd[c] = s;
            job.RunningMean[c] = (T.One - m) * job.RunningMean[c] + m * mu;
            job.RunningVar[c] = (T.One - m) * job.RunningVar[c] + m * (sq / T.CreateTruncating(n - 1));
            T scale = s, shift = -mu * s;
            if (job.Weight != null)
            {
                scale *= job.Weight[c];
                shift = shift * job.Weight[c] + job.Bias[c];
            }
            for (int b = 0; b < job.Batch; b++)
            {
                long at = ((long)b * channels + c) * inner;
                ScaleShift(new ReadOnlySpan<T>(job.X + at, inner), new Span<T>(job.Y + at, inner), scale, shift);
            }
        }
    }

    private static void BackwardChannels<T>(ref BatchNormJob<T> job, int from, int to) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int inner = job.Inner, channels = job.Channels;
        T count = T.CreateTruncating((long)job.Batch * inner);
        for (int c = from; c < to; c++)
        {
            T mu = job.Mean[c], s = job.InvStd[c];
            T sumDy = T.Zero, sumDyXhat = T.Zero;
            for (int b = 0; b < job.Batch; b++)
            {
                long at = ((long)b * channels + c) * inner;
                T* x = job.X + at;
                T* dy = job.DY + at;
                for (int i = 0; i < inner; i++)
                {
                    sumDy += dy[i];
                    sumDyXhat += dy[i] * (x[i] - mu);
                }
            }
            sumDyXhat *= s;
            if (job.DWeight != null) job.DWeight[c] = job.AccumulateWeight ? job.DWeight[c] + sumDyXhat : sumDyXhat;
            if (job.DBias != null) job.DBias[c] = job.AccumulateBias ? job.DBias[c] + sumDy : sumDy;
            if (job.DX == null) continue;
            T gamma = job.Weight != null ? job.Weight[c] : T.One;
            T k = gamma * s, meanDy = sumDy / count, meanDyXhat = sumDyXhat / count;
            for (int b = 0; b < job.Batch; b++)
            {
                long at = ((long)b * channels + c) * inner;
                T* x = job.X + at;
                T* dy = job.DY + at;
                T* dx = job.DX + at;
                for (int i = 0; i < inner; i++)
                {
                    T g = k * (dy[i] - meanDy - (x[i] - mu) * s * meanDyXhat);
                    dx[i] = job.AccumulateInput ? dx[i] + g : g;
                }
            }
        }
    }

    // ---- layer normalization: rows of n elements ------------------------------------------------------------

    /// <summary>
    /// Normalizes each of <paramref name="rows"/> rows of <paramref name="n"/> elements with its own mean and
    /// biased variance, then applies γ and β; saves each row's mean and 1/σ when the spans are not empty.
    /// </summary>
    public static void LayerNormForward<T>(int rows, int n, double eps, ReadOnlySpan<T> x, ReadOnlySpan<T> weight, ReadOnlySpan<T> bias,
        Span<T> y, Span<T> mean, Span<T> invStd)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T count = T.CreateTruncating(n), e = T.CreateTruncating(eps);
        for (int r = 0; r < rows; r++)
        {
            ReadOnlySpan<T> row = x.Slice(r * n, n);
            Span<T> output = y.Slice(r * n, n);
            T mu = Rows.Sum(row) / count;
            T sq = T.Zero;
            for (int i = 0; i < n; i++)
            {
                T d = row[i] - mu;
                sq += d * d;
            }
            T s = T.One / T.Sqrt(sq / count + e);
            if (!mean.IsEmpty)
            {
                mean[r] = mu;
                invStd[r] = s;
            }
            if (weight.IsEmpty)
                for (int i = 0; i < n; i++) output[i] = (row[i] - mu) * s;
            else
                for (int i = 0; i < n; i++) output[i] = (row[i] - mu) * s * weight[i] + bias[i];
        }
    }

    /// <summary>
    /// Backward of <see cref="LayerNormForward"/>: per row, with g = dy·γ,
    /// <c>dx = s·(g − mean(g) − x̂·mean(g·x̂))</c>; <c>dγ = Σ_rows dy·x̂</c>, <c>dβ = Σ_rows dy</c>.
    /// </summary>
    public static void LayerNormBackward<T>(int rows, int n, ReadOnlySpan<T> x, ReadOnlySpan<T> dy, ReadOnlySpan<T> mean, ReadOnlySpan<T> invStd,
        ReadOnlySpan<T> weight, Span<T> dx, Span<T> dWeight, Span<T> dBias, bool accumulateInput, bool accumulateWeight, bool accumulateBias)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (!dWeight.IsEmpty && !accumulateWeight) dWeight.Slice(0, n).Clear();
        if (!dBias.IsEmpty && !accumulateBias) dBias.Slice(0, n).Clear();
        T count = T.CreateTruncating(n);
        for (int r = 0; r < rows; r++)
        {
            ReadOnlySpan<T> xr = x.Slice(r * n, n), dyr = dy.Slice(r * n, n);
            T mu = mean[r], s = invStd[r];
            T sumG = T.Zero, sumGXhat = T.Zero;
            for (int i = 0; i < n; i++)
            {
                T xhat = (xr[i] - mu) * s;
                T g = weight.IsEmpty ? dyr[i] : dyr[i] * weight[i];
                sumG += g;
                sumGXhat += g * xhat;
                if (!dWeight.IsEmpty) dWeight[i] += dyr[i] * xhat;
                if (!dBias.IsEmpty) dBias[i] += dyr[i];
            }
            if (dx.IsEmpty) continue;
            Span<T> dxr = dx.Slice(r * n, n);
            T meanG = sumG / count, meanGXhat = sumGXhat / count;
            for (int i = 0; i < n; i++)
            {
                T xhat = (xr[i] - mu) * s;
                T g = weight.IsEmpty ? dyr[i] : dyr[i] * weight[i];
                T v = s * (g - meanG - xhat * meanGXhat);
                dxr[i] = accumulateInput ? dxr[i] + v : v;
            }
        }
    }

    private static void ScaleShift<T>(ReadOnlySpan<T> x, Span<T> y, T scale, T shift) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var vs = new Vector<T>(scale);
            var vb = new Vector<T>(shift);
            for (; i <= x.Length - Vector<T>.Count; i += Vector<T>.Count)
                Lanes.Store(y, i, Lanes.Load(x, i) * vs + vb);
        }
        for (; i < x.Length; i++) y[i] = x[i] * scale + shift;
    }
}
