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
    private readonly List<StateTensor> _states = new();
    private readonly List<CompositeLayer> _composites = new();
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
        return new NetworkGraph(_spec.Name, _spec.ElementType, _nodes, _params, inputNode, output) { States = _states, Composites = _composites };
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

        public Dictionary<string, double> Reals { get; } = new(StringComparer.Ordinal);

        /// <summary>Every parameter by its short name (<c>weight_ih_l0</c>).</summary>
        public Dictionary<string, int> Params { get; } = new(StringComparer.Ordinal);

        /// <summary>The first state tensor (BatchNorm's running mean), or -1.</summary>
        public int State { get; set; } = -1;

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
            else if (layer.Kind == "ConvTranspose2d")
            {
                ok &= IntArg(info, "inChannels", 1, "a positive number of channels");
                ok &= IntArg(info, "outChannels", 1, "a positive number of channels");
                ok &= IntArg(info, "kernel", 1, "a positive kernel size");
                ok &= IntArg(info, "stride", 1, "a positive stride");
                ok &= IntArg(info, "padding", 0, "a padding of zero or more");
                ok &= IntArg(info, "outputPadding", 0, "an output padding of zero or more");
                if (!ok) continue;
                if (info.Ints["outputPadding"] >= info.Ints["stride"])
                {
                    var a = layer.Args.First(x => x.Name == "outputPadding");
                    _diagnostics.Add(DiagnosticInfo.Create(Descriptors.InvalidArgument.Id, a.SpanId, layer.Name, "outputPadding", Number(a.Value),
                        "less than the stride (" + Invariant.Format(info.Ints["stride"]) + "), as PyTorch requires"));
                    continue;
                }
                int c = info.Ints["inChannels"], o = info.Ints["outChannels"], k = info.Ints["kernel"];
                long fanIn = (long)o * k * k; // PyTorch computes fan_in from weight.size(1) = out_channels
                info.Weight = NewParam(layer, "weight", new[] { c, o, k, k }, fanIn);
                if (Flag(layer, "bias")) info.Bias = NewParam(layer, "bias", new[] { o }, fanIn);
            }
            else if (layer.Kind is "BatchNorm1d" or "BatchNorm2d" or "LayerNorm")
            {
                bool batchNorm = layer.Kind != "LayerNorm";
                string size = batchNorm ? "numFeatures" : "normalizedShape";
                ok &= IntArg(info, size, 1, batchNorm ? "a positive number of features" : "a positive size");
                ok &= RealArg(info, "eps", 0, double.MaxValue, false, "a positive number");
                if (batchNorm) ok &= RealArg(info, "momentum", 0, 1, true, "a number in [0, 1]");
                if (!ok) continue;
                int n = info.Ints[size];
                if (Flag(layer, batchNorm ? "affine" : "elementwiseAffine"))
                {
                    info.Weight = NewParam(layer, "weight", new[] { n }, 1, "Ones");
                    info.Bias = NewParam(layer, "bias", new[] { n }, 1, "Zeros");
                    if (info.Weight < 0 || info.Bias < 0) continue;
                }
                if (batchNorm)
                {
                    info.State = _states.Count;
                    _states.Add(new StateTensor(layer.Name + ".running_mean", layer.Name, new[] { n }, "Zeros", false));
                    _states.Add(new StateTensor(layer.Name + ".running_var", layer.Name, new[] { n }, "Ones", false));
                    _states.Add(new StateTensor(layer.Name + ".num_batches_tracked", layer.Name, Array.Empty<int>(), "Zeros", true));
                }
                info.Valid = true;
                continue;
            }
            else if (layer.Kind == "Embedding")
            {
                ok &= IntArg(info, "numEmbeddings", 1, "a positive vocabulary size");
                ok &= IntArg(info, "embeddingDim", 1, "a positive vector size");
                if (!ok) continue;
                if (info.Ints["numEmbeddings"] > 1 << 24)
                {
                    var a = layer.Args.First(x => x.Name == "numEmbeddings");
                    _diagnostics.Add(DiagnosticInfo.Create(Descriptors.InvalidArgument.Id, a.SpanId, layer.Name, "numEmbeddings", Number(a.Value),
                        "at most 16,777,216 (token ids travel in float inputs, exact up to 2^24)"));
                    continue;
                }
                info.Weight = NewParam(layer, "weight", new[] { info.Ints["numEmbeddings"], info.Ints["embeddingDim"] }, 1, "Normal");
                info.Valid = info.Weight >= 0;
                continue;
            }
            else if (layer.Kind is "Rnn" or "Gru" or "Lstm")
            {
                ok &= IntArg(info, "inputSize", 1, "a positive number of features");
                ok &= IntArg(info, "hiddenSize", 1, "a positive number of features");
                if (!ok) continue;
                int inF = info.Ints["inputSize"], h = info.Ints["hiddenSize"];
                int gates = layer.Kind == "Rnn" ? 1 : layer.Kind == "Gru" ? 3 : 4;
                long g = (long)gates * h;
                if (g > int.MaxValue) g = int.MaxValue;
                // PyTorch initializes every weight and bias of a recurrent layer from U(±1/√hidden).
                long fan = h;
                info.Params["weight_ih_l0"] = NewParam(layer, "weight_ih_l0", new[] { (int)g, inF }, fan);
                info.Params["weight_hh_l0"] = NewParam(layer, "weight_hh_l0", new[] { (int)g, h }, fan);
                if (Flag(layer, "bias"))
                {
                    info.Params["bias_ih_l0"] = NewParam(layer, "bias_ih_l0", new[] { (int)g }, fan);
                    info.Params["bias_hh_l0"] = NewParam(layer, "bias_hh_l0", new[] { (int)g }, fan);
                }
                info.Valid = info.Params.Values.All(v => v >= 0);
                continue;
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

    private bool RealArg(LayerInfo info, string name, double min, double max, bool inclusiveMin, string expected)
    {
        var arg = info.Spec.Args.FirstOrDefault(a => a.Name == name);
        if (arg is null) return false;
        if (arg.IsNull || double.IsNaN(arg.Value) || (inclusiveMin ? arg.Value < min : arg.Value <= min) || arg.Value > max)
        {
            _diagnostics.Add(DiagnosticInfo.Create(Descriptors.InvalidArgument.Id, arg.SpanId, info.Spec.Name, name, arg.IsNull ? "null" : Number(arg.Value), expected));
            return false;
        }
        info.Reals[name] = arg.Value;
        return true;
    }

    private static bool Flag(LayerSpec layer, string name)
        => layer.Args.FirstOrDefault(a => a.Name == name) is not { } a || a.Value != 0;

    private int NewParam(LayerSpec layer, string kind, int[] shape, long fanIn, string init = "Uniform")
    {
        long size = ShapeMath.Product(shape);
        if (size > ShapeMath.MaxElements)
        {
            _diagnostics.Add(DiagnosticInfo.Create(Descriptors.SizeOverflow.Id, layer.SpanId, layer.Name + "." + kind + " " + ShapeMath.PerSample(shape),
                size == long.MaxValue ? "more than 9.2e18" : Invariant.Grouped(size), Invariant.Grouped(ShapeMath.MaxElements)));
            return -1;
        }
        _params.Add(new ParamTensor(layer.Name + "." + kind, layer.Name, shape, 1.0 / Math.Sqrt(fanIn), init));
        return _params.Count - 1;
    }

    /// <summary>
    /// Parameter tensors follow one another in state_dict order, each starting on a multiple of
    /// <see cref="ShapeMath.LineElements"/> elements (a cache-line boundary for float and double), so a
    /// weight matrix whose rows are whole lines is read with aligned vector loads whatever comes before it (a
    /// batch-1 layer streaming its weights ran 1.2-1.7x slower 16 bytes off a line). The gaps are zero and stay so.
    /// </summary>
    private void AssignParameterOffsets()
    {
        long offset = 0;
        foreach (var p in _params)
        {
            offset = ShapeMath.ToLine(offset);
            p.Offset = (int)Math.Min(offset, int.MaxValue);
            offset += p.Length;
        }
        if (offset > ShapeMath.MaxElements)
            _diagnostics.Add(DiagnosticInfo.Create(Descriptors.SizeOverflow.Id, 0, "The parameter buffer of " + _spec.Name,
                Invariant.Grouped(offset), Invariant.Grouped(ShapeMath.MaxElements)));
        int state = 0;
        foreach (var t in _states)
        {
            t.Offset = state;
            state += t.Length;
        }
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
        switch (layer.Spec.Kind)
        {
            case "ConvTranspose2d": return LowerConvTranspose(layer, label, x, e);
            case "BatchNorm1d":
            case "BatchNorm2d":
            case "LayerNorm": return LowerNorm(layer, label, x, e);
            case "Embedding": return LowerEmbedding(layer, label, x, e);
            case "Rnn":
            case "Gru":
            case "Lstm": return LowerRecurrent(layer, label, x, e);
        }
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

    private int LowerConvTranspose(LayerInfo layer, string label, int x, ExprSpec e)
    {
        string name = layer.Spec.Name;
        int k = layer.Ints["kernel"], s = layer.Ints["stride"], p = layer.Ints["padding"], op = layer.Ints["outputPadding"];
        var shape = _rules.ConvTranspose2d(name, layer.Ints["inChannels"], layer.Ints["outChannels"], k, s, p, op, x, e.SpanId);
        if (shape is null) return Fail(layer.Spec.SpanId);
        int conv = Add(new Node(0, OpKind.ConvTranspose2d, new[] { x }, shape, label, name, e.SpanId) { Param = layer.Weight, Kernel = k, Stride = s, Padding = p, Start = op }, name);
        if (!CheckSize(conv, e.SpanId)) return Poison;
        if (layer.Bias < 0) return conv;
        return Add(new Node(0, OpKind.BiasAdd, new[] { conv }, shape, "", name, e.SpanId) { Param = layer.Bias, Axis = 0 }, name + "_bias");
    }

    private int LowerNorm(LayerInfo layer, string label, int x, ExprSpec e)
    {
        string name = layer.Spec.Name, kind = layer.Spec.Kind;
        int[]? shape = kind switch
        {
            "BatchNorm2d" => _rules.Features(name, layer.Ints["numFeatures"], "channels", new[] { 3 }, "an image batch [B," + Invariant.Format(layer.Ints["numFeatures"]) + ",H,W]", x, e.SpanId, argument: "numFeatures"),
            "BatchNorm1d" => _rules.Features(name, layer.Ints["numFeatures"], "features", new[] { 1, 2 }, "[B," + Invariant.Format(layer.Ints["numFeatures"]) + "] or [B," + Invariant.Format(layer.Ints["numFeatures"]) + ",L]", x, e.SpanId, argument: "numFeatures"),
            _ => _rules.Features(name, layer.Ints["normalizedShape"], "features in the last dimension", new[] { 1, 2, 3, 4, 5, 6, 7, 8 }, "[B,…," + Invariant.Format(layer.Ints["normalizedShape"]) + "]", x, e.SpanId, last: true, argument: "normalizedShape"),
        };
        if (shape is null) return Fail(layer.Spec.SpanId);
        bool batchNorm = kind != "LayerNorm";
        return Add(new Node(0, batchNorm ? OpKind.BatchNorm : OpKind.LayerNorm, new[] { x }, shape, label, name, e.SpanId)
        {
            Param = layer.Weight, Param2 = layer.Bias, State = layer.State, Eps = layer.Reals["eps"], Alpha = batchNorm ? layer.Reals["momentum"] : 0,
            Axis = batchNorm ? 0 : shape.Length - 1,
        }, name);
    }

    private int LowerEmbedding(LayerInfo layer, string label, int x, ExprSpec e)
    {
        var shape = _nodes[x].Shape.Concat(new[] { layer.Ints["embeddingDim"] }).ToArray();
        int n = Add(new Node(0, OpKind.Embedding, new[] { x }, shape, label, layer.Spec.Name, e.SpanId) { Param = layer.Weight, Kernel = layer.Ints["numEmbeddings"] }, layer.Spec.Name);
        return CheckSize(n, e.SpanId) ? n : Poison;
    }

    /// <summary>
    /// A recurrent layer unrolled over its fixed sequence length into primitive nodes, in PyTorch's formulas and
    /// gate order, so the backward pass (through time) is derived like any other. The input projection of all
    /// time steps is one matrix product; each step adds the hidden projection of the previous state.
    /// </summary>
    private int LowerRecurrent(LayerInfo layer, string label, int x, ExprSpec e)
    {
        string name = layer.Spec.Name, kind = layer.Spec.Kind;
        int inF = layer.Ints["inputSize"], h = layer.Ints["hiddenSize"];
        int gates = kind == "Rnn" ? 1 : kind == "Gru" ? 3 : 4, g = gates * h;
        var shape = _rules.Features(name, inF, "input features", new[] { 2 }, "a sequence batch [B,T," + Invariant.Format(inF) + "]", x, e.SpanId, last: true, argument: "inputSize");
        if (shape is null) return Fail(layer.Spec.SpanId);
        int steps = shape[0], span = e.SpanId, first = _nodes.Count;
        bool bias = layer.Params.ContainsKey("bias_ih_l0");
        int Node(OpKind op, int[] inputs, int[] s, string suffix, int param = -1, string nodeLabel = "")
            => Add(new Node(0, op, inputs, s, nodeLabel, name, span) { Param = param }, name + "_" + suffix);
        int Unary(OpKind op, int a, string suffix) => Node(op, new[] { a }, _nodes[a].Shape, suffix);
        int Binary(OpKind op, int a, int b, string suffix) => Node(op, new[] { a, b }, _nodes[a].Shape, suffix);
        int Slice(int a, int start, int length, string suffix)
            => Add(new Node(0, OpKind.Slice, new[] { a }, new[] { length }, "", name, span) { Axis = 0, Start = start }, name + "_" + suffix);
        int HiddenProjection(int hPrev, string t)
            => Node(OpKind.MatMul, new[] { hPrev }, new[] { g }, t + "_hh", layer.Params["weight_hh_l0"]);
        int Bias(int a, string p, string suffix)
            => Add(new Node(0, OpKind.BiasAdd, new[] { a }, _nodes[a].Shape, "", name, span) { Param = layer.Params[p], Axis = _nodes[a].Shape.Length - 1 }, name + "_" + suffix);

        // The input projection of every step at once: [T, I]·W_ihᵀ (+ b_ih, and for RNN and LSTM also b_hh) → [T, G].
        int projected = Node(OpKind.MatMul, new[] { x }, new[] { steps, g }, "input_projection", layer.Params["weight_ih_l0"]);
        if (!CheckSize(projected, span)) return Poison;
        if (bias)
        {
            projected = Bias(projected, "bias_ih_l0", "input_bias");
            if (kind != "Gru") projected = Bias(projected, "bias_hh_l0", "hidden_bias");
        }

        int hidden = -1, cell = -1;
        var outputs = new List<int>();
        for (int step = 0; step < steps; step++)
        {
            string t = "t" + Invariant.Format(step);
            int xt = Add(new Node(0, OpKind.Slice, new[] { projected }, new[] { g }, "", name, span) { Axis = 0, Start = step }, name + "_" + t + "_x");
            if (kind == "Rnn")
            {
                int pre = hidden < 0 ? xt : Binary(OpKind.Add, xt, HiddenProjection(hidden, t), t + "_pre");
                hidden = Unary(OpKind.Tanh, pre, t + "_h");
            }
            else if (kind == "Lstm")
            {
                int pre = hidden < 0 ? xt : Binary(OpKind.Add, xt, HiddenProjection(hidden, t), t + "_gates");
                int i = Unary(OpKind.Sigmoid, Slice(pre, 0, h, t + "_i_pre"), t + "_i");
                int gg = Unary(OpKind.Tanh, Slice(pre, 2 * h, h, t + "_g_pre"), t + "_g");
                int o = Unary(OpKind.Sigmoid, Slice(pre, 3 * h, h, t + "_o_pre"), t + "_o");
                int ig = Binary(OpKind.Mul, i, gg, t + "_ig");
                if (cell < 0) cell = ig;
                else
                {
                    int f = Unary(OpKind.Sigmoid, Slice(pre, h, h, t + "_f_pre"), t + "_f");
                    cell = Binary(OpKind.Add, Binary(OpKind.Mul, f, cell, t + "_fc"), ig, t + "_c");
                }
                hidden = Binary(OpKind.Mul, o, Unary(OpKind.Tanh, cell, t + "_tanh_c"), t + "_h");
            }
            else
            {
                // r = σ(x_r + h_r), z = σ(x_z + h_z), n = tanh(x_n + r ⊙ h_n), h' = (1 − z) ⊙ n + z ⊙ h = n + z ⊙ (h − n),
                // where h_* include b_hh (so at t = 0, with h = 0, they are b_hh alone).
                int hp;
                if (hidden < 0)
                {
                    hp = Add(new Node(0, OpKind.Zeros, Array.Empty<int>(), new[] { g }, "", name, span), name + "_h0");
                    if (bias) hp = Bias(hp, "bias_hh_l0", t + "_hh_bias");
                }
                else
                {
                    hp = HiddenProjection(hidden, t);
                    if (bias) hp = Bias(hp, "bias_hh_l0", t + "_hh_bias");
                }
                int r = Unary(OpKind.Sigmoid, Binary(OpKind.Add, Slice(xt, 0, h, t + "_xr"), Slice(hp, 0, h, t + "_hr"), t + "_r_pre"), t + "_r");
                int z = Unary(OpKind.Sigmoid, Binary(OpKind.Add, Slice(xt, h, h, t + "_xz"), Slice(hp, h, h, t + "_hz"), t + "_z_pre"), t + "_z");
                int n = Unary(OpKind.Tanh, Binary(OpKind.Add, Slice(xt, 2 * h, h, t + "_xn"), Binary(OpKind.Mul, r, Slice(hp, 2 * h, h, t + "_hn"), t + "_rh"), t + "_n_pre"), t + "_n");
                hidden = hidden < 0
                    ? Binary(OpKind.Sub, n, Binary(OpKind.Mul, z, n, t + "_zn"), t + "_h")
                    : Binary(OpKind.Add, n, Binary(OpKind.Mul, z, Binary(OpKind.Sub, hidden, n, t + "_h_minus_n"), t + "_zd"), t + "_h");
            }
            outputs.Add(Add(new Node(0, OpKind.Reshape, new[] { hidden }, new[] { 1, h }, "", name, span), name + "_" + t + "_row"));
        }
        int result = outputs.Count == 1
            ? outputs[0]
            : Add(new Node(0, OpKind.Concat, outputs.ToArray(), new[] { steps, h }, "", name, span) { Axis = 0 }, name + "_hidden_states");
        // The result carries the layer's label, so shape messages name the layer.
        result = Add(new Node(0, OpKind.Reshape, new[] { result }, new[] { steps, h }, label, name, span), name + "_output");
        string kindText = (kind == "Rnn" ? "RNN" : kind == "Gru" ? "GRU" : "LSTM") + "(" + Invariant.Format(inF) + "→" + Invariant.Format(h) + ", T=" + Invariant.Format(steps) + ")";
        _composites.Add(new CompositeLayer(first, result, kindText, x));
        return result;
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
            case "Subtract":
                {
                    var shape = _rules.Elementwise("Subtract", inputs[0], inputs[1], e.SpanId);
                    if (shape is null) return Fail();
                    return Add(new Node(0, OpKind.Sub, new[] { inputs[0], inputs[1] }, shape, "sub", "", e.SpanId), "sub");
                }
            case "Upsample":
                {
                    var scale = Scalar(e, "scale");
                    if (!IsInt(scale, 1) || scale.Value > 1024) return Invalid("Upsample", "scale", scale, "a positive integer scale factor");
                    int k = (int)scale.Value;
                    string label = "upsample(" + Invariant.Format(k) + ")";
                    var shape = _rules.Upsample(label, k, x, e.SpanId);
                    if (shape is null) return Fail();
                    int n = Add(new Node(0, OpKind.Upsample, new[] { x }, shape, label, "", e.SpanId) { Kernel = k }, "upsample");
                    return CheckSize(n, e.SpanId) ? n : Poison;
                }
            case "Slice":
            case "Select":
                {
                    var dim = Scalar(e, "dim");
                    var axis = _rules.Axis(e.Name, (int)dim.Value, x, dim.SpanId);
                    if (axis is null) return Fail();
                    bool select = e.Name == "Select";
                    var startArg = Scalar(e, select ? "index" : "start");
                    if (select && xs.Length == 1)
                        return Invalid("Select", "dim", dim, "a dimension of a tensor with more than one per-sample dimension: selecting from " + ShapeMath.WithBatch(xs)
                            + " would leave one number per sample; use Slice(x, dim: " + Invariant.Format((int)dim.Value) + ", start: " + Invariant.Format((int)startArg.Value) + ", length: 1) to keep [B,1]");
                    int start = (int)startArg.Value;
                    if (select && start < 0) start += xs[axis.Value];
                    int length = select ? 1 : (int)Scalar(e, "length").Value;
                    string label = (select ? "select" : "slice") + "(dim " + Invariant.Format((int)dim.Value) + ", " + (select ? Invariant.Format((int)startArg.Value) : Invariant.Format(start) + ":" + Invariant.Format((long)start + length)) + ")";
                    var shape = _rules.Slice(label, axis.Value, start, length, select, x, startArg.SpanId);
                    if (shape is null) return Fail();
                    if (!select && length == xs[axis.Value]) return x;
                    return Add(new Node(0, OpKind.Slice, new[] { x }, shape, label, "", e.SpanId) { Axis = axis.Value, Start = start }, select ? "select" : "slice");
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
            Param2 = node.Param2, State = node.State, Eps = node.Eps, Start = node.Start,
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
