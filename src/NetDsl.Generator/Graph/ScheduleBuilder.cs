using System.Collections.Generic;
using System.Linq;
using NetDsl.Generator.Shapes;

namespace NetDsl.Generator.Graph;

internal enum ScheduleMode
{
    /// <summary>Forward keeping what backward needs (dropout on), then the backward pass.</summary>
    Training,

    /// <summary>Forward only, dropout off, nothing kept.</summary>
    Inference,
}

/// <summary>
/// Turns the graph into a schedule of steps over buffers. This half holds the buffers and the forward rule of
/// each operation; the other half (Autodiff/ScheduleBuilder.Backward.cs) derives the backward pass.
/// </summary>
internal sealed partial class ScheduleBuilder
{
    private readonly NetworkGraph _graph;
    private readonly ScheduleMode _mode;
    private readonly List<ScheduleBuffer> _buffers = new();
    private readonly List<Step> _steps = new();
    private readonly int[] _value;
    private readonly int[] _index;

    /// <summary>A normalization's saved mean buffer (its 1/σ buffer is the next one), or -1.</summary>
    private readonly int[] _stats;
    private readonly int[] _param;
    private readonly int[] _state;
    private readonly bool[] _alive;
    private readonly int[] _consumers;
    private readonly bool[] _requiresGrad;
    private readonly int _input;
    private readonly int _output;
    private readonly HashSet<string> _bufferNames = new();

    private ScheduleBuilder(NetworkGraph graph, ScheduleMode mode)
    {
        _graph = graph;
        _mode = mode;
        int n = graph.Nodes.Count;
        _value = Enumerable.Repeat(-1, n).ToArray();
        _index = Enumerable.Repeat(-1, n).ToArray();
        _stats = Enumerable.Repeat(-1, n).ToArray();
        _grad = Enumerable.Repeat(-1, n).ToArray();
        _param = new int[graph.Params.Count];
        _state = new int[graph.States.Count];
        _paramGrad = Enumerable.Repeat(-1, graph.Params.Count).ToArray();
        _alive = new bool[n];
        _consumers = new int[n];
        _requiresGrad = new bool[n];

        MarkAlive(graph.Output);
        foreach (var node in graph.Nodes)
        {
            if (!_alive[node.Id]) continue;
            foreach (int i in node.Inputs) _consumers[i]++;
            _requiresGrad[node.Id] = node.Param >= 0 || node.Param2 >= 0 || node.Inputs.Any(i => _requiresGrad[i]);
        }

        _input = NewBuffer(BufferKind.Input, "input", graph[graph.Input].Elements, -1, graph[graph.Input].Label + " " + ShapeMath.WithBatch(graph[graph.Input].Shape));
        _output = NewBuffer(BufferKind.Output, "output", graph[graph.Output].Elements, -1, "output " + ShapeMath.WithBatch(graph[graph.Output].Shape));
        for (int p = 0; p < graph.Params.Count; p++)
            _param[p] = NewBuffer(BufferKind.Param, graph.Params[p].Identifier, 0, p, graph.Params[p].Name + " " + ShapeMath.PerSample(graph.Params[p].Shape));
        for (int t = 0; t < graph.States.Count; t++)
            _state[t] = NewBuffer(BufferKind.State, graph.States[t].Identifier, 0, t, graph.States[t].Name + " " + ShapeMath.PerSample(graph.States[t].Shape));
    }

    /// <summary>Builds the schedule of <paramref name="mode"/>: forward, then (for training) backward.</summary>
    public static Schedule Build(NetworkGraph graph, ScheduleMode mode)
    {
        var builder = new ScheduleBuilder(graph, mode);
        builder.Forward();
        int forwardSteps = builder._steps.Count;
        if (mode == ScheduleMode.Training) builder.Backward();
        return new Schedule(builder._buffers, builder._steps, forwardSteps);
    }

    /// <summary>Whether a node is needed for the output (dead code is never scheduled).</summary>
    public static bool[] Alive(NetworkGraph graph) => new ScheduleBuilder(graph, ScheduleMode.Inference)._alive;

    private void MarkAlive(int node)
    {
        if (_alive[node]) return;
        _alive[node] = true;
        foreach (int i in _graph[node].Inputs) MarkAlive(i);
    }

    private bool Training => _mode == ScheduleMode.Training;

    // ---- forward rules -------------------------------------------------------------------------------------

    private void Forward()
    {
        foreach (var node in _graph.Nodes)
        {
            if (!_alive[node.Id]) continue;
            int x = node.Inputs.Length > 0 ? _value[node.Inputs[0]] : -1;
            switch (node.Op)
            {
                case OpKind.Input:
                    _value[node.Id] = _input;
                    break;
                case OpKind.Reshape:
                    _value[node.Id] = x; // a view: same memory, new shape
                    break;
                case OpKind.Dropout when !Training:
                    _value[node.Id] = x; // the identity in inference
                    break;
                case OpKind.MatMul:
                    {
                        var (rows, k) = MatrixOf(_graph[node.Inputs[0]].Shape);
                        int y = Result(node);
                        Add(node, new GemmStep
                        {
                            TransA = false, TransB = true,
                            M = Extent.Batch(rows), N = Extent.Fixed(node.Shape[node.Shape.Length - 1]), K = Extent.Fixed(k),
                            A = x, B = _param[node.Param], C = y,
                            Comment = $"{Display(node)}: {ShapeMath.WithBatch(_graph[node.Inputs[0]].Shape)}·{ShapeMath.PerSample(_graph.Params[node.Param].Shape)}ᵀ → {ShapeMath.WithBatch(node.Shape)}",
                        });
                        break;
                    }
                case OpKind.Conv2d:
                    {
                        var g = Window(node);
                        int y = Result(node);
                        Add(node, new ConvStep
                        {
                            Pass = ConvPass.Forward, Geometry = g, In = x, In2 = _param[node.Param], Out = y,
                            Comment = $"{Display(node)}: conv {ShapeMath.WithBatch(_graph[node.Inputs[0]].Shape)} * {ShapeMath.PerSample(_graph.Params[node.Param].Shape)} → {ShapeMath.WithBatch(node.Shape)} (stride {g.Stride}, padding {g.Padding})",
                        });
                        break;
                    }
                case OpKind.MaxPool2d:
                case OpKind.AvgPool2d:
                    {
                        bool max = node.Op == OpKind.MaxPool2d;
                        int y = Result(node);
                        int idx = -1;
                        if (max && Training && _requiresGrad[node.Inputs[0]])
                            idx = _index[node.Id] = NewBuffer(BufferKind.Index, node.Name + "_argmax", node.Elements, -1, node.Label + " argmax " + ShapeMath.WithBatch(node.Shape), node.Name);
                        Add(node, new PoolStep
                        {
                            Max = max, Geometry = Window(node), In = x, Out = y, Index = idx,
                            Comment = $"{Display(node)}: {ShapeMath.WithBatch(_graph[node.Inputs[0]].Shape)} → {ShapeMath.WithBatch(node.Shape)}",
                        });
                        break;
                    }
                case OpKind.Softmax:
                case OpKind.LogSoftmax:
                    {
                        var (outer, n, inner) = AxisView(node.Shape, node.Axis);
                        int y = Result(node);
                        Add(node, new SoftmaxStep
                        {
                            Log = node.Op == OpKind.LogSoftmax, Outer = outer, N = n, Inner = inner, In = x, Out = y,
                            Comment = $"{Display(node)} over dim {node.Axis + 1} of {ShapeMath.WithBatch(node.Shape)}",
                        });
                        break;
                    }
                case OpKind.Concat:
                    {
                        int y = Result(node);
                        var (outer, wholeN, inner) = AxisView(node.Shape, node.Axis);
                        int offset = 0;
                        foreach (int part in node.Inputs)
                        {
                            int partN = _graph[part].Shape[node.Axis];
                            Add(node, new SliceCopyStep
                            {
                                Outer = outer, PartN = partN, WholeN = wholeN, Offset = offset, Inner = inner, Part = _value[part], Whole = y,
                                Comment = $"{Display(node)}: {Display(_graph[part])} {ShapeMath.WithBatch(_graph[part].Shape)} into dim {node.Axis + 1} [{offset}, {offset + partN}) of {ShapeMath.WithBatch(node.Shape)}",
                            });
                            offset += partN;
                        }
                        break;
                    }
                case OpKind.ConvTranspose2d:
                    {
                        var g = TransposedWindow(node);
                        int y = Result(node);
                        Add(node, new ConvStep
                        {
                            Pass = ConvPass.BackwardData, Geometry = g, In = x, In2 = _param[node.Param], Out = y,
                            Comment = $"{Display(node)}: transposed conv {ShapeMath.WithBatch(_graph[node.Inputs[0]].Shape)} * {ShapeMath.PerSample(_graph.Params[node.Param].Shape)} → {ShapeMath.WithBatch(node.Shape)} (stride {node.Stride}, padding {node.Padding})",
                        });
                        break;
                    }
                case OpKind.Slice:
                    {
                        var (outer, wholeN, inner) = AxisView(_graph[node.Inputs[0]].Shape, node.Axis);
                        int partN = (int)(node.Elements / ((long)outer * inner));
                        int y = Result(node);
                        Add(node, new SliceCopyStep
                        {
                            Backward = true, Outer = outer, PartN = partN, WholeN = wholeN, Offset = node.Start, Inner = inner, Part = y, Whole = x,
                            Comment = $"{Display(node)}: dim {node.Axis + 1} [{node.Start}, {node.Start + partN}) of {ShapeMath.WithBatch(_graph[node.Inputs[0]].Shape)} → {ShapeMath.WithBatch(node.Shape)}",
                        });
                        break;
                    }
                case OpKind.Zeros:
                    {
                        var step = new ElementwiseStep { PerSample = (int)node.Elements, Comment = $"{Display(node)}: zeros {ShapeMath.WithBatch(node.Shape)}" };
                        step.Emit(new EInstr(EOp.Store, step.Emit(new EInstr(EOp.Const, value: 0)), buffer: Result(node)));
                        Add(node, step);
                        break;
                    }
                case OpKind.Upsample:
                    {
                        var s = _graph[node.Inputs[0]].Shape;
                        int y = Result(node);
                        Add(node, new UpsampleStep
                        {
                            Channels = s[0], Height = s[1], Width = s[2], Scale = node.Kernel, In = x, Out = y,
                            Comment = $"{Display(node)}: {ShapeMath.WithBatch(s)} → {ShapeMath.WithBatch(node.Shape)}",
                        });
                        break;
                    }
                case OpKind.Embedding:
                    {
                        int y = Result(node);
                        var w = _graph.Params[node.Param];
                        Add(node, new EmbeddingStep
                        {
                            Tokens = (int)_graph[node.Inputs[0]].Elements, Vocabulary = w.Shape[0], Dim = w.Shape[1], Ids = x, In = _param[node.Param], Out = y,
                            Comment = $"{Display(node)}: rows of {w.Name} {ShapeMath.PerSample(w.Shape)} for the ids {ShapeMath.WithBatch(_graph[node.Inputs[0]].Shape)} → {ShapeMath.WithBatch(node.Shape)}",
                        });
                        break;
                    }
                case OpKind.BatchNorm:
                    {
                        var (_, channels, inner) = AxisView(node.Shape, 0);
                        int y = Result(node);
                        var step = new BatchNormStep
                        {
                            Pass = Training ? NormPass.Training : NormPass.Inference, Channels = channels, Inner = inner, Eps = node.Eps, Momentum = node.Alpha,
                            In = x, Out = y, Weight = node.Param >= 0 ? _param[node.Param] : -1, Bias = node.Param2 >= 0 ? _param[node.Param2] : -1,
                            RunningMean = _state[node.State], RunningVar = _state[node.State + 1], Count = _state[node.State + 2],
                            Comment = $"{Display(node)}: batch norm of {ShapeMath.WithBatch(node.Shape)} over all but dim 1, " + (Training ? "with the batch's statistics (the running ones updated)" : "with the running statistics"),
                        };
                        if (Training)
                        {
                            step.Mean = _stats[node.Id] = NewBuffer(BufferKind.Activation, node.Name + "_mean", channels, -1, node.Label + " batch mean [" + channels + "]");
                            step.InvStd = NewBuffer(BufferKind.Activation, node.Name + "_invstd", channels, -1, node.Label + " batch 1/σ [" + channels + "]");
                        }
                        Add(node, step);
                        break;
                    }
                case OpKind.LayerNorm:
                    {
                        int n = node.Shape[node.Shape.Length - 1];
                        int rows = (int)(node.Elements / n);
                        int y = Result(node);
                        var step = new LayerNormStep
                        {
                            Rows = rows, N = n, Eps = node.Eps, In = x, Out = y,
                            Weight = node.Param >= 0 ? _param[node.Param] : -1, Bias = node.Param2 >= 0 ? _param[node.Param2] : -1,
                            Comment = $"{Display(node)}: layer norm of each row of {n} in {ShapeMath.WithBatch(node.Shape)}",
                        };
                        if (Training && _requiresGrad[node.Id])
                        {
                            step.Mean = _stats[node.Id] = NewBuffer(BufferKind.Activation, node.Name + "_mean", rows, -1, node.Label + " row means " + ShapeMath.WithBatch(node.Shape.Take(node.Shape.Length - 1).ToArray()));
                            step.InvStd = NewBuffer(BufferKind.Activation, node.Name + "_invstd", rows, -1, node.Label + " row 1/σ " + ShapeMath.WithBatch(node.Shape.Take(node.Shape.Length - 1).ToArray()));
                        }
                        Add(node, step);
                        break;
                    }
                default:
                    ForwardElementwise(node);
                    break;
            }
        }

        // The network's output span receives the last value; views and the input itself need a copy.
        int last = _value[_graph.Output];
        if (last != _output)
        {
            var copy = new ElementwiseStep { PerSample = (int)_graph[_graph.Output].Elements, Comment = $"output: copy of {_graph[_graph.Output].Label} {ShapeMath.WithBatch(_graph[_graph.Output].Shape)}" };
            copy.Nodes.Add(_graph.Output);
            copy.Emit(new EInstr(EOp.Store, a: copy.Emit(new EInstr(EOp.Load, buffer: last)), buffer: _output));
            _steps.Add(copy);
        }
    }

    private void ForwardElementwise(Node node)
    {
        var step = new ElementwiseStep { PerSample = (int)node.Elements };
        int a = step.Emit(new EInstr(EOp.Load, buffer: _value[node.Inputs[0]]));
        int r;
        switch (node.Op)
        {
            case OpKind.BiasAdd:
                {
                    var (_, channels, inner) = AxisView(node.Shape, node.Axis);
                    int b = step.Emit(new EInstr(EOp.LoadChannel, buffer: _param[node.Param]) { Channels = channels, Inner = inner });
                    r = step.Emit(new EInstr(EOp.Add, a, b));
                    step.Comment = $"{node.Layer} bias: {ShapeMath.WithBatch(node.Shape)} + {_graph.Params[node.Param].Name}";
                    break;
                }
            case OpKind.Add:
            case OpKind.Mul:
            case OpKind.Sub:
                {
                    int b = step.Emit(new EInstr(EOp.Load, buffer: _value[node.Inputs[1]]));
                    var (op, symbol) = node.Op switch { OpKind.Add => (EOp.Add, "+"), OpKind.Sub => (EOp.Sub, "-"), _ => (EOp.Mul, "*") };
                    r = step.Emit(new EInstr(op, a, b));
                    step.Comment = $"{Display(node)}: {Display(_graph[node.Inputs[0]])} {symbol} {Display(_graph[node.Inputs[1]])} {ShapeMath.WithBatch(node.Shape)}";
                    break;
                }
            case OpKind.Dropout:
                {
                    int scale = step.Emit(new EInstr(EOp.DropoutScale, value: node.Alpha) { Seed = node.Id });
                    r = step.Emit(new EInstr(EOp.Mul, a, scale));
                    step.Comment = $"{Display(node)}: {ShapeMath.WithBatch(node.Shape)}";
                    break;
                }
            default:
                {
                    var op = node.Op switch
                    {
                        OpKind.Relu => EOp.Relu,
                        OpKind.LeakyRelu => EOp.LeakyRelu,
                        OpKind.Sigmoid => EOp.Sigmoid,
                        OpKind.Tanh => EOp.Tanh,
                        _ => EOp.Gelu,
                    };
                    r = step.Emit(new EInstr(op, a, value: node.Alpha));
                    step.Comment = $"{Display(node)}: {ShapeMath.WithBatch(node.Shape)}";
                    break;
                }
        }
        step.Emit(new EInstr(EOp.Store, r, buffer: Result(node)));
        Add(node, step);
    }

    // ---- helpers -------------------------------------------------------------------------------------------

    /// <summary>The buffer a node's value goes to: the output span for the network's output, else a new activation.</summary>
    private int Result(Node node)
    {
        if (node.Id == _graph.Output) return _value[node.Id] = _output;
        return _value[node.Id] = NewBuffer(BufferKind.Activation, node.Name, node.Elements, -1, node.Label.Length > 0 ? node.Label + " " + ShapeMath.WithBatch(node.Shape) : node.Name + " " + ShapeMath.WithBatch(node.Shape), node.Name);
    }

    /// <summary>A new buffer; <paramref name="sizeOf"/> names the node whose per-sample size it has.</summary>
    private int NewBuffer(BufferKind kind, string name, long perSample, int param, string comment, string sizeOf = "")
    {
        string unique = name;
        for (int i = 2; !_bufferNames.Add(unique); i++) unique = name + "_" + Invariant.Format(i);
        _buffers.Add(new ScheduleBuffer(_buffers.Count, kind, unique, (int)perSample, param, comment) { SizeOf = sizeOf });
        return _buffers.Count - 1;
    }

    private void Add(Node node, Step step)
    {
        step.Nodes.Add(node.Id);
        _steps.Add(step);
    }

    /// <summary>A ConvTranspose2d as the convolution whose data gradient it is: that convolution maps the output's shape to the input's.</summary>
    private WindowGeometry TransposedWindow(Node node)
    {
        int[] s = _graph[node.Inputs[0]].Shape;
        return new WindowGeometry(node.Shape[0], node.Shape[1], node.Shape[2], s[0], s[1], s[2], node.Kernel, node.Stride, node.Padding);
    }

    private WindowGeometry Window(Node node)
    {
        int[] s = _graph[node.Inputs[0]].Shape;
        return new WindowGeometry(s[0], s[1], s[2], node.Shape[0], node.Shape[1], node.Shape[2], node.Kernel, node.Stride, node.Padding);
    }

    /// <summary>A tensor as a matrix for Linear: rows per sample and the last dimension.</summary>
    private static (int Rows, int Cols) MatrixOf(int[] shape)
    {
        int rows = 1;
        for (int i = 0; i < shape.Length - 1; i++) rows *= shape[i];
        return (rows, shape[shape.Length - 1]);
    }

    /// <summary>A per-sample shape viewed as <c>[outer, n, inner]</c> around <paramref name="axis"/>.</summary>
    private static (int Outer, int N, int Inner) AxisView(int[] shape, int axis)
    {
        int outer = 1, inner = 1;
        for (int i = 0; i < axis; i++) outer *= shape[i];
        for (int i = axis + 1; i < shape.Length; i++) inner *= shape[i];
        return (outer, shape[axis], inner);
    }
}
