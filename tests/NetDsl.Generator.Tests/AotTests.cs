using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using NetDsl.Runtime.Checkpoints;
using Xunit;
using Xunit.Abstractions;

namespace NetDsl.Generator.Tests;

/// <summary>
/// NativeAOT deployment, as the README tells a user to do it: <c>dotnet publish samples/AotInference -c Release
/// -r linux-x64 -p:PublishAot=true</c> must succeed without one trimming or AOT warning, and the native executable
/// must classify images exactly as the same program does on the JIT. Needs the platform linker (clang) that
/// NativeAOT uses; .ci/run installs it.
/// </summary>
[Collection(nameof(DotnetProcesses))]
public sealed class AotTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("netdsl-aot-").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    /// <summary>A FashionCnn checkpoint with seeded weights, written by the safetensors writer, not by the network.</summary>
    private string WriteCheckpoint()
    {
        var random = new Random(7);
        SafeTensor Floats(string name, long[] shape, double scale, double offset = 0)
        {
            var values = new float[shape.Aggregate(1L, (a, b) => a * b)];
            for (int i = 0; i < values.Length; i++) values[i] = (float)(offset + scale * (random.NextDouble() * 2 - 1));
            return SafeTensors.FromFloats(name, shape, values);
        }
        var tensors = new[]
        {
            Floats("conv1.weight", new long[] { 32, 1, 3, 3 }, 0.5), Floats("conv1.bias", new long[] { 32 }, 0.1),
            Floats("bn1.weight", new long[] { 32 }, 0.2, 1), Floats("bn1.bias", new long[] { 32 }, 0.1),
            Floats("bn1.running_mean", new long[] { 32 }, 0.1), Floats("bn1.running_var", new long[] { 32 }, 0.5, 1),
            SafeTensors.FromInt64("bn1.num_batches_tracked", Array.Empty<long>(), new long[] { 100 }),
            Floats("conv2.weight", new long[] { 64, 32, 3, 3 }, 0.1), Floats("conv2.bias", new long[] { 64 }, 0.1),
            Floats("bn2.weight", new long[] { 64 }, 0.2, 1), Floats("bn2.bias", new long[] { 64 }, 0.1),
            Floats("bn2.running_mean", new long[] { 64 }, 0.1), Floats("bn2.running_var", new long[] { 64 }, 0.5, 1),
            SafeTensors.FromInt64("bn2.num_batches_tracked", Array.Empty<long>(), new long[] { 100 }),
            Floats("fc1.weight", new long[] { 128, 3136 }, 0.03), Floats("fc1.bias", new long[] { 128 }, 0.1),
            Floats("fc2.weight", new long[] { 10, 128 }, 0.2), Floats("fc2.bias", new long[] { 10 }, 0.1),
        };
        string path = Path.Combine(_dir, "fashion-cnn.safetensors");
        SafeTensors.Write(path, tensors);
        return path;
    }

    /// <summary>28×28 8-bit binary PGM images with seeded pixels.</summary>
    private string[] WriteImages(int count)
    {
        var random = new Random(11);
        return Enumerable.Range(0, count).Select(n =>
        {
            string path = Path.Combine(_dir, $"image{n}.pgm");
            var pixels = new byte[784];
            random.NextBytes(pixels);
            File.WriteAllBytes(path, "P5\n# a comment\n28 28\n255\n"u8.ToArray().Concat(pixels).ToArray());
            return path;
        }).ToArray();
    }

    private static bool RuntimeInformationX64() => System.Runtime.InteropServices.RuntimeInformation.OSArchitecture == System.Runtime.InteropServices.Architecture.X64;

    [SkippableFact]
    public void ThePublishedNativeExecutableHasNoWarningsAndClassifiesAsTheJitBuildDoes()
    {
        Skip.IfNot((Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Any(d => File.Exists(Path.Combine(d, "clang"))),
            "NativeAOT links with clang, which is not installed: apt-get install clang zlib1g-dev (.ci/run does).");
        Skip.IfNot(OperatingSystem.IsLinux() && RuntimeInformationX64(), "the sample is published for linux-x64");
        string publish = Path.Combine(_dir, "publish");
        var clock = Stopwatch.StartNew();
        string log = Dotnet.Run($"publish samples/AotInference -c Release -r linux-x64 -p:PublishAot=true -o \"{publish}\"", Dotnet.RepoRoot());
        var warnings = log.Split('\n').Where(l => l.Contains(": warning ", StringComparison.Ordinal)).ToList();
        Assert.True(warnings.Count == 0, "publish warned:\n" + string.Join("\n", warnings));
        string exe = Path.Combine(publish, "AotInference");
        Assert.True(File.Exists(exe), "no native executable in " + publish);
        Assert.False(File.Exists(Path.Combine(publish, "AotInference.dll")), "the publish output holds IL, not a native image");
        long size = new FileInfo(exe).Length;
        output.WriteLine($"published in {clock.Elapsed.TotalSeconds:F0} s; the executable is {size / 1e6:F1} MB");

        string checkpoint = WriteCheckpoint();
        string[] images = WriteImages(6);
        string arguments = $"\"{checkpoint}\" " + string.Join(" ", images.Select(i => $"\"{i}\""));
        var native = Dotnet.Start(exe, arguments, _dir);
        Assert.True(native.ExitCode == 0, native.All);
        // The JIT build of the same program (what publish compiled from) is the reference.
        string jitDll = Path.Combine(Dotnet.RepoRoot(), "samples", "AotInference", "bin", "Release", "net10.0", "linux-x64", "AotInference.dll");
        var jit = Dotnet.Start("dotnet", $"\"{jitDll}\" " + arguments, _dir);
        Assert.True(jit.ExitCode == 0, jit.All);
        var lines = native.Output.Trim().Split('\n');
        Assert.Equal(images.Length, lines.Length);
        Assert.All(lines, l => Assert.Matches(@"image\d\.pgm: [A-Za-z/ -]+ \(\d+\.\d %\)$", l.Trim()));
        Assert.Equal(jit.Output, native.Output);
        output.WriteLine("native: " + native.Error.Trim() + "; JIT: " + jit.Error.Trim());
        output.WriteLine(native.Output.Trim());

        // Bad input: a clear message and a non-zero exit, never a crash.
        File.WriteAllText(Path.Combine(_dir, "bad.pgm"), "P2\n28 28\n255\n");
        var bad = Dotnet.Start(exe, $"\"{checkpoint}\" \"{Path.Combine(_dir, "bad.pgm")}\"", _dir);
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("P5", bad.Error);
        var missing = Dotnet.Start(exe, $"\"{Path.Combine(_dir, "none.safetensors")}\" \"{images[0]}\"", _dir);
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("Cannot load the checkpoint", missing.Error);
    }
}
