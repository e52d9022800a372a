using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.IO;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Diagnostics;
using NetDsl.Generator;
using NetDsl.Generator.Diagnostics;

namespace NetDsl.Generator.Tests;

/// <summary>Compiles sources in memory with the NetDsl generator and analyzer, as a build would.</summary>
public static class Harness
{
    private static readonly Lazy<MetadataReference[]> References = new(() =>
    {
        var paths = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Where(p => Path.GetFileName(p).StartsWith("System.", StringComparison.Ordinal) || Path.GetFileName(p) is "mscorlib.dll" or "netstandard.dll")
            .ToList();
        paths.Add(typeof(NetDsl.NetworkAttribute).Assembly.Location);
        paths.Add(typeof(NetDsl.Runtime.Loss).Assembly.Location);
        return paths.Distinct().Select(p => (MetadataReference)MetadataReference.CreateFromFile(p)).ToArray();
    });

    public static CSharpParseOptions ParseOptions { get; } = new(LanguageVersion.Preview);

    public static CSharpCompilation Compilation(params string[] sources)
        => Compilation(sources.Select((s, i) => (s, $"/src/File{i}.cs")).ToArray());

    public static CSharpCompilation Compilation(params (string Source, string Path)[] sources)
        => CSharpCompilation.Create("UserProject",
            sources.Select(s => CSharpSyntaxTree.ParseText(s.Source, ParseOptions, s.Path)),
            References.Value,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable));

    /// <summary>What a project that also references NetDsl.Runtime.Gpu (and so ILGPU) compiles against.</summary>
    public static CSharpCompilation WithGpuRuntime(CSharpCompilation compilation)
        => compilation.AddReferences(
            MetadataReference.CreateFromFile(typeof(NetDsl.Runtime.Gpu.GpuDevice).Assembly.Location),
            MetadataReference.CreateFromFile(typeof(ILGPU.Index1D).Assembly.Location));

    public static GeneratorDriver Driver(bool track = false)
        => CSharpGeneratorDriver.Create(
            new[] { new NetworkGenerator().AsSourceGenerator() },
            parseOptions: ParseOptions,
            driverOptions: new GeneratorDriverOptions(IncrementalGeneratorOutputKind.None, trackIncrementalGeneratorSteps: track));

    /// <summary>Runs the generator and the analyzer; returns every diagnostic (compiler, generator, analyzer) and the generated sources.</summary>
    public static Result Run(params string[] sources) => Run(Compilation(sources));

    public static Result Run(CSharpCompilation compilation)
    {
        var driver = Driver().RunGeneratorsAndUpdateCompilation(compilation, out var output, out var generatorDiagnostics);
        var analyzers = ImmutableArray.Create<DiagnosticAnalyzer>(new NetworkAnalyzer());
        var withAnalyzers = output.WithAnalyzers(analyzers, new CompilationWithAnalyzersOptions(
            new AnalyzerOptions(ImmutableArray<AdditionalText>.Empty), onAnalyzerException: null, concurrentAnalysis: false, logAnalyzerExecutionTime: false, reportSuppressedDiagnostics: false));
        var all = withAnalyzers.GetAllDiagnosticsAsync().GetAwaiter().GetResult();
        var generated = driver.GetRunResult().GeneratedTrees.ToDictionary(t => Path.GetFileName(t.FilePath), t => t.ToString());
        return new Result(all.Concat(generatorDiagnostics).ToList(), generated, output);
    }

    public sealed record Result(List<Diagnostic> Diagnostics, Dictionary<string, string> Generated, Compilation Output)
    {
        public IEnumerable<Diagnostic> Ndsl => Diagnostics.Where(d => d.Id.StartsWith("NDSL", StringComparison.Ordinal));

        public IEnumerable<Diagnostic> Errors => Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error);

        public string Describe() => string.Join("\n", Diagnostics.Select(d => d.ToString()));
    }

    /// <summary>The directory holding the sample sources copied next to the tests.</summary>
    public static string SamplesDirectory => Path.Combine(AppContext.BaseDirectory, "Samples");
}
