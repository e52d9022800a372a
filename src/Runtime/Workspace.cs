using System;
using System.Numerics;

namespace NetDsl.Runtime;

/// <summary>
/// The memory one schedule of a network runs in, allocated once for a batch capacity: the activation arena
/// (buffers placed by the generator's memory plan), the index arena (max-pool positions), and, for training,
/// the gradient buffer laid out like the parameters. (Convolution column buffers belong to the worker threads.) Generated code slices these at
/// constant offsets; nothing is allocated while a step runs.
/// </summary>
public sealed class Workspace<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly AlignedArray<T> _activations;
    private readonly AlignedArray<int> _indices;
    private readonly AlignedArray<T> _gradients;

    /// <summary>Allocates a workspace for <paramref name="capacity"/> samples per batch.</summary>
    public Workspace(MemoryPlanSizes plan, int capacity, int gradientCount)
    {
        if (capacity < 1) throw new ArgumentOutOfRangeException(nameof(capacity), capacity, "The batch capacity must be at least 1.");
        Capacity = capacity;
        Plan = plan;
        _activations = new AlignedArray<T>(checked((long)plan.ActivationsPerSample * capacity));
        _indices = new AlignedArray<int>(checked((long)plan.IndicesPerSample * capacity));
        _gradients = new AlignedArray<T>(gradientCount);
    }

    /// <summary>The largest batch this workspace can run.</summary>
    public int Capacity { get; }

    /// <summary>The plan the workspace was sized by.</summary>
    public MemoryPlanSizes Plan { get; }

    /// <summary>The activation arena.</summary>
    public Span<T> Activations => _activations.Span;

    /// <summary>The index arena.</summary>
    public Span<int> Indices => _indices.Span;

    /// <summary>Parameter gradients, in the parameters' layout (empty for inference workspaces).</summary>
    public Span<T> Gradients => _gradients.Span;

    /// <summary>The gradient buffer as memory, for collectives that hold it across calls.</summary>
    internal Memory<T> GradientMemory => _gradients.Memory;

    /// <summary>
    /// Seed for the dropout masks of the current step. Masks come from a counter-based hash of
    /// (seed, element index), so the backward pass recomputes them instead of storing them, and the result
    /// does not depend on the number of threads.
    /// </summary>
    public ulong DropoutSeed { get; set; }

    /// <summary>
    /// Told, during backward, each time a gradient bucket of <see cref="NetworkDescription.GradientBuckets"/> is
    /// final (a distributed trainer starts its allreduce then); null when nobody listens.
    /// </summary>
    public IGradientBucketListener? BucketListener { get; set; }

    /// <summary>Called by generated backward code when gradient bucket <paramref name="bucket"/> is final.</summary>
    [System.ComponentModel.EditorBrowsable(System.ComponentModel.EditorBrowsableState.Never)]
    public void GradientBucketReady(int bucket) => BucketListener?.BucketReady(bucket);

    /// <summary>Called by generated backward code after each step while bucket allreduces may be in flight.</summary>
    [System.ComponentModel.EditorBrowsable(System.ComponentModel.EditorBrowsableState.Never)]
    public void GradientProgress() => BucketListener?.Progress();

    /// <summary>Total bytes this workspace holds.</summary>
    public long Bytes => (long)(_activations.Length + _gradients.Length) * System.Runtime.CompilerServices.Unsafe.SizeOf<T>()
                         + (long)_indices.Length * sizeof(int);
}

/// <summary>Receives the gradient-bucket signals of generated backward code (see <see cref="Workspace{T}.BucketListener"/>).</summary>
public interface IGradientBucketListener
{
    /// <summary>Every gradient in bucket <paramref name="bucket"/> is final for this step.</summary>
    void BucketReady(int bucket);

    /// <summary>Backward finished another step while allreduces may be in flight: a chance to drive them.</summary>
    void Progress();
}
