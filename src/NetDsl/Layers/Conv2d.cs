namespace NetDsl;

/// <summary>
/// A 2-D convolution, PyTorch's <c>nn.Conv2d</c> with a square kernel: input <c>[B, inChannels, H, W]</c>,
/// weight <c>[outChannels, inChannels, kernel, kernel]</c>, output
/// <c>[B, outChannels, (H + 2·padding − kernel)/stride + 1, (W + 2·padding − kernel)/stride + 1]</c>.
/// Initialization matches PyTorch: <c>W, b ~ U(-1/√fanIn, 1/√fanIn)</c> with <c>fanIn = inChannels·kernel²</c>.
/// </summary>
public sealed class Conv2d : Layer
{
    /// <summary>Declares the layer. Arguments must be compile-time constants.</summary>
    public Conv2d(int inChannels, int outChannels, int kernel, int stride = 1, int padding = 0, bool bias = true)
    {
        InChannels = inChannels;
        OutChannels = outChannels;
        Kernel = kernel;
        Stride = stride;
        Padding = padding;
        HasBias = bias;
    }

    /// <summary>Input channels.</summary>
    public int InChannels { get; }

    /// <summary>Output channels.</summary>
    public int OutChannels { get; }

    /// <summary>Kernel height and width.</summary>
    public int Kernel { get; }

    /// <summary>Stride in both directions.</summary>
    public int Stride { get; }

    /// <summary>Zero padding on every side.</summary>
    public int Padding { get; }

    /// <summary>Whether the layer adds a bias per output channel.</summary>
    public bool HasBias { get; }
}
