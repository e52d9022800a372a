using System;
using System.Collections.Generic;
using System.Linq;
using NetDsl.Generator.Diagnostics;
using NetDsl.Generator.Model;
using NetDsl.Generator.Shapes;

namespace NetDsl.Generator.Graph;

/// <summary>
/// Lowers a <see cref="NetworkSpec"/> onto the primitive graph, inferring every shape on the way. Errors do
/// not stop lowering: a failed expression yields no node and its dependents stay silent, so one mistake gives
/// one diagnostic.
/// </summary>
internal sealed class Lowering
{
    private const int Poison = -1;

    private readonly NetworkSpec _spec;
    private readonly List<Node> _nodes = new();
    private readonly List<ParamTensor> _params = new();
    private readonly List<DiagnosticInfo> _diagnostics = new();
    private readonly Dictionary<string, LayerInfo> _layers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _env = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _nameCounts = new(StringComparer.Ordinal);
    private readonly HashSet<string> _usedNames = new(StringComparer.Ordinal);
    private readonly ShapeRules _rules;

    private Lowering(NetworkSpec spec)
    {
        _spec = spec;
        _rules = new ShapeRules(_nodes);
    }

    /// <summary>The graph (null when the network has errors) and every diagnostic, parse diagnostics first.</summary>
    public static (NetworkGraph? Graph, List<DiagnosticInfo> Diagnostics) Lower(NetworkSpec spec)
    {
        var lowering = new Lowering(spec);
        lowering._diagnostics.AddRange(spec.Diagnostics);
        var graph = lowering.Run();
        bool failed = lowering._diagnostics.Any(d => d.IsError);
        return (failed ? null : graph, lowering._diagnostics);
    }

    private NetworkGraph? Run()
    {
        DeclareLayers();
        if (_spec.Inputs.Count != 1) return null;
        var input = _spec.Inputs[0];
        int inputNode = Add(new Node(0, OpKind.Input, Array.Empty<int>(), input.Shape.AsSpan().ToArray(), input.Name, "", input.SpanId), input.Name);
        if (!CheckSize(inputNode, input.SpanId)) return null;
        _env[input.Name] = inputNode;

        int output = Poison;
        bool returned = false;
        foreach (var statement in _spec.Body)
        {
            int value = Lower(statement.Value);
            if (statement.Kind == StatementKind.Return)
            {
                output = value;
                returned = true;
                break;
            }
            _env[statement.Target] = value;
        }

        foreach (var layer in _layers.Values)
            if (!layer.Used)
                _diagnostics.Add(DiagnosticInfo.Create(Descriptors.UnusedLayer.Id, layer.Spec.SpanId, layer.Spec.Name));

        if (!returned)
        {
            if (!_diagnostics.Any(d => d.IsError))
                _diagnostics.Add(DiagnosticInfo.Create(Descriptors.UnsupportedStatement.Id, 0, "a Forward that does not return a tensor"));
            return null;
        }
        if (output == Poison) return null;

        AssignParameterOffsets();
        return new NetworkGraph(_spec.Name, _spec.ElementType, _nodes, _params, inputNode, output);
    }

    // ---- layers --------------------------------------------------------------------------------------------

    private sealed class LayerInfo
    {
        public LayerInfo(LayerSpec spec) => Spec = spec;

        public LayerSpec Spec { get; }

        public bool Valid { get; set; }

        public bool Used { get; set; }

        public int Weight { get; set; } = -1;

        public int Bias { get; set; } = -1;

        public Dictionary<string, int> Ints { get; } = new(StringComparer.Ordinal);

        public int Applications { get; set; }
    }

    private void DeclareLayers()
    {
        foreach (var layer in _spec.Layers)
        {
            var info = new LayerInfo(layer);
            _layers[layer.Name] = info;
            bool ok = true;
            if (layer.Kind == "Linear")
            {
                ok &= IntArg(info, "inFeatures", 1, "a positive number of features");
                ok &= IntArg(info, "outFeatures", 1, "a positive number of features");
                if (!ok) continue;
                int inF = info.Ints["inFeatures"], outF = info.Ints["outFeatures"];
                info.Weight = NewParam(layer, "weight", new[] { outF, inF }, inF);
                if (Flag(layer, "bias")) info.Bias = NewParam(layer, "bias", new[] { outF }, inF);
            }
            else if (layer.Kind == "Conv2d")
            {
                ok &= IntArg(info, "inChannels", 1, "a positive number of channels");
                ok &= IntArg(info, "outChannels", 1, "a positive number of channels");
                ok &= IntArg(info, "kernel", 1, "a positive kernel size");
                ok &= IntArg(info, "stride", 1, "a positive stride");
                ok &= IntArg(info, "padding", 0, "a padding of zero or more");
                if (!ok) continue;
                int c = info.Ints["inChannels"], o = info.Ints["outChannels"], k = info.Ints["kernel"];
                long fanIn = (long)c * k * k;
                info.Weight = NewParam(layer, "weight", new[] { o, c, k, k }, fanIn);
                if (Flag(layer, "bias")) info.Bias = NewParam(layer, "bias", new[] { o }, fanIn);
            }
            else continue;
            info.Valid = info.Weight >= 0 && (info.Bias >= 0 || !Flag(layer, "bias"));
        }
    }

    private bool IntArg(LayerInfo info, string name, int min, string expected)
    {
        var arg = info.Spec.Args.FirstOrDefault(a => a.Name == name);
        if (arg is null) return false; // the C# compiler reports the missing argument
        if (arg.IsNull || arg.Value != Math.Floor(arg.Value) || arg.Value < min || arg.Value > int.MaxValue)
        {
            _diagnostics.Add(DiagnosticInfo.Create(Descriptors.InvalidArgument.Id, arg.SpanId, info.Spec.Name, name, Number(arg.Value), expected));
            return false;
        }
        info.Ints[name] = (int)arg.Value;
        return true;
    }

    private static bool Flag(LayerSpec layer, string name)
        => layer.Args.FirstOrDefault(a => a.Name == name) is not { } a || a.Value != 0;

    private int NewParam(LayerSpec layer, string kind, int[] shape, long fanIn)
    {
        long size = ShapeMath.Product(shape);
        if (size > ShapeMath.MaxElements)
        {
            _diagnostics.Add(DiagnosticInfo.Create(Descriptors.SizeOverflow.Id, layer.SpanId, layer.Name + "." + kind + " " + ShapeMath.PerSample(shape),
                size == long.MaxValue ? "more than 9.2e18" : Invariant.Grouped(size), Invariant.Grouped(ShapeMath.MaxElements)));
            return -1;
        }
        _params.Add(new ParamTensor(layer.Name + "." + kind, layer.Name, shape, 1.0 / Math.Sqrt(fanIn)));
        return _params.Count - 1;
    }

    private void AssignParameterOffsets()
    {
        long offset = 0;
        foreach (var p in _params)
        {
            p.Offset = (int)Math.Min(offset, int.MaxValue);
            offset += p.Length;
        }
        if (offset > ShapeMath.MaxElements)
            _diagnostics.Add(DiagnosticInfo.Create(Descriptors.SizeOverflow.Id, 0, "The parameter buffer of " + _spec.Name,
                Invariant.Grouped(offset), Invariant.Grouped(ShapeMath.MaxElements)));
    }

    // ---- expressions ---------------------------------------------------------------------------------------

    private int Lower(ExprSpec e)
    {
        switch (e.Kind)
        {
            case ExprKind.Variable:
                if (_env.TryGetValue(e.Name, out int node)) return node;
                _diagnostics.Add(DiagnosticInfo.Create(Descriptors.UndefinedTensor.Id, e.SpanId, e.Name));
                return Poison;
            case ExprKind.LayerApply:
                return LowerLayer(e);
            case ExprKind.Op:
                return LowerOp(e);
            default:
                _diagnostics.Add(DiagnosticInfo.Create(Descriptors.UnsupportedExpression.Id, e.SpanId, "[...]", "an array of tensors is only accepted by Concat"));
                return Poison;
        }
    }

    private int LowerLayer(ExprSpec e)
    {
        int x = Lower(e.Args[0]);
        if (!_layers.TryGetValue(e.Name, out var layer)) return Poison;
        layer.Used = true;
        if (x == Poison || !layer.Valid) return Poison;
        layer.Applications++;
        string label = layer.Spec.Name + (layer.Applications > 1 ? " (again)" : "");
        if (layer.Spec.Kind == "Linear")
        {
            var shape = _rules.Linear(layer.Spec.Name, layer.Ints["inFeatures"], layer.Ints["outFeatures"], x, e.SpanId);
            if (shape is null) return Fail(layer.Spec.SpanId);
            int mm = Add(new Node(0, OpKind.MatMul, new[] { x }, shape, label, layer.Spec.Name, e.SpanId) { Param = layer.Weight }, layer.Spec.Name);
            if (!CheckSize(mm, e.SpanId)) return Poison;
            if (layer.Bias < 0) return mm;
            return Add(new Node(0, OpKind.BiasAdd, new[] { mm }, shape, "", layer.Spec.Name, e.SpanId) { Param = layer.Bias, Axis = shape.Length - 1 }, layer.Spec.Name + "_bias");
        }
        else
        {
            int k = layer.Ints["kernel"], s = layer.Ints["stride"], p = layer.Ints["padding"];
            var shape = _rules.Conv2d(layer.Spec.Name, layer.Ints["inChannels"], layer.Ints["outChannels"], k, s, p, x, e.SpanId);
            if (shape is null) return Fail(layer.Spec.SpanId);
            int conv = Add(new Node(0, OpKind.Conv2d, new[] { x }, shape, label, layer.Spec.Name, e.SpanId) { Param = layer.Weight, Kernel = k, Stride = s, Padding = p }, layer.Spec.Name);
            if (!CheckSize(conv, e.SpanId)) return Poison;
            if (layer.Bias < 0) return conv;
            return Add(new Node(0, OpKind.BiasAdd, new[] { conv }, shape, "", layer.Spec.Name, e.SpanId) { Param = layer.Bias, Axis = 0 }, layer.Spec.Name + "_bias");
        }
    }

    private int LowerOp(ExprSpec e)
    {
        var inputs = new List<int>();
        foreach (var a in e.Args)
        {
            if (a.Kind == ExprKind.Array)
            {
                foreach (var item in a.Args) inputs.Add(Lower(item));
                if (a.Args.Count == 0)
                {
                    _diagnostics.Add(DiagnosticInfo.Create(Descriptors.InvalidArgument.Id, a.SpanId, "Concat", "tensors", "empty", "at least one tensor"));
                    return Poison;
                }
            }
            else inputs.Add(Lower(a));
        }
        if (inputs.Contains(Poison)) return Poison;
        int x = inputs[0];
        int[] xs = _nodes[x].Shape;

        switch (e.Name)
        {
            case "Relu": return Unary(OpKind.Relu, "relu", x, e);
            case "Sigmoid": return Unary(OpKind.Sigmoid, "sigmoid", x, e);
            case "Tanh": return Unary(OpKind.Tanh, "tanh", x, e);
            case "Gelu": return Unary(OpKind.Gelu, "gelu", x, e);
            case "LeakyRelu":
                {
                    var slope = Scalar(e, "negativeSlope");
                    if (double.IsNaN(slope.Value) || double.IsInfinity(slope.Value))
                        return Invalid("LeakyRelu", "negativeSlope", slope, "a finite number");
                    int n = Unary(OpKind.LeakyRelu, "leaky_relu", x, e);
                    _nodes[n].Alpha = slope.Value;
                    return n;
                }
            case "Softmax":
            case "LogSoftmax":
                {
                    string label = e.Name == "Softmax" ? "softmax" : "log_softmax";
                    var dim = Scalar(e, "dim");
                    var axis = _rules.Axis(e.Name, (int)dim.Value, x, dim.SpanId);
                    if (axis is null) return Fail();
                    int n = Add(new Node(0, e.Name == "Softmax" ? OpKind.Softmax : OpKind.LogSoftmax, new[] { x }, xs, label, "", e.SpanId), label);
                    _nodes[n].Axis = axis.Value;
                    return n;
                }
            case "MaxPool2d":
            case "AvgPool2d":
                {
                    var kernel = Scalar(e, "kernel");
                    var strideArg = Scalar(e, "stride");
                    var padding = Scalar(e, "padding");
                    string name = e.Name == "MaxPool2d" ? "max_pool2d" : "avg_pool2d";
                    if (!IsInt(kernel, 1)) return Invalid(e.Name, "kernel", kernel, "a positive kernel size");
                    if (!strideArg.IsNull && !IsInt(strideArg, 1)) return Invalid(e.Name, "stride", strideArg, "a positive stride (or null for the kernel size)");
                    int k = (int)kernel.Value;
                    if (!IsInt(padding, 0) || padding.Value > k / 2)
                        return Invalid(e.Name, "padding", padding, "0 to " + Invariant.Format(k / 2) + " (at most half the kernel, as PyTorch requires)");
                    int s = strideArg.IsNull ? k : (int)strideArg.Value, p = (int)padding.Value;
                    string label = name + "(" + Invariant.Format(k) + (s != k ? ", stride " + Invariant.Format(s) : "") + (p != 0 ? ", padding " + Invariant.Format(p) : "") + ")";
                    var shape = _rules.Pool(label, k, s, p, x, e.SpanId);
                    if (shape is null) return Fail();
                    return Add(new Node(0, e.Name == "MaxPool2d" ? OpKind.MaxPool2d : OpKind.AvgPool2d, new[] { x }, shape, label, "", e.SpanId) { Kernel = k, Stride = s, Padding = p }, name);
                }
            case "Flatten":
                return Add(new Node(0, OpKind.Reshape, new[] { x }, new[] { (int)Math.Min(_nodes[x].Elements, int.MaxValue) }, "flatten", "", e.SpanId), "flatten");
            case "Reshape":
                {
                    var dims = e.Scalars.Where(a => a.Name == "shape").ToList();
                    if (dims.Count == 0)
                    {
                        _diagnostics.Add(DiagnosticInfo.Create(Descriptors.InvalidArgument.Id, e.SpanId, "Reshape", "shape", "empty", "at least one dimension"));
                        return Poison;
                    }
                    foreach (var d in dims)
                        if (!IsInt(d, -1) || d.Value == 0)
                            return Invalid("Reshape", "dimension", d, "a positive size, or -1 once to infer it");
                    if (dims.Count(d => d.Value == -1) > 1)
                        return Invalid("Reshape", "dimension", dims.Last(d => d.Value == -1), "at most one -1");
                    var target = dims.Select(d => (int)d.Value).ToArray();
                    var shape = _rules.Reshape(target, x, e.SpanId, dims[0].SpanId);
                    if (shape is null) return Fail();
                    return Add(new Node(0, OpKind.Reshape, new[] { x }, shape, "reshape" + ShapeMath.PerSample(shape), "", e.SpanId), "reshape");
                }
            case "Dropout":
                {
                    var p = Scalar(e, "p");
                    if (!(p.Value >= 0 && p.Value < 1)) return Invalid("Dropout", "p", p, "a probability in [0, 1)");
                    if (p.Value == 0) return x;
                    int n = Add(new Node(0, OpKind.Dropout, new[] { x }, xs, "dropout(" + Invariant.Format(p.Value) + ")", "", e.SpanId), "dropout");
                    _nodes[n].Alpha = p.Value;
                    return n;
                }
            case "Add":
            case "Multiply":
                {
                    string label = e.Name == "Add" ? "add" : "mul";
                    var shape = _rules.Elementwise(e.Name, inputs[0], inputs[1], e.SpanId);
                    if (shape is null) return Fail();
                    return Add(new Node(0, e.Name == "Add" ? OpKind.Add : OpKind.Mul, new[] { inputs[0], inputs[1] }, shape, label, "", e.SpanId), label);
                }
            case "Concat":
                {
                    var dim = Scalar(e, "dim");
                    var axis = _rules.Axis("Concat", (int)dim.Value, x, dim.SpanId);
                    if (axis is null) return Fail();
                    if (inputs.Count == 1) return x;
                    var shape = _rules.Concat(axis.Value, (int)dim.Value, inputs, e.SpanId);
                    if (shape is null) return Fail();
                    int n = Add(new Node(0, OpKind.Concat, inputs.ToArray(), shape, "concat", "", e.SpanId), "concat");
                    _nodes[n].Axis = axis.Value;
                    return CheckSize(n, e.SpanId) ? n : Poison;
                }
            default:
                _diagnostics.Add(DiagnosticInfo.Create(Descriptors.UnsupportedExpression.Id, e.SpanId, e.Name, "it has no lowering"));
                return Poison;
        }
    }

    private int Unary(OpKind op, string label, int x, ExprSpec e)
        => Add(new Node(0, op, new[] { x }, _nodes[x].Shape, label, "", e.SpanId), label);

    private static ArgSpec Scalar(ExprSpec e, string name) => e.Scalars.First(a => a.Name == name);

    private static bool IsInt(ArgSpec a, int min) => !a.IsNull && a.Value == Math.Floor(a.Value) && a.Value >= min && a.Value <= int.MaxValue;

    private int Invalid(string op, string param, ArgSpec arg, string expected)
    {
        _diagnostics.Add(DiagnosticInfo.Create(Descriptors.InvalidArgument.Id, arg.SpanId, op, param, arg.IsNull ? "null" : Number(arg.Value), expected));
        return Poison;
    }

    private static string Number(double v) => v == Math.Floor(v) && Math.Abs(v) < 1e15 ? Invariant.Format((long)v) : Invariant.Format(v);

    private int Fail(params int[] related)
    {
        if (_rules.Error is { } error) _diagnostics.Add(related.Length > 0 ? error.WithRelated(related) : error);
        return Poison;
    }

    private bool CheckSize(int node, int span)
    {
        long n = _nodes[node].Elements;
        if (n <= ShapeMath.MaxElements) return true;
        _diagnostics.Add(DiagnosticInfo.Create(Descriptors.SizeOverflow.Id, span, "One sample of " + (_nodes[node].Label.Length > 0 ? _nodes[node].Label : "this tensor") + " " + ShapeMath.WithBatch(_nodes[node].Shape),
            n == long.MaxValue ? "more than 9.2e18" : Invariant.Grouped(n), Invariant.Grouped(ShapeMath.MaxElements)));
        return false;
    }

    private int Add(Node node, string baseName)
    {
        var n = new Node(_nodes.Count, node.Op, node.Inputs, node.Shape, node.Label, node.Layer, node.SpanId)
        {
            Param = node.Param, Axis = node.Axis, Kernel = node.Kernel, Stride = node.Stride, Padding = node.Padding, Alpha = node.Alpha,
        };
        _nameCounts.TryGetValue(baseName, out int count);
        string name = baseName;
        while (!_usedNames.Add(name)) name = baseName + "_" + Invariant.Format(++count + 1);
        _nameCounts[baseName] = count;
        n.Name = name;
        _nodes.Add(n);
        return n.Id;
    }
}
