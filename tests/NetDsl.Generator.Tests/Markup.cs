using System.Collections.Generic;
using System.Linq;
using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Text;
using Xunit;

namespace NetDsl.Generator.Tests;

/// <summary>
/// Diagnostic markup in the style of Roslyn's analyzer tests: <c>{|NDSL0101:fc1.Apply(x)|}</c> marks the exact
/// span where a diagnostic with that id must be reported.
/// </summary>
public static class Markup
{
    private static readonly Regex Tag = new(@"\{\|(?<id>NDSL\d{4}):(?<text>.*?)\|\}", RegexOptions.Singleline);

    public sealed record Expected(string Id, TextSpan Span);

    public static (string Source, List<Expected> Expected) Parse(string markup)
    {
        var expected = new List<Expected>();
        string source = markup;
        while (Tag.Match(source) is { Success: true } m)
        {
            string text = m.Groups["text"].Value;
            expected.Add(new Expected(m.Groups["id"].Value, new TextSpan(m.Index, text.Length)));
            source = source.Substring(0, m.Index) + text + source.Substring(m.Index + m.Length);
        }
        return (source, expected);
    }

    /// <summary>
    /// Compiles <paramref name="markup"/> and asserts that the NDSL diagnostics are exactly the marked ones, at
    /// the marked spans (so at the right line and column). Returns them for message checks.
    /// </summary>
    public static List<Diagnostic> Verify(string markup, params string[] otherSources)
    {
        var (source, expected) = Parse(markup);
        var result = Harness.Run(new[] { source }.Concat(otherSources).ToArray());
        var actual = result.Ndsl.Where(d => d.Location.SourceTree?.FilePath == "/src/File0.cs" || d.Location == Location.None).ToList();
        string Describe(IEnumerable<Diagnostic> ds) => string.Join("\n", ds.Select(d => $"{d.Id} at {d.Location.SourceSpan} '{(d.Location.IsInSource ? source.Substring(d.Location.SourceSpan.Start, d.Location.SourceSpan.Length) : "")}': {d.GetMessage()}"));
        Assert.True(expected.Count == actual.Count && expected.All(e => actual.Any(a => a.Id == e.Id && a.Location.SourceSpan == e.Span)),
            $"Expected:\n{string.Join("\n", expected.Select(e => $"{e.Id} at {e.Span} '{source.Substring(e.Span.Start, e.Span.Length)}'"))}\nActual:\n{Describe(actual)}");
        return actual;
    }
}
