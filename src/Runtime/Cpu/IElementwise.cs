namespace NetDsl.Runtime.Cpu;

/// <summary>
/// A fused elementwise loop the generator emits (as a ref struct over the step's buffers): it computes
/// elements [start, end) of its output. Kernels call it on the part of the output they just produced (a
/// convolution's epilogue, per sample, while the data is in cache), and the workers split it across threads.
/// <c>start</c> and <c>end</c> are multiples of the loop's channel period.
/// </summary>
public interface IElementwise
{
    /// <summary>Computes elements [<paramref name="start"/>, <paramref name="end"/>).</summary>
    void Run(int start, int end);
}

/// <summary>The empty epilogue.</summary>
public readonly struct NoEpilogue : IElementwise
{
    /// <inheritdoc />
    public void Run(int start, int end) { }
}
