using System;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Text;
using NetDsl.Generator.Diagnostics;
using NetDsl.Generator.Parsing;

namespace NetDsl.Generator;

/// <summary>
/// The incremental pipeline, and only its wiring: [Network] classes → <c>NetworkSpec</c> (Parsing) →
/// generated source (NetworkCompiler). Both values are equatable, so an edit that does not change a network
/// leaves its steps cached. Diagnostics come from <see cref="NetworkAnalyzer"/>, which runs the same phases
/// with real, suppressible locations.
/// </summary>
[Generator(LanguageNames.CSharp)]
public sealed class NetworkGenerator : IIncrementalGenerator
{
    /// <summary>Tracking name of the parse step.</summary>
    public const string SpecStep = "NetworkSpec";

    /// <summary>Tracking name of the step that finds out whether the project references NetDsl.Runtime.Gpu.</summary>
    public const string DeviceStep = "DeviceKernels";

    /// <summary>Tracking name of the compile-and-emit step.</summary>
    public const string SourceStep = "GeneratedSource";

    /// <inheritdoc />
    public void Initialize(IncrementalGeneratorInitializationContext context)
    {
        var specs = context.SyntaxProvider.ForAttributeWithMetadataName(
                "NetDsl.NetworkAttribute",
                static (node, _) => node is ClassDeclarationSyntax,
                static (ctx, ct) => NetworkParser.Parse((INamedTypeSymbol)ctx.TargetSymbol, ctx.SemanticModel.Compilation, ct).Spec)
            .WithTrackingName(SpecStep);

        // The one compilation-wide fact the generator needs: whether the project can run device kernels.
        var deviceKernels = context.CompilationProvider
            .Select(static (compilation, _) => compilation.ReferencedAssemblyNames.Any(a => a.Name == "NetDsl.Runtime.Gpu"))
            .WithTrackingName(DeviceStep);

        var sources = specs
            .Combine(deviceKernels)
            .Select(static (input, ct) => NetworkCompiler.Generate(input.Left, input.Right, ct))
            .WithTrackingName(SourceStep);

        context.RegisterSourceOutput(sources, static (spc, generated) =>
        {
            if (generated.InternalError is { } error)
                spc.ReportDiagnostic(Diagnostic.Create(Descriptors.InternalError, Location.None, generated.HintName, error));
            if (generated.Source.Length > 0)
                spc.AddSource(generated.HintName, SourceText.From(generated.Source, System.Text.Encoding.UTF8));
        });
    }
}
