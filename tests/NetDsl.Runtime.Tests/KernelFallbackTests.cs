using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Reflection;
using NetDsl.Testing;
using Xunit;

namespace NetDsl.Runtime.Tests;

/// <summary>
/// The CPU kernels' fallbacks against naive sums: NetDsl.KernelProbe checks every GEMM shape of
/// <see cref="GemmCases"/> (overwriting, accumulating, on sub-blocks, with a fused epilogue, and with op(B) packed
/// once as a constant operand, bit for bit against packing per call), max pooling and convolution in a fresh process,
/// as the machine allows and with AVX-512 off (the AVX2 6×16 kernel), AVX2 off (Vector&lt;T&gt; loops) and all
/// hardware intrinsics off (scalar code). This test process only ever runs the machine's own kernel paths: the JIT
/// fixes them when it compiles the kernels.
/// </summary>
public class KernelFallbackTests
{
    private static string Probe => typeof(KernelFallbackTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "KernelProbe").Value!;

    /// <summary>The instruction sets the probe uses when nothing is switched off, from one run for all cases.</summary>
    private static readonly Lazy<string> DefaultIsa = new(() => Run(null).Isa);

    private static (string Isa, string[] Checks, string All) Run(string? variable)
    {
        Assert.True(File.Exists(Probe), "The kernel probe was not built: " + Probe);
        var environment = variable is null ? null : new Dictionary<string, string> { [variable] = "0" };
        var result = ChildProcess.Run("dotnet", $"\"{Probe}\"", environment: environment);
        var lines = result.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.True(lines.Length > 2 && lines[0].StartsWith("isa ", StringComparison.Ordinal), result.All);
        return (lines[0], lines[1..^1], result.All);
    }

    [SkippableTheory]
    [InlineData(null)]
    [InlineData("DOTNET_EnableAVX512")]      // .NET 10's switch for the AVX-512 family
    [InlineData("DOTNET_EnableAVX2")]
    [InlineData("DOTNET_EnableHWIntrinsic")]
    public void KernelsMatchNaiveSums(string? variable)
    {
        var (isa, checks, all) = Run(variable);
        // The switch must change what the JIT may use; on a machine without the feature there is nothing new to run.
        if (variable is not null) Skip.If(isa == DefaultIsa.Value, $"This machine does not have what {variable}=0 switches off ({isa}).");
        var failures = checks.Where(line => !line.EndsWith(": ok", StringComparison.Ordinal)).ToList();
        Assert.True(failures.Count == 0, $"{isa}, {variable ?? "default"}:\n" + string.Join("\n", failures));
        // Every GEMM shape ran: overwriting and accumulating, contiguous and on sub-blocks, with the epilogue, and
        // with a constant B (packed once) with and without it.
        Assert.Equal(7 * GemmCases.All.Length, checks.Count(line => line.StartsWith("gemm ", StringComparison.Ordinal)));
        Assert.Contains(checks, line => line.StartsWith("max pool ", StringComparison.Ordinal));
        Assert.Contains(checks, line => line.StartsWith("conv ", StringComparison.Ordinal));
        Assert.Equal(3, checks.Count(line => line.StartsWith("lanes ", StringComparison.Ordinal)));
        Assert.True(all.Contains($"checks {checks.Length} failed 0", StringComparison.Ordinal), all);
    }
}
