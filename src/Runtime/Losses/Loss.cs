using System;
using System.Numerics;

namespace NetDsl.Runtime;

/// <summary>
/// A training loss over a batch of network outputs, reduced by the mean as PyTorch does by default.
/// Each loss computes its value and, in the same pass, the gradient with respect to the outputs, which the
/// generated backward pass starts from (softmax and cross-entropy are fused this way).
/// </summary>
public abstract class Loss
{
    private protected Loss() { }

    /// <summary>Cross-entropy over integer class labels, applied to raw logits (<c>nn.CrossEntropyLoss</c>).</summary>
    public static Loss CrossEntropy { get; } = new CrossEntropyLoss();

    /// <summary>Mean squared error against float targets (<c>nn.MSELoss</c>).</summary>
    public static Loss MeanSquaredError { get; } = new MeanSquaredErrorLoss();

    /// <summary>Binary cross-entropy on logits against targets in [0, 1] (<c>nn.BCEWithLogitsLoss</c>).</summary>
    public static Loss BinaryCrossEntropyWithLogits { get; } = new BinaryCrossEntropyWithLogitsLoss();

    /// <summary>The loss's name, as PyTorch calls it.</summary>
    public abstract string Name { get; }

    /// <summary>Whether targets are integer class labels (one per sample) rather than values (one per output).</summary>
    public abstract bool TakesClassLabels { get; }

    /// <summary>
    /// Computes the mean loss of <paramref name="batch"/> outputs of <paramref name="outputSize"/> elements
    /// against class labels, and writes d(loss)/d(output) into <paramref name="outputGradient"/>.
    /// </summary>
    public virtual T Evaluate<T>(ReadOnlySpan<T> output, ReadOnlySpan<int> labels, Span<T> outputGradient, int batch, int outputSize)
        where T : unmanaged, IFloatingPointIeee754<T>
        => throw new ArgumentException($"{Name} takes float targets (one per output element), not integer class labels.", nameof(labels));

    /// <summary>
    /// Computes the mean loss of <paramref name="batch"/> outputs of <paramref name="outputSize"/> elements
    /// against target values, and writes d(loss)/d(output) into <paramref name="outputGradient"/>.
    /// </summary>
    public virtual T Evaluate<T>(ReadOnlySpan<T> output, ReadOnlySpan<T> targets, Span<T> outputGradient, int batch, int outputSize)
        where T : unmanaged, IFloatingPointIeee754<T>
        => throw new ArgumentException($"{Name} takes integer class labels (one per sample), not float targets.", nameof(targets));

    /// <inheritdoc />
    public override string ToString() => Name;
}

internal sealed class CrossEntropyLoss : Loss
{
    public override string Name => "CrossEntropyLoss";

    public override bool TakesClassLabels => true;

    public override T Evaluate<T>(ReadOnlySpan<T> output, ReadOnlySpan<int> labels, Span<T> outputGradient, int batch, int outputSize)
    {
        T invB = T.One / T.CreateTruncating(batch);
        double total = 0;
        for (int b = 0; b < batch; b++)
        {
            int label = labels[b];
            if ((uint)label >= (uint)outputSize)
                throw new ArgumentOutOfRangeException(nameof(labels), label,
                    $"Label {label} at index {b} is outside the class range: expected 0 to {outputSize - 1} for {outputSize} outputs.");
            ReadOnlySpan<T> z = output.Slice(b * outputSize, outputSize);
            Span<T> g = outputGradient.Slice(b * outputSize, outputSize);
            T max = T.NegativeInfinity;
            for (int j = 0; j < outputSize; j++) max = T.Max(max, z[j]);
            T sum = T.Zero;
            for (int j = 0; j < outputSize; j++)
            {
                T e = T.Exp(z[j] - max);
                g[j] = e;
                sum += e;
            }
            T inv = T.One / sum;
            for (int j = 0; j < outputSize; j++) g[j] = g[j] * inv * invB;
            g[label] -= invB;
            total += double.CreateTruncating(max + T.Log(sum) - z[label]);
        }
        return T.CreateTruncating(total / batch);
    }
}

internal sealed class MeanSquaredErrorLoss : Loss
{
    public override string Name => "MSELoss";

    public override bool TakesClassLabels => false;

    public override T Evaluate<T>(ReadOnlySpan<T> output, ReadOnlySpan<T> targets, Span<T> outputGradient, int batch, int outputSize)
    {
        int n = batch * outputSize;
        T scale = T.CreateTruncating(2.0 / n);
        double total = 0;
        for (int i = 0; i < n; i++)
        {
            T d = output[i] - targets[i];
            total += double.CreateTruncating(d * d);
            outputGradient[i] = d * scale;
        }
        return T.CreateTruncating(total / n);
    }
}

internal sealed class BinaryCrossEntropyWithLogitsLoss : Loss
{
    public override string Name => "BCEWithLogitsLoss";

    public override bool TakesClassLabels => false;

    public override T Evaluate<T>(ReadOnlySpan<T> output, ReadOnlySpan<T> targets, Span<T> outputGradient, int batch, int outputSize)
    {
        int n = batch * outputSize;
        T invN = T.One / T.CreateTruncating(n);
        double total = 0;
        for (int i = 0; i < n; i++)
        {
            T z = output[i], t = targets[i];
            // max(z,0) − z·t + log(1 + exp(−|z|)): stable for large |z|.
            T l = T.Max(z, T.Zero) - z * t + T.Log(T.One + T.Exp(-T.Abs(z)));
            total += double.CreateTruncating(l);
            T s = T.One / (T.One + T.Exp(-z));
            outputGradient[i] = (s - t) * invN;
        }
        return T.CreateTruncating(total / n);
    }
}
