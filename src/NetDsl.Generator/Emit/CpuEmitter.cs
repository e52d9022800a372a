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

    private CpuEmitter(NetworkGraph graph, Schedule schedule, string planClass, CodeWriter writer)
    {
        _graph = graph;
        _schedule = schedule;
        _plan = planClass;
        _t = graph.ElementType;
        _w = writer;
    }

    /// <summary>Writes the body of the method running <paramref name="from"/>..<paramref name="to"/> of the schedule.</summary>
    public static void EmitBody(NetworkGraph graph, Schedule schedule, string planClass, int from, int to, bool backward, CodeWriter w)
        => new CpuEmitter(graph, schedule, planClass, w).Body(from, to, backward);

    private void Body(int from, int to, bool backward)
    {
        var steps = _schedule.Steps.Skip(from).Take(to - from).ToList();
        var used = new HashSet<BufferKind>(steps.SelectMany(s => s.Reads.Concat(s.Writes)).Select(b => _schedule.Buffers[b].Kind));
        bool needsCapacity = used.Contains(BufferKind.Activation) || used.Contains(BufferKind.Index);
        if (used.Contains(BufferKind.Param)) _w.Line($"global::System.Span<{_t}> parameters = ParameterData;");
        if (used.Contains(BufferKind.ParamGrad)) _w.Line($"global::System.Span<{_t}> gradients = workspace.Gradients;");
        if (used.Contains(BufferKind.Activation)) _w.Line($"global::System.Span<{_t}> activations = workspace.Activations;");
        if (used.Contains(BufferKind.Index)) _w.Line("global::System.Span<int> indices = workspace.Indices;");
        if (steps.OfType<ConvStep>().Any()) _w.Line($"global::System.Span<{_t}> scratch = workspace.Scratch;");
        if (needsCapacity) _w.Line("int capacity = workspace.Capacity;");
        if (steps.Count == 0) return;
        _w.Line();
        for (int i = 0; i < steps.Count; i++)
        {
            if (i > 0) _w.Line();
            _w.Line($"// {from + i + 1}. {steps[i].Comment}");
            Step(steps[i]);
        }
    }

    private void Step(Step step)
    {
        switch (step)
        {
            case GemmStep g:
                if (g.BiasGrad >= 0)
                    _w.Line($"global::NetDsl.Runtime.Cpu.Rows.SumToChannels({Size(g.K)}, {Size(g.M)}, 1, {Read(g.A)}, {Write(g.BiasGrad)}, accumulate: {Bool(g.BiasGradAccumulate)});");
                _w.Line($"global::NetDsl.Runtime.Cpu.Gemm.Multiply({Bool(g.TransA)}, {Bool(g.TransB)}, {Size(g.M)}, {Size(g.N)}, {Size(g.K)}, "
                    + $"{Read(g.A)}, {Read(g.B)}, {Write(g.AccumulatorTarget)}, accumulate: {Bool(g.Accumulate)});");
                if (g.Epilogue is not null) Loop(g.Epilogue, g.M.Value * g.N.Value, g.AccumulatorTarget);
                break;
            case ConvStep c:
                {
                    string window = Window(c.Geometry);
                    if (c.BiasGrad >= 0)
                        _w.Line($"global::NetDsl.Runtime.Cpu.Rows.SumToChannels(batch, {Invariant.Format(c.Geometry.OutChannels)}, {Invariant.Format(c.Geometry.OutHeight * c.Geometry.OutWidth)}, {Read(c.In2)}, {Write(c.BiasGrad)}, accumulate: {Bool(c.BiasGradAccumulate)});");
                    int target = c.AccumulatorTarget;
                    string call = c.Pass switch
                    {
                        ConvPass.Forward => $"Forward({window}, batch, {Read(c.In)}, {Read(c.In2)}, {Write(target)}, scratch);",
                        ConvPass.BackwardData => $"BackwardData({window}, batch, {Read(c.In)}, {Read(c.In2)}, {Write(target)}, accumulate: {Bool(c.Accumulate)}, scratch);",
                        _ => $"BackwardWeight({window}, batch, {Read(c.In)}, {Read(c.In2)}, {Write(target)}, accumulate: {Bool(c.Accumulate)}, scratch);",
                    };
                    _w.Line("global::NetDsl.Runtime.Cpu.Convolution." + call);
                    if (c.Epilogue is not null) Loop(c.Epilogue, c.Pass == ConvPass.Forward ? c.Geometry.OutSize : c.Geometry.InSize, target);
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
                        _w.Line($"global::NetDsl.Runtime.Cpu.Pooling.{kind}Backward({window}, batch, {Read(p.In)}, {index}{Write(p.Out)}, accumulate: {Bool(p.Accumulate)});");
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
                        _w.Line($"global::NetDsl.Runtime.Cpu.Rows.CopyIntoSlice({dims}, {Read(c.Part)}, {Write(c.Whole)});");
                    else
                        _w.Line($"global::NetDsl.Runtime.Cpu.Rows.CopyFromSlice({dims}, {Read(c.Whole)}, {Write(c.Part)}, accumulate: {Bool(c.Accumulate)});");
                    break;
                }
            case ElementwiseStep e:
                Loop(e.Program, e.PerSample, accumulator: -1);
                break;
            default:
                throw new InvalidOperationException("The CPU emitter has no rule for " + step.GetType().Name);
        }
    }

    // ---- elementwise loops ---------------------------------------------------------------------------------

    /// <summary>
    /// A pointwise loop over <c>batch · perSample</c> elements running <paramref name="program"/>; in an epilogue,
    /// <see cref="EOp.Accumulator"/> reads the dense result from <paramref name="accumulator"/>.
    /// </summary>
    private void Loop(List<EInstr> program, int perSample, int accumulator)
    {
        _w.Open();
        // One local span per buffer, named after what it holds.
        var locals = new Dictionary<int, string>();
        var buffers = program.Where(i => i.Op is EOp.Load or EOp.LoadChannel or EOp.Store).Select(i => i.Buffer).ToList();
        if (accumulator >= 0) buffers.Insert(0, accumulator);
        foreach (int b in buffers.Distinct())
        {
            string name = "s" + Invariant.Format(locals.Count);
            locals[b] = name;
            bool written = b == accumulator || program.Any(i => i.Op == EOp.Store && i.Buffer == b);
            _w.Line($"var {name} = {(written ? Write(b) : Read(b))}; // {_schedule.Buffers[b].Comment}");
        }
        foreach (int seed in program.Where(i => i.Op == EOp.DropoutScale).Select(i => i.Seed).Distinct())
            _w.Line($"ulong seed{Invariant.Format(seed)} = global::NetDsl.Runtime.CounterRandom.Derive(workspace.DropoutSeed, {Invariant.Format(seed)});");

        var channel = program.FirstOrDefault(i => i.Op == EOp.LoadChannel);
        if (channel is null)
        {
            var stored = _schedule.Buffers[program.Last(i => i.Op == EOp.Store).Buffer];
            string count = stored.Kind == BufferKind.Output || stored.SizeOf.Length == 0 ? Invariant.Format(perSample) : PerSample(stored);
            _w.Open($"for (int i = 0; i < batch * {count}; i++)");
            Program(program, locals, accumulator);
            _w.Close();
        }
        else
        {
            int c = channel.Channels, inner = channel.Inner;
            int outer = perSample / (c * inner);
            _w.Open($"for (int o = 0; o < {Outer(outer)}; o++)");
            _w.Open($"for (int c = 0; c < {Invariant.Format(c)}; c++)");
            foreach (var (instr, index) in program.Select((x, i) => (x, i)).Where(p => p.x.Op == EOp.LoadChannel))
                _w.Line($"{_t} r{Invariant.Format(index)} = {locals[instr.Buffer]}[c];");
            if (inner == 1)
            {
                _w.Line($"int i = o * {Invariant.Format(c)} + c;");
                Program(program, locals, accumulator);
            }
            else
            {
                _w.Line($"int start = (o * {Invariant.Format(c)} + c) * {Invariant.Format(inner)};");
                _w.Open($"for (int i = start; i < start + {Invariant.Format(inner)}; i++)");
                Program(program, locals, accumulator);
                _w.Close();
            }
            _w.Close();
            _w.Close();
        }
        _w.Close();
    }

    /// <summary>The per-element program: all loads first (so an output may share memory with an input), then the rest in order.</summary>
    private void Program(List<EInstr> program, Dictionary<int, string> locals, int accumulator)
    {
        var order = program.Select((instr, index) => (instr, index))
            .Where(p => p.instr.Op is EOp.Load or EOp.Accumulator)
            .Concat(program.Select((instr, index) => (instr, index)).Where(p => p.instr.Op is not (EOp.Load or EOp.LoadChannel or EOp.Accumulator)));
        foreach (var (instr, index) in order)
        {
            string r = "r" + Invariant.Format(index);
            string a = instr.A >= 0 ? "r" + Invariant.Format(instr.A) : "";
            string b = instr.B >= 0 ? "r" + Invariant.Format(instr.B) : "";
            if (instr.Op == EOp.Store)
            {
                _w.Line($"{locals[instr.Buffer]}[i] = {a};");
                continue;
            }
            string value = instr.Op switch
            {
                EOp.Load => $"{locals[instr.Buffer]}[i]",
                EOp.Accumulator => $"{locals[accumulator]}[i]",
                _ => ElementwiseMath.Expression(instr, a, b, _t, "i"),
            };
            _w.Line($"{_t} {r} = {value};");
        }
    }

    // ---- operands ------------------------------------------------------------------------------------------

    private string Read(int buffer) => Operand(buffer);

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
