using System;
using System.Collections.Generic;
using ILGPU;

namespace NetDsl.Runtime.Gpu;

/// <summary>
/// Everything a generated kernel can reach, passed to every kernel by value: views of the device arenas and
/// the step's scalars. Generated kernels address tensors inside the arenas at compile-time offsets
/// (activation offsets are per sample of <see cref="Capacity"/>).
/// </summary>
public struct DeviceArenas<T> where T : unmanaged
{
    /// <summary>The flat parameter buffer.</summary>
    public ArrayView<T> Parameters;

    /// <summary>The network's non-trainable state (running statistics), in its flat state layout.</summary>
    public ArrayView<T> State;

    /// <summary>Parameter gradients, in the parameters' layout.</summary>
    public ArrayView<T> Gradients;

    /// <summary>The activation arena, placed by the compile-time memory plan.</summary>
    public ArrayView<T> Activations;

    /// <summary>The batch of inputs.</summary>
    public ArrayView<T> Input;

    /// <summary>The batch of outputs.</summary>
    public ArrayView<T> Output;

    /// <summary>d(loss)/d(output), written by the loss kernel.</summary>
    public ArrayView<T> OutputGradient;

    /// <summary>Float targets (MSE, BCE).</summary>
    public ArrayView<T> Targets;

    /// <summary>Each sample's share of the mean loss, written by the loss kernel.</summary>
    public ArrayView<T> RowLoss;

    /// <summary>The index arena (max-pool positions).</summary>
    public ArrayView<int> Indices;

    /// <summary>Class labels (cross-entropy).</summary>
    public ArrayView<int> Labels;

    /// <summary>Samples in this batch.</summary>
    public int Batch;

    /// <summary>The batch capacity the arenas were sized for.</summary>
    public int Capacity;

    /// <summary>This step's dropout seed.</summary>
    public ulong Seed;
}

/// <summary>Which schedule a kernel belongs to.</summary>
public enum KernelPhase
{
    /// <summary>The training forward pass.</summary>
    TrainingForward,

    /// <summary>The backward pass.</summary>
    Backward,

    /// <summary>The inference forward pass.</summary>
    Inference,
}

/// <summary>A generated kernel, its phase, and how many threads it runs for a batch.</summary>
/// <param name="Phase">The schedule it belongs to.</param>
/// <param name="Name">The step it computes, for errors and profiles.</param>
/// <param name="Kernel">The kernel method.</param>
/// <param name="Extent">Threads for a batch size.</param>
public sealed record KernelDefinition<T>(KernelPhase Phase, string Name, Action<Index1D, DeviceArenas<T>> Kernel, Func<int, int> Extent)
    where T : unmanaged;

/// <summary>The kernels of a network, as the generated code lists them.</summary>
public sealed class KernelTable<T> where T : unmanaged
{
    private readonly List<KernelDefinition<T>> _kernels = new();
    private readonly Dictionary<string, Action<Index1D, DeviceArenas<T>>> _losses = new(StringComparer.Ordinal);

    /// <summary>Adds a step's kernel.</summary>
    public void Add(KernelPhase phase, string name, Action<Index1D, DeviceArenas<T>> kernel, Func<int, int> extent)
        => _kernels.Add(new KernelDefinition<T>(phase, name, kernel, extent));

    /// <summary>Adds the fused loss-and-gradient kernel of a loss (one thread per sample), by the loss's name.</summary>
    public void AddLoss(string lossName, Action<Index1D, DeviceArenas<T>> kernel) => _losses[lossName] = kernel;

    /// <summary>The step kernels in schedule order.</summary>
    public IReadOnlyList<KernelDefinition<T>> Kernels => _kernels;

    /// <summary>The loss kernels by loss name.</summary>
    public IReadOnlyDictionary<string, Action<Index1D, DeviceArenas<T>>> Losses => _losses;
}

/// <summary>
/// The base of the ILGPU program the NetDsl generator emits into a network class (when the project references
/// NetDsl.Runtime.Gpu): one kernel per fused step, with every shape a constant inside the kernel's code.
/// </summary>
public abstract class DeviceProgram<T> where T : unmanaged
{
    /// <summary>Creates the program.</summary>
    protected DeviceProgram() { }

    /// <summary>Lists the kernels (generated).</summary>
    protected abstract void Define(KernelTable<T> kernels);

    /// <summary>The kernels.</summary>
    public KernelTable<T> Build()
    {
        var table = new KernelTable<T>();
        Define(table);
        return table;
    }
}
