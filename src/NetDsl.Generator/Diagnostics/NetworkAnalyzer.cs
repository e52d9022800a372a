using System;
using System.Collections.Immutable;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;
using NetDsl.Generator.Parsing;

namespace NetDsl.Generator.Diagnostics;

/// <summary>
/// Reports NetDsl's diagnostics while you type and at build time. It runs the generator's own parsing and
/// shape inference, but keeps the source locations, so every diagnostic sits on the offending expression and
/// can be suppressed with <c>#pragma warning disable</c>.
/// </summary>
[DiagnosticAnalyzer(LanguageNames.CSharp)]
public sealed class NetworkAnalyzer : DiagnosticAnalyzer
{
    /// <inheritdoc />
    public override ImmutableArray<DiagnosticDescriptor> SupportedDiagnostics { get; } = Descriptors.All.ToImmutableArray();

    /// <inheritdoc />
    public override void Initialize(AnalysisContext context)
    {
        context.ConfigureGeneratedCodeAnalysis(GeneratedCodeAnalysisFlags.None);
        context.EnableConcurrentExecution();
        context.RegisterCompilationStartAction(start =>
        {
            var attribute = start.Compilation.GetTypeByMetadataName("NetDsl.NetworkAttribute");
            if (attribute is null) return;
            start.RegisterSymbolAction(ctx => Analyze(ctx, attribute), SymbolKind.NamedType);
        });
    }

    private static void Analyze(SymbolAnalysisContext ctx, INamedTypeSymbol attribute)
    {
        var type = (INamedTypeSymbol)ctx.Symbol;
        if (!type.GetAttributes().Any(a => SymbolEqualityComparer.Default.Equals(a.AttributeClass, attribute))) return;
        try
        {
            var parsed = NetworkParser.Parse(type, ctx.Compilation, ctx.CancellationToken);
            foreach (var d in NetworkCompiler.Diagnose(parsed.Spec, ctx.CancellationToken))
            {
                var location = At(parsed, d.SpanId);
                var related = d.RelatedSpanIds.Select(id => At(parsed, id)).Where(l => l != Location.None).ToArray();
                var properties = ImmutableDictionary<string, string?>.Empty;
                var fix = d.Fix.ToArray();
                for (int i = 0; i + 1 < fix.Length; i += 2) properties = properties.SetItem(fix[i], fix[i + 1]);
                ctx.ReportDiagnostic(Diagnostic.Create(Descriptors.Get(d.Id), location, related, properties, d.Args.ToArray()));
            }
        }
        catch (OperationCanceledException)
        {
            throw;
        }
        catch (Exception ex)
        {
            ctx.ReportDiagnostic(Diagnostic.Create(Descriptors.InternalError, type.Locations.FirstOrDefault(), type.Name, ex.GetType().Name + ": " + ex.Message));
        }
    }

    private static Location At(ParseResult parsed, int spanId)
        => spanId >= 0 && spanId < parsed.Spans.Count ? parsed.Spans[spanId] : Location.None;
}
