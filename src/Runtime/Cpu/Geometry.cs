namespace NetDsl.Runtime.Cpu;

/// <summary>
/// The fixed geometry of a 2-D convolution or pooling window over per-sample <c>[C, H, W]</c> tensors.
/// Generated code builds it from constants.
/// </summary>
/// <param name="InChannels">Input channels.</param>
/// <param name="InHeight">Input height.</param>
/// <param name="InWidth">Input width.</param>
/// <param name="OutChannels">Output channels (equal to the input channels for pooling).</param>
/// <param name="OutHeight">Output height.</param>
/// <param name="OutWidth">Output width.</param>
/// <param name="Kernel">Square kernel size.</param>
/// <param name="Stride">Stride in both directions.</param>
/// <param name="Padding">Zero padding on each side.</param>
public readonly record struct Window2d(
    int InChannels, int InHeight, int InWidth,
    int OutChannels, int OutHeight, int OutWidth,
    int Kernel, int Stride, int Padding)
{
    /// <summary>Elements per input sample.</summary>
    public int InSize => InChannels * InHeight * InWidth;

    /// <summary>Elements per output sample.</summary>
    public int OutSize => OutChannels * OutHeight * OutWidth;

    /// <summary>Rows of the im2col matrix: <c>InChannels · Kernel²</c>.</summary>
    public int ColumnRows => InChannels * Kernel * Kernel;

    /// <summary>Output pixels per channel.</summary>
    public int OutPixels => OutHeight * OutWidth;
}
