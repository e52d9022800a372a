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
                _w.Line($"global::NetDsl.Runtime.Cpu.Gemm.Multiply({Bool(g.TransA)}, {Bool(g.TransB)}, {Size(g.M)}, {Size(g.N)}, {Size(g.K)}, "
                    + $"{Read(g.A)}, {Read(g.B)}, {Write(g.C)}, accumulate: {Bool(g.Accumulate)});");
                break;
            case ConvStep c:
                {
                    string window = Window(c.Geometry);
                    string call = c.Pass switch
                    {
                        ConvPass.Forward => $"Forward({window}, batch, {Read(c.In)}, {Read(c.In2)}, {Write(c.Out)}, scratch);",
                        ConvPass.BackwardData => $"BackwardData({window}, batch, {Read(c.In)}, {Read(c.In2)}, {Write(c.Out)}, accumulate: {Bool(c.Accumulate)}, scratch);",
                        _ => $"BackwardWeight({window}, batch, {Read(c.In)}, {Read(c.In2)}, {Write(c.Out)}, accumulate: {Bool(c.Accumulate)}, scratch);",
                    };
                    _w.Line("global::NetDsl.Runtime.Cpu.Convolution." + call);
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
                Elementwise(e);
                break;
            default:
                throw new InvalidOperationException("The CPU emitter has no rule for " + step.GetType().Name);
        }
    }

    // ---- elementwise loops ---------------------------------------------------------------------------------

    private void Elementwise(ElementwiseStep e)
    {
        _w.Open();
        // One local span per buffer, named after what it holds.
        var locals = new Dictionary<int, string>();
        foreach (int b in e.Program.Where(i => i.Op is EOp.Load or EOp.LoadChannel or EOp.Store).Select(i => i.Buffer).Distinct())
        {
            string name = "s" + Invariant.Format(locals.Count);
            locals[b] = name;
            bool written = e.Program.Any(i => i.Op == EOp.Store && i.Buffer == b);
            _w.Line($"var {name} = {(written ? Write(b) : Read(b))}; // {_schedule.Buffers[b].Comment}");
        }
        foreach (int seed in e.Program.Where(i => i.Op == EOp.DropoutScale).Select(i => i.Seed).Distinct())
            _w.Line($"ulong seed{Invariant.Format(seed)} = global::NetDsl.Runtime.CounterRandom.Derive(workspace.DropoutSeed, {Invariant.Format(seed)});");

        var channel = e.Program.FirstOrDefault(i => i.Op == EOp.LoadChannel);
        if (channel is null)
        {
            var stored = _schedule.Buffers[e.Program.Last(i => i.Op == EOp.Store).Buffer];
            string count = stored.Kind == BufferKind.Output || stored.SizeOf.Length == 0 ? Invariant.Format(e.PerSample) : PerSample(stored);
            _w.Open($"for (int i = 0; i < batch * {count}; i++)");
            Program(e, locals, channelLoads: false);
            _w.Close();
        }
        else
        {
            int c = channel.Channels, inner = channel.Inner;
            int outer = e.PerSample / (c * inner);
            _w.Open($"for (int o = 0; o < {Outer(outer)}; o++)");
            _w.Open($"for (int c = 0; c < {Invariant.Format(c)}; c++)");
            foreach (var (instr, index) in e.Program.Select((x, i) => (x, i)).Where(p => p.x.Op == EOp.LoadChannel))
                _w.Line($"{_t} r{Invariant.Format(index)} = {locals[instr.Buffer]}[c];");
            if (inner == 1)
            {
                _w.Line($"int i = o * {Invariant.Format(c)} + c;");
                Program(e, locals, channelLoads: true);
            }
            else
            {
                _w.Line($"int start = (o * {Invariant.Format(c)} + c) * {Invariant.Format(inner)};");
                _w.Open($"for (int i = start; i < start + {Invariant.Format(inner)}; i++)");
                Program(e, locals, channelLoads: true);
                _w.Close();
            }
            _w.Close();
            _w.Close();
        }
        _w.Close();
    }

    /// <summary>The per-element program: all loads first (so an output may share memory with an input), then the rest in order.</summary>
    private void Program(ElementwiseStep e, Dictionary<int, string> locals, bool channelLoads)
    {
        var order = e.Program.Select((instr, index) => (instr, index))
            .Where(p => p.instr.Op == EOp.Load)
            .Concat(e.Program.Select((instr, index) => (instr, index)).Where(p => p.instr.Op != EOp.Load && p.instr.Op != EOp.LoadChannel));
        foreach (var (instr, index) in order)
        {
            string r = "r" + Invariant.Format(index);
            string a = instr.A >= 0 ? "r" + Invariant.Format(instr.A) : "";
            string b = instr.B >= 0 ? "r" + Invariant.Format(instr.B) : "";
            string zero = Lit(0), one = Lit(1);
            string? value = instr.Op switch
            {
                EOp.Load => $"{locals[instr.Buffer]}[i]",
                EOp.Const => Lit(instr.Value),
                EOp.Add => $"{a} + {b}",
                EOp.Mul => $"{a} * {b}",
                EOp.Relu => $"global::System.Math.Max({a}, {zero})",
                EOp.LeakyRelu => $"{a} > {zero} ? {a} : {a} * {Lit(instr.Value)}",
                EOp.Sigmoid => $"global::NetDsl.Runtime.Activations.Sigmoid({a})",
                EOp.Tanh => $"global::NetDsl.Runtime.Activations.Tanh({a})",
                EOp.Gelu => $"global::NetDsl.Runtime.Activations.Gelu({a})",
                EOp.GeluGrad => $"global::NetDsl.Runtime.Activations.GeluGrad({a})",
                EOp.PositiveMask => $"{a} > {zero} ? {b} : {zero}",
                EOp.LeakyMask => $"{a} > {zero} ? {b} : {b} * {Lit(instr.Value)}",
                EOp.SigmoidGrad => $"{a} * ({one} - {a})",
                EOp.TanhGrad => $"{one} - {a} * {a}",
                EOp.DropoutScale => $"global::NetDsl.Runtime.CounterRandom.Keep(seed{Invariant.Format(instr.Seed)}, i, {DropoutThreshold(instr.Value)}) ? {Lit(1.0 / (1.0 - instr.Value))} : {zero}",
                _ => null,
            };
            if (instr.Op == EOp.Store) _w.Line($"{locals[instr.Buffer]}[i] = {a};");
            else if (value is not null) _w.Line($"{_t} {r} = {value};");
            else throw new InvalidOperationException("No CPU form for " + instr.Op);
        }
    }

    /// <summary><c>p · 2³²</c> as the uint a 32-bit hash is compared with.</summary>
    public static string DropoutThreshold(double p) => Invariant.Format((long)Math.Min(Math.Round(p * 4294967296.0), uint.MaxValue)) + "u";

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
