using System;
using System.Collections.Generic;
using System.Linq;
using NetDsl.Generator.Graph;

namespace NetDsl.Generator.Emit;

/// <summary>
/// Writes a schedule as managed C#: one block per step, each under a comment with its shapes. Dense work
/// (GEMM, convolution, pooling, softmax) calls the runtime's kernels with constant sizes; elementwise steps
/// become loops written out in full, with the fused program inline.
/// </summary>
internal sealed class CpuEmitter
{
    private readonly NetworkGraph _graph;
    private readonly Schedule _schedule;
    private readonly string _plan;
    private readonly string _t;
    private readonly CodeWriter _w;
    private readonly FusedLoops _loops;

    private CpuEmitter(NetworkGraph graph, Schedule schedule, string planClass, CodeWriter writer, FusedLoops loops)
    {
        _graph = graph;
        _schedule = schedule;
        _plan = planClass;
        _t = graph.ElementType;
        _w = writer;
        _loops = loops;
    }

    /// <summary>Writes the body of the method running <paramref name="from"/>..<paramref name="to"/> of the schedule.</summary>
    /// <param name="after">Lines to write after a step (by schedule index): the gradient-bucket signals of backward.</param>
    public static void EmitBody(NetworkGraph graph, Schedule schedule, string planClass, int from, int to, bool backward, CodeWriter w, FusedLoops loops,
        IReadOnlyDictionary<int, List<string>>? after = null)
        => new CpuEmitter(graph, schedule, planClass, w, loops).Body(from, to, backward, after);

    private void Body(int from, int to, bool backward, IReadOnlyDictionary<int, List<string>>? after)
    {
        var steps = _schedule.Steps.Skip(from).Take(to - from).ToList();
        var used = new HashSet<BufferKind>(steps.SelectMany(s => s.Reads.Concat(s.Writes)).Select(b => _schedule.Buffers[b].Kind));
        bool needsCapacity = used.Contains(BufferKind.Activation) || used.Contains(BufferKind.Index);
        if (used.Contains(BufferKind.Param)) _w.Line($"global::System.Span<{_t}> parameters = ParameterData;");
        if (used.Contains(BufferKind.ParamGrad)) _w.Line($"global::System.Span<{_t}> gradients = workspace.Gradients;");
        if (used.Contains(BufferKind.State)) _w.Line($"global::System.Span<{_t}> state = StateData;");
        if (used.Contains(BufferKind.Activation)) _w.Line($"global::System.Span<{_t}> activations = workspace.Activations;");
        if (used.Contains(BufferKind.Index)) _w.Line("global::System.Span<int> indices = workspace.Indices;");
        if (needsCapacity) _w.Line("int capacity = workspace.Capacity;");
        if (steps.Count == 0) return;
        _w.Line();
        for (int i = 0; i < steps.Count; i++)
        {
            if (i > 0) _w.Line();
            int count = Block(steps, from, i, out string? call);
            for (int s = i; s < i + count; s++) _w.Line($"// {from + s + 1}. {steps[s].Comment}");
            if (call is not null) _w.Line(call);
            else Step(steps[i]);
            for (int s = i; s < i + count; s++)
                if (after is not null && after.TryGetValue(from + s, out var lines))
                    foreach (var line in lines) _w.Line(line);
            i += count - 1;
        }
    }

    /// <summary>
    /// How many steps from <paramref name="i"/> on run as one fused CPU call (<paramref name="call"/>), or 1 (and a
    /// null call) for a step of its own. Two such blocks, in float, where the unpooled tensor between the steps is
    /// read by nothing else, so the call may keep it per sample in a thread's buffer instead of memory:
    /// <list type="bullet">
    /// <item>a convolution whose epilogue is exactly its bias and a ReLU, then max pooling of that result
    /// (<c>Convolution.ForwardReluMaxPool</c>);</item>
    /// <item>a gated max-pooling gradient, then the weight gradient (with its bias gradient) of the convolution
    /// before it, when that convolution's input needs no gradient (<c>Convolution.BackwardWeightThroughMaxPool</c>).</item>
    /// </list>
    /// The schedule and memory plan are unchanged (the device code runs the steps one by one), so the tensor keeps
    /// its place in the workspace.
    /// </summary>
    private int Block(List<Step> steps, int from, int i, out string? call)
    {
        call = null;
        if (_t != "float" || i + 1 >= steps.Count) return 1;
        if (steps[i] is ConvStep { Pass: ConvPass.Forward, Accumulate: false, BiasGrad: < 0, StoreAccumulator: false, Epilogue: { } program } conv
            && steps[i + 1] is PoolStep { Max: true, Backward: false, Accumulate: false } pool
            && BiasRelu(program, conv, out int bias) && pool.In == conv.AccumulatorTarget && !ReadAfter(pool.In, from + i + 1)
            && !SharesMemory(pool.Out, conv.In))
        {
            string index = pool.Index >= 0 ? Write(pool.Index) : "default";
            call = $"global::NetDsl.Runtime.Cpu.Convolution.ForwardReluMaxPool({Window(conv.Geometry)}, {Window(pool.Geometry)}, batch, {Read(conv.In)}, {Read(conv.In2)}, "
                + $"{Read(bias)}, {Write(pool.In)}, {Write(pool.Out)}, {index});";
            return 2;
        }
        if (steps[i] is PoolStep { Max: true, Backward: true, Accumulate: false, Gate: >= 0, Index: >= 0 } grad
            && steps[i + 1] is ConvStep { Pass: ConvPass.BackwardWeight, Epilogue: null } weight
            && weight.In2 == grad.Out && weight.BiasGrad != grad.Out && !ReadAfter(grad.Out, from + i + 1))
        {
            string db = weight.BiasGrad >= 0 ? $"{Write(weight.BiasGrad)}, biasAccumulate: {Bool(weight.BiasGradAccumulate)}" : "default, biasAccumulate: false";
            call = $"global::NetDsl.Runtime.Cpu.Convolution.BackwardWeightThroughMaxPool({Window(weight.Geometry)}, {Window(grad.Geometry)}, batch, {Read(weight.In)}, "
                + $"{Read(grad.In)}, {Read(grad.Index)}, {Read(grad.Gate)}, {Write(grad.Out)}, {Write(weight.Out)}, accumulate: {Bool(weight.Accumulate)}, {db});";
            return 2;
        }
        return 1;
    }

    /// <summary>
    /// Whether the memory plan gives two buffers overlapping memory. Separate steps may: the convolution has read
    /// all of its input before the pooling writes. The fused block writes sample b's pooled output before it reads
    /// sample b + 1's input, so it must not.
    /// </summary>
    private bool SharesMemory(int a, int b)
    {
        var (x, y) = (_schedule.Buffers[a], _schedule.Buffers[b]);
        return x.IsPlanned && y.IsPlanned && x.Kind == y.Kind && x.Offset < y.Offset + y.PerSample && y.Offset < x.Offset + x.PerSample;
    }

    /// <summary>Whether a step after schedule index <paramref name="index"/> reads <paramref name="buffer"/>.</summary>
    private bool ReadAfter(int buffer, int index) => _schedule.Steps.Skip(index + 1).Any(s => s.Reads.Contains(buffer));

    /// <summary>
    /// Whether <paramref name="program"/> is exactly <c>max(result + bias[c], 0)</c> stored into the convolution's
    /// target: the bias of its output channels, added in that order (the runtime repeats the arithmetic).
    /// </summary>
    private static bool BiasRelu(List<EInstr> program, ConvStep conv, out int bias)
    {
        bias = -1;
        if (program.Count != 5) return false;
        var (acc, load, add, relu, store) = (program[0], program[1], program[2], program[3], program[4]);
        if (acc.Op != EOp.Accumulator || load.Op != EOp.LoadChannel || add.Op != EOp.Add || relu.Op != EOp.Relu || store.Op != EOp.Store) return false;
        if (load.Channels != conv.Geometry.OutChannels || load.Inner != conv.Geometry.OutHeight * conv.Geometry.OutWidth) return false;
        if (add.A != 0 || add.B != 1 || relu.A != 2 || store.A != 3 || store.Buffer != conv.AccumulatorTarget) return false;
        bias = load.Buffer;
        return true;
    }

    private void Step(Step step)
    {
        switch (step)
        {
            case GemmStep g:
                if (g.BiasGrad >= 0)
                    _w.Line($"global::NetDsl.Runtime.Cpu.Rows.SumToChannels({Size(g.K)}, {Size(g.M)}, 1, {Read(g.A)}, {Write(g.BiasGrad)}, accumulate: {Bool(g.BiasGradAccumulate)});");
                {
                    string gemm = $"global::NetDsl.Runtime.Cpu.Gemm.Multiply({Bool(g.TransA)}, {Bool(g.TransB)}, {Size(g.M)}, {Size(g.N)}, {Size(g.K)}, "
                        + $"{Read(g.A)}, {Read(g.B)}, {Write(g.AccumulatorTarget)}, accumulate: {Bool(g.Accumulate)}";
                    if (g.Epilogue is null)
                    {
                        _w.Line(gemm + ");");
                        break;
                    }
                    // The epilogue (bias, activation) runs inside the product: by the worker that computed each
                    // block of rows, or over C right after it.
                    _w.Open();
                    string loop = NewLoop(g.Epilogue, g.AccumulatorTarget, out int period);
                    _w.Line($"{gemm}, ref {loop}, period: {Invariant.Format(period)});");
                    _w.Close();
                    break;
                }
            case ConvStep c:
                {
                    string window = Window(c.Geometry);
                    if (c.BiasGrad >= 0)
                        _w.Line($"global::NetDsl.Runtime.Cpu.Rows.SumToChannels(batch, {Invariant.Format(c.Geometry.OutChannels)}, {Invariant.Format(c.Geometry.OutHeight * c.Geometry.OutWidth)}, {Read(c.In2)}, {Write(c.BiasGrad)}, accumulate: {Bool(c.BiasGradAccumulate)});");
                    int target = c.AccumulatorTarget;
                    bool open = c.Epilogue is not null;
                    if (open) _w.Open();
                    string epilogue = c.Epilogue is not null ? ", ref " + NewLoop(c.Epilogue, target, out _) : "";
                    string call = c.Pass switch
                    {
                        ConvPass.Forward => $"Forward({window}, batch, {Read(c.In)}, {Read(c.In2)}, {Write(target)}{epilogue});",
                        ConvPass.BackwardData => $"BackwardData({window}, batch, {Read(c.In)}, {Read(c.In2)}, {Write(target)}, accumulate: {Bool(c.Accumulate)}{epilogue});",
                        _ => $"BackwardWeight({window}, batch, {Read(c.In)}, {Read(c.In2)}, {Write(target)}, accumulate: {Bool(c.Accumulate)});",
                    };
                    _w.Line("global::NetDsl.Runtime.Cpu.Convolution." + call);
                    if (open) _w.Close();
                    break;
                }
            case PoolStep p:
                {
                    string window = Window(p.Geometry);
                    string kind = p.Max ? "Max" : "Avg";
                    if (!p.Backward)
                    {
                        string index = p.Max ? ", " + (p.Index >= 0 ? Write(p.Index) : "default") : "";
                        _w.Line($"global::NetDsl.Runtime.Cpu.Pooling.{kind}Forward({window}, batch, {Read(p.In)}, {Write(p.Out)}{index});");
                    }
                    else
                    {
                        string index = p.Max ? Read(p.Index) + ", " : "";
                        string gate = p.Gate >= 0 ? ", gate: " + Read(p.Gate) : "";
                        _w.Line($"global::NetDsl.Runtime.Cpu.Pooling.{kind}Backward({window}, batch, {Read(p.In)}, {index}{Write(p.Out)}, accumulate: {Bool(p.Accumulate)}{gate});");
                    }
                    break;
                }
            case SoftmaxStep s:
                if (!s.Backward)
                    _w.Line($"global::NetDsl.Runtime.Cpu.Rows.SoftmaxForward({Outer(s.Outer)}, {Invariant.Format(s.N)}, {Invariant.Format(s.Inner)}, {Read(s.In)}, {Write(s.Out)}, log: {Bool(s.Log)});");
                else
                    _w.Line($"global::NetDsl.Runtime.Cpu.Rows.SoftmaxBackward({Outer(s.Outer)}, {Invariant.Format(s.N)}, {Invariant.Format(s.Inner)}, {Read(s.In)}, {Read(s.InGrad)}, {Write(s.Out)}, log: {Bool(s.Log)}, accumulate: {Bool(s.Accumulate)});");
                break;
            case BiasGradStep b:
                _w.Line($"global::NetDsl.Runtime.Cpu.Rows.SumToChannels({Outer(b.Outer)}, {Invariant.Format(b.Channels)}, {Invariant.Format(b.Inner)}, {Read(b.In)}, {Write(b.Out)}, accumulate: {Bool(b.Accumulate)});");
                break;
            case SliceCopyStep c:
                {
                    string dims = $"{Outer(c.Outer)}, {Invariant.Format(c.PartN)}, {Invariant.Format(c.WholeN)}, {Invariant.Format(c.Offset)}, {Invariant.Format(c.Inner)}";
                    if (!c.Backward)
                        _w.Line($"global::NetDsl.Runtime.Cpu.Rows.CopyIntoSlice({dims}, {Read(c.Part)}, {Write(c.Whole)}{(c.Accumulate ? ", accumulate: true" : "")});");
                    else
                        _w.Line($"global::NetDsl.Runtime.Cpu.Rows.CopyFromSlice({dims}, {Read(c.Whole)}, {Write(c.Part)}, accumulate: {Bool(c.Accumulate)});");
                    break;
                }
            case BatchNormStep n:
                {
                    string dims = $"batch, {Invariant.Format(n.Channels)}, {Invariant.Format(n.Inner)}";
                    const string norm = "global::NetDsl.Runtime.Cpu.Normalization.";
                    if (n.Pass == NormPass.Training)
                        _w.Line($"{norm}BatchNormTraining({dims}, {Invariant.Literal(n.Eps, "double")}, {Invariant.Literal(n.Momentum, "double")}, {Read(n.In)}, {Opt(n.Weight)}, {Opt(n.Bias)}, {Write(n.Out)}, {Write(n.Mean)}, {Write(n.InvStd)}, {Write(n.RunningMean)}, {Write(n.RunningVar)}, {Write(n.Count)});");
                    else if (n.Pass == NormPass.Inference)
                        _w.Line($"{norm}BatchNormInference({dims}, {Invariant.Literal(n.Eps, "double")}, {Read(n.In)}, {Opt(n.Weight)}, {Opt(n.Bias)}, {Read(n.RunningMean)}, {Read(n.RunningVar)}, {Write(n.Out)});");
                    else
                        _w.Line($"{norm}BatchNormBackward({dims}, {Read(n.In)}, {Read(n.InGrad)}, {Read(n.Mean)}, {Read(n.InvStd)}, {Opt(n.Weight)}, {Opt(n.Out)}, {Opt(n.WeightGrad)}, {Opt(n.BiasGrad)}, "
                            + $"accumulateInput: {Bool(n.AccumulateInput)}, accumulateWeight: {Bool(n.AccumulateWeight)}, accumulateBias: {Bool(n.AccumulateBias)});");
                    break;
                }
            case LayerNormStep n:
                {
                    string dims = $"{Outer(n.Rows)}, {Invariant.Format(n.N)}";
                    const string norm = "global::NetDsl.Runtime.Cpu.Normalization.";
                    if (!n.Backward)
                        _w.Line($"{norm}LayerNormForward({dims}, {Invariant.Literal(n.Eps, "double")}, {Read(n.In)}, {Opt(n.Weight)}, {Opt(n.Bias)}, {Write(n.Out)}, {Opt(n.Mean)}, {Opt(n.InvStd)});");
                    else
                        _w.Line($"{norm}LayerNormBackward({dims}, {Read(n.In)}, {Read(n.InGrad)}, {Read(n.Mean)}, {Read(n.InvStd)}, {Opt(n.Weight)}, {Opt(n.Out)}, {Opt(n.WeightGrad)}, {Opt(n.BiasGrad)}, "
                            + $"accumulateInput: {Bool(n.AccumulateInput)}, accumulateWeight: {Bool(n.AccumulateWeight)}, accumulateBias: {Bool(n.AccumulateBias)});");
                    break;
                }
            case EmbeddingStep m:
                {
                    string dims = $"{Outer(m.Tokens)}, {Invariant.Format(m.Vocabulary)}, {Invariant.Format(m.Dim)}";
                    if (!m.Backward)
                        _w.Line($"global::NetDsl.Runtime.Cpu.Lookup.EmbeddingForward({dims}, {Read(m.Ids)}, {Read(m.In)}, {Write(m.Out)});");
                    else
                        _w.Line($"global::NetDsl.Runtime.Cpu.Lookup.EmbeddingBackward({dims}, {Read(m.Ids)}, {Read(m.In)}, {Write(m.Out)}, accumulate: {Bool(m.Accumulate)});");
                    break;
                }
            case UpsampleStep u:
                {
                    string dims = $"{Outer(u.Channels)}, {Invariant.Format(u.Height)}, {Invariant.Format(u.Width)}, {Invariant.Format(u.Scale)}";
                    if (!u.Backward)
                        _w.Line($"global::NetDsl.Runtime.Cpu.Lookup.UpsampleForward({dims}, {Read(u.In)}, {Write(u.Out)});");
                    else
                        _w.Line($"global::NetDsl.Runtime.Cpu.Lookup.UpsampleBackward({dims}, {Read(u.In)}, {Write(u.Out)}, accumulate: {Bool(u.Accumulate)});");
                    break;
                }
            case ElementwiseStep e:
                {
                    _w.Open();
                    string loop = NewLoop(e.Program, accumulator: -1, out int period);
                    var stored = _schedule.Buffers[e.Program.Last(i => i.Op == EOp.Store).Buffer];
                    string count = stored.Kind == BufferKind.Output || stored.SizeOf.Length == 0 ? Invariant.Format(e.PerSample) : PerSample(stored);
                    _w.Line($"global::NetDsl.Runtime.Cpu.CpuWorkers.ForEach(ref {loop}, batch * {count}, {Invariant.Format(period)});");
                    _w.Close();
                    break;
                }
            default:
                throw new InvalidOperationException("The CPU emitter has no rule for " + step.GetType().Name);
        }
    }

    // ---- elementwise loops ---------------------------------------------------------------------------------

    /// <summary>
    /// Declares a local of the fused-loop struct for <paramref name="program"/> (emitting the struct on first
    /// use), with its span fields bound to this step's buffers; returns the local's name. The struct's
    /// <c>Run(start, end)</c> is called by the workers (or by a kernel as its epilogue) on element ranges that
    /// start at a multiple of <paramref name="period"/>.
    /// </summary>
    private string NewLoop(List<EInstr> program, int accumulator, out int period)
    {
        var buffers = program.Where(i => i.Op is EOp.Load or EOp.LoadChannel or EOp.Store).Select(i => i.Buffer).ToList();
        if (accumulator >= 0) buffers.Insert(0, accumulator);
        var fields = new List<(string Name, bool Written, int Buffer)>();
        var locals = new Dictionary<int, string>();
        foreach (int b in buffers.Distinct())
        {
            string name = "s" + Invariant.Format(locals.Count);
            locals[b] = name;
            fields.Add((name, program.Any(i => i.Op == EOp.Store && i.Buffer == b), b));
        }
        var seeds = program.Where(i => i.Op == EOp.DropoutScale).Select(i => i.Seed).Distinct().ToList();
        var channel = program.FirstOrDefault(i => i.Op == EOp.LoadChannel);
        period = channel is null ? 64 : channel.Channels * channel.Inner;

        // The struct: fields, then Run.
        var def = new CodeWriter();
        foreach (var (name, written, _) in fields)
            def.Line($"public global::System.{(written ? "Span" : "ReadOnlySpan")}<{_t}> {name};");
        foreach (int seed in seeds) def.Line($"public ulong seed{Invariant.Format(seed)};");
        def.Line();
        def.Line("/// <inheritdoc />");
        def.Open("public void Run(int start, int end)");
        RunBody(program, locals, accumulator, channel, def);
        def.Close();
        string structName = _loops.Register(def.ToString());

        string local = "loop";
        _w.Line($"var {local} = new {structName}");
        _w.Line("{");
        _w.Indent();
        foreach (var (name, written, b) in fields)
            _w.Line($"{name} = {(written ? Write(b) : Read(b))}, // {_schedule.Buffers[b].Comment}");
        foreach (int seed in seeds)
            _w.Line($"seed{Invariant.Format(seed)} = global::NetDsl.Runtime.CounterRandom.Derive(workspace.DropoutSeed, {Invariant.Format(seed)}),");
        _w.Outdent();
        _w.Line("};");
        return local;
    }

    /// <summary>
    /// The loop over [start, end): a SIMD register of elements per iteration (<c>Vector&lt;T&gt;</c>) and a scalar
    /// tail; programs with dropout or GELU stay scalar.
    /// </summary>
    private void RunBody(List<EInstr> program, Dictionary<int, string> locals, int accumulator, EInstr? channel, CodeWriter w)
    {
        bool simd = program.All(i => i.Op is not (EOp.DropoutScale or EOp.Gelu or EOp.GeluGrad));
        string width = $"global::System.Numerics.Vector<{_t}>.Count";
        if (channel is null)
        {
            w.Line("int i = start;");
            if (simd)
            {
                w.Open($"for (; i <= end - {width}; i += {width})");
                Program(program, locals, accumulator, vector: true, channelIndex: null, w);
                w.Close();
            }
            w.Open("for (; i < end; i++)");
            Program(program, locals, accumulator, vector: false, channelIndex: null, w);
            w.Close();
        }
        else if (channel.Inner == 1)
        {
            // A bias along the last dimension: rows of C elements, the bias vector loaded alongside each row.
            string cs = Invariant.Format(channel.Channels);
            w.Open($"for (int o = start / {cs}; o < end / {cs}; o++)");
            w.Line("int c = 0;");
            if (simd)
            {
                w.Open($"for (; c <= {cs} - {width}; c += {width})");
                w.Line($"int i = o * {cs} + c;");
                Program(program, locals, accumulator, vector: true, channelIndex: "c", w);
                w.Close();
            }
            w.Open($"for (; c < {cs}; c++)");
            w.Line($"int i = o * {cs} + c;");
            Program(program, locals, accumulator, vector: false, channelIndex: "c", w);
            w.Close();
            w.Close();
        }
        else
        {
            // A bias per channel of [C, H, W]: one value broadcast over each channel's plane.
            int c = channel.Channels, inner = channel.Inner;
            string plane = Invariant.Format(c * inner);
            w.Open($"for (int o = start / {plane}; o < end / {plane}; o++)");
            w.Open($"for (int c = 0; c < {Invariant.Format(c)}; c++)");
            foreach (var (instr, index) in program.Select((x, i) => (x, i)).Where(p => p.x.Op == EOp.LoadChannel))
            {
                w.Line($"{_t} r{Invariant.Format(index)} = {locals[instr.Buffer]}[c];");
                if (simd) w.Line($"var v{Invariant.Format(index)} = new global::System.Numerics.Vector<{_t}>(r{Invariant.Format(index)});");
            }
            w.Line($"int i = (o * {Invariant.Format(c)} + c) * {Invariant.Format(inner)}, stop = i + {Invariant.Format(inner)};");
            if (simd)
            {
                w.Open($"for (; i <= stop - {width}; i += {width})");
                Program(program, locals, accumulator, vector: true, channelIndex: null, w);
                w.Close();
            }
            w.Open("for (; i < stop; i++)");
            Program(program, locals, accumulator, vector: false, channelIndex: null, w);
            w.Close();
            w.Close();
            w.Close();
        }
    }

    /// <summary>
    /// The per-element (or per-register) program: all loads first (so an output may share memory with an
    /// input), then the rest in order. <paramref name="channelIndex"/> names the index of a bias that varies along
    /// the loop; otherwise per-channel values were hoisted out of it.
    /// </summary>
    private void Program(List<EInstr> program, Dictionary<int, string> locals, int accumulator, bool vector, string? channelIndex, CodeWriter w)
    {
        string reg = vector ? "v" : "r";
        var order = program.Select((instr, index) => (instr, index))
            .Where(p => p.instr.Op is EOp.Load or EOp.Accumulator || p.instr.Op == EOp.LoadChannel && channelIndex is not null)
            .Concat(program.Select((instr, index) => (instr, index)).Where(p => p.instr.Op is not (EOp.Load or EOp.LoadChannel or EOp.Accumulator)));
        foreach (var (instr, index) in order)
        {
            string r = reg + Invariant.Format(index);
            string a = instr.A >= 0 ? reg + Invariant.Format(instr.A) : "";
            string b = instr.B >= 0 ? reg + Invariant.Format(instr.B) : "";
            if (instr.Op == EOp.Store)
            {
                w.Line(vector ? $"global::NetDsl.Runtime.Cpu.Lanes.Store({locals[instr.Buffer]}, i, {a});" : $"{locals[instr.Buffer]}[i] = {a};");
                continue;
            }
            string value = instr.Op switch
            {
                EOp.Load => vector ? $"global::NetDsl.Runtime.Cpu.Lanes.Load({locals[instr.Buffer]}, i)" : $"{locals[instr.Buffer]}[i]",
                EOp.Accumulator => vector ? $"global::NetDsl.Runtime.Cpu.Lanes.Load({locals[accumulator]}, i)" : $"{locals[accumulator]}[i]",
                EOp.LoadChannel => vector ? $"global::NetDsl.Runtime.Cpu.Lanes.Load({locals[instr.Buffer]}, {channelIndex})" : $"{locals[instr.Buffer]}[{channelIndex}]",
                _ => vector ? ElementwiseMath.VectorExpression(instr, a, b, _t) : ElementwiseMath.CpuScalarExpression(instr, a, b, _t, "i"),
            };
            w.Line(vector ? $"var {r} = {value};" : $"{_t} {r} = {value};");
        }
    }

    // ---- operands ------------------------------------------------------------------------------------------

    private string Read(int buffer) => Operand(buffer);

    /// <summary>An optional operand: <c>default</c> (an empty span) when absent.</summary>
    private string Opt(int buffer) => buffer < 0 ? "default" : Operand(buffer);

    private string Write(int buffer) => Operand(buffer);

    private string Operand(int id)
    {
        var b = _schedule.Buffers[id];
        switch (b.Kind)
        {
            case BufferKind.Input: return "input";
            case BufferKind.Output: return "output";
            case BufferKind.OutputGrad: return "outputGradient";
            case BufferKind.Param:
                {
                    var p = _graph.Params[b.Param];
                    return $"parameters.Slice(Layout.{Names.Identifier(p.Identifier)}, Layout.{Names.Identifier(p.Identifier + "_length")})";
                }
            case BufferKind.ParamGrad:
                {
                    var p = _graph.Params[b.Param];
                    return $"gradients.Slice(Layout.{Names.Identifier(p.Identifier)}, Layout.{Names.Identifier(p.Identifier + "_length")})";
                }
            case BufferKind.State:
                {
                    var st = _graph.States[b.Param];
                    return $"state.Slice(Layout.{Names.Identifier("state_" + st.Identifier)}, {Invariant.Format(st.Length)})";
                }
            case BufferKind.Index:
                return $"indices.Slice({_plan}.{Names.Identifier(b.Name)} * capacity, batch * {PerSample(b)})";
            default:
                return $"activations.Slice({_plan}.{Names.Identifier(b.Name)} * capacity, batch * {PerSample(b)})";
        }
    }

    private static string PerSample(ScheduleBuffer b) => b.SizeOf.Length > 0 ? "Sizes." + Names.Identifier(b.SizeOf) : Invariant.Format(b.PerSample);

    private static string Window(WindowGeometry g)
        => "new global::NetDsl.Runtime.Cpu.Window2d(" + string.Join(", ", new[] { g.InChannels, g.InHeight, g.InWidth, g.OutChannels, g.OutHeight, g.OutWidth, g.Kernel, g.Stride, g.Padding }.Select(Invariant.Format)) + ")";

    private static string Size(Extent e) => e.PerBatch ? (e.Value == 1 ? "batch" : "batch * " + Invariant.Format(e.Value)) : Invariant.Format(e.Value);

    private static string Outer(int perSample) => perSample == 1 ? "batch" : "batch * " + Invariant.Format(perSample);

    private static string Bool(bool value) => value ? "true" : "false";

    private string Lit(double value) => Invariant.Literal(value, _t);
}

/// <summary>
/// The fused elementwise loops of one network: each distinct loop becomes one <c>ref struct</c> implementing
/// <c>IElementwise</c>, shared by every step (training, inference) that runs the same program.
/// </summary>
internal sealed class FusedLoops
{
    private readonly Dictionary<string, string> _names = new(StringComparer.Ordinal);
    private readonly List<(string Name, string Body)> _definitions = new();

    /// <summary>The struct name for a loop body, registering it on first sight.</summary>
    public string Register(string body)
    {
        if (_names.TryGetValue(body, out var name)) return name;
        name = "FusedLoop" + Invariant.Format(_definitions.Count + 1);
        _names[body] = name;
        _definitions.Add((name, body));
        return name;
    }

    /// <summary>Writes the structs.</summary>
    public void Emit(CodeWriter w, string t)
    {
        foreach (var (name, body) in _definitions)
        {
            w.Line();
            w.Line($"/// <summary>A fused elementwise loop over {t} elements, run by the workers or as a kernel's epilogue.</summary>");
            w.Open($"private ref struct {name} : global::NetDsl.Runtime.Cpu.IElementwise");
            var lines = body.Split('\n');
            foreach (var line in lines.Take(lines.Length - 1)) w.Line(line);
            w.Close();
        }
    }
}
