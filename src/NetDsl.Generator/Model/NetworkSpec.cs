using NetDsl.Generator.Diagnostics;

namespace NetDsl.Generator.Model;

// The plain, equatable model of a [Network] class: what Parsing produces and every later phase consumes.
// No ISymbol, SyntaxNode or Location is kept. Source positions are referred to by SpanId, an index into the
// span table that only the analyzer holds (see Parsing/ParseResult), so an edit elsewhere in a file that
// moves the network does not change its spec.

/// <summary>A [Network] class.</summary>
internal sealed record NetworkSpec(
    string Namespace,
    string Name,
    string Accessibility,
    string ElementType,
    EquatableArray<LayerSpec> Layers,
    EquatableArray<InputSpec> Inputs,
    EquatableArray<StatementSpec> Body,
    EquatableArray<DiagnosticInfo> Diagnostics,
    bool CanEmit,
    int GradientBucketBytes = NetworkSpec.DefaultGradientBucketBytes)
{
    /// <summary>The largest gradient bucket for data-parallel training unless [Network(GradientBucketBytes = ...)] says otherwise: 1 MiB.</summary>
    public const int DefaultGradientBucketBytes = 1 << 20;

    /// <summary>The fully qualified name, for hint names and messages.</summary>
    public string FullName => Namespace.Length == 0 ? Name : Namespace + "." + Name;
}

/// <summary>A layer field: <c>readonly Conv2d conv1 = new(3, 32, kernel: 3)</c>.</summary>
internal sealed record LayerSpec(string Name, string Kind, EquatableArray<ArgSpec> Args, int SpanId);

/// <summary>A constant argument, by parameter name. <see cref="IsNull"/> marks an explicit or default <c>null</c>.</summary>
internal sealed record ArgSpec(string Name, double Value, bool IsNull, int SpanId);

/// <summary>A Forward input with its declared per-sample shape.</summary>
internal sealed record InputSpec(string Name, EquatableArray<int> Shape, int SpanId);

internal enum StatementKind
{
    Assign,
    Return,
}

/// <summary>An assignment to a tensor variable, or the return.</summary>
internal sealed record StatementSpec(StatementKind Kind, string Target, ExprSpec Value, int SpanId);

internal enum ExprKind
{
    Variable,
    Op,
    LayerApply,
    Array,
}

/// <summary>
/// A tensor expression in Forward: a variable, a call of an operation (<see cref="Name"/> is the operation),
/// a layer's Apply (<see cref="Name"/> is the layer field), or an array of tensors (for Concat).
/// </summary>
internal sealed record ExprSpec(ExprKind Kind, string Name, EquatableArray<ExprSpec> Args, EquatableArray<ArgSpec> Scalars, int SpanId);
