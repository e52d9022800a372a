namespace NetDsl;

/// <summary>
/// Batch normalization over channels, PyTorch's <c>nn.BatchNorm2d</c>: input <c>[B, C, H, W]</c>. In training
/// each channel is normalized with the batch's mean and (biased) variance, and the running statistics move by
/// <c>momentum</c> toward them (the variance unbiased); in inference the running statistics are used.
/// Parameters <c>weight</c> (γ, ones) and <c>bias</c> (β, zeros); buffers <c>running_mean</c>,
/// <c>running_var</c> and <c>num_batches_tracked</c>, all under PyTorch's names.
/// </summary>
public sealed class BatchNorm2d : Layer
{
    /// <summary>Declares the layer.</summary>
    public BatchNorm2d(int numFeatures, float eps = 1e-5f, float momentum = 0.1f, bool affine = true)
    {
        NumFeatures = numFeatures;
        Eps = eps;
        Momentum = momentum;
        Affine = affine;
    }

    /// <summary>Channels.</summary>
    public int NumFeatures { get; }

    /// <summary>Added to the variance.</summary>
    public float Eps { get; }

    /// <summary>How far the running statistics move per training step.</summary>
    public float Momentum { get; }

    /// <summary>Whether γ and β are learned.</summary>
    public bool Affine { get; }
}

/// <summary>
/// Batch normalization over features, PyTorch's <c>nn.BatchNorm1d</c>: input <c>[B, C]</c> or <c>[B, C, L]</c>.
/// Otherwise as <see cref="BatchNorm2d"/>.
/// </summary>
public sealed class BatchNorm1d : Layer
{
    /// <summary>Declares the layer.</summary>
    public BatchNorm1d(int numFeatures, float eps = 1e-5f, float momentum = 0.1f, bool affine = true)
    {
        NumFeatures = numFeatures;
        Eps = eps;
        Momentum = momentum;
        Affine = affine;
    }

    /// <summary>Features.</summary>
    public int NumFeatures { get; }

    /// <summary>Added to the variance.</summary>
    public float Eps { get; }

    /// <summary>How far the running statistics move per training step.</summary>
    public float Momentum { get; }

    /// <summary>Whether γ and β are learned.</summary>
    public bool Affine { get; }
}

/// <summary>
/// Layer normalization over the last dimension, PyTorch's <c>nn.LayerNorm(normalizedShape)</c>: each row is
/// normalized with its own mean and (biased) variance, in training and inference alike; then scaled by
/// <c>weight</c> (ones) and shifted by <c>bias</c> (zeros).
/// </summary>
public sealed class LayerNorm : Layer
{
    /// <summary>Declares the layer.</summary>
    public LayerNorm(int normalizedShape, float eps = 1e-5f, bool elementwiseAffine = true)
    {
        NormalizedShape = normalizedShape;
        Eps = eps;
        ElementwiseAffine = elementwiseAffine;
    }

    /// <summary>The size of the last dimension.</summary>
    public int NormalizedShape { get; }

    /// <summary>Added to the variance.</summary>
    public float Eps { get; }

    /// <summary>Whether γ and β are learned.</summary>
    public bool ElementwiseAffine { get; }
}
