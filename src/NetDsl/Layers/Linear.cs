namespace NetDsl;

/// <summary>
/// A fully connected layer, PyTorch's <c>nn.Linear</c>: <c>y = x·Wᵀ + b</c> with <c>W</c> of shape
/// <c>[outFeatures, inFeatures]</c>. The input is <c>[B, inFeatures]</c>, or <c>[B, T, inFeatures]</c>
/// for a sequence (applied to the last dimension).
/// Initialization matches PyTorch: <c>W, b ~ U(-1/√inFeatures, 1/√inFeatures)</c>.
/// </summary>
public sealed class Linear : Layer
{
    /// <summary>Declares the layer. Arguments must be compile-time constants.</summary>
    public Linear(int inFeatures, int outFeatures, bool bias = true)
    {
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        HasBias = bias;
    }

    /// <summary>Input features.</summary>
    public int InFeatures { get; }

    /// <summary>Output features.</summary>
    public int OutFeatures { get; }

    /// <summary>Whether the layer adds a bias.</summary>
    public bool HasBias { get; }
}
