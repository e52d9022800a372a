namespace NetDsl.Runtime.Export;

/// <summary>
/// One node of a network's forward graph as the generator saw it (after lowering: a recurrent layer appears as
/// its unrolled primitive nodes), for exporters. Nodes are in topological order; shapes are per sample.
/// </summary>
/// <param name="Op">The primitive: Input, MatMul, BiasAdd, Conv2d, ConvTranspose2d, MaxPool2d, AvgPool2d, Reshape,
/// Relu, LeakyRelu, Sigmoid, Tanh, Gelu, Softmax, LogSoftmax, Dropout, Add, Mul, Sub, Concat, Zeros, Slice,
/// Upsample, BatchNorm, LayerNorm, Embedding.</param>
/// <param name="Inputs">The nodes it reads.</param>
/// <param name="Shape">Its per-sample output shape.</param>
public sealed record GraphNode(string Op, int[] Inputs, int[] Shape)
{
    /// <summary>The parameter it reads (weight or bias), by state_dict name.</summary>
    public string? Param { get; init; }

    /// <summary>A second parameter (a normalization's bias).</summary>
    public string? Param2 { get; init; }

    /// <summary>A BatchNorm's layer name: its running statistics are <c>&lt;State&gt;.running_mean</c> and <c>.running_var</c>.</summary>
    public string? State { get; init; }

    /// <summary>The per-sample axis (softmax, concat, slice, bias).</summary>
    public int Axis { get; init; }

    /// <summary>Kernel size, or the upsampling scale.</summary>
    public int Kernel { get; init; }

    /// <summary>The window stride.</summary>
    public int Stride { get; init; }

    /// <summary>The window padding.</summary>
    public int Padding { get; init; }

    /// <summary>A slice's start, or a transposed convolution's output padding.</summary>
    public int Start { get; init; }

    /// <summary>LeakyRelu's slope, Dropout's probability.</summary>
    public double Alpha { get; init; }

    /// <summary>A normalization's epsilon.</summary>
    public double Eps { get; init; }
}
