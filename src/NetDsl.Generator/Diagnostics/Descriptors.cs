using System.Collections.Generic;
using Microsoft.CodeAnalysis;

namespace NetDsl.Generator.Diagnostics;

/// <summary>
/// Every NetDsl diagnostic, in one place. Ids come in bands:
/// NDSL0001–0099 misuse of the DSL, NDSL0100–0199 shapes, NDSL0200–0299 autodiff,
/// NDSL0300–0399 code-generation limits, NDSL0900 internal errors. Each id has a page under docs/diagnostics.
/// </summary>
internal static class Descriptors
{
    private const string DslCategory = "NetDsl.Usage";
    private const string ShapeCategory = "NetDsl.Shapes";
    private const string LimitsCategory = "NetDsl.Limits";
    private const string HelpBase = "https://github.com/netdsl/netdsl/blob/main/docs/diagnostics/";

    public static readonly DiagnosticDescriptor NotPartial = Error("NDSL0001", DslCategory,
        "A [Network] class must be partial",
        "'{0}' must be declared partial so that NetDsl can generate the rest of it");

    public static readonly DiagnosticDescriptor MissingForward = Error("NDSL0002", DslCategory,
        "A [Network] class needs a Forward method",
        "'{0}' has no Forward method; declare 'Tensor Forward([Shape(...)] Tensor x)'");

    public static readonly DiagnosticDescriptor DuplicateForward = Error("NDSL0003", DslCategory,
        "A [Network] class has one Forward method",
        "'{0}' declares Forward more than once; a network has exactly one Forward definition");

    public static readonly DiagnosticDescriptor MissingShape = Error("NDSL0004", DslCategory,
        "A Forward input needs a shape",
        "Forward input '{0}' has no shape; declare its per-sample shape, e.g. [Shape(3, 32, 32)] Tensor {0}");

    public static readonly DiagnosticDescriptor NonConstantArgument = Error("NDSL0005", DslCategory,
        "Layer and operation arguments must be compile-time constants",
        "Argument '{0}' of {1} must be a compile-time constant (a literal or a const field), but '{2}' is not");

    public static readonly DiagnosticDescriptor UnsupportedStatement = Error("NDSL0006", DslCategory,
        "Unsupported statement in Forward",
        "Forward may only assign tensors ('x = ...;', 'var h = ...;') and return one; '{0}' is not supported");

    public static readonly DiagnosticDescriptor UnsupportedExpression = Error("NDSL0007", DslCategory,
        "Unsupported expression in Forward",
        "'{0}' is not a NetDsl tensor operation; {1}");

    public static readonly DiagnosticDescriptor UnusedLayer = Warning("NDSL0008", DslCategory,
        "Layer declared but never used",
        "Layer '{0}' is declared but never applied in Forward; its parameters are kept (as in PyTorch's state_dict) but never trained");

    public static readonly DiagnosticDescriptor UnsupportedClass = Error("NDSL0009", DslCategory,
        "Unsupported [Network] class",
        "'{0}' cannot be a network: {1}");

    public static readonly DiagnosticDescriptor InvalidArgument = Error("NDSL0010", DslCategory,
        "Invalid layer or operation argument",
        "{0} {1} is {2}; expected {3}");

    public static readonly DiagnosticDescriptor InputCount = Error("NDSL0011", DslCategory,
        "Forward takes one tensor input",
        "Forward of '{0}' {1}; it must take exactly one Tensor input (several inputs are not supported yet)");

    public static readonly DiagnosticDescriptor LayerWithoutInitializer = Error("NDSL0012", DslCategory,
        "A layer field needs an initializer",
        "Layer field '{0}' must be initialized with constant arguments, e.g. '= new(...)'");

    public static readonly DiagnosticDescriptor UndefinedTensor = Error("NDSL0013", DslCategory,
        "Unknown tensor",
        "'{0}' is not a tensor defined in Forward; tensors are Forward's input and the variables assigned before this point");

    public static readonly DiagnosticDescriptor FeatureMismatch = Error("NDSL0101", ShapeCategory,
        "Feature or channel count mismatch",
        "{0} expects {1} but receives {2}: {3}");

    public static readonly DiagnosticDescriptor ElementwiseMismatch = Error("NDSL0102", ShapeCategory,
        "Elementwise shape mismatch",
        "{0} needs operands of the same shape but receives {1} and {2}: the left comes from {3}; the right from {4}");

    public static readonly DiagnosticDescriptor SpatialTooSmall = Error("NDSL0103", ShapeCategory,
        "Spatial size becomes zero or negative",
        "{0} with kernel {1}, stride {2} and padding {3} on input {4} gives an output of {5}; the input is {6} but must be at least {7}: {8}");

    public static readonly DiagnosticDescriptor RankMismatch = Error("NDSL0104", ShapeCategory,
        "Tensor rank mismatch",
        "{0} expects {1} but receives {2}{3}: {4}");

    public static readonly DiagnosticDescriptor ReshapeMismatch = Error("NDSL0105", ShapeCategory,
        "Reshape changes the number of elements",
        "Reshape to {0} needs {1} elements per sample but the input {2} has {3}: {4}");

    public static readonly DiagnosticDescriptor ConcatMismatch = Error("NDSL0106", ShapeCategory,
        "Concatenated tensors do not fit",
        "Concat along dim {0} needs equal sizes in every other dimension but receives {1}");

    public static readonly DiagnosticDescriptor DimOutOfRange = Error("NDSL0107", ShapeCategory,
        "Dimension out of range",
        "{0} dim {1} is out of range for {2}: expected {3}");

    public static readonly DiagnosticDescriptor IndexOutOfRange = Error("NDSL0109", ShapeCategory,
        "Index out of range",
        "{0} {1} is out of range along dim {2} of {3}: expected {4}; the tensor comes from {5}");

    public static readonly DiagnosticDescriptor SizeOverflow = Error("NDSL0108", LimitsCategory,
        "Tensor too large",
        "{0} has {1} elements, more than the {2} a NetDsl buffer can hold");

    public static readonly DiagnosticDescriptor InternalError = Error("NDSL0900", LimitsCategory,
        "NetDsl internal error",
        "NetDsl could not compile '{0}': {1}. This is a bug in NetDsl; please report it with the network's source.");

    private static readonly Dictionary<string, DiagnosticDescriptor> ById = new();

    static Descriptors()
    {
        foreach (var d in All) ById[d.Id] = d;
    }

    public static IReadOnlyList<DiagnosticDescriptor> All { get; } = new[]
    {
        NotPartial, MissingForward, DuplicateForward, MissingShape, NonConstantArgument, UnsupportedStatement,
        UnsupportedExpression, UnusedLayer, UnsupportedClass, InvalidArgument, InputCount, LayerWithoutInitializer,
        UndefinedTensor, FeatureMismatch, ElementwiseMismatch, SpatialTooSmall, RankMismatch, ReshapeMismatch,
        ConcatMismatch, DimOutOfRange, IndexOutOfRange, SizeOverflow, InternalError,
    };

    public static DiagnosticDescriptor Get(string id) => ById[id];

    public static bool IsError(string id) => ById.TryGetValue(id, out var d) && d.DefaultSeverity == DiagnosticSeverity.Error;

    private static DiagnosticDescriptor Error(string id, string category, string title, string message)
        => new(id, title, message, category, DiagnosticSeverity.Error, isEnabledByDefault: true, helpLinkUri: HelpBase + id + ".md");

    private static DiagnosticDescriptor Warning(string id, string category, string title, string message)
        => new(id, title, message, category, DiagnosticSeverity.Warning, isEnabledByDefault: true, helpLinkUri: HelpBase + id + ".md");
}
