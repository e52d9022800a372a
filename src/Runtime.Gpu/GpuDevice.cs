using System;
using System.Numerics;
using System.Threading;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace NetDsl.Runtime.Gpu;

/// <summary>
/// A device driven by ILGPU: a CUDA or OpenCL GPU, or ILGPU's CPU accelerator (which runs the same kernels on
/// CPU threads, slowly: for tests and debugging). The device owns its ILGPU context and accelerator and
/// counts the bytes it has allocated, so a test can see that disposing a trainer gives everything back.
/// </summary>
public sealed class GpuDevice : Device
{
    private readonly Context _context;
    private readonly Accelerator _accelerator;
    private long _allocated;
    private bool _disposed;

    private GpuDevice(Context context, Accelerator accelerator, DeviceKind kind)
    {
        _context = context;
        _accelerator = accelerator;
        Kind = kind;
    }

    /// <summary>The first CUDA GPU, or the one at <paramref name="index"/>.</summary>
    public static GpuDevice Cuda(int index = 0) => Create(DeviceKind.Cuda, index);

    /// <summary>The first OpenCL GPU, or the one at <paramref name="index"/>.</summary>
    public static GpuDevice OpenCL(int index = 0) => Create(DeviceKind.OpenCL, index);

    /// <summary>ILGPU's CPU accelerator.</summary>
    public static GpuDevice CpuAccelerator() => Create(DeviceKind.IlgpuCpu, 0);

    /// <summary>The best ILGPU device: CUDA, then OpenCL, then ILGPU's CPU accelerator.</summary>
    public static GpuDevice Best()
    {
        if (Count(DeviceKind.Cuda) > 0) return Cuda();
        if (Count(DeviceKind.OpenCL) > 0) return OpenCL();
        return CpuAccelerator();
    }

    /// <summary>A GPU when there is one (CUDA, then OpenCL), otherwise the managed CPU path, <see cref="Device.Cpu"/>.</summary>
    public static Device Auto() => Count(DeviceKind.Cuda) > 0 || Count(DeviceKind.OpenCL) > 0 ? Best() : Cpu;

    /// <summary>How many devices of a kind this machine has.</summary>
    public static int Count(DeviceKind kind)
    {
        using var context = NewContext();
        return Devices(context, kind).Length;
    }

    /// <inheritdoc />
    public override string Name => $"{_accelerator.Name} ({Kind}, ILGPU)";

    /// <inheritdoc />
    public override DeviceKind Kind { get; }

    /// <summary>The ILGPU accelerator.</summary>
    public Accelerator Accelerator
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _accelerator;
        }
    }

    /// <summary>Bytes currently allocated on this device by NetDsl.</summary>
    public long AllocatedBytes => Interlocked.Read(ref _allocated);

    /// <inheritdoc />
    protected internal override Trainer<T> CreateTrainer<T>(CompiledNetwork<T> network, Optimizer optimizer, Loss loss, int batchCapacity, int seed)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (typeof(T) != typeof(float))
            throw new NotSupportedException($"{network.Description.Name} is compiled for {typeof(T).Name}; device training supports Float32 networks. Train Float64 networks on Device.Cpu.");
        var program = network.CreateDeviceProgram() as DeviceProgram<float>
            ?? throw new InvalidOperationException(
                $"{network.Description.Name} has no device kernels: it was compiled in a project that does not reference NetDsl.Runtime.Gpu. Add that reference (it brings ILGPU) and rebuild.");
        return (Trainer<T>)(object)new DeviceTrainer(this, (CompiledNetwork<float>)(object)network, program, optimizer, loss, batchCapacity, seed);
    }

    /// <summary>Allocates a buffer of <paramref name="length"/> elements and counts it until it is disposed.</summary>
    internal DeviceBuffer<T> Allocate<T>(long length) where T : unmanaged
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var buffer = _accelerator.Allocate1D<T>(Math.Max(length, 1));
        Interlocked.Add(ref _allocated, buffer.LengthInBytes);
        return new DeviceBuffer<T>(this, buffer);
    }

    internal void Released(long bytes) => Interlocked.Add(ref _allocated, -bytes);

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (_disposed) return;
        _disposed = true;
        _accelerator.Dispose();
        _context.Dispose();
    }

    private static Context NewContext() => Context.Create(builder => builder.Default().EnableAlgorithms());

    private static ILGPU.Runtime.Device[] Devices(Context context, DeviceKind kind)
    {
        var type = kind switch
        {
            DeviceKind.Cuda => AcceleratorType.Cuda,
            DeviceKind.OpenCL => AcceleratorType.OpenCL,
            _ => AcceleratorType.CPU,
        };
        var found = new System.Collections.Generic.List<ILGPU.Runtime.Device>();
        foreach (var device in context) if (device.AcceleratorType == type) found.Add(device);
        return found.ToArray();
    }

    private static GpuDevice Create(DeviceKind kind, int index)
    {
        var context = NewContext();
        try
        {
            var devices = Devices(context, kind);
            if (index < 0 || index >= devices.Length)
                throw new InvalidOperationException(devices.Length == 0
                    ? $"This machine has no {kind} device that ILGPU can use."
                    : $"There is no {kind} device {index}: this machine has {devices.Length} (0 to {devices.Length - 1}).");
            return new GpuDevice(context, devices[index].CreateAccelerator(context), kind);
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }
}

/// <summary>A device allocation that tells its device when it is released.</summary>
internal sealed class DeviceBuffer<T> : IDisposable where T : unmanaged
{
    private readonly GpuDevice _device;
    private MemoryBuffer1D<T, Stride1D.Dense>? _buffer;

    public DeviceBuffer(GpuDevice device, MemoryBuffer1D<T, Stride1D.Dense> buffer)
    {
        _device = device;
        _buffer = buffer;
        Bytes = buffer.LengthInBytes;
    }

    public long Bytes { get; }

    public bool IsDisposed => _buffer is null;

    public ArrayView<T> View => (_buffer ?? throw new ObjectDisposedException(nameof(DeviceBuffer<T>))).View;

    public void Dispose()
    {
        var buffer = Interlocked.Exchange(ref _buffer, null);
        if (buffer is null) return;
        buffer.Dispose();
        _device.Released(Bytes);
    }
}
