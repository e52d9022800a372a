using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Text;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Xunit;
using Xunit.Abstractions;

namespace NetDsl.Generator.Tests;

/// <summary>The pipeline re-runs only when a network changes.</summary>
public class IncrementalityTests(ITestOutputHelper output)
{
    private const string Network = """
        using NetDsl;
        namespace App;
        [Network]
        public partial class Mlp
        {
            readonly Linear fc1 = new(4, 16);
            readonly Linear fc2 = new(16, 3);
            Tensor Forward([Shape(4)] Tensor x) => fc2.Apply(Relu(fc1.Apply(x)));
        }
        """;

    private static IEnumerable<IncrementalStepRunReason> Reasons(GeneratorDriver driver, string step)
        => driver.GetRunResult().Results[0].TrackedSteps[step].SelectMany(s => s.Outputs).Select(o => o.Reason);

    private static (GeneratorDriver Driver, CSharpCompilation Compilation) FirstRun()
    {
        var compilation = Harness.Compilation((Network, "/src/Mlp.cs"), ("namespace App; public class Other { public int Value; }", "/src/Other.cs"));
        return (Harness.Driver(track: true).RunGenerators(compilation), compilation);
    }

    private static CSharpCompilation Replace(CSharpCompilation compilation, string path, string source)
    {
        var old = compilation.SyntaxTrees.Single(t => t.FilePath == path);
        return compilation.ReplaceSyntaxTree(old, CSharpSyntaxTree.ParseText(source, Harness.ParseOptions, path));
    }

    [Fact]
    public void EditingAnUnrelatedFileLeavesEveryStepCached()
    {
        var (driver, compilation) = FirstRun();
        driver = driver.RunGenerators(Replace(compilation, "/src/Other.cs", "namespace App; public class Other { public int Value; public int More; }"));
        Assert.All(Reasons(driver, NetworkGenerator.SpecStep), r => Assert.True(r is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged, r.ToString()));
        Assert.All(Reasons(driver, NetworkGenerator.SourceStep), r => Assert.True(r is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged, r.ToString()));
    }

    [Fact]
    public void MovingTheNetworkWithinItsFileDoesNotRegenerate()
    {
        var (driver, compilation) = FirstRun();
        driver = driver.RunGenerators(Replace(compilation, "/src/Mlp.cs", "// a comment that moves every line down\n\n" + Network.Replace("=> fc2", "=>  fc2")));
        // The parsed model is equal (Unchanged, or Cached behind the primary-declaration filter), so nothing is regenerated.
        Assert.All(Reasons(driver, NetworkGenerator.SpecStep), r => Assert.True(r is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged, r.ToString()));
        Assert.All(Reasons(driver, NetworkGenerator.SourceStep), r => Assert.Equal(IncrementalStepRunReason.Cached, r));
    }

    [Fact]
    public void ChangingALayerWidthRegenerates()
    {
        var (driver, compilation) = FirstRun();
        driver = driver.RunGenerators(Replace(compilation, "/src/Mlp.cs", Network.Replace("new(4, 16)", "new(4, 32)").Replace("new(16, 3)", "new(32, 3)")));
        Assert.Contains(IncrementalStepRunReason.Modified, Reasons(driver, NetworkGenerator.SpecStep));
        Assert.Contains(IncrementalStepRunReason.Modified, Reasons(driver, NetworkGenerator.SourceStep));
        Assert.Contains("ParameterCount = 259", driver.GetRunResult().GeneratedTrees.Single().ToString());
    }

    [Fact]
    public void FiftyLayerNetworkGenerationTime()
    {
        var source = new StringBuilder("using NetDsl;\nnamespace App;\n[Network]\npublic partial class Deep\n{\n");
        for (int i = 0; i < 50; i++) source.Append($"    readonly Linear l{i} = new(64, 64);\n");
        source.Append("    Tensor Forward([Shape(64)] Tensor x)\n    {\n");
        for (int i = 0; i < 50; i++) source.Append($"        x = Relu(l{i}.Apply(x));\n");
        source.Append("        return x;\n    }\n}\n");
        var compilation = Harness.Compilation((source.ToString(), "/src/Deep.cs"));

        // Warm the generator once (JIT), then time fresh drivers: the cost a build pays.
        Harness.Driver().RunGenerators(compilation);
        var times = new List<double>();
        for (int run = 0; run < 5; run++)
        {
            var clock = Stopwatch.StartNew();
            var driver = Harness.Driver().RunGenerators(compilation);
            times.Add(clock.Elapsed.TotalMilliseconds);
            Assert.Contains("ParameterCount = 208000", driver.GetRunResult().GeneratedTrees.Single().ToString());
        }
        times.Sort();
        output.WriteLine($"50-layer network: generation (parse, shapes, autodiff, fusion, memory plan, emit) median {times[2]:F1} ms over 5 runs (min {times[0]:F1}, max {times[4]:F1}).");
    }
}
