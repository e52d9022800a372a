using System;

namespace NetDsl;

/// <summary>
/// Declares the per-sample shape of a <c>Forward</c> input, without the batch dimension:
/// <c>[Shape(3, 32, 32)]</c> is a batch of 3-channel 32x32 images, PyTorch's <c>[B, 3, 32, 32]</c>.
/// The batch size is chosen at run time, up to the capacity a trainer or workspace was created with.
/// </summary>
[AttributeUsage(AttributeTargets.Parameter, AllowMultiple = false, Inherited = false)]
public sealed class ShapeAttribute : Attribute
{
    /// <summary>Creates the attribute from the per-sample dimensions.</summary>
    public ShapeAttribute(params int[] dimensions) => Dimensions = dimensions;

    /// <summary>The per-sample dimensions, outermost first.</summary>
    public int[] Dimensions { get; }
}
