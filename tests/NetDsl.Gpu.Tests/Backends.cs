using System;
using NetDsl.Runtime.Gpu;
using Xunit;

namespace NetDsl.Runtime.Tests.Gpu;

/// <summary>The suite on ILGPU's CPU accelerator: the device kernels themselves, run on CPU threads.</summary>
public sealed class IlgpuCpuBackendTests : BackendSuite
{
    private static readonly Lazy<GpuDevice> Shared = new(GpuDevice.CpuAccelerator);

    protected override GpuDevice Device => Shared.Value;
}

/// <summary>The suite on a CUDA GPU, where this machine has one.</summary>
public sealed class CudaBackendTests : BackendSuite
{
    private static readonly Lazy<int> Available = new(() => GpuDevice.Count(DeviceKind.Cuda));
    private static readonly Lazy<GpuDevice> Shared = new(() => GpuDevice.Cuda());

    protected override GpuDevice Device => Shared.Value;

    protected override void RequireDevice() => Skip.If(Available.Value == 0, "No CUDA device on this machine.");
}
