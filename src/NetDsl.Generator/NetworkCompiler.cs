using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using NetDsl.Generator.Diagnostics;
using NetDsl.Generator.Emit;
using NetDsl.Generator.Fusion;
using NetDsl.Generator.Graph;
using NetDsl.Generator.Memory;
using NetDsl.Generator.Model;

namespace NetDsl.Generator;

/// <summary>The generated file of one network: what the generator adds, keyed by a stable hint name.</summary>
internal sealed record GeneratedNetwork(string HintName, string Source, string? InternalError);

/// <summary>
/// The pure part of the compiler, from spec to source, in pipeline order: lower and infer shapes, build the
/// training and inference schedules (reverse-mode autodiff for training), fuse, plan memory, emit.
/// No Roslyn types are involved, so every phase can be unit-tested directly.
/// </summary>
internal static class NetworkCompiler
{
    public static GeneratedNetwork Generate(NetworkSpec spec, CancellationToken ct) => Generate(spec, deviceKernels: false, ct);

    /// <summary>Compiles a network; <paramref name="deviceKernels"/> adds its ILGPU program (float networks, projects referencing NetDsl.Runtime.Gpu).</summary>
    public static GeneratedNetwork Generate(NetworkSpec spec, bool deviceKernels, CancellationToken ct)
    {
        string hint = spec.FullName + ".g.cs";
        if (!spec.CanEmit) return new GeneratedNetwork(hint, "", null);
        try
        {
            var (graph, _) = Lowering.Lower(spec);
            ct.ThrowIfCancellationRequested();
            if (graph is null) return new GeneratedNetwork(hint, NetworkEmitter.EmitStandIn(spec), null);
            var compiled = Compile(graph, ct);
            bool device = deviceKernels && spec.ElementType == "float";
            return new GeneratedNetwork(hint, NetworkEmitter.Emit(spec, graph, compiled.Training, compiled.TrainingPlan, compiled.Inference, compiled.InferencePlan, device), null);
        }
        catch (OperationCanceledException)
        {
            throw;
        }
        catch (Exception ex)
        {
            return new GeneratedNetwork(hint, NetworkEmitter.EmitStandIn(spec), ex.GetType().Name + ": " + ex.Message);
        }
    }

    /// <summary>Every diagnostic of a network: parsing, shapes, and (as NDSL0900) any failure of the later phases.</summary>
    public static List<DiagnosticInfo> Diagnose(NetworkSpec spec, CancellationToken ct)
    {
        try
        {
            var (graph, diagnostics) = Lowering.Lower(spec);
            if (graph is not null) Compile(graph, ct);
            return diagnostics;
        }
        catch (OperationCanceledException)
        {
            throw;
        }
        catch (Exception ex)
        {
            var diagnostics = spec.Diagnostics.ToList();
            diagnostics.Add(DiagnosticInfo.Create(Descriptors.InternalError.Id, 0, spec.Name, ex.GetType().Name + ": " + ex.Message));
            return diagnostics;
        }
    }

    public static CompiledNetwork Compile(NetworkGraph graph, CancellationToken ct)
    {
        var training = ScheduleBuilder.Build(graph, ScheduleMode.Training);
        ElementwiseFusion.Run(training);
        EpilogueFusion.Run(training);
        var trainingPlan = LivenessPlanner.Plan(training);
        ct.ThrowIfCancellationRequested();
        var inference = ScheduleBuilder.Build(graph, ScheduleMode.Inference);
        ElementwiseFusion.Run(inference);
        EpilogueFusion.Run(inference);
        var inferencePlan = LivenessPlanner.Plan(inference);
        return new CompiledNetwork(training, trainingPlan, inference, inferencePlan);
    }
}

/// <summary>The schedules and memory plans of a network.</summary>
internal sealed record CompiledNetwork(Schedule Training, MemoryPlan TrainingPlan, Schedule Inference, MemoryPlan InferencePlan);
