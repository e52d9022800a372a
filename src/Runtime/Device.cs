using System;
using System.Numerics;

namespace NetDsl.Runtime;

/// <summary>What kind of hardware a <see cref="Device"/> runs on.</summary>
public enum DeviceKind
{
    /// <summary>The managed CPU path: the generated C# itself, no ILGPU. The default.</summary>
    ManagedCpu = 0,

    /// <summary>An NVIDIA GPU through ILGPU's CUDA backend.</summary>
    Cuda = 1,

    /// <summary>A GPU through ILGPU's OpenCL backend.</summary>
    OpenCL = 2,

    /// <summary>ILGPU's CPU accelerator: the device kernels run on CPU threads (for testing and debugging).</summary>
    IlgpuCpu = 3,
}

/// <summary>
/// Where a network trains and predicts. <see cref="Cpu"/> is the managed CPU path and the default; GPUs come
/// from the NetDsl.Runtime.Gpu package (<c>GpuDevice.Best()</c>, <c>GpuDevice.Cuda()</c>, ...), which keeps
/// ILGPU out of applications that never use a GPU.
/// </summary>
public abstract class Device : IDisposable
{
    /// <summary>The managed CPU path.</summary>
    public static Device Cpu { get; } = new ManagedCpuDevice();

    /// <summary>Creates a device.</summary>
    protected Device() { }

    /// <summary>A name for logs: the hardware and its backend.</summary>
    public abstract string Name { get; }

    /// <summary>The kind of hardware.</summary>
    public abstract DeviceKind Kind { get; }

    /// <summary>Creates a trainer for <paramref name="network"/> whose memory lives on this device.</summary>
    protected internal abstract Trainer<T> CreateTrainer<T>(CompiledNetwork<T> network, Optimizer optimizer, Loss loss, int batchCapacity, int seed)
        where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>Releases the device's resources (for a GPU, its accelerator and context).</summary>
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases resources.</summary>
    protected virtual void Dispose(bool disposing) { }

    /// <inheritdoc />
    public override string ToString() => Name;

    private sealed class ManagedCpuDevice : Device
    {
        public override string Name => "managed CPU (" + Environment.ProcessorCount + " threads)";

        public override DeviceKind Kind => DeviceKind.ManagedCpu;

        protected internal override Trainer<T> CreateTrainer<T>(CompiledNetwork<T> network, Optimizer optimizer, Loss loss, int batchCapacity, int seed)
            => new CpuTrainer<T>(network, optimizer, loss, batchCapacity, seed);
    }
}
