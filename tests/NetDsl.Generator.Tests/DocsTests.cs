using System;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis;
using NetDsl.Generator.Diagnostics;
using Xunit;

namespace NetDsl.Generator.Tests;

/// <summary>
/// Every diagnostic has a help page (docs/diagnostics/NDSLxxxx.md) that its help link points to, is listed in
/// AnalyzerReleases.Shipped.md, and the page's invalid example reports that id while its fixed example compiles
/// with zero diagnostics.
/// </summary>
public class DocsTests
{
    private static string Docs => Path.Combine(AppContext.BaseDirectory, "Docs");

    public static TheoryData<string> Ids() => new(Descriptors.All.Select(d => d.Id));

    private static string Block(string page, string heading)
    {
        int at = page.IndexOf("## " + heading, StringComparison.Ordinal);
        Assert.True(at >= 0, $"no '## {heading}' section");
        var match = Regex.Match(page.Substring(at), "```csharp\n(.*?)```", RegexOptions.Singleline);
        Assert.True(match.Success, $"no C# example under '## {heading}'");
        return match.Groups[1].Value;
    }

    [Theory]
    [MemberData(nameof(Ids))]
    public void EveryDiagnosticHasAPageWithExamplesThatBehave(string id)
    {
        var descriptor = Descriptors.Get(id);
        Assert.EndsWith("/docs/diagnostics/" + id + ".md", descriptor.HelpLinkUri, StringComparison.Ordinal);
        string path = Path.Combine(Docs, id + ".md");
        Assert.True(File.Exists(path), "missing page " + path);
        string page = File.ReadAllText(path);
        Assert.StartsWith($"# {id}: {descriptor.Title}", page, StringComparison.Ordinal);
        if (id == "NDSL0900") return; // a NetDsl bug has no example

        var invalid = Harness.Run(Block(page, "Invalid"));
        Assert.True(invalid.Diagnostics.Any(d => d.Id == id), $"the invalid example of {id} does not report it:\n{invalid.Describe()}");
        var fixedResult = Harness.Run(Block(page, "Fixed"));
        Assert.True(!fixedResult.Diagnostics.Any(d => d.Severity >= DiagnosticSeverity.Warning), $"the fixed example of {id} is not clean:\n{fixedResult.Describe()}");
    }

    [Fact]
    public void EveryDiagnosticIsListedAsShipped()
    {
        string shipped = File.ReadAllText(Path.Combine(Docs, "AnalyzerReleases.Shipped.md"));
        foreach (var d in Descriptors.All)
            Assert.Matches(new Regex("^" + d.Id + @"\s*\|\s*" + Regex.Escape(d.Category) + @"\s*\|\s*" + d.DefaultSeverity + @"\s*\|", RegexOptions.Multiline), shipped);
    }
}
