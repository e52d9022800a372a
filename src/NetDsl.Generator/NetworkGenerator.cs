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

    /// <summary>
    /// A partial class may carry [Network] on more than one of its declarations; the network is generated once,
    /// for the first of them.
    /// </summary>
    private static bool IsPrimaryDeclaration(GeneratorAttributeSyntaxContext ctx, System.Threading.CancellationToken ct)
    {
        var type = (INamedTypeSymbol)ctx.TargetSymbol;
        if (type.DeclaringSyntaxReferences.Length < 2 || ctx.Attributes.Length == 0) return true;
        var attribute = ctx.Attributes[0].AttributeClass;
        foreach (var reference in type.DeclaringSyntaxReferences)
        {
            if (reference.GetSyntax(ct) is not ClassDeclarationSyntax declaration || declaration.AttributeLists.Count == 0) continue;
            var model = ReferenceEquals(declaration.SyntaxTree, ctx.TargetNode.SyntaxTree) ? ctx.SemanticModel : ctx.SemanticModel.Compilation.GetSemanticModel(declaration.SyntaxTree);
            bool carries = declaration.AttributeLists.SelectMany(l => l.Attributes)
                .Any(a => SymbolEqualityComparer.Default.Equals(model.GetSymbolInfo(a, ct).Symbol?.ContainingType, attribute));
            if (carries) return declaration == ctx.TargetNode;
        }
        return true;
    }

    /// <inheritdoc />
    public void Initialize(IncrementalGeneratorInitializationContext context)
    {
        var specs = context.SyntaxProvider.ForAttributeWithMetadataName(
                "NetDsl.NetworkAttribute",
                static (node, _) => node is ClassDeclarationSyntax,
                static (ctx, ct) => IsPrimaryDeclaration(ctx, ct) ? NetworkParser.Parse((INamedTypeSymbol)ctx.TargetSymbol, ctx.SemanticModel.Compilation, ct).Spec : null)
            .Where(static spec => spec is not null)
            .Select(static (spec, _) => spec!)
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
