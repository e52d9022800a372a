using System;

namespace NetDsl;

/// <summary>
/// A symbolic tensor inside a network's <c>Forward</c> definition. Forward is never executed: the NetDsl
/// generator reads it at build time and compiles it into fixed-shape code. Tensors therefore have no data
/// and no members of their own; use the operations of <see cref="NetworkModule"/> and the layers' <c>Apply</c>.
/// </summary>
public sealed class Tensor
{
    private Tensor() { }

    /// <summary>Elementwise sum of two tensors of the same shape (a residual connection).</summary>
    public static Tensor operator +(Tensor a, Tensor b) => throw Symbolic.NotExecutable();

    /// <summary>Elementwise difference of two tensors of the same shape.</summary>
    public static Tensor operator -(Tensor a, Tensor b) => throw Symbolic.NotExecutable();

    /// <summary>Elementwise product of two tensors of the same shape.</summary>
    public static Tensor operator *(Tensor a, Tensor b) => throw Symbolic.NotExecutable();
}

internal static class Symbolic
{
    internal static InvalidOperationException NotExecutable() => new(
        "NetDsl tensor operations are symbolic: Forward is compiled at build time and never runs. " +
        "Call the generated members instead (Predict, CreateTrainer). If you see this, the NetDsl generator " +
        "did not run for this project: reference the NetDsl package (or the generator as an analyzer).");
}
