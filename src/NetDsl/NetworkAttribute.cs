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

    /// <summary>
    /// The largest gradient bucket, in bytes, of the data-parallel communication plan (default 1 MiB). The
    /// generator groups the gradients into contiguous slices of the flat gradient buffer, in the order backward
    /// finishes them, each at most this large (a single larger tensor gets a bucket of its own); a distributed
    /// trainer starts each bucket's allreduce as soon as backward has finished it. Smaller buckets start
    /// communicating earlier, larger ones pay the per-message latency fewer times.
    /// </summary>
    public int GradientBucketBytes { get; set; } = 1 << 20;
}

/// <summary>The element type a network is compiled for.</summary>
public enum Precision
{
    /// <summary>32-bit IEEE floats: the fast path, what PyTorch uses by default.</summary>
    Float32 = 0,

    /// <summary>64-bit IEEE floats: slower, for numerical work and gradient checking.</summary>
    Float64 = 1,
}
