using System.Linq;
using System.Collections.Generic;
using NetDsl.Generator.Distributed;
using NetDsl.Generator.Graph;
using NetDsl.Generator.Memory;
using NetDsl.Generator.Model;
using NetDsl.Generator.Shapes;

namespace NetDsl.Generator.Emit;

/// <summary>Writes the generated half of a network class: one file per network, meant to be read.</summary>
internal static class NetworkEmitter
{
    public const string GeneratorName = "NetDsl.Generator";
    public const string GeneratorVersion = "0.1.0";

    public static string Emit(NetworkSpec spec, NetworkGraph graph, Schedule training, MemoryPlan trainingPlan, Schedule inference, MemoryPlan inferencePlan, bool deviceKernels = false)
    {
        var summary = Summary.Build(graph, trainingPlan, inferencePlan, training.Steps.Count, inference.Steps.Count);
        string t = graph.ElementType;
        var buckets = GradientBucketPlanner.Plan(graph, training, spec.GradientBucketBytes, (int)summary.ElementBytes);
        string name = Names.Identifier(spec.Name);
        var w = new CodeWriter();
        Header(spec, w, deviceKernels);

        // ---- the class and its summary
        w.Line("/// <summary>");
        w.Line($"/// <para><c>{Names.Xml(spec.Name)}</c>: a NetDsl network compiled for {t} (batch-first, as in PyTorch; B is the batch).</para>");
        w.Line("/// <code>");
        foreach (var line in summary.Table()) w.Line("/// " + Names.Xml(line));
        w.Line("///");
        long bytes = summary.ElementBytes;
        w.Line($"/// parameters:              {Invariant.Grouped(summary.Parameters)} ({Invariant.Grouped(summary.Parameters * bytes)} bytes)");
        w.Line($"/// forward FLOPs per sample: {Invariant.Grouped(summary.FlopsPerSample)}");
        w.Line($"/// activations per sample:  training {Invariant.Grouped(trainingPlan.ActivationsPerSample * bytes + trainingPlan.IndicesPerSample * 4L)} bytes (planned; {Invariant.Grouped(trainingPlan.UnplannedPerSample * bytes + trainingPlan.IndicesPerSample * 4L)} without sharing), inference {Invariant.Grouped(inferencePlan.ActivationsPerSample * bytes)} bytes");
        long peak64 = 64L * (trainingPlan.ActivationsPerSample * bytes + trainingPlan.IndicesPerSample * 4L);
        w.Line($"/// planned peak at batch 64: {Invariant.Grouped(peak64)} bytes of activations and indices for training (plus parameters, gradients and optimizer state)");
        w.Line($"/// im2col columns:          {Invariant.Grouped(trainingPlan.Scratch * bytes)} bytes per worker thread");
        w.Line($"/// steps:                   training {summary.TrainingSteps} (forward {training.ForwardSteps}, backward {training.Steps.Count - training.ForwardSteps}), inference {summary.InferenceSteps}");
        w.Line($"/// device launches:         {summary.TrainingSteps + 2} per training step (the steps, the fused loss, the optimizer), {summary.InferenceSteps} per inference");
        w.Line($"/// gradient buckets:        {buckets.Count} of at most {Invariant.Grouped(spec.GradientBucketBytes)} bytes, allreduced by a distributed trainer as backward finishes each:");
        foreach (var b in buckets)
            w.Line($"///   #{Invariant.Format(b.Index)} after step {Invariant.Format(b.ReadyAfterStep + 1)}: {Invariant.Grouped(b.Length * bytes)} bytes at element {Invariant.Grouped(b.Offset)} ({Names.Xml(string.Join(", ", b.Parameters))})");
        w.Line("/// </code>");
        w.Line("/// </summary>");
        w.Line($"[global::System.CodeDom.Compiler.GeneratedCode({Names.Quote(GeneratorName)}, {Names.Quote(GeneratorVersion)})]");
        w.Open($"partial class {name} : global::NetDsl.Runtime.CompiledNetwork<{t}>");

        // ---- public constants
        var input = graph[graph.Input];
        var output = graph[graph.Output];
        w.Line($"/// <summary>Elements of one input sample, {ShapeMath.PerSample(input.Shape)}.</summary>");
        w.Line($"public const int InputSize = {Invariant.Format(input.Elements)};");
        w.Line($"/// <summary>Elements of one output sample, {ShapeMath.PerSample(output.Shape)}.</summary>");
        w.Line($"public const int OutputSize = {Invariant.Format(output.Elements)};");
        w.Line("/// <summary>Trainable parameters, as PyTorch counts them.</summary>");
        w.Line($"public const int ParameterCount = {Invariant.Format(summary.Parameters)};");
        w.Line("/// <summary>Bytes of the parameters' values (the flat buffer, Description.ParameterBufferLength elements, also holds the gaps that start each tensor on a 64-byte line).</summary>");
        w.Line($"public const long ParameterBytes = {Invariant.Format(summary.Parameters * bytes)};");
        w.Line("/// <summary>Forward FLOPs of one sample (2 per multiply-add).</summary>");
        w.Line($"public const long FlopsPerSample = {Invariant.Format(summary.FlopsPerSample)};");
        w.Line("/// <summary>Bytes of planned activation and index memory per sample of a trainer's batch capacity.</summary>");
        w.Line($"public const long TrainingBytesPerSample = {Invariant.Format(trainingPlan.ActivationsPerSample * bytes + trainingPlan.IndicesPerSample * 4L)};");
        w.Line("/// <summary>Bytes of planned activation memory per sample for inference.</summary>");
        w.Line($"public const long InferenceBytesPerSample = {Invariant.Format(inferencePlan.ActivationsPerSample * bytes)};");
        w.Line("/// <summary>Steps of one training step (forward and backward); each is one kernel launch on a device.</summary>");
        w.Line($"public const int TrainingStepCount = {Invariant.Format(summary.TrainingSteps)};");
        w.Line("/// <summary>Kernel launches of one training step on a device: the steps, the fused loss kernel and the optimizer kernel.</summary>");
        w.Line($"public const int KernelLaunchesPerTrainingStep = {Invariant.Format(summary.TrainingSteps + 2)};");
        w.Line("/// <summary>Bytes the training activations would take per sample if no two buffers shared memory (the plan's baseline).</summary>");
        w.Line($"public const long UnplannedTrainingBytesPerSample = {Invariant.Format(trainingPlan.UnplannedPerSample * bytes + trainingPlan.IndicesPerSample * 4L)};");
        w.Line($"/// <summary>The per-sample input shape, {ShapeMath.PerSample(input.Shape)}.</summary>");
        w.Line($"public static global::System.ReadOnlySpan<int> InputShape => [{string.Join(", ", input.Shape.Select(Invariant.Format))}];");
        w.Line($"/// <summary>The per-sample output shape, {ShapeMath.PerSample(output.Shape)}.</summary>");
        w.Line($"public static global::System.ReadOnlySpan<int> OutputShape => [{string.Join(", ", output.Shape.Select(Invariant.Format))}];");
        w.Line();

        // ---- construction
        w.Line("private static readonly global::NetDsl.Runtime.NetworkDescription s_description = new(");
        w.Indent();
        w.Line($"{Names.Quote(spec.Name)},");
        w.Line($"[{string.Join(", ", input.Shape.Select(Invariant.Format))}],");
        w.Line($"[{string.Join(", ", output.Shape.Select(Invariant.Format))}],");
        w.Line("[");
        w.Indent();
        foreach (var p in graph.Params)
            w.Line($"new({Names.Quote(p.Name)}, Layout.{Names.Identifier(p.Identifier)}, [{string.Join(", ", p.Shape.Select(Invariant.Format))}], global::NetDsl.Runtime.ParameterInit.{p.Init}, {Invariant.Format(p.Bound)}),");
        w.Outdent();
        w.Line("],");
        w.Line($"new global::NetDsl.Runtime.MemoryPlanSizes({Invariant.Format(trainingPlan.ActivationsPerSample)}, {Invariant.Format(trainingPlan.IndicesPerSample)}, {Invariant.Format(trainingPlan.Scratch)}),");
        w.Line($"new global::NetDsl.Runtime.MemoryPlanSizes({Invariant.Format(inferencePlan.ActivationsPerSample)}, {Invariant.Format(inferencePlan.IndicesPerSample)}, {Invariant.Format(inferencePlan.Scratch)}))");
        w.Line("{");
        w.Line($"    TrainingSteps = {Invariant.Format(training.Steps.Count)},");
        w.Line($"    InferenceSteps = {Invariant.Format(inference.Steps.Count)},");
        w.Line($"    FlopsPerSample = {Invariant.Format(summary.FlopsPerSample)},");
        w.Line($"    UnplannedActivationsPerSample = {Invariant.Format(trainingPlan.UnplannedPerSample)},");
        w.Line("    Graph =");
        w.Line("    [");
        foreach (var n in graph.Nodes)
            w.Line("        " + GraphNode(graph, n) + ",");
        w.Line("    ],");
        w.Line($"    GraphOutput = {Invariant.Format(graph.Output)},");
        w.Line($"    GradientBucketBytes = {Invariant.Format(spec.GradientBucketBytes)},");
        w.Line("    GradientBuckets =");
        w.Line("    [");
        foreach (var b in buckets)
            w.Line($"        new({Invariant.Format(b.Offset)}, {Invariant.Format(b.Length)}, {Invariant.Format(b.ReadyAfterStep + 1)}, [{string.Join(", ", b.Parameters.Select(Names.Quote))}]),");
        w.Line("    ],");
        if (graph.States.Count > 0)
        {
            w.Line("    States =");
            w.Line("    [");
            foreach (var st in graph.States)
                w.Line($"        new({Names.Quote(st.Name)}, Layout.{Names.Identifier("state_" + st.Identifier)}, [{string.Join(", ", st.Shape.Select(Invariant.Format))}], global::NetDsl.Runtime.ParameterInit.{st.Init}, IsCount: {(st.IsCount ? "true" : "false")}),");
            w.Line("    ],");
        }
        w.Line("};");
        w.Outdent();
        w.Line();
        w.Line("/// <summary>Creates the network with parameters initialized as PyTorch initializes the same layers, from <paramref name=\"seed\"/>.</summary>");
        w.Line($"public {name}(int seed = 0) : base(s_description, seed)");
        w.Open().Close();
        w.Line();

        // ---- the three compiled schedules
        string span = $"global::System.Span<{t}>", ro = $"global::System.ReadOnlySpan<{t}>", ws = $"global::NetDsl.Runtime.Workspace<{t}>";
        var loops = new FusedLoops();
        w.Line("/// <inheritdoc />");
        w.Open($"protected override void ForwardTraining({ro} input, {span} output, {ws} workspace, int batch)");
        CpuEmitter.EmitBody(graph, training, "Layout.Training", 0, training.ForwardSteps, backward: false, w, loops);
        w.Close();
        w.Line();
        w.Line("/// <inheritdoc />");
        w.Open($"protected override void Backward({ro} input, {ro} output, {ro} outputGradient, {ws} workspace, int batch)");
        var signals = new Dictionary<int, List<string>>();
        foreach (var b in buckets)
        {
            if (!signals.TryGetValue(b.ReadyAfterStep, out var lines)) signals[b.ReadyAfterStep] = lines = new List<string>();
            lines.Add($"workspace.GradientBucketReady({Invariant.Format(b.Index)}); // bucket {Invariant.Format(b.Index)} ({string.Join(", ", b.Parameters)}) is final: a distributed trainer starts its allreduce");
        }
        // Between the first bucket and the end of backward, allreduces are in flight: let the trainer poll them
        // after each step (MPI progresses only inside its calls), so they overlap the steps that remain.
        if (buckets.Count > 0)
            for (int i = buckets.Min(b => b.ReadyAfterStep) + 1; i < training.Steps.Count - 1; i++)
                if (!signals.ContainsKey(i)) signals[i] = new List<string> { "workspace.GradientProgress();" };
        CpuEmitter.EmitBody(graph, training, "Layout.Training", training.ForwardSteps, training.Steps.Count, backward: true, w, loops, signals);
        w.Close();
        w.Line();
        w.Line("/// <inheritdoc />");
        w.Open($"protected override void ForwardInference({ro} input, {span} output, {ws} workspace, int batch)");
        CpuEmitter.EmitBody(graph, inference, "Layout.Inference", 0, inference.Steps.Count, backward: false, w, loops);
        w.Close();
        loops.Emit(w, t);
        w.Line();

        if (deviceKernels)
        {
            IlgpuEmitter.Emit(graph, training, inference, w);
            w.Line();
        }

        // ---- layout constants
        w.Line("/// <summary>Where every tensor lives: parameter offsets, and arena offsets in elements per sample of capacity.</summary>");
        w.Open("private static class Layout");
        foreach (var p in graph.Params)
        {
            w.Line($"public const int {Names.Identifier(p.Identifier)} = {Invariant.Format(p.Offset)}; // {p.Name} {ShapeMath.PerSample(p.Shape)}");
            w.Line($"public const int {Names.Identifier(p.Identifier + "_length")} = {Invariant.Format(p.Length)};");
        }
        foreach (var st in graph.States)
            w.Line($"public const int {Names.Identifier("state_" + st.Identifier)} = {Invariant.Format(st.Offset)}; // state {st.Name} {ShapeMath.PerSample(st.Shape)}");
        PlanClass("Training", training, w);
        PlanClass("Inference", inference, w);
        w.Close();
        w.Line();

        // ---- sizes
        w.Line("/// <summary>Elements per sample of every tensor the schedules keep.</summary>");
        w.Open("private static class Sizes");
        var sized = training.Buffers.Concat(inference.Buffers).Where(b => b.SizeOf.Length > 0 && b.Offset >= 0).Select(b => b.SizeOf).Distinct().ToList();
        foreach (var node in graph.Nodes.Where(n => sized.Contains(n.Name)))
            w.Line($"public const int {Names.Identifier(node.Name)} = {Invariant.Format(node.Elements)}; // {ShapeMath.PerSample(node.Shape)}");
        w.Close();
        w.Close();
        return w.ToString();
    }

    /// <summary>A node of the forward graph as a runtime <c>GraphNode</c> expression (the exporters' view).</summary>
    private static string GraphNode(NetworkGraph graph, Node n)
    {
        var parts = new System.Collections.Generic.List<string>();
        if (n.Param >= 0) parts.Add("Param = " + Names.Quote(graph.Params[n.Param].Name));
        if (n.Param2 >= 0) parts.Add("Param2 = " + Names.Quote(graph.Params[n.Param2].Name));
        if (n.State >= 0) parts.Add("State = " + Names.Quote(graph.States[n.State].Layer));
        if (n.Axis != 0) parts.Add("Axis = " + Invariant.Format(n.Axis));
        if (n.Kernel != 0) parts.Add("Kernel = " + Invariant.Format(n.Kernel));
        if (n.Stride != 0) parts.Add("Stride = " + Invariant.Format(n.Stride));
        if (n.Padding != 0) parts.Add("Padding = " + Invariant.Format(n.Padding));
        if (n.Start != 0) parts.Add("Start = " + Invariant.Format(n.Start));
        if (n.Alpha != 0) parts.Add("Alpha = " + Invariant.Literal(n.Alpha, "double"));
        if (n.Eps != 0) parts.Add("Eps = " + Invariant.Literal(n.Eps, "double"));
        string node = $"new({Names.Quote(n.Op.ToString())}, [{string.Join(", ", n.Inputs.Select(Invariant.Format))}], [{string.Join(", ", n.Shape.Select(Invariant.Format))}])";
        return parts.Count == 0 ? node : node + " { " + string.Join(", ", parts) + " }";
    }

    private static void PlanClass(string name, Schedule schedule, CodeWriter w)
    {
        var planned = schedule.Buffers.Where(b => b.IsPlanned && b.Offset >= 0).OrderBy(b => b.Kind).ThenBy(b => b.Offset).ThenBy(b => b.Id).ToList();
        w.Line();
        w.Open($"public static class {name}");
        foreach (var b in planned)
            w.Line($"public const int {Names.Identifier(b.Name)} = {Invariant.Format(b.Offset)}; // {(b.Kind == BufferKind.Index ? "index arena: " : "")}{b.Comment}, {Invariant.Format(b.PerSample)} per sample");
        w.Close();
    }

    /// <summary>
    /// The stand-in for a network with errors: the base class and constructor keep the rest of the project
    /// compiling (so the NDSL errors are the ones you see); it cannot run.
    /// </summary>
    public static string EmitStandIn(NetworkSpec spec)
    {
        string t = spec.ElementType;
        string name = Names.Identifier(spec.Name);
        var w = new CodeWriter();
        Header(spec, w);
        w.Line($"/// <summary><c>{Names.Xml(spec.Name)}</c> has NetDsl errors (see the NDSL diagnostics), so it was not compiled.</summary>");
        w.Line($"[global::System.CodeDom.Compiler.GeneratedCode({Names.Quote(GeneratorName)}, {Names.Quote(GeneratorVersion)})]");
        w.Open($"partial class {name} : global::NetDsl.Runtime.CompiledNetwork<{t}>");
        w.Line("/// <summary>Throws: the network did not compile.</summary>");
        w.Line($"public {name}(int seed = 0) : base(global::NetDsl.Runtime.NetworkStandIn.Fail({Names.Quote(spec.FullName)}), seed)");
        w.Open().Close();
        string span = $"global::System.Span<{t}>", ro = $"global::System.ReadOnlySpan<{t}>", ws = $"global::NetDsl.Runtime.Workspace<{t}>";
        string fail = $" => throw global::NetDsl.Runtime.NetworkStandIn.Error({Names.Quote(spec.FullName)});";
        w.Line($"/// <inheritdoc />");
        w.Line($"protected override void ForwardTraining({ro} input, {span} output, {ws} workspace, int batch){fail}");
        w.Line($"/// <inheritdoc />");
        w.Line($"protected override void Backward({ro} input, {ro} output, {ro} outputGradient, {ws} workspace, int batch){fail}");
        w.Line($"/// <inheritdoc />");
        w.Line($"protected override void ForwardInference({ro} input, {span} output, {ws} workspace, int batch){fail}");
        w.Close();
        return w.ToString();
    }

    private static void Header(NetworkSpec spec, CodeWriter w, bool deviceKernels = false)
    {
        w.Line("// <auto-generated/>");
        w.Line($"// Generated by {GeneratorName} {GeneratorVersion} from the [Network] class {spec.FullName}.");
        w.Line("// Change that class and rebuild: edits here are overwritten.");
        w.Line("#nullable enable");
        w.Line();
        if (deviceKernels)
        {
            w.Line("// ILGPU's CPU accelerator runs the device kernels from its dynamic ILGPURuntime assembly.");
            w.Line("[assembly: global::System.Runtime.CompilerServices.InternalsVisibleTo(\"ILGPURuntime\")]");
            w.Line();
        }
        if (spec.Namespace.Length > 0)
        {
            w.Line($"namespace {spec.Namespace};");
            w.Line();
        }
    }
}
