using NetDsl.Generator.Model;

namespace NetDsl.Generator.Diagnostics;

/// <summary>
/// A diagnostic as plain data: its id, where it points (a span id), its message arguments, and further
/// related spans. The analyzer turns it into a Roslyn <c>Diagnostic</c> with real, suppressible locations.
/// </summary>
internal sealed record DiagnosticInfo(string Id, int SpanId, EquatableArray<string> Args, EquatableArray<int> RelatedSpanIds)
{
    /// <summary>What a code fix needs, as alternating keys and values (the Roslyn diagnostic's properties).</summary>
    public EquatableArray<string> Fix { get; init; } = EquatableArray<string>.Empty;

    /// <summary>Attaches code-fix data: keys and values alternating.</summary>
    public DiagnosticInfo WithFix(params string[] keysAndValues) => this with { Fix = new EquatableArray<string>(keysAndValues) };

    public static DiagnosticInfo Create(string id, int spanId, params string[] args)
        => new(id, spanId, new EquatableArray<string>(args), EquatableArray<int>.Empty);

    public DiagnosticInfo WithRelated(params int[] spanIds) => this with { RelatedSpanIds = new EquatableArray<int>(spanIds) };

    public bool IsError => Descriptors.IsError(Id);
}
