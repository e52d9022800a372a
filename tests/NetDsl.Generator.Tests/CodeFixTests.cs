using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CodeActions;
using Microsoft.CodeAnalysis.CodeFixes;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Text;
using NetDsl.CodeFixes;
using NetDsl.Generator.Diagnostics;
using Xunit;

namespace NetDsl.Generator.Tests;

/// <summary>
/// The IDE code fixes, applied as an IDE applies them (an AdhocWorkspace, the analyzer's diagnostics, the
/// provider's code action): the fixed project must compile with zero diagnostics, generator included.
/// </summary>
public class CodeFixTests
{
    private const string Usings = "using NetDsl;\n";

    /// <summary>Applies the one fix offered for <paramref name="id"/>; returns the title and every document's new text.</summary>
    private static async Task<(string Title, string[] Sources)> Fix(string id, params string[] sources)
    {
        using var workspace = new AdhocWorkspace();
        var project = workspace.AddProject(ProjectInfo.Create(ProjectId.CreateNewId(), VersionStamp.Default, "User", "User", LanguageNames.CSharp,
            compilationOptions: new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable),
            parseOptions: Harness.ParseOptions, metadataReferences: Harness.Compilation(Array.Empty<string>()).References));
        var documents = sources.Select((s, i) => workspace.AddDocument(DocumentInfo.Create(DocumentId.CreateNewId(project.Id), $"File{i}.cs",
            loader: TextLoader.From(TextAndVersion.Create(SourceText.From(s), VersionStamp.Default)), filePath: $"/src/File{i}.cs"))).ToList();
        var compilation = (await workspace.CurrentSolution.GetProject(project.Id)!.GetCompilationAsync())!;
        var diagnostics = (await compilation.WithAnalyzers(ImmutableArray.Create<DiagnosticAnalyzer>(new NetworkAnalyzer())).GetAnalyzerDiagnosticsAsync())
            .Where(d => d.Id == id).ToList();
        var diagnostic = Assert.Single(diagnostics);
        var document = workspace.CurrentSolution.GetDocument(documents.Single(d => d.FilePath == diagnostic.Location.SourceTree!.FilePath).Id)!;
        var actions = new List<CodeAction>();
        var context = new CodeFixContext(document, diagnostic, (action, _) => actions.Add(action), CancellationToken.None);
        await new NetworkCodeFixProvider().RegisterCodeFixesAsync(context);
        var fix = Assert.Single(actions);
        var operation = (await fix.GetOperationsAsync(CancellationToken.None)).OfType<ApplyChangesOperation>().Single();
        var texts = new List<string>();
        foreach (var d in documents) texts.Add((await operation.ChangedSolution.GetDocument(d.Id)!.GetTextAsync()).ToString());
        return (fix.Title, texts.ToArray());
    }

    private static void AssertClean(string[] sources)
    {
        var result = Harness.Run(sources);
        Assert.True(!result.Diagnostics.Any(d => d.Severity >= DiagnosticSeverity.Warning), result.Describe() + "\n" + string.Join("\n----\n", sources));
    }

    [Fact]
    public async Task NDSL0101_ChangesTheSeedCnnsFc1ToTheFlattenedProduct()
    {
        var (title, fixedSources) = await Fix("NDSL0101", Usings + """
            [Network]
            public partial class SeedCnn
            {
                readonly Conv2d conv1 = new(3, 32, kernel: 3, padding: 1);
                readonly Conv2d conv2 = new(32, 64, kernel: 3, padding: 1);
                readonly Linear fc1 = new(64 * 6 * 6, 128);
                readonly Linear fc2 = new(128, 10);

                Tensor Forward([Shape(3, 32, 32)] Tensor x)
                {
                    x = MaxPool2d(Relu(conv1.Apply(x)), 2);
                    x = MaxPool2d(Relu(conv2.Apply(x)), 2);
                    x = Relu(fc1.Apply(Flatten(x)));
                    return fc2.Apply(x);
                }
            }
            """);
        Assert.Equal("Change fc1's inFeatures to 64 * 8 * 8", title);
        Assert.Contains("readonly Linear fc1 = new(64 * 8 * 8, 128);", fixedSources[0]);
        AssertClean(fixedSources);
    }

    [Fact]
    public async Task NDSL0101_ChangesConvChannelsEvenWhenNamedAndInAnotherFile()
    {
        var (title, fixedSources) = await Fix("NDSL0101",
            Usings + """
            [Network]
            public partial class Net
            {
                readonly Conv2d a = new(1, 8, kernel: 3);
                Tensor Forward([Shape(1, 10, 10)] Tensor x) => Flatten(b.Apply(a.Apply(x)));
            }
            """,
            Usings + "public partial class Net { readonly Conv2d b = new(kernel: 3, outChannels: 4, inChannels: 16); }");
        Assert.Equal("Change b's inChannels to 8", title);
        Assert.Contains("new(kernel: 3, outChannels: 4, inChannels: 8)", fixedSources[1]);
        AssertClean(fixedSources);
    }

    [Fact]
    public async Task NDSL0101_FixesRecurrentAndNormalizationLayersToo()
    {
        var (title, fixedSources) = await Fix("NDSL0101", Usings + """
            [Network]
            public partial class Net
            {
                readonly Lstm lstm = new(32, 16);
                readonly Linear fc = new(16, 10);
                Tensor Forward([Shape(28, 28)] Tensor x) => fc.Apply(Select(lstm.Apply(x), dim: 1, index: -1));
            }
            """);
        Assert.Equal("Change lstm's inputSize to 28", title);
        AssertClean(fixedSources);
    }

    [Fact]
    public async Task NDSL0104_InsertsFlattenBeforeTheLinearLayer()
    {
        var (title, fixedSources) = await Fix("NDSL0104", Usings + """
            [Network]
            public partial class Net
            {
                readonly Conv2d conv = new(1, 4, kernel: 3, padding: 1);
                readonly Linear fc = new(4 * 8 * 8, 10);
                Tensor Forward([Shape(1, 8, 8)] Tensor x) => fc.Apply(Relu(conv.Apply(x)));
            }
            """);
        Assert.Equal("Insert Flatten before fc", title);
        Assert.Contains("fc.Apply(Flatten(Relu(conv.Apply(x))))", fixedSources[0]);
        AssertClean(fixedSources);
    }

    [Fact]
    public async Task NDSL0001_MakesTheClassPartial()
    {
        var (title, fixedSources) = await Fix("NDSL0001", Usings + """
            [Network]
            public sealed class Net
            {
                readonly Linear fc = new(4, 2);
                Tensor Forward([Shape(4)] Tensor x) => fc.Apply(x);
            }
            """);
        Assert.Equal("Make 'Net' partial", title);
        Assert.Contains("public sealed partial class Net", fixedSources[0]);
        AssertClean(fixedSources);
    }
}
