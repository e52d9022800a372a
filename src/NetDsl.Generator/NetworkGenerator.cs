using System;
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

        var sources = specs
            .Select(static (spec, ct) => NetworkCompiler.Generate(spec, ct))
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
