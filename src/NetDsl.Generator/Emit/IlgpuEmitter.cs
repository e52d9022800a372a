using System;
using System.Collections.Generic;
using System.Linq;
using NetDsl.Generator.Graph;
using NetDsl.Generator.Shapes;

namespace NetDsl.Generator.Emit;

/// <summary>
/// Writes the ILGPU program of a network: one kernel per step of the training and inference schedules, plus
/// the fused loss kernels, as a nested <c>DeviceKernels</c> class. Every shape is a constant in the kernel's
/// code; the batch, the batch capacity and the dropout seed are the only run-time values. Each kernel runs one
/// thread per output element (per channel for reductions, per sample for losses) and never needs atomics, so
/// results do not depend on thread scheduling.
/// </summary>
internal sealed class IlgpuEmitter
{
    private const string Arenas = "global::NetDsl.Runtime.Gpu.DeviceArenas<float>";

    private readonly NetworkGraph _graph;
    private readonly CodeWriter _w;
    private Schedule _schedule = null!;
    private string _plan = "";

    private IlgpuEmitter(NetworkGraph graph, CodeWriter writer)
    {
        _graph = graph;
        _w = writer;
    }

    /// <summary>Writes the <c>CreateDeviceProgram</c> override and the nested kernel class.</summary>
    public static void Emit(NetworkGraph graph, Schedule training, Schedule inference, CodeWriter w)
        => new IlgpuEmitter(graph, w).Program(training, inference);

    private void Program(Schedule training, Schedule inference)
    {
        var kernels = new List<(string Phase, string Name, string Method, string Extent)>();
        _w.Line("/// <inheritdoc />");
        _w.Line("protected override object CreateDeviceProgram() => new DeviceKernels();");
        _w.Line();
        _w.Line("/// <summary>");
        _w.Line("/// The ILGPU kernels of this network: one per fused step of the training and inference schedules (the same");
        _w.Line("/// steps as the CPU methods above, numbered alike), and the fused loss-and-gradient kernels.");
        _w.Line("/// </summary>");
        _w.Line("/// <remarks>Internal, not private: ILGPU's CPU accelerator reaches the kernels from its ILGPURuntime assembly.</remarks>");
        _w.Open("internal sealed class DeviceKernels : global::NetDsl.Runtime.Gpu.DeviceProgram<float>");

        EmitSchedule(training, "Layout.Training", "Train", 0, training.ForwardSteps, "TrainingForward", kernels);
        EmitSchedule(training, "Layout.Training", "Train", training.ForwardSteps, training.Steps.Count, "Backward", kernels);
        EmitSchedule(inference, "Layout.Inference", "Infer", 0, inference.Steps.Count, "Inference", kernels);

        _w.Line("/// <inheritdoc />");
        _w.Open("protected override void Define(global::NetDsl.Runtime.Gpu.KernelTable<float> kernels)");
        foreach (var (phase, name, method, extent) in kernels)
            _w.Line($"kernels.Add(global::NetDsl.Runtime.Gpu.KernelPhase.{phase}, {Names.Quote(name)}, {method}, static batch => {extent});");
        _w.Line("kernels.AddLoss(\"CrossEntropyLoss\", CrossEntropyLoss);");
        _w.Line("kernels.AddLoss(\"MSELoss\", MseLoss);");
        _w.Line("kernels.AddLoss(\"BCEWithLogitsLoss\", BceWithLogitsLoss);");
        _w.Close();
        var bodies = W.ToString().Split('\n');
        foreach (var line in bodies.Take(bodies.Length - 1))
            _w.Line(line);
        Losses();
        _w.Close();
    }

    private void EmitSchedule(Schedule schedule, string plan, string prefix, int from, int to, string phase,
        List<(string, string, string, string)> kernels)
    {
        _schedule = schedule;
        _plan = plan;
        for (int s = from; s < to; s++)
        {
            var step = schedule.Steps[s];
            string method = $"{prefix}{Invariant.Format(s + 1).PadLeft(2, '0')}_{_graph[step.Nodes[0]].Name}";
            string extent = Kernel(step, method, s + 1);
            kernels.Add((phase, $"{s + 1}. " + string.Join(" + ", step.Nodes.Select(n => _graph[n].Name)), method, extent));
        }
    }

    /// <summary>Kernel bodies, written while the kernel list is collected, then appended after <c>Define</c>.</summary>
    private CodeWriter W { get; } = new();

    /// <summary>Writes one step's kernel; returns its thread count for a <c>batch</c>.</summary>
    private string Kernel(Step step, string method, int number)
    {
        W.Line();
        W.Line($"// ---- {number}. {step.Comment}");
        W.Line($"//      nodes: {string.Join(", ", step.Nodes.Select(n => _graph[n].Name + " " + ShapeMath.WithBatch(_graph[n].Shape)))}");
        W.Open($"internal static void {method}(global::ILGPU.Index1D index, {Arenas} a)");
        W.Line("int i = index.X;");
        string extent;
        switch (step)
        {
            case ElementwiseStep e:
                Program(e.Program, accumulator: null);
                extent = "batch * " + Invariant.Format(e.PerSample);
                break;
            case GemmStep g:
                extent = Gemm(g);
                break;
            case ConvStep c:
                extent = Conv(c);
                break;
            case PoolStep p:
                extent = Pool(p);
                break;
            case SoftmaxStep s:
                extent = Softmax(s);
                break;
            case BiasGradStep b:
                {
                    W.Line("float sum = 0f;");
                    W.Open($"for (int o = 0; o < a.Batch * {Invariant.Format(b.Outer)}; o++)");
                    W.Line($"for (int j = 0; j < {Invariant.Format(b.Inner)}; j++) sum += {At(b.In, $"(o * {Invariant.Format(b.Channels)} + i) * {Invariant.Format(b.Inner)} + j")};");
                    W.Close();
                    W.Line(b.Accumulate ? $"{At(b.Out, "i")} += sum;" : $"{At(b.Out, "i")} = sum;");
                    extent = Invariant.Format(b.Channels);
                    break;
                }
            case SliceCopyStep c:
                {
                    int part = c.PartN * c.Inner;
                    W.Line($"int o = i / {Invariant.Format(part)};");
                    W.Line($"int w = o * {Invariant.Format(c.WholeN * c.Inner)} + {Invariant.Format(c.Offset * c.Inner)} + (i - o * {Invariant.Format(part)});");
                    if (!c.Backward) W.Line(c.Accumulate ? $"{At(c.Whole, "w")} += {At(c.Part, "i")};" : $"{At(c.Whole, "w")} = {At(c.Part, "i")};");
                    else W.Line(c.Accumulate ? $"{At(c.Part, "i")} += {At(c.Whole, "w")};" : $"{At(c.Part, "i")} = {At(c.Whole, "w")};");
                    extent = $"batch * {Invariant.Format(c.Outer * part)}";
                    break;
                }
            case BatchNormStep n:
                extent = BatchNorm(n);
                break;
            case LayerNormStep n:
                extent = LayerNorm(n);
                break;
            case EmbeddingStep m:
                {
                    string d = Invariant.Format(m.Dim), v = Invariant.Format(m.Vocabulary);
                    if (!m.Backward)
                    {
                        // An id outside [0, V) gives a zero row (a kernel cannot throw; the CPU path reports it).
                        W.Line($"int t = i / {d}, j = i - t * {d};");
                        W.Line($"int id = (int){At(m.Ids, "t")};");
                        W.Line($"{At(m.Out, "i")} = id >= 0 && id < {v} ? {At(m.In, $"id * {d} + j")} : 0f;");
                        extent = $"batch * {Invariant.Format((long)m.Tokens * m.Dim)}";
                    }
                    else
                    {
                        // One thread per weight element gathers the tokens with its id: no atomics, a fixed order.
                        W.Line($"int row = i / {d}, j = i - row * {d};");
                        W.Line("float sum = 0f;");
                        W.Line($"for (int t = 0; t < a.Batch * {Invariant.Format(m.Tokens)}; t++) if ((int){At(m.Ids, "t")} == row) sum += {At(m.In, $"t * {d} + j")};");
                        W.Line(m.Accumulate ? $"{At(m.Out, "i")} += sum;" : $"{At(m.Out, "i")} = sum;");
                        extent = Invariant.Format((long)m.Vocabulary * m.Dim);
                    }
                    break;
                }
            case UpsampleStep u:
                {
                    string h = Invariant.Format(u.Height), w = Invariant.Format(u.Width), sc = Invariant.Format(u.Scale);
                    string oh = Invariant.Format(u.Height * u.Scale), ow = Invariant.Format(u.Width * u.Scale);
                    if (!u.Backward)
                    {
                        W.Line($"int p = i / {Invariant.Format(u.Height * u.Scale * u.Width * u.Scale)}, q = i - p * {Invariant.Format(u.Height * u.Scale * u.Width * u.Scale)};");
                        W.Line($"int y = q / {ow}, x = q - y * {ow};");
                        W.Line($"{At(u.Out, "i")} = {At(u.In, $"(p * {h} + y / {sc}) * {w} + x / {sc}")};");
                        extent = $"batch * {Invariant.Format((long)u.Channels * u.Height * u.Scale * u.Width * u.Scale)}";
                    }
                    else
                    {
                        W.Line($"int p = i / {Invariant.Format(u.Height * u.Width)}, q = i - p * {Invariant.Format(u.Height * u.Width)};");
                        W.Line($"int y = q / {w}, x = q - y * {w};");
                        W.Line("float sum = 0f;");
                        W.Line($"for (int r = 0; r < {sc}; r++) for (int c = 0; c < {sc}; c++) sum += {At(u.In, $"(p * {oh} + y * {sc} + r) * {ow} + x * {sc} + c")};");
                        W.Line(u.Accumulate ? $"{At(u.Out, "i")} += sum;" : $"{At(u.Out, "i")} = sum;");
                        extent = $"batch * {Invariant.Format((long)u.Channels * u.Height * u.Width)}";
                    }
                    break;
                }
            default:
                throw new InvalidOperationException("The ILGPU emitter has no rule for " + step.GetType().Name);
        }
        W.Close();
        return extent;
    }

    // ---- dense steps ---------------------------------------------------------------------------------------

    private string Gemm(GemmStep g)
    {
        if (g.N.PerBatch) throw new InvalidOperationException("A GEMM whose N depends on the batch has no kernel.");
        string n = Invariant.Format(g.N.Value);
        string m = Dim(g.M), k = Dim(g.K);
        W.Line($"int row = i / {n};");
        W.Line($"int col = i - row * {n};");
        W.Line("float acc = 0f;");
        string aIndex = g.TransA ? $"p * {m} + row" : $"row * {k} + p";
        string bIndex = g.TransB ? $"col * {k} + p" : $"p * {n} + col";
        W.Line($"for (int p = 0; p < {k}; p++) acc += {At(g.A, aIndex)} * {At(g.B, bIndex)};");
        if (g.BiasGrad >= 0)
        {
            // dW = dYᵀ·X: the first column's threads also sum their row of dYᵀ into the bias gradient.
            W.Open("if (col == 0)");
            W.Line("float sum = 0f;");
            W.Line($"for (int p = 0; p < {k}; p++) sum += {At(g.A, $"p * {m} + row")};");
            W.Line(g.BiasGradAccumulate ? $"{At(g.BiasGrad, "row")} += sum;" : $"{At(g.BiasGrad, "row")} = sum;");
            W.Close();
        }
        Finish(g, "i");
        return g.M.PerBatch ? $"batch * {Invariant.Format((long)g.M.Value * g.N.Value)}" : Invariant.Format((long)g.M.Value * g.N.Value);
    }

    private string Conv(ConvStep c)
    {
        var g = c.Geometry;
        string C = Invariant.Format(g.InChannels), H = Invariant.Format(g.InHeight), Wd = Invariant.Format(g.InWidth);
        string O = Invariant.Format(g.OutChannels), OH = Invariant.Format(g.OutHeight), OW = Invariant.Format(g.OutWidth);
        string K = Invariant.Format(g.Kernel), S = Invariant.Format(g.Stride), P = Invariant.Format(g.Padding);
        string IN = Invariant.Format(g.InSize), OUT = Invariant.Format(g.OutSize);
        switch (c.Pass)
        {
            case ConvPass.Forward:
                W.Line($"int b = i / {OUT}, r = i - b * {OUT}, o = r / {Invariant.Format(g.OutHeight * g.OutWidth)}, q = r - o * {Invariant.Format(g.OutHeight * g.OutWidth)};");
                W.Line($"int oy = q / {OW}, ox = q - oy * {OW};");
                W.Line("float acc = 0f;");
                W.Open($"for (int c = 0; c < {C}; c++)");
                W.Open($"for (int ky = 0; ky < {K}; ky++)");
                W.Line($"int iy = {Window("oy", g)}ky;");
                W.Line($"if (iy < 0 || iy >= {H}) continue;");
                W.Open($"for (int kx = 0; kx < {K}; kx++)");
                W.Line($"int ix = {Window("ox", g)}kx;");
                W.Line($"if (ix < 0 || ix >= {Wd}) continue;");
                W.Line($"acc += {At(c.In, $"b * {IN} + (c * {H} + iy) * {Wd} + ix")} * {At(c.In2, $"((o * {C} + c) * {K} + ky) * {K} + kx")};");
                W.Close().Close().Close();
                Finish(c, "i");
                return $"batch * {OUT}";
            case ConvPass.BackwardData:
                W.Line($"int b = i / {IN}, r = i - b * {IN}, c = r / {Invariant.Format(g.InHeight * g.InWidth)}, q = r - c * {Invariant.Format(g.InHeight * g.InWidth)};");
                W.Line($"int iy = q / {Wd}, ix = q - iy * {Wd};");
                W.Line("float acc = 0f;");
                W.Open($"for (int o = 0; o < {O}; o++)");
                W.Open($"for (int ky = 0; ky < {K}; ky++)");
                W.Line($"int ty = iy + {P} - ky;");
                W.Line($"if (ty < 0 || ty % {S} != 0 || ty / {S} >= {OH}) continue;");
                W.Line($"int oy = ty / {S};");
                W.Open($"for (int kx = 0; kx < {K}; kx++)");
                W.Line($"int tx = ix + {P} - kx;");
                W.Line($"if (tx < 0 || tx % {S} != 0 || tx / {S} >= {OW}) continue;");
                W.Line($"acc += {At(c.In, $"b * {OUT} + (o * {OH} + oy) * {OW} + tx / {S}")} * {At(c.In2, $"((o * {C} + c) * {K} + ky) * {K} + kx")};");
                W.Close().Close().Close();
                Finish(c, "i");
                return $"batch * {IN}";
            default:
                W.Line($"int o = i / {Invariant.Format(g.InChannels * g.Kernel * g.Kernel)}, r = i - o * {Invariant.Format(g.InChannels * g.Kernel * g.Kernel)};");
                W.Line($"int c = r / {Invariant.Format(g.Kernel * g.Kernel)}, q = r - c * {Invariant.Format(g.Kernel * g.Kernel)};");
                W.Line($"int ky = q / {K}, kx = q - ky * {K};");
                W.Line("float acc = 0f;");
                W.Open("for (int b = 0; b < a.Batch; b++)");
                W.Open($"for (int oy = 0; oy < {OH}; oy++)");
                W.Line($"int iy = {Window("oy", g)}ky;");
                W.Line($"if (iy < 0 || iy >= {H}) continue;");
                W.Open($"for (int ox = 0; ox < {OW}; ox++)");
                W.Line($"int ix = {Window("ox", g)}kx;");
                W.Line($"if (ix < 0 || ix >= {Wd}) continue;");
                W.Line($"acc += {At(c.In2, $"b * {OUT} + (o * {OH} + oy) * {OW} + ox")} * {At(c.In, $"b * {IN} + (c * {H} + iy) * {Wd} + ix")};");
                W.Close().Close().Close();
                if (c.BiasGrad >= 0)
                {
                    // The bias gradient rides along: the first weight of each output channel also sums its dY.
                    W.Open("if (r == 0)");
                    W.Line("float sum = 0f;");
                    W.Line($"for (int b = 0; b < a.Batch; b++) for (int p = 0; p < {Invariant.Format(g.OutHeight * g.OutWidth)}; p++) sum += {At(c.In2, $"b * {OUT} + o * {Invariant.Format(g.OutHeight * g.OutWidth)} + p")};");
                    W.Line(c.BiasGradAccumulate ? $"{At(c.BiasGrad, "o")} += sum;" : $"{At(c.BiasGrad, "o")} = sum;");
                    W.Close();
                }
                Finish(c, "i");
                return Invariant.Format((long)g.OutChannels * g.InChannels * g.Kernel * g.Kernel);
        }
    }

    /// <summary><c>o·stride − padding + </c>, with the identity parts left out.</summary>
    private static string Window(string o, WindowGeometry g)
        => (g.Stride == 1 ? o : o + " * " + Invariant.Format(g.Stride)) + (g.Padding == 0 ? " + " : " - " + Invariant.Format(g.Padding) + " + ");

    /// <summary>Stores the dense result (adding when accumulating) and runs the fused epilogue.</summary>
    private void Finish(DenseStep d, string index)
    {
        if (d.StoreAccumulator || d.Epilogue is null)
            W.Line(d.AccumulatesOutput ? $"{At(d.Output, index)} += acc;" : $"{At(d.Output, index)} = acc;");
        if (d.Epilogue is not null) Program(d.Epilogue, accumulator: "acc");
    }

    // ---- other steps ---------------------------------------------------------------------------------------

    private string Pool(PoolStep p)
    {
        var g = p.Geometry;
        string C = Invariant.Format(g.InChannels), H = Invariant.Format(g.InHeight), Wd = Invariant.Format(g.InWidth);
        string OH = Invariant.Format(g.OutHeight), OW = Invariant.Format(g.OutWidth), K = Invariant.Format(g.Kernel), S = Invariant.Format(g.Stride), P = Invariant.Format(g.Padding);
        string IN = Invariant.Format(g.InSize), OUT = Invariant.Format(g.OutSize), HW = Invariant.Format(g.InHeight * g.InWidth), OHW = Invariant.Format(g.OutHeight * g.OutWidth);
        string inv = Invariant.Literal(1.0 / (g.Kernel * g.Kernel), "float");
        if (!p.Backward)
        {
            W.Line($"int b = i / {OUT}, r = i - b * {OUT}, c = r / {OHW}, q = r - c * {OHW};");
            W.Line($"int oy = q / {OW}, ox = q - oy * {OW};");
            W.Line($"int x0 = b * {IN} + c * {HW};");
            if (p.Max)
            {
                W.Line("float best = float.NegativeInfinity;");
                W.Line("int bestAt = -1;");
                W.Line("bool nan = false;");
                W.Open($"for (int ky = 0; ky < {K}; ky++)");
                W.Line($"int iy = {Window("oy", g)}ky;");
                W.Line($"if (iy < 0 || iy >= {H}) continue;");
                W.Open($"for (int kx = 0; kx < {K}; kx++)");
                W.Line($"int ix = {Window("ox", g)}kx;");
                W.Line($"if (ix < 0 || ix >= {Wd} || nan) continue;");
                W.Line($"float v = {At(p.In, $"x0 + iy * {Wd} + ix")};");
                W.Line("// As PyTorch: the first maximum in row-major window order wins, and NaN propagates.");
                W.Open("if (bestAt < 0 || v > best || float.IsNaN(v))");
                W.Line("best = v;");
                W.Line($"bestAt = iy * {Wd} + ix;");
                W.Line("nan = float.IsNaN(v);");
                W.Close().Close().Close();
                W.Line($"{At(p.Out, "i")} = best;");
                if (p.Index >= 0) W.Line($"{At(p.Index, "i")} = c * {HW} + bestAt;");
            }
            else
            {
                W.Line("float sum = 0f;");
                W.Open($"for (int ky = 0; ky < {K}; ky++)");
                W.Line($"int iy = {Window("oy", g)}ky;");
                W.Line($"if (iy < 0 || iy >= {H}) continue;");
                W.Open($"for (int kx = 0; kx < {K}; kx++)");
                W.Line($"int ix = {Window("ox", g)}kx;");
                W.Line($"if (ix >= 0 && ix < {Wd}) sum += {At(p.In, $"x0 + iy * {Wd} + ix")};");
                W.Close().Close();
                W.Line($"{At(p.Out, "i")} = sum * {inv};");
            }
            return $"batch * {OUT}";
        }

        // Backward: one thread per input element gathers from every window that covers it.
        W.Line($"int b = i / {IN}, r = i - b * {IN}, c = r / {HW}, q = r - c * {HW};");
        W.Line($"int iy = q / {Wd}, ix = q - iy * {Wd};");
        W.Line($"int oy0 = iy + {P} - {K} + 1 <= 0 ? 0 : (iy + {P} - {K} + 1 + {S} - 1) / {S};");
        W.Line($"int ox0 = ix + {P} - {K} + 1 <= 0 ? 0 : (ix + {P} - {K} + 1 + {S} - 1) / {S};");
        W.Line($"int oy1 = global::System.Math.Min({OH} - 1, (iy + {P}) / {S}), ox1 = global::System.Math.Min({OW} - 1, (ix + {P}) / {S});");
        W.Line("float acc = 0f;");
        W.Open("for (int oy = oy0; oy <= oy1; oy++)");
        W.Open("for (int ox = ox0; ox <= ox1; ox++)");
        W.Line($"int o = b * {OUT} + c * {OHW} + oy * {OW} + ox;");
        if (p.Max) W.Line($"if ({At(p.Index, "o")} == r{(p.Gate >= 0 ? $" && {At(p.Gate, "o")} > 0f" : "")}) acc += {At(p.In, "o")};");
        else W.Line($"acc += {At(p.In, "o")} * {inv};");
        W.Close().Close();
        W.Line(p.Accumulate ? $"{At(p.Out, "i")} += acc;" : $"{At(p.Out, "i")} = acc;");
        return $"batch * {IN}";
    }

    private string Softmax(SoftmaxStep s)
    {
        string n = Invariant.Format(s.N), inner = Invariant.Format(s.Inner);
        W.Line($"int o = i / {inner};");
        W.Line($"int at = o * {Invariant.Format(s.N * s.Inner)} + (i - o * {inner});");
        string X(int buffer) => At(buffer, $"at + j * {inner}");
        if (!s.Backward)
        {
            W.Line("float max = float.NegativeInfinity;");
            W.Line($"for (int j = 0; j < {n}; j++) max = global::System.MathF.Max(max, {X(s.In)});");
            W.Line("float sum = 0f;");
            W.Line($"for (int j = 0; j < {n}; j++) sum += global::System.MathF.Exp({X(s.In)} - max);");
            if (s.Log)
            {
                W.Line("float lse = max + global::System.MathF.Log(sum);");
                W.Line($"for (int j = 0; j < {n}; j++) {X(s.Out)} = {X(s.In)} - lse;");
            }
            else
            {
                W.Line("float inv = 1f / sum;");
                W.Line($"for (int j = 0; j < {n}; j++) {X(s.Out)} = global::System.MathF.Exp({X(s.In)} - max) * inv;");
            }
        }
        else
        {
            W.Line("float dot = 0f;");
            W.Line(s.Log ? $"for (int j = 0; j < {n}; j++) dot += {X(s.InGrad)};" : $"for (int j = 0; j < {n}; j++) dot += {X(s.InGrad)} * {X(s.In)};");
            W.Open($"for (int j = 0; j < {n}; j++)");
            W.Line(s.Log ? $"float g = {X(s.InGrad)} - global::System.MathF.Exp({X(s.In)}) * dot;" : $"float g = {X(s.In)} * ({X(s.InGrad)} - dot);");
            W.Line(s.Accumulate ? $"{X(s.Out)} += g;" : $"{X(s.Out)} = g;");
            W.Close();
        }
        return $"batch * {Invariant.Format(s.Outer * s.Inner)}";
    }

    /// <summary>
    /// Batch normalization: statistics and gradients one thread per channel (a fixed summation order, no
    /// atomics); inference one thread per element.
    /// </summary>
    private string BatchNorm(BatchNormStep n)
    {
        string c = Invariant.Format(n.Channels), inner = Invariant.Format(n.Inner), eps = Invariant.Literal(n.Eps, "float");
        string X(int buffer) => At(buffer, $"(b * {c} + i) * {inner} + j");
        string loop = $"for (int b = 0; b < a.Batch; b++) for (int j = 0; j < {inner}; j++)";
        if (n.Pass == NormPass.Inference)
        {
            W.Line($"int ch = (i / {inner}) % {c};");
            W.Line($"float s = 1f / global::System.MathF.Sqrt({At(n.RunningVar, "ch")} + {eps});");
            W.Line($"float v = ({At(n.In, "i")} - {At(n.RunningMean, "ch")}) * s;");
            W.Line(n.Weight >= 0 ? $"{At(n.Out, "i")} = v * {At(n.Weight, "ch")} + {At(n.Bias, "ch")};" : $"{At(n.Out, "i")} = v;");
            return $"batch * {Invariant.Format((long)n.Channels * n.Inner)}";
        }
        W.Line($"float count = a.Batch * {inner};");
        if (n.Pass == NormPass.Training)
        {
            string m = Invariant.Literal(n.Momentum, "float");
            W.Line("float sum = 0f;");
            W.Line($"{loop} sum += {X(n.In)};");
            W.Line("float mu = sum / count;");
            W.Line("float sq = 0f;");
            W.Line($"{loop} {{ float d = {X(n.In)} - mu; sq += d * d; }}");
            W.Line($"float s = 1f / global::System.MathF.Sqrt(sq / count + {eps});");
            W.Line($"{At(n.Mean, "i")} = mu;");
            W.Line($"{At(n.InvStd, "i")} = s;");
            W.Line($"{At(n.RunningMean, "i")} = (1f - {m}) * {At(n.RunningMean, "i")} + {m} * mu;");
            W.Line($"{At(n.RunningVar, "i")} = (1f - {m}) * {At(n.RunningVar, "i")} + {m} * (sq / (count - 1f));");
            W.Line($"if (i == 0) {At(n.Count, "0")} += 1f;");
            W.Line(n.Weight >= 0
                ? $"{loop} {X(n.Out)} = ({X(n.In)} - mu) * s * {At(n.Weight, "i")} + {At(n.Bias, "i")};"
                : $"{loop} {X(n.Out)} = ({X(n.In)} - mu) * s;");
            return c;
        }
        W.Line($"float mu = {At(n.Mean, "i")}, s = {At(n.InvStd, "i")};");
        W.Line("float sumDy = 0f, sumDyXhat = 0f;");
        W.Line($"{loop} {{ sumDy += {X(n.InGrad)}; sumDyXhat += {X(n.InGrad)} * ({X(n.In)} - mu); }}");
        W.Line("sumDyXhat *= s;");
        if (n.WeightGrad >= 0) W.Line(n.AccumulateWeight ? $"{At(n.WeightGrad, "i")} += sumDyXhat;" : $"{At(n.WeightGrad, "i")} = sumDyXhat;");
        if (n.BiasGrad >= 0) W.Line(n.AccumulateBias ? $"{At(n.BiasGrad, "i")} += sumDy;" : $"{At(n.BiasGrad, "i")} = sumDy;");
        if (n.Out >= 0)
        {
            W.Line($"float k = {(n.Weight >= 0 ? At(n.Weight, "i") : "1f")} * s, meanDy = sumDy / count, meanDyXhat = sumDyXhat / count;");
            string g = $"k * ({X(n.InGrad)} - meanDy - ({X(n.In)} - mu) * s * meanDyXhat)";
            W.Line(n.AccumulateInput ? $"{loop} {X(n.Out)} += {g};" : $"{loop} {X(n.Out)} = {g};");
        }
        return c;
    }

    /// <summary>Layer normalization: one thread per row; in backward, threads below N also sum dγ and dβ down their column.</summary>
    private string LayerNorm(LayerNormStep n)
    {
        string N = Invariant.Format(n.N), eps = Invariant.Literal(n.Eps, "float"), rows = $"a.Batch * {Invariant.Format(n.Rows)}";
        string X(int buffer, string row, string j) => At(buffer, $"{row} * {N} + {j}");
        if (!n.Backward)
        {
            W.Line("float sum = 0f;");
            W.Line($"for (int j = 0; j < {N}; j++) sum += {X(n.In, "i", "j")};");
            W.Line($"float mu = sum / {N};");
            W.Line("float sq = 0f;");
            W.Line($"for (int j = 0; j < {N}; j++) {{ float d = {X(n.In, "i", "j")} - mu; sq += d * d; }}");
            W.Line($"float s = 1f / global::System.MathF.Sqrt(sq / {N} + {eps});");
            if (n.Mean >= 0)
            {
                W.Line($"{At(n.Mean, "i")} = mu;");
                W.Line($"{At(n.InvStd, "i")} = s;");
            }
            W.Line(n.Weight >= 0
                ? $"for (int j = 0; j < {N}; j++) {X(n.Out, "i", "j")} = ({X(n.In, "i", "j")} - mu) * s * {At(n.Weight, "j")} + {At(n.Bias, "j")};"
                : $"for (int j = 0; j < {N}; j++) {X(n.Out, "i", "j")} = ({X(n.In, "i", "j")} - mu) * s;");
            return $"batch * {Invariant.Format(n.Rows)}";
        }
        if (n.Out >= 0)
        {
            W.Open($"if (i < {rows})");
            W.Line($"float mu = {At(n.Mean, "i")}, s = {At(n.InvStd, "i")};");
            W.Line("float sumG = 0f, sumGXhat = 0f;");
            string gj = n.Weight >= 0 ? $"{X(n.InGrad, "i", "j")} * {At(n.Weight, "j")}" : X(n.InGrad, "i", "j");
            W.Line($"for (int j = 0; j < {N}; j++) {{ float g = {gj}; sumG += g; sumGXhat += g * ({X(n.In, "i", "j")} - mu) * s; }}");
            W.Line($"float meanG = sumG / {N}, meanGXhat = sumGXhat / {N};");
            string v = $"s * ({gj} - meanG - ({X(n.In, "i", "j")} - mu) * s * meanGXhat)";
            W.Line(n.AccumulateInput ? $"for (int j = 0; j < {N}; j++) {X(n.Out, "i", "j")} += {v};" : $"for (int j = 0; j < {N}; j++) {X(n.Out, "i", "j")} = {v};");
            W.Close();
        }
        if (n.WeightGrad >= 0 || n.BiasGrad >= 0)
        {
            W.Open($"if (i < {N})");
            W.Line("float dw = 0f, db = 0f;");
            W.Line($"for (int r = 0; r < {rows}; r++) {{ float dy = {X(n.InGrad, "r", "i")}; dw += dy * ({X(n.In, "r", "i")} - {At(n.Mean, "r")}) * {At(n.InvStd, "r")}; db += dy; }}");
            if (n.WeightGrad >= 0) W.Line(n.AccumulateWeight ? $"{At(n.WeightGrad, "i")} += dw;" : $"{At(n.WeightGrad, "i")} = dw;");
            if (n.BiasGrad >= 0) W.Line(n.AccumulateBias ? $"{At(n.BiasGrad, "i")} += db;" : $"{At(n.BiasGrad, "i")} = db;");
            W.Close();
        }
        return $"global::System.Math.Max(batch * {Invariant.Format(n.Rows)}, {N})";
    }

    /// <summary>An elementwise program for element <c>i</c>: loads (and the dense result) first, then the rest.</summary>
    private void Program(List<EInstr> program, string? accumulator)
    {
        foreach (int seed in program.Where(x => x.Op == EOp.DropoutScale).Select(x => x.Seed).Distinct())
            W.Line($"ulong seed{Invariant.Format(seed)} = global::NetDsl.Runtime.CounterRandom.Derive(a.Seed, {Invariant.Format(seed)});");
        var ordered = program.Select((x, n) => (x, n)).Where(p => p.x.Op is EOp.Load or EOp.LoadChannel or EOp.Accumulator)
            .Concat(program.Select((x, n) => (x, n)).Where(p => p.x.Op is not (EOp.Load or EOp.LoadChannel or EOp.Accumulator)));
        foreach (var (instr, n) in ordered)
        {
            string r = "r" + Invariant.Format(n);
            string ra = instr.A >= 0 ? "r" + Invariant.Format(instr.A) : "";
            string rb = instr.B >= 0 ? "r" + Invariant.Format(instr.B) : "";
            switch (instr.Op)
            {
                case EOp.Store:
                    W.Line($"{At(instr.Buffer, "i")} = {ra};");
                    break;
                case EOp.Load:
                    W.Line($"float {r} = {At(instr.Buffer, "i")};");
                    break;
                case EOp.LoadChannel:
                    W.Line($"float {r} = {At(instr.Buffer, $"(i / {Invariant.Format(instr.Inner)}) % {Invariant.Format(instr.Channels)}")};");
                    break;
                case EOp.Accumulator:
                    W.Line($"float {r} = {accumulator};");
                    break;
                default:
                    W.Line($"float {r} = {ElementwiseMath.Expression(instr, ra, rb, "float", "i")};");
                    break;
            }
        }
    }

    // ---- losses --------------------------------------------------------------------------------------------

    /// <summary>The fused loss kernels: one thread per sample computes its share of the mean loss and its output gradient.</summary>
    private void Losses()
    {
        string c = Invariant.Format(_graph[_graph.Output].Elements);
        _w.Line();
        _w.Line($"// ---- Cross-entropy over {c} classes, fused with softmax: the loss and d(loss)/d(logits) in one pass per sample.");
        _w.Open($"internal static void CrossEntropyLoss(global::ILGPU.Index1D index, {Arenas} a)");
        _w.Line("int b = index.X;");
        _w.Line($"int row = b * {c};");
        _w.Line("int label = a.Labels[b];");
        _w.Line("float invB = 1f / a.Batch;");
        _w.Line("float max = float.NegativeInfinity;");
        _w.Line($"for (int j = 0; j < {c}; j++) max = global::System.MathF.Max(max, a.Output[row + j]);");
        _w.Line("float sum = 0f;");
        _w.Open($"for (int j = 0; j < {c}; j++)");
        _w.Line("float e = global::System.MathF.Exp(a.Output[row + j] - max);");
        _w.Line("a.OutputGradient[row + j] = e;");
        _w.Line("sum += e;");
        _w.Close();
        _w.Line("float inv = 1f / sum;");
        _w.Line($"for (int j = 0; j < {c}; j++) a.OutputGradient[row + j] = a.OutputGradient[row + j] * inv * invB;");
        _w.Line("a.OutputGradient[row + label] -= invB;");
        _w.Line("a.RowLoss[b] = (max + global::System.MathF.Log(sum) - a.Output[row + label]) / a.Batch;");
        _w.Close();
        _w.Line();
        _w.Line($"// ---- Mean squared error over {c} outputs per sample.");
        _w.Open($"internal static void MseLoss(global::ILGPU.Index1D index, {Arenas} a)");
        _w.Line("int b = index.X;");
        _w.Line($"int row = b * {c};");
        _w.Line($"float scale = (float)(2.0 / (a.Batch * {c}));");
        _w.Line("float sum = 0f;");
        _w.Open($"for (int j = 0; j < {c}; j++)");
        _w.Line("float d = a.Output[row + j] - a.Targets[row + j];");
        _w.Line("sum += d * d;");
        _w.Line("a.OutputGradient[row + j] = d * scale;");
        _w.Close();
        _w.Line($"a.RowLoss[b] = sum / (a.Batch * {c});");
        _w.Close();
        _w.Line();
        _w.Line($"// ---- Binary cross-entropy on {c} logits per sample, computed stably.");
        _w.Open($"internal static void BceWithLogitsLoss(global::ILGPU.Index1D index, {Arenas} a)");
        _w.Line("int b = index.X;");
        _w.Line($"int row = b * {c};");
        _w.Line($"float invN = 1f / (a.Batch * {c});");
        _w.Line("float sum = 0f;");
        _w.Open($"for (int j = 0; j < {c}; j++)");
        _w.Line("float z = a.Output[row + j], t = a.Targets[row + j];");
        _w.Line("sum += global::System.MathF.Max(z, 0f) - z * t + global::System.MathF.Log(1f + global::System.MathF.Exp(-global::System.MathF.Abs(z)));");
        _w.Line("float s = 1f / (1f + global::System.MathF.Exp(-z));");
        _w.Line("a.OutputGradient[row + j] = (s - t) * invN;");
        _w.Close();
        _w.Line($"a.RowLoss[b] = sum / (a.Batch * {c});");
        _w.Close();
    }

    // ---- operands ------------------------------------------------------------------------------------------

    private string At(int buffer, string index)
    {
        var b = _schedule.Buffers[buffer];
        return b.Kind switch
        {
            BufferKind.Input => $"a.Input[{index}]",
            BufferKind.Output => $"a.Output[{index}]",
            BufferKind.OutputGrad => $"a.OutputGradient[{index}]",
            BufferKind.Param => $"a.Parameters[Layout.{Names.Identifier(_graph.Params[b.Param].Identifier)} + {index}]",
            BufferKind.ParamGrad => $"a.Gradients[Layout.{Names.Identifier(_graph.Params[b.Param].Identifier)} + {index}]",
            BufferKind.State => $"a.State[Layout.{Names.Identifier("state_" + _graph.States[b.Param].Identifier)} + {index}]",
            BufferKind.Index => $"a.Indices[{_plan}.{Names.Identifier(b.Name)} * a.Capacity + {index}]",
            _ => $"a.Activations[{_plan}.{Names.Identifier(b.Name)} * a.Capacity + {index}]",
        };
    }

    private static string Dim(Extent e) => e.PerBatch ? (e.Value == 1 ? "a.Batch" : $"a.Batch * {Invariant.Format(e.Value)}") : Invariant.Format(e.Value);
}
