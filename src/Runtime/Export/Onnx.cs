using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Numerics;
using System.Runtime.InteropServices;
using NetDsl.Runtime.Logging;

namespace NetDsl.Runtime.Export;

/// <summary>
/// Exports a trained network for inference as an ONNX model (opset 17, IR version 8): the forward graph the
/// generator compiled, in inference mode (dropout is the identity, batch normalization uses the running
/// statistics), with the parameters as initializers under their state_dict names. The batch dimension is
/// symbolic (<c>batch</c>); the input is named <c>input</c> and the output <c>output</c>. Recurrent layers are
/// exported unrolled, as the primitive operations they compile to. Written to a temporary file and renamed.
/// </summary>
public static class Onnx
{
    /// <summary>The ONNX operator set the exported models use.</summary>
    public const int Opset = 17;

    /// <summary>Writes <paramref name="network"/> as an ONNX model to <paramref name="path"/>.</summary>
    public static void Save<T>(string path, CompiledNetwork<T> network) where T : unmanaged, IFloatingPointIeee754<T>
    {
        byte[] model = Build(network);
        AtomicFile.Write(path, s => s.Write(model));
    }

    /// <summary>The serialized ONNX ModelProto of <paramref name="network"/>.</summary>
    public static byte[] Build<T>(CompiledNetwork<T> network) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var d = network.Description;
        if (d.Graph.Count == 0 || d.GraphOutput < 0)
            throw new InvalidOperationException($"{d.Name} has no graph description to export; rebuild it with this version of the NetDsl generator.");
        var builder = new GraphBuilder<T>(network);
        var graph = builder.Build();
        var model = new ProtoWriter();
        model.Int(1, 8);                       // ir_version
        var opset = new ProtoWriter();
        opset.String(1, "");                   // the default domain
        opset.Int(2, Opset);
        model.Message(8, opset);               // opset_import
        model.String(2, "NetDsl");             // producer_name
        model.String(3, typeof(Onnx).Assembly.GetName().Version?.ToString() ?? "0");
        model.Message(7, graph);               // graph
        return model.ToArray();
    }

    private sealed class GraphBuilder<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        private readonly CompiledNetwork<T> _network;
        private readonly NetworkDescription _d;
        private readonly ProtoWriter _graph = new();
        private readonly List<ProtoWriter> _nodes = new();
        private readonly List<ProtoWriter> _initializers = new();
        private readonly HashSet<string> _initialized = new(StringComparer.Ordinal);
        private readonly Dictionary<string, string> _transposed = new(StringComparer.Ordinal);
        private readonly string[] _names;
        private readonly int _elementType = typeof(T) == typeof(float) ? 1 : 11; // FLOAT or DOUBLE
        private int _constants;

        public GraphBuilder(CompiledNetwork<T> network)
        {
            _network = network;
            _d = network.Description;
            _names = new string[_d.Graph.Count];
        }

        public ProtoWriter Build()
        {
            var graph = _d.Graph;
            var alive = new bool[graph.Count];
            Mark(_d.GraphOutput, alive);
            for (int i = 0; i < graph.Count; i++)
            {
                if (!alive[i]) continue;
                _names[i] = graph[i].Op == "Input" ? "input" : i == _d.GraphOutput ? "output" : "n" + i;
                Node(i, graph[i]);
            }
            if (graph[_d.GraphOutput].Op == "Input") Add("Identity", new[] { "input" }, "output");

            foreach (var n in _nodes) _graph.Message(1, n);
            _graph.String(2, _d.Name);
            foreach (var t in _initializers) _graph.Message(5, t);
            _graph.Message(11, ValueInfo("input", _d.InputShape));
            _graph.Message(12, ValueInfo("output", _d.OutputShape));
            return _graph;
        }

        private void Mark(int id, bool[] alive)
        {
            if (alive[id]) return;
            alive[id] = true;
            foreach (int i in _d.Graph[id].Inputs) Mark(i, alive);
        }

        private void Node(int id, GraphNode n)
        {
            string y = _names[id];
            string x = n.Inputs.Length > 0 ? _names[n.Inputs[0]] : "";
            int[] inShape = n.Inputs.Length > 0 ? _d.Graph[n.Inputs[0]].Shape : Array.Empty<int>();
            switch (n.Op)
            {
                case "Input":
                    break;
                case "MatMul":
                    Add("MatMul", new[] { x, Transposed(n.Param!) }, y);
                    break;
                case "BiasAdd":
                    {
                        int trailing = n.Shape.Length - 1 - n.Axis;
                        string bias = Param(n.Param!);
                        if (trailing > 0)
                        {
                            var shape = new long[trailing + 1];
                            shape[0] = n.Shape[n.Axis];
                            for (int i = 1; i < shape.Length; i++) shape[i] = 1;
                            bias = Temp("Reshape", new[] { bias, Ints(shape) });
                        }
                        Add("Add", new[] { x, bias }, y);
                        break;
                    }
                case "Conv2d":
                    Add("Conv", new[] { x, Param(n.Param!) }, y, IntsAttr("kernel_shape", n.Kernel, n.Kernel), IntsAttr("strides", n.Stride, n.Stride),
                        IntsAttr("pads", n.Padding, n.Padding, n.Padding, n.Padding));
                    break;
                case "ConvTranspose2d":
                    Add("ConvTranspose", new[] { x, Param(n.Param!) }, y, IntsAttr("kernel_shape", n.Kernel, n.Kernel), IntsAttr("strides", n.Stride, n.Stride),
                        IntsAttr("pads", n.Padding, n.Padding, n.Padding, n.Padding), IntsAttr("output_padding", n.Start, n.Start));
                    break;
                case "MaxPool2d":
                    Add("MaxPool", new[] { x }, y, IntsAttr("kernel_shape", n.Kernel, n.Kernel), IntsAttr("strides", n.Stride, n.Stride),
                        IntsAttr("pads", n.Padding, n.Padding, n.Padding, n.Padding));
                    break;
                case "AvgPool2d":
                    Add("AveragePool", new[] { x }, y, IntsAttr("kernel_shape", n.Kernel, n.Kernel), IntsAttr("strides", n.Stride, n.Stride),
                        IntsAttr("pads", n.Padding, n.Padding, n.Padding, n.Padding), IntAttr("count_include_pad", 1));
                    break;
                case "Reshape":
                    // 0 keeps the batch dimension as it is.
                    Add("Reshape", new[] { x, Ints(new long[] { 0 }.Concat(n.Shape.Select(v => (long)v)).ToArray()) }, y);
                    break;
                case "Relu":
                case "Sigmoid":
                case "Tanh":
                    Add(n.Op, new[] { x }, y);
                    break;
                case "LeakyRelu":
                    Add("LeakyRelu", new[] { x }, y, FloatAttr("alpha", n.Alpha));
                    break;
                case "Gelu":
                    {
                        // GELU(x) = x · ½ · (1 + erf(x / √2)), as PyTorch's exact GELU.
                        string erf = Temp("Erf", new[] { Temp("Mul", new[] { x, Scalar(1 / Math.Sqrt(2)) }) });
                        string half = Temp("Mul", new[] { Temp("Add", new[] { erf, Scalar(1) }), Scalar(0.5) });
                        Add("Mul", new[] { x, half }, y);
                        break;
                    }
                case "Softmax":
                case "LogSoftmax":
                    Add(n.Op, new[] { x }, y, IntAttr("axis", n.Axis + 1));
                    break;
                case "Dropout":
                    Add("Identity", new[] { x }, y);
                    break;
                case "Add":
                case "Mul":
                case "Sub":
                    Add(n.Op, new[] { x, _names[n.Inputs[1]] }, y);
                    break;
                case "Concat":
                    Add("Concat", n.Inputs.Select(i => _names[i]).ToArray(), y, IntAttr("axis", n.Axis + 1));
                    break;
                case "Slice":
                    {
                        bool squeeze = n.Shape.Length < inShape.Length;
                        int length = squeeze ? 1 : n.Shape[n.Axis];
                        var inputs = new[] { x, Ints(new long[] { n.Start }), Ints(new long[] { n.Start + length }), Ints(new long[] { n.Axis + 1 }) };
                        if (squeeze) Add("Squeeze", new[] { Temp("Slice", inputs), Ints(new long[] { n.Axis + 1 }) }, y);
                        else Add("Slice", inputs, y);
                        break;
                    }
                case "Zeros":
                    {
                        // [batch, ...shape] of zeros: the batch comes from the input's shape.
                        string batch = Temp("Slice", new[] { Temp("Shape", new[] { "input" }), Ints(new long[] { 0 }), Ints(new long[] { 1 }) });
                        string shape = Temp("Concat", new[] { batch, Ints(n.Shape.Select(v => (long)v).ToArray()) }, IntAttr("axis", 0));
                        Add("ConstantOfShape", new[] { shape }, y, TensorAttr("value", Tensor("", new long[] { 1 }, new[] { T.Zero })));
                        break;
                    }
                case "Upsample":
                    Add("Resize", new[] { x, "", Floats(new[] { 1f, 1f, n.Kernel, n.Kernel }) }, y, StringAttr("mode", "nearest"),
                        StringAttr("coordinate_transformation_mode", "asymmetric"), StringAttr("nearest_mode", "floor"));
                    break;
                case "BatchNorm":
                    {
                        int c = n.Shape[0];
                        Add("BatchNormalization", new[] { x, n.Param ?? Filled(c, T.One), n.Param2 ?? Filled(c, T.Zero), State(n.State! + ".running_mean"), State(n.State! + ".running_var") }, y,
                            FloatAttr("epsilon", n.Eps));
                        if (n.Param is not null) Param(n.Param);
                        if (n.Param2 is not null) Param(n.Param2);
                        break;
                    }
                case "LayerNorm":
                    {
                        int c = n.Shape[^1];
                        Add("LayerNormalization", new[] { x, n.Param is null ? Filled(c, T.One) : Param(n.Param), n.Param2 is null ? Filled(c, T.Zero) : Param(n.Param2) }, y,
                            IntAttr("axis", -1), FloatAttr("epsilon", n.Eps));
                        break;
                    }
                case "Embedding":
                    Add("Gather", new[] { Param(n.Param!), Temp("Cast", new[] { x }, IntAttr("to", 7)) }, y, IntAttr("axis", 0));
                    break;
                default:
                    throw new NotSupportedException($"ONNX export has no rule for '{n.Op}' (node {id} of {_d.Name}).");
            }
        }

        // ---- nodes -----------------------------------------------------------------------------------------

        private void Add(string op, string[] inputs, string output, params ProtoWriter[] attributes)
        {
            var node = new ProtoWriter();
            foreach (var i in inputs) node.String(1, i);
            node.String(2, output);
            node.String(3, output + "_" + op);
            node.String(4, op);
            foreach (var a in attributes) node.Message(5, a);
            _nodes.Add(node);
        }

        /// <summary>A node with a fresh output name; returns the name.</summary>
        private string Temp(string op, string[] inputs, params ProtoWriter[] attributes)
        {
            string name = "t" + _nodes.Count + "_" + op.ToLowerInvariant();
            Add(op, inputs, name, attributes);
            return name;
        }

        // ---- initializers ----------------------------------------------------------------------------------

        private string Param(string name)
        {
            if (_initialized.Add(name))
            {
                var info = _d.FindParameter(name)!;
                _initializers.Add(Tensor(name, info.Shape.Select(v => (long)v).ToArray(), _network.Parameter(name)));
            }
            return name;
        }

        private string State(string name)
        {
            if (_initialized.Add(name))
            {
                var info = _d.FindState(name) ?? throw new InvalidOperationException($"{_d.Name} has no state tensor '{name}'.");
                _initializers.Add(Tensor(name, info.Shape.Select(v => (long)v).ToArray(), _network.State(name)));
            }
            return name;
        }

        /// <summary>A weight transposed once for MatMul (y = x·Wᵀ).</summary>
        private string Transposed(string name)
        {
            if (!_transposed.TryGetValue(name, out var t))
                _transposed[name] = t = Temp("Transpose", new[] { Param(name) }, IntsAttr("perm", 1, 0));
            return t;
        }

        private string Filled(int count, T value)
        {
            var values = new T[count];
            Array.Fill(values, value);
            string name = "const_" + _constants++;
            _initializers.Add(Tensor(name, new long[] { count }, values));
            return name;
        }

        private string Scalar(double value)
        {
            string name = "const_" + _constants++;
            _initializers.Add(Tensor(name, Array.Empty<long>(), new[] { T.CreateTruncating(value) }));
            return name;
        }

        private string Ints(long[] values)
        {
            string name = "const_" + _constants++;
            var t = new ProtoWriter();
            t.PackedInts(1, new long[] { values.Length });
            t.Int(2, 7); // INT64
            t.String(8, name);
            var raw = new byte[values.Length * 8];
            MemoryMarshal.AsBytes(values.AsSpan()).CopyTo(raw);
            t.Bytes(9, raw);
            _initializers.Add(t);
            return name;
        }

        private string Floats(float[] values)
        {
            string name = "const_" + _constants++;
            var t = new ProtoWriter();
            t.PackedInts(1, new long[] { values.Length });
            t.Int(2, 1); // FLOAT
            t.String(8, name);
            t.Bytes(9, MemoryMarshal.AsBytes(values.AsSpan()));
            _initializers.Add(t);
            return name;
        }

        private ProtoWriter Tensor(string name, long[] dims, ReadOnlySpan<T> values)
        {
            var t = new ProtoWriter();
            if (dims.Length > 0) t.PackedInts(1, dims);
            t.Int(2, _elementType);
            if (name.Length > 0) t.String(8, name);
            t.Bytes(9, MemoryMarshal.AsBytes(values)); // raw_data: little-endian, as ONNX requires
            return t;
        }

        // ---- attributes and types --------------------------------------------------------------------------

        private static ProtoWriter IntAttr(string name, long value)
        {
            var a = new ProtoWriter();
            a.String(1, name);
            a.Int(3, value);
            a.Int(20, 2); // INT
            return a;
        }

        private static ProtoWriter IntsAttr(string name, params long[] values)
        {
            var a = new ProtoWriter();
            a.String(1, name);
            a.PackedInts(8, values);
            a.Int(20, 7); // INTS
            return a;
        }

        private static ProtoWriter FloatAttr(string name, double value)
        {
            var a = new ProtoWriter();
            a.String(1, name);
            a.Float(2, (float)value);
            a.Int(20, 1); // FLOAT
            return a;
        }

        private static ProtoWriter StringAttr(string name, string value)
        {
            var a = new ProtoWriter();
            a.String(1, name);
            a.String(4, value);
            a.Int(20, 3); // STRING
            return a;
        }

        private static ProtoWriter TensorAttr(string name, ProtoWriter tensor)
        {
            var a = new ProtoWriter();
            a.String(1, name);
            a.Message(5, tensor);
            a.Int(20, 4); // TENSOR
            return a;
        }

        private ProtoWriter ValueInfo(string name, int[] perSample)
        {
            var shape = new ProtoWriter();
            var batch = new ProtoWriter();
            batch.String(2, "batch");
            shape.Message(1, batch);
            foreach (int v in perSample)
            {
                var dim = new ProtoWriter();
                dim.Int(1, v);
                shape.Message(1, dim);
            }
            var tensor = new ProtoWriter();
            tensor.Int(1, _elementType);
            tensor.Message(2, shape);
            var type = new ProtoWriter();
            type.Message(1, tensor);
            var info = new ProtoWriter();
            info.String(1, name);
            info.Message(2, type);
            return info;
        }
    }
}
