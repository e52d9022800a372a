using System;
using System.Collections.Generic;
using NetDsl.Generator.Shapes;

namespace NetDsl.Generator.Graph;

/// <summary>
/// Reverse-mode autodiff at compile time. Walking the forward graph backwards, each operation's gradient rule
/// (below, one per op) adds the steps that carry d(loss)/d(output) to its inputs and parameters. The first
/// contribution to a gradient buffer overwrites it and later ones (fan-out, a layer applied twice) add to it,
/// so no buffer is ever zeroed. Inputs never get gradients, and nothing is computed for tensors that do not
/// depend on a parameter. Gradients that pass through unchanged (bias, reshape, the sum of a residual) share
/// their buffer instead of being copied. A layer's weight gradient is scheduled before its input gradient, so
/// the input gradient's GEMM is followed directly by the next op's elementwise gradient and can take it as its
/// epilogue.
/// </summary>
internal sealed partial class ScheduleBuilder
{
    private readonly int[] _grad;
    private readonly int[] _paramGrad;
    private readonly HashSet<int> _written = new();

    private void Backward()
    {
        int outputGrad = NewBuffer(BufferKind.OutputGrad, "outputGradient", _graph[_graph.Output].Elements, -1, "d(loss)/d(output)");
        _grad[_graph.Output] = outputGrad;
        _written.Add(outputGrad);
        for (int p = 0; p < _graph.Params.Count; p++)
            _paramGrad[p] = NewBuffer(BufferKind.ParamGrad, "grad_" + _graph.Params[p].Identifier, 0, p, "d " + _graph.Params[p].Name);

        for (int id = _graph.Nodes.Count - 1; id >= 0; id--)
        {
            var node = _graph[id];
            if (!_alive[id] || !_requiresGrad[id] || _grad[id] < 0) continue;
            Differentiate(node);
        }
    }

    // ---- gradient rules, one per op ------------------------------------------------------------------------

    private void Differentiate(Node node)
    {
        int dy = _grad[node.Id];
        int y = _value[node.Id];
        int xNode = node.Inputs.Length > 0 ? node.Inputs[0] : -1;
        int x = xNode >= 0 ? _value[xNode] : -1;
        switch (node.Op)
        {
            case OpKind.MatMul:
                {
                    var (rows, k) = MatrixOf(_graph[xNode].Shape);
                    int n = node.Shape[node.Shape.Length - 1];
                    string w = _graph.Params[node.Param].Name;
                    ContributeParam(node, node.Param, (dw, acc) => new GemmStep
                    {
                        TransA = true, M = Extent.Fixed(n), N = Extent.Fixed(k), K = Extent.Batch(rows), A = dy, B = x, C = dw, Accumulate = acc,
                        Comment = $"d{w}: d{ShapeMath.WithBatch(node.Shape)}ᵀ·{ShapeMath.WithBatch(_graph[xNode].Shape)} → {ShapeMath.PerSample(_graph.Params[node.Param].Shape)}",
                    });
                    Contribute(node, xNode, (dx, acc) => new GemmStep
                    {
                        M = Extent.Batch(rows), N = Extent.Fixed(k), K = Extent.Fixed(n), A = dy, B = _param[node.Param], C = dx, Accumulate = acc,
                        Comment = $"d{Display(node)} input: d{ShapeMath.WithBatch(node.Shape)}·{w} → {ShapeMath.WithBatch(_graph[xNode].Shape)}",
                    });
                    break;
                }
            case OpKind.BiasAdd:
                {
                    int axis = node.Axis;
                    var (outer, channels, inner) = AxisView(node.Shape, axis);
                    ContributeParam(node, node.Param, (db, acc) => new BiasGradStep
                    {
                        Outer = outer, Channels = channels, Inner = inner, In = dy, Out = db, Accumulate = acc,
                        Comment = $"d{_graph.Params[node.Param].Name}: sum of d{ShapeMath.WithBatch(node.Shape)} over all but dim {axis + 1}",
                    });
                    PassThrough(node, xNode, dy);
                    break;
                }
            case OpKind.Conv2d:
                {
                    var g = Window(node);
                    string w = _graph.Params[node.Param].Name;
                    ContributeParam(node, node.Param, (dw, acc) => new ConvStep
                    {
                        Pass = ConvPass.BackwardWeight, Geometry = g, In = x, In2 = dy, Out = dw, Accumulate = acc,
                        Comment = $"d{w}: correlate {ShapeMath.WithBatch(_graph[xNode].Shape)} with d{ShapeMath.WithBatch(node.Shape)} → {ShapeMath.PerSample(_graph.Params[node.Param].Shape)}",
                    });
                    Contribute(node, xNode, (dx, acc) => new ConvStep
                    {
                        Pass = ConvPass.BackwardData, Geometry = g, In = dy, In2 = _param[node.Param], Out = dx, Accumulate = acc,
                        Comment = $"d{Display(node)} input: transposed conv of d{ShapeMath.WithBatch(node.Shape)} with {w} → {ShapeMath.WithBatch(_graph[xNode].Shape)}",
                    });
                    break;
                }
            case OpKind.MaxPool2d:
            case OpKind.AvgPool2d:
                {
                    bool max = node.Op == OpKind.MaxPool2d;
                    Contribute(node, xNode, (dx, acc) => new PoolStep
                    {
                        Max = max, Backward = true, Geometry = Window(node), In = dy, Out = dx, Index = max ? _index[node.Id] : -1, Accumulate = acc,
                        Comment = $"d{Display(node)}: d{ShapeMath.WithBatch(node.Shape)} → {ShapeMath.WithBatch(_graph[xNode].Shape)}" + (max ? " through the recorded max positions" : " spread evenly"),
                    });
                    break;
                }
            case OpKind.Reshape:
                PassThrough(node, xNode, dy);
                break;
            case OpKind.Softmax:
            case OpKind.LogSoftmax:
                {
                    var (outer, n, inner) = AxisView(node.Shape, node.Axis);
                    Contribute(node, xNode, (dx, acc) => new SoftmaxStep
                    {
                        Log = node.Op == OpKind.LogSoftmax, Backward = true, Outer = outer, N = n, Inner = inner, In = y, InGrad = dy, Out = dx, Accumulate = acc,
                        Comment = $"d{Display(node)}: from its output {ShapeMath.WithBatch(node.Shape)}",
                    });
                    break;
                }
            case OpKind.Concat:
                {
                    var (outer, wholeN, inner) = AxisView(node.Shape, node.Axis);
                    int offset = 0;
                    foreach (int part in node.Inputs)
                    {
                        int partN = _graph[part].Shape[node.Axis], at = offset;
                        Contribute(node, part, (dp, acc) => new SliceCopyStep
                        {
                            Backward = true, Outer = outer, PartN = partN, WholeN = wholeN, Offset = at, Inner = inner, Part = dp, Whole = dy, Accumulate = acc,
                            Comment = $"d{Display(node)}: dim {node.Axis + 1} [{at}, {at + partN}) of d{ShapeMath.WithBatch(node.Shape)} → d{Display(_graph[part])}",
                        });
                        offset += partN;
                    }
                    break;
                }
            case OpKind.Add:
                PassThrough(node, node.Inputs[0], dy);
                PassThrough(node, node.Inputs[1], dy);
                break;
            case OpKind.Mul:
                {
                    int a = node.Inputs[0], b = node.Inputs[1];
                    ContributeElementwise(node, a, $"d{Display(node)} left: d{ShapeMath.WithBatch(node.Shape)} * {Display(_graph[b])}",
                        s => s.Emit(new EInstr(EOp.Mul, s.Emit(new EInstr(EOp.Load, buffer: dy)), s.Emit(new EInstr(EOp.Load, buffer: _value[b])))));
                    ContributeElementwise(node, b, $"d{Display(node)} right: d{ShapeMath.WithBatch(node.Shape)} * {Display(_graph[a])}",
                        s => s.Emit(new EInstr(EOp.Mul, s.Emit(new EInstr(EOp.Load, buffer: dy)), s.Emit(new EInstr(EOp.Load, buffer: _value[a])))));
                    break;
                }
            case OpKind.Relu:
                ContributeElementwise(node, xNode, $"d{Display(node)}: d{ShapeMath.WithBatch(node.Shape)} where the output is positive",
                    s => s.Emit(new EInstr(EOp.PositiveMask, s.Emit(new EInstr(EOp.Load, buffer: y)), s.Emit(new EInstr(EOp.Load, buffer: dy)))));
                break;
            case OpKind.LeakyRelu:
                {
                    // With a positive slope the output's sign equals the input's, so the output (kept anyway) serves.
                    int sign = node.Alpha > 0 ? y : x;
                    ContributeElementwise(node, xNode, $"d{Display(node)}: d{ShapeMath.WithBatch(node.Shape)}, scaled by {Invariant.Format(node.Alpha)} where the input is not positive",
                        s => s.Emit(new EInstr(EOp.LeakyMask, s.Emit(new EInstr(EOp.Load, buffer: sign)), s.Emit(new EInstr(EOp.Load, buffer: dy)), value: node.Alpha)));
                    break;
                }
            case OpKind.Sigmoid:
                ContributeElementwise(node, xNode, $"d{Display(node)}: d{ShapeMath.WithBatch(node.Shape)} * y(1 - y)",
                    s => s.Emit(new EInstr(EOp.Mul, s.Emit(new EInstr(EOp.SigmoidGrad, s.Emit(new EInstr(EOp.Load, buffer: y)))), s.Emit(new EInstr(EOp.Load, buffer: dy)))));
                break;
            case OpKind.Tanh:
                ContributeElementwise(node, xNode, $"d{Display(node)}: d{ShapeMath.WithBatch(node.Shape)} * (1 - y²)",
                    s => s.Emit(new EInstr(EOp.Mul, s.Emit(new EInstr(EOp.TanhGrad, s.Emit(new EInstr(EOp.Load, buffer: y)))), s.Emit(new EInstr(EOp.Load, buffer: dy)))));
                break;
            case OpKind.Gelu:
                ContributeElementwise(node, xNode, $"d{Display(node)}: d{ShapeMath.WithBatch(node.Shape)} * GELU'(x)",
                    s => s.Emit(new EInstr(EOp.Mul, s.Emit(new EInstr(EOp.GeluGrad, s.Emit(new EInstr(EOp.Load, buffer: x)))), s.Emit(new EInstr(EOp.Load, buffer: dy)))));
                break;
            case OpKind.Dropout:
                ContributeElementwise(node, xNode, $"d{Display(node)}: d{ShapeMath.WithBatch(node.Shape)} * the forward mask (recomputed from the step's seed)",
                    s => s.Emit(new EInstr(EOp.Mul, s.Emit(new EInstr(EOp.Load, buffer: dy)), s.Emit(new EInstr(EOp.DropoutScale, value: node.Alpha) { Seed = node.Id }))));
                break;
            case OpKind.Sub:
                PassThrough(node, node.Inputs[0], dy);
                ContributeElementwise(node, node.Inputs[1], $"d{Display(node)} right: -d{ShapeMath.WithBatch(node.Shape)}",
                    s => s.Emit(new EInstr(EOp.Sub, s.Emit(new EInstr(EOp.Const, value: 0)), s.Emit(new EInstr(EOp.Load, buffer: dy)))));
                break;
            case OpKind.Slice:
                {
                    var whole = _graph[xNode];
                    var (outer, wholeN, inner) = AxisView(whole.Shape, node.Axis);
                    int partN = (int)(node.Elements / ((long)outer * inner));
                    if (!_requiresGrad[xNode]) break;
                    // The slice's gradient lands in its window of the whole's gradient; the rest of that gradient is
                    // zero unless another slice or consumer adds to it, so a first contribution starts from zeros.
                    if (_grad[xNode] < 0 || !_written.Contains(_grad[xNode]))
                        ContributeElementwise(node, xNode, $"d{Display(whole)} starts at zero (only slices of it are used)", st => st.Emit(new EInstr(EOp.Const, value: 0)));
                    Contribute(node, xNode, (dw, acc) => new SliceCopyStep
                    {
                        Outer = outer, PartN = partN, WholeN = wholeN, Offset = node.Start, Inner = inner, Part = dy, Whole = dw, Accumulate = true,
                        Comment = $"d{Display(node)}: d{ShapeMath.WithBatch(node.Shape)} added into dim {node.Axis + 1} [{node.Start}, {node.Start + partN}) of d{Display(whole)}",
                    });
                    break;
                }
            case OpKind.Upsample:
                {
                    var s = _graph[xNode].Shape;
                    Contribute(node, xNode, (dx, acc) => new UpsampleStep
                    {
                        Backward = true, Channels = s[0], Height = s[1], Width = s[2], Scale = node.Kernel, In = dy, Out = dx, Accumulate = acc,
                        Comment = $"d{Display(node)}: each {node.Kernel}x{node.Kernel} block of d{ShapeMath.WithBatch(node.Shape)} summed → {ShapeMath.WithBatch(s)}",
                    });
                    break;
                }
            case OpKind.Embedding:
                {
                    var w = _graph.Params[node.Param];
                    ContributeParam(node, node.Param, (dw, acc) => new EmbeddingStep
                    {
                        Backward = true, Tokens = (int)_graph[xNode].Elements, Vocabulary = w.Shape[0], Dim = w.Shape[1], Ids = x, In = dy, Out = dw, Accumulate = acc,
                        Comment = $"d{w.Name}: d{ShapeMath.WithBatch(node.Shape)} added to the rows of the ids",
                    });
                    break; // token ids have no gradient
                }
            case OpKind.ConvTranspose2d:
                {
                    var g = TransposedWindow(node);
                    string w = _graph.Params[node.Param].Name;
                    ContributeParam(node, node.Param, (dw, acc) => new ConvStep
                    {
                        Pass = ConvPass.BackwardWeight, Geometry = g, In = dy, In2 = x, Out = dw, Accumulate = acc,
                        Comment = $"d{w}: correlate d{ShapeMath.WithBatch(node.Shape)} with the input {ShapeMath.WithBatch(_graph[xNode].Shape)} → {ShapeMath.PerSample(_graph.Params[node.Param].Shape)}",
                    });
                    if (!_requiresGrad[xNode]) break;
                    bool first = _grad[xNode] < 0 || !_written.Contains(_grad[xNode]);
                    if (first)
                    {
                        Contribute(node, xNode, (dx, acc) => new ConvStep
                        {
                            Pass = ConvPass.Forward, Geometry = g, In = dy, In2 = _param[node.Param], Out = dx,
                            Comment = $"d{Display(node)} input: conv of d{ShapeMath.WithBatch(node.Shape)} with {w} → {ShapeMath.WithBatch(_graph[xNode].Shape)}",
                        });
                    }
                    else
                    {
                        // A forward convolution overwrites: compute into a temporary and add.
                        int tmp = NewBuffer(BufferKind.Activation, "d_" + node.Name + "_input", _graph[xNode].Elements, -1, "d " + node.Label + " input (to add) " + ShapeMath.WithBatch(_graph[xNode].Shape), _graph[xNode].Name);
                        Add(node, new ConvStep
                        {
                            Pass = ConvPass.Forward, Geometry = g, In = dy, In2 = _param[node.Param], Out = tmp,
                            Comment = $"d{Display(node)} input: conv of d{ShapeMath.WithBatch(node.Shape)} with {w} → {ShapeMath.WithBatch(_graph[xNode].Shape)}",
                        });
                        ContributeElementwise(node, xNode, $"d{Display(_graph[xNode])} += d{Display(node)} input", st => st.Emit(new EInstr(EOp.Load, buffer: tmp)));
                    }
                    break;
                }
            case OpKind.BatchNorm:
            case OpKind.LayerNorm:
                {
                    bool batchNorm = node.Op == OpKind.BatchNorm;
                    int dx = -1;
                    bool accX = false, accW = false, accB = false;
                    if (_requiresGrad[xNode])
                    {
                        if (_grad[xNode] < 0)
                            _grad[xNode] = NewBuffer(BufferKind.Activation, "d_" + _graph[xNode].Name, _graph[xNode].Elements, -1, "d " + Display(_graph[xNode]) + " " + ShapeMath.WithBatch(_graph[xNode].Shape), _graph[xNode].Name);
                        dx = _grad[xNode];
                        accX = !_written.Add(dx);
                    }
                    int dw = node.Param >= 0 ? _paramGrad[node.Param] : -1, db = node.Param2 >= 0 ? _paramGrad[node.Param2] : -1;
                    if (dw >= 0) accW = !_written.Add(dw);
                    if (db >= 0) accB = !_written.Add(db);
                    if (dx < 0 && dw < 0 && db < 0) break;
                    string what = "d" + node.Label + ": " + (dx >= 0 ? "dX" : "") + (dw >= 0 ? (dx >= 0 ? ", " : "") + "dγ, dβ" : "") + " from d" + ShapeMath.WithBatch(node.Shape) + " and the saved statistics";
                    if (batchNorm)
                    {
                        var (_, channels, inner) = AxisView(node.Shape, 0);
                        Add(node, new BatchNormStep
                        {
                            Pass = NormPass.Backward, Channels = channels, Inner = inner, Eps = node.Eps, In = x, InGrad = dy, Out = dx,
                            Weight = node.Param >= 0 ? _param[node.Param] : -1, WeightGrad = dw, BiasGrad = db,
                            AccumulateInput = accX, AccumulateWeight = accW, AccumulateBias = accB,
                            Mean = _stats[node.Id], InvStd = _stats[node.Id] + 1, Comment = what,
                        });
                    }
                    else
                    {
                        int n = node.Shape[node.Shape.Length - 1];
                        Add(node, new LayerNormStep
                        {
                            Backward = true, Rows = (int)(node.Elements / n), N = n, Eps = node.Eps, In = x, InGrad = dy, Out = dx,
                            Weight = node.Param >= 0 ? _param[node.Param] : -1, WeightGrad = dw, BiasGrad = db,
                            AccumulateInput = accX, AccumulateWeight = accW, AccumulateBias = accB,
                            Mean = _stats[node.Id], InvStd = _stats[node.Id] + 1, Comment = what,
                        });
                    }
                    break;
                }
            case OpKind.Zeros:
            case OpKind.Input:
                break;
            default:
                throw new InvalidOperationException("No gradient rule for " + node.Op);
        }
    }

    // ---- contributions -------------------------------------------------------------------------------------

    /// <summary>Adds a step that writes (first time) or adds (later) a contribution to <paramref name="target"/>'s gradient.</summary>
    private void Contribute(Node node, int target, Func<int, bool, Step> build)
    {
        if (!_requiresGrad[target]) return;
        if (_grad[target] < 0)
            _grad[target] = NewBuffer(BufferKind.Activation, "d_" + _graph[target].Name, _graph[target].Elements, -1, "d " + Display(_graph[target]) + " " + ShapeMath.WithBatch(_graph[target].Shape), _graph[target].Name);
        int buffer = _grad[target];
        bool accumulate = !_written.Add(buffer);
        Add(node, build(buffer, accumulate));
    }

    private void ContributeParam(Node node, int param, Func<int, bool, Step> build)
    {
        int buffer = _paramGrad[param];
        bool accumulate = !_written.Add(buffer);
        Add(node, build(buffer, accumulate));
    }

    /// <summary>An elementwise contribution: <paramref name="value"/> emits the gradient's register.</summary>
    private void ContributeElementwise(Node node, int target, string comment, Func<ElementwiseStep, int> value)
    {
        Contribute(node, target, (dx, accumulate) =>
        {
            var step = new ElementwiseStep { PerSample = (int)_graph[target].Elements, Comment = comment };
            int r = value(step);
            if (accumulate) r = step.Emit(new EInstr(EOp.Add, step.Emit(new EInstr(EOp.Load, buffer: dx)), r));
            step.Emit(new EInstr(EOp.Store, r, buffer: dx));
            return step;
        });
    }

    /// <summary>
    /// The gradient passes through unchanged: share <paramref name="dy"/> when <paramref name="target"/> has no
    /// other consumer, else add it like any contribution.
    /// </summary>
    private void PassThrough(Node node, int target, int dy)
    {
        if (!_requiresGrad[target]) return;
        if (_consumers[target] == 1 && _grad[target] < 0)
        {
            _grad[target] = dy;
            return;
        }
        ContributeElementwise(node, target, $"d{Display(_graph[target])} += d{Display(node)}",
            s => s.Emit(new EInstr(EOp.Load, buffer: dy)));
    }

    /// <summary>How comments name a node: its label, or for a layer's bias, the layer.</summary>
    private static string Display(Node node)
        => node.Label.Length > 0 ? node.Label : node.Op == OpKind.BiasAdd && node.Layer.Length > 0 ? node.Layer + " (with bias)" : node.Name;
}
