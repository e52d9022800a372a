using System.Collections.Generic;

namespace NetDsl.Generator.Model;

internal enum OpParamKind
{
    Tensor,
    TensorArray,
    Int,
    NullableInt,
    Float,
    IntParams,
}

/// <summary>One parameter of a DSL operation; <see cref="Required"/> parameters have no default.</summary>
internal sealed record OpParam(string Name, OpParamKind Kind, bool Required = true, double Default = 0, bool DefaultIsNull = false)
{
    public static OpParam Optional(string name, OpParamKind kind, double value) => new(name, kind, Required: false, Default: value);

    public static OpParam OptionalNull(string name, OpParamKind kind) => new(name, kind, Required: false, DefaultIsNull: true);
}

/// <summary>The signature of a symbolic operation callable in Forward (declared in NetDsl.NetworkModule).</summary>
internal sealed record OpSignature(string Name, OpParam[] Params);

/// <summary>
/// The operations Forward may call, with their parameters as NetDsl.NetworkModule declares them. Parsing maps
/// call arguments through this table by syntax, because the generator runs before its own output (which
/// brings NetworkModule into scope as the base class) exists.
/// </summary>
internal static class OpCatalog
{
    private static readonly OpParam X = new("x", OpParamKind.Tensor);

    private static readonly Dictionary<string, OpSignature> Ops = new()
    {
        ["Relu"] = new("Relu", new[] { X }),
        ["LeakyRelu"] = new("LeakyRelu", new[] { X, OpParam.Optional("negativeSlope", OpParamKind.Float, 0.01) }),
        ["Sigmoid"] = new("Sigmoid", new[] { X }),
        ["Tanh"] = new("Tanh", new[] { X }),
        ["Gelu"] = new("Gelu", new[] { X }),
        ["Softmax"] = new("Softmax", new[] { X, OpParam.Optional("dim", OpParamKind.Int, -1) }),
        ["LogSoftmax"] = new("LogSoftmax", new[] { X, OpParam.Optional("dim", OpParamKind.Int, -1) }),
        ["MaxPool2d"] = new("MaxPool2d", new[] { X, new OpParam("kernel", OpParamKind.Int), OpParam.OptionalNull("stride", OpParamKind.NullableInt), OpParam.Optional("padding", OpParamKind.Int, 0) }),
        ["AvgPool2d"] = new("AvgPool2d", new[] { X, new OpParam("kernel", OpParamKind.Int), OpParam.OptionalNull("stride", OpParamKind.NullableInt), OpParam.Optional("padding", OpParamKind.Int, 0) }),
        ["Flatten"] = new("Flatten", new[] { X }),
        ["Reshape"] = new("Reshape", new[] { X, new OpParam("shape", OpParamKind.IntParams) }),
        ["Dropout"] = new("Dropout", new[] { X, OpParam.Optional("p", OpParamKind.Float, 0.5) }),
        ["Add"] = new("Add", new[] { new OpParam("a", OpParamKind.Tensor), new OpParam("b", OpParamKind.Tensor) }),
        ["Multiply"] = new("Multiply", new[] { new OpParam("a", OpParamKind.Tensor), new OpParam("b", OpParamKind.Tensor) }),
        ["Concat"] = new("Concat", new[] { new OpParam("tensors", OpParamKind.TensorArray), OpParam.Optional("dim", OpParamKind.Int, 1) }),
        ["Subtract"] = new("Subtract", new[] { new OpParam("a", OpParamKind.Tensor), new OpParam("b", OpParamKind.Tensor) }),
        ["Upsample"] = new("Upsample", new[] { X, new OpParam("scale", OpParamKind.Int) }),
        ["Slice"] = new("Slice", new[] { X, new OpParam("dim", OpParamKind.Int), new OpParam("start", OpParamKind.Int), new OpParam("length", OpParamKind.Int) }),
        ["Select"] = new("Select", new[] { X, new OpParam("dim", OpParamKind.Int), new OpParam("index", OpParamKind.Int) }),
    };

    /// <summary>The operation names, sorted, for messages.</summary>
    public static IReadOnlyList<string> Names { get; } = SortedNames();

    public static bool TryGet(string name, out OpSignature signature) => Ops.TryGetValue(name, out signature!);

    /// <summary>The layer types this generator compiles (NetDsl's Layer subclasses).</summary>
    public static IReadOnlyCollection<string> Layers { get; } = new[]
    {
        "Linear", "Conv2d", "ConvTranspose2d", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "Embedding", "Rnn", "Gru", "Lstm",
    };

    private static string[] SortedNames()
    {
        var names = new List<string>(Ops.Keys);
        names.Sort(System.StringComparer.Ordinal);
        return names.ToArray();
    }
}
