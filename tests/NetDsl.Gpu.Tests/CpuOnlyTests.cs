using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Threading;
using NetDsl.Testing;
using Xunit;

namespace NetDsl.Runtime.Tests.Gpu;

/// <summary>The CPU-only probe program (tests/NetDsl.CpuOnlyProbe), run in fresh processes.</summary>
internal static class CpuOnlyProbe
{
    public static string Location => typeof(CpuOnlyProbe).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "CpuOnlyProbe").Value!;

    /// <summary>Runs the probe with <paramref name="arguments"/>; fails the test unless it exits with 0.</summary>
    public static ChildProcess.Result Run(string arguments, IReadOnlyDictionary<string, string>? environment = null)
    {
        var result = ChildProcess.Run("dotnet", $"\"{Location}\" {arguments}", environment: environment);
        Assert.True(result.ExitCode == 0, result.All);
        return result;
    }
}

/// <summary>The managed CPU path never loads ILGPU, even in an application whose networks have device kernels.</summary>
public class CpuOnlyTests
{
    [Fact]
    public void CpuOnlyTrainingDoesNotLoadIlgpu()
    {
        string probe = CpuOnlyProbe.Location;
        Assert.True(File.Exists(probe), "The probe was not built: " + probe);
        // The probe ships ILGPU (it references NetDsl.Runtime.Gpu), so "not loaded" means "never touched".
        Assert.True(File.Exists(Path.Combine(Path.GetDirectoryName(probe)!, "ILGPU.dll")));
        Assert.Contains("ILGPU not loaded", CpuOnlyProbe.Run("").All);
    }
}

/// <summary>
/// The CPU kernels' fallbacks compute what the SIMD paths compute: the probe trains a CNN and an MLP (3 SGD steps)
/// in fresh processes with AVX-512 off (the AVX2 kernels), with AVX2 off, with all hardware intrinsics off (the
/// scalar kernels), and as the machine allows; outputs and parameters must agree within 1e-4 relative (to the
/// element and the tensor's scale). The probe prints which instruction sets it ran with, and the test checks that
/// the switch took effect.
/// </summary>
public class SimdFallbackTests
{
    private static Dictionary<string, double[]> Run(string? variable)
    {
        string output = CpuOnlyProbe.Run("--numbers", variable is null ? null : new Dictionary<string, string> { [variable] = "0" }).Output;
        return output.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => line.Split(' '))
            .ToDictionary(f => f[0], f => f.Skip(1).Select(v => double.Parse(v, System.Globalization.CultureInfo.InvariantCulture)).ToArray());
    }

    [SkippableTheory]
    [InlineData("DOTNET_EnableAVX512")]      // .NET 10's switch for the AVX-512 family (DOTNET_EnableAVX512F no longer exists)
    [InlineData("DOTNET_EnableAVX2")]
    [InlineData("DOTNET_EnableHWIntrinsic")]
    public void FallbackKernelsAgreeWithTheDefaultPath(string variable)
    {
        var reference = Run(null);
        var fallback = Run(variable);
        // The switch must change what the kernels can use; on a machine without the feature there is nothing to compare.
        Skip.If(reference["isa"].SequenceEqual(fallback["isa"]), $"This machine does not have what {variable}=0 switches off.");
        reference.Remove("isa");
        fallback.Remove("isa");
        Assert.Equal(reference.Keys.OrderBy(k => k), fallback.Keys.OrderBy(k => k));
        foreach (var (name, expected) in reference)
        {
            var actual = fallback[name];
            Assert.Equal(expected.Length, actual.Length);
            double scale = expected.Max(Math.Abs);
            for (int i = 0; i < expected.Length; i++)
                Assert.True(Math.Abs(actual[i] - expected[i]) <= 1e-4 * (Math.Abs(expected[i]) + scale),
                    $"{name} with {variable}=0: value {i} is {actual[i]:R}, {expected[i]:R} by default.");
        }
    }
}

/// <summary>Properties that need fresh processes: reproducibility across thread counts, and saving under a kill.</summary>
public class ProcessTests
{
    private static string RunProbe(string arguments, string threads)
        => CpuOnlyProbe.Run(arguments, new Dictionary<string, string> { ["NETDSL_NUM_THREADS"] = threads }).All.Trim();

    /// <summary>
    /// The same seed gives bitwise-identical parameters and running statistics after an epoch (a CNN with batch
    /// normalization and dropout, Adam, shuffled batches) across runs and with 1, 2, 3 and 4 threads.
    /// </summary>
    [Fact]
    public void AnEpochIsBitwiseReproducibleAcrossRunsAndThreadCounts()
    {
        var hashes = new[] { "1", "2", "2", "3", "4" }.Select(t => (Threads: t, Output: RunProbe("--epoch-hash", t))).ToList();
        foreach (var (threads, output) in hashes) Assert.StartsWith($"threads {threads} sha256 ", output);
        var distinct = hashes.Select(h => h.Output.Split(' ')[^1]).Distinct().ToList();
        Assert.True(distinct.Count == 1, string.Join("\n", hashes.Select(h => h.Output)));
    }

    /// <summary>A process saving a 4 MB checkpoint in a loop is killed at random points; the file always loads.</summary>
    [Fact]
    public void KillingAWriterMidSaveLeavesALoadableCheckpoint()
    {
        string dir = Directory.CreateTempSubdirectory("netdsl-kill-").FullName;
        try
        {
            string path = Path.Combine(dir, "model.safetensors");
            var random = new Random(1);
            for (int round = 0; round < 5; round++)
            {
                var start = new ProcessStartInfo("dotnet", $"\"{CpuOnlyProbe.Location}\" --save-loop \"{path}\"") { RedirectStandardOutput = true, RedirectStandardError = true };
                using var process = Process.Start(start)!;
                int target = 2 + random.Next(3);
                string? line;
                while ((line = process.StandardOutput.ReadLine()) is not null && line != $"saved {target}") { }
                Assert.Equal($"saved {target}", line);
                Thread.Sleep(random.Next(0, 15));
                process.Kill(entireProcessTree: true);
                process.WaitForExit();

                var net = new LoadCheck(1);
                NetDsl.Runtime.Checkpoints.Checkpoint.Load(path, net);
                float value = net.ParameterData[0];
                Assert.True(value >= target && net.Description.Parameters.All(p => net.Parameter(p.Name).ToArray().All(v => v == value)),
                    $"round {round}: a mixed or partial checkpoint (first value {value})");
            }
            // Killed writers can leave their temporary files (.model.safetensors.*.tmp), never a partial target.
            Assert.All(Directory.GetFiles(dir), f => Assert.True(Path.GetFileName(f) == "model.safetensors" || f.EndsWith(".tmp", StringComparison.Ordinal)));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}

/// <summary>The probe's ProbeBig, to load its checkpoints.</summary>
[NetDsl.Network]
public partial class LoadCheck
{
    readonly NetDsl.Linear fc = new(1000, 1000);
    NetDsl.Tensor Forward([NetDsl.Shape(1000)] NetDsl.Tensor x) => fc.Apply(x);
}
