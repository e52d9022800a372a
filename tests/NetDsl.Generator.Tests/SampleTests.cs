using System.IO;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Xunit;

namespace NetDsl.Generator.Tests;

/// <summary>Every sample: its generated file matches the reviewed snapshot, and the sample compiles with no diagnostics.</summary>
public class SampleTests
{
    public static System.Collections.Generic.List<string> SampleNames()
        => Directory.GetDirectories(Harness.SamplesDirectory).OrderBy(d => d, System.StringComparer.Ordinal)
            .Where(dir => Directory.GetFiles(dir, "*.cs").Any(f => File.ReadAllText(f).Contains("[Network")))
            .Select(dir => Path.GetFileName(dir)).ToList();

    public static TheoryData<string> Samples() => new(SampleNames());

    private static CSharpCompilation CompileSample(string sample)
    {
        // A sample's own files plus samples/Shared, which the samples link in.
        var files = Directory.GetFiles(Path.Combine(Harness.SamplesDirectory, sample), "*.cs")
            .Concat(Directory.GetFiles(Path.Combine(Harness.SamplesDirectory, "Shared"), "*.cs"))
            .OrderBy(f => f, System.StringComparer.Ordinal);
        return Harness.Compilation(files.Select(f => (File.ReadAllText(f), "/samples/" + Path.GetFileName(Path.GetDirectoryName(f)) + "/" + Path.GetFileName(f))).ToArray())
            .WithOptions(new CSharpCompilationOptions(OutputKind.ConsoleApplication, nullableContextOptions: NullableContextOptions.Enable));
    }

    [Theory]
    [MemberData(nameof(Samples))]
    public void GeneratedCodeMatchesSnapshot(string sample)
    {
        var result = Harness.Run(CompileSample(sample));
        Assert.NotEmpty(result.Generated);
        foreach (var (file, text) in result.Generated.OrderBy(kv => kv.Key, System.StringComparer.Ordinal))
            Snapshot.Verify(text, Path.GetFileNameWithoutExtension(Path.GetFileNameWithoutExtension(file)));
    }

    /// <summary>With NetDsl.Runtime.Gpu referenced, the same file also carries the network's ILGPU kernels.</summary>
    [Fact]
    public void DeviceKernelsMatchSnapshot()
    {
        var result = Harness.Run(Harness.WithGpuRuntime(CompileSample("SeedCnn")));
        Assert.True(!result.Errors.Any(), result.Describe());
        var text = Assert.Single(result.Generated).Value;
        Assert.Contains("internal sealed class DeviceKernels", text);
        Snapshot.Verify(text, "SeedCnn");
    }

    [Theory]
    [MemberData(nameof(Samples))]
    public void CompilesWithZeroDiagnostics(string sample)
    {
        var result = Harness.Run(CompileSample(sample));
        var reported = result.Diagnostics.Where(d => d.Severity >= DiagnosticSeverity.Warning).ToList();
        Assert.True(reported.Count == 0, result.Describe());
    }

    [Fact]
    public void AllRequiredSamplesAreCovered()
    {
        var samples = SampleNames();
        foreach (var name in new[] { "LinearRegression", "SeedCnn", "FashionMnist", "SequenceLstm", "Autoencoder", "Overfitting" })
            Assert.Contains(name, samples);
    }
}
