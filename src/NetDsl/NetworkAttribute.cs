using System;

namespace NetDsl;

/// <summary>
/// Marks a <c>partial</c> class as a NetDsl network. At build time the NetDsl generator reads the class's
/// layer fields and its <c>Forward</c> method, checks every tensor shape, derives the backward pass and
/// emits fixed-shape code for training and inference into the other half of the partial class.
/// </summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false, Inherited = false)]
public sealed class NetworkAttribute : Attribute
{
    /// <summary>The element type of parameters, activations and gradients. Defaults to <see cref="NetDsl.Precision.Float32"/>.</summary>
    public Precision Precision { get; set; } = Precision.Float32;
}

/// <summary>The element type a network is compiled for.</summary>
public enum Precision
{
    /// <summary>32-bit IEEE floats: the fast path, what PyTorch uses by default.</summary>
    Float32 = 0,

    /// <summary>64-bit IEEE floats: slower, for numerical work and gradient checking.</summary>
    Float64 = 1,
}
