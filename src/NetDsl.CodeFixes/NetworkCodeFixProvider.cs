using System.Collections.Immutable;
using System.Composition;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CodeActions;
using Microsoft.CodeAnalysis.CodeFixes;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace NetDsl.CodeFixes;

/// <summary>
/// Fixes for the common NetDsl errors, from what the analyzer attached to each diagnostic:
/// <list type="bullet">
/// <item>NDSL0101: change a layer's in-features or in-channels (the first constructor argument) to the inferred
/// value, as a product when the size came from flattening (<c>64 * 8 * 8</c>);</item>
/// <item>NDSL0104: insert <c>Flatten(...)</c> where an image batch meets a Linear layer;</item>
/// <item>NDSL0001: make the class partial.</item>
/// </list>
/// </summary>
[ExportCodeFixProvider(LanguageNames.CSharp, Name = nameof(NetworkCodeFixProvider)), Shared]
public sealed class NetworkCodeFixProvider : CodeFixProvider
{
    /// <inheritdoc />
    public override ImmutableArray<string> FixableDiagnosticIds { get; } = ImmutableArray.Create("NDSL0001", "NDSL0101", "NDSL0104");

    /// <inheritdoc />
    public override FixAllProvider? GetFixAllProvider() => null;

    /// <inheritdoc />
    public override async Task RegisterCodeFixesAsync(CodeFixContext context)
    {
        var root = await context.Document.GetSyntaxRootAsync(context.CancellationToken).ConfigureAwait(false);
        if (root is null) return;
        foreach (var diagnostic in context.Diagnostics)
        {
            var node = root.FindNode(diagnostic.Location.SourceSpan, getInnermostNodeForTie: true);
            var p = diagnostic.Properties;
            switch (diagnostic.Id)
            {
                case "NDSL0001":
                    if (node.FirstAncestorOrSelf<ClassDeclarationSyntax>() is { } cls)
                        context.RegisterCodeFix(CodeAction.Create($"Make '{cls.Identifier.Text}' partial",
                            ct => MakePartial(context.Document, root, cls), "NDSL0001"), diagnostic);
                    break;
                case "NDSL0101" when p.TryGetValue("fix", out var kind) && kind == "argument"
                                     && p.TryGetValue("layer", out var layer) && p.TryGetValue("argument", out var argument) && p.TryGetValue("value", out var value):
                    context.RegisterCodeFix(CodeAction.Create($"Change {layer}'s {argument} to {(p.TryGetValue("product", out var product) && product is not null ? product : value)}",
                        ct => ChangeArgument(context.Document, layer!, argument!, p.TryGetValue("product", out var pr) && pr is not null ? pr : value!, ct), "NDSL0101"), diagnostic);
                    break;
                case "NDSL0104" when p.TryGetValue("fix", out var flatten) && flatten == "flatten" && p.TryGetValue("layer", out var target):
                    if (node.FirstAncestorOrSelf<InvocationExpressionSyntax>() is { ArgumentList.Arguments.Count: 1 } apply)
                        context.RegisterCodeFix(CodeAction.Create($"Insert Flatten before {target}",
                            ct => InsertFlatten(context.Document, root, apply), "NDSL0104"), diagnostic);
                    break;
            }
        }
    }

    private static Task<Document> MakePartial(Document document, SyntaxNode root, ClassDeclarationSyntax cls)
    {
        var partial = SyntaxFactory.Token(SyntaxKind.PartialKeyword).WithTrailingTrivia(SyntaxFactory.Space);
        ClassDeclarationSyntax updated;
        if (cls.Modifiers.Count == 0)
            updated = cls.WithModifiers(SyntaxFactory.TokenList(partial.WithLeadingTrivia(cls.Keyword.LeadingTrivia)))
                .WithKeyword(cls.Keyword.WithLeadingTrivia());
        else
            updated = cls.WithModifiers(cls.Modifiers.Add(partial));
        return Task.FromResult(document.WithSyntaxRoot(root.ReplaceNode(cls, updated)));
    }

    private static Task<Document> InsertFlatten(Document document, SyntaxNode root, InvocationExpressionSyntax apply)
    {
        var argument = apply.ArgumentList.Arguments[0];
        var flattened = SyntaxFactory.InvocationExpression(SyntaxFactory.IdentifierName("Flatten"),
            SyntaxFactory.ArgumentList(SyntaxFactory.SingletonSeparatedList(SyntaxFactory.Argument(argument.Expression.WithoutTrivia()))));
        var updated = argument.WithExpression(flattened.WithTriviaFrom(argument.Expression));
        return Task.FromResult(document.WithSyntaxRoot(root.ReplaceNode(argument, updated)));
    }

    /// <summary>Rewrites the layer field's constructor argument, in whichever file of the project declares it.</summary>
    private static async Task<Solution> ChangeArgument(Document document, string layer, string argument, string value, CancellationToken ct)
    {
        foreach (var candidate in new[] { document }.Concat(document.Project.Documents.Where(d => d.Id != document.Id)))
        {
            var root = await candidate.GetSyntaxRootAsync(ct).ConfigureAwait(false);
            var variable = root?.DescendantNodes().OfType<VariableDeclaratorSyntax>()
                .FirstOrDefault(v => v.Identifier.Text == layer && v.Parent?.Parent is FieldDeclarationSyntax);
            var arguments = variable?.Initializer?.Value switch
            {
                ImplicitObjectCreationExpressionSyntax i => i.ArgumentList,
                ObjectCreationExpressionSyntax o => o.ArgumentList,
                _ => null,
            };
            if (root is null || arguments is null || arguments.Arguments.Count == 0) continue;
            // The in-size is every layer's first parameter: the argument named so, else the first positional one.
            var target = arguments.Arguments.FirstOrDefault(a => a.NameColon?.Name.Identifier.Text == argument)
                         ?? arguments.Arguments.FirstOrDefault(a => a.NameColon is null);
            if (target is null) continue;
            var expression = SyntaxFactory.ParseExpression(value).WithTriviaFrom(target.Expression);
            return document.Project.Solution.WithDocumentSyntaxRoot(candidate.Id, root.ReplaceNode(target, target.WithExpression(expression)));
        }
        return document.Project.Solution;
    }
}
