using System.Collections.Generic;
using System.Linq;
using NetDsl.Generator.Graph;

namespace NetDsl.Generator.Fusion;

/// <summary>
/// Fuses runs of adjacent elementwise steps into one loop: bias + activation, residual add + activation,
/// dropout, and chains of elementwise gradients. Inside a fused loop a value stored and loaded again stays in
/// a register, and a store nobody reads afterwards is dropped, so the intermediate buffer disappears.
/// Forward and backward are fused separately (they are emitted as separate methods).
/// </summary>
internal static class ElementwiseFusion
{
    public static void Run(Schedule schedule)
    {
        var fused = new List<Step>();
        int forward = 0;
        ElementwiseStep? open = null;
        for (int i = 0; i < schedule.Steps.Count; i++)
        {
            if (i == schedule.ForwardSteps)
            {
                Close(ref open, fused);
                forward = fused.Count;
            }
            var step = schedule.Steps[i];
            if (step is ElementwiseStep e && open is not null && Compatible(open, e))
            {
                Merge(open, e);
                continue;
            }
            Close(ref open, fused);
            if (step is ElementwiseStep start) open = Clone(start);
            else fused.Add(step);
        }
        Close(ref open, fused);
        if (schedule.ForwardSteps == schedule.Steps.Count) forward = fused.Count;

        schedule.Steps.Clear();
        schedule.Steps.AddRange(fused);
        schedule.ForwardSteps = forward;
        RemoveDeadStores(schedule);
    }

    private static void Close(ref ElementwiseStep? open, List<Step> into)
    {
        if (open is null) return;
        into.Add(open);
        open = null;
    }

    /// <summary>Same iteration space, and at most one per-channel broadcast pattern (one loop nest serves both).</summary>
    private static bool Compatible(ElementwiseStep a, ElementwiseStep b)
    {
        if (a.PerSample != b.PerSample) return false;
        var patterns = a.Program.Concat(b.Program).Where(i => i.Op == EOp.LoadChannel).Select(i => (i.Channels, i.Inner)).Distinct().Count();
        return patterns <= 1;
    }

    private static ElementwiseStep Clone(ElementwiseStep source)
    {
        var copy = new ElementwiseStep { PerSample = source.PerSample, Comment = source.Comment };
        copy.Nodes.AddRange(source.Nodes);
        Merge(copy, source, appendComment: false);
        return copy;
    }

    private static void Merge(ElementwiseStep into, ElementwiseStep next, bool appendComment = true)
    {
        // The latest register holding each buffer's element: stores forward to later loads, loads are shared.
        var known = new Dictionary<int, int>();
        for (int i = 0; i < into.Program.Count; i++)
        {
            var instr = into.Program[i];
            if (instr.Op == EOp.Store) known[instr.Buffer] = instr.A;
            else if (instr.Op == EOp.Load && !known.ContainsKey(instr.Buffer)) known[instr.Buffer] = i;
        }
        var map = new int[next.Program.Count];
        for (int i = 0; i < next.Program.Count; i++)
        {
            var instr = next.Program[i];
            if (instr.Op == EOp.Load && known.TryGetValue(instr.Buffer, out int reg))
            {
                map[i] = reg;
                continue;
            }
            var copy = new EInstr(instr.Op, instr.A >= 0 ? map[instr.A] : -1, instr.B >= 0 ? map[instr.B] : -1, instr.Buffer, instr.Value)
            {
                Channels = instr.Channels, Inner = instr.Inner, Seed = instr.Seed,
            };
            map[i] = into.Emit(copy);
            if (instr.Op == EOp.Store) known[instr.Buffer] = copy.A;
            else if (instr.Op == EOp.Load) known[instr.Buffer] = map[i];
        }
        if (appendComment) into.Comment += "; " + next.Comment;
        foreach (int n in next.Nodes)
            if (!into.Nodes.Contains(n)) into.Nodes.Add(n);
    }

    /// <summary>
    /// Drops stores into activation buffers that no later step reads (the value lived only inside a fused
    /// loop) or that a later store in the same loop overwrites, then the instructions that fed only them.
    /// </summary>
    private static void RemoveDeadStores(Schedule schedule)
    {
        var steps = schedule.Steps;
        for (int s = 0; s < steps.Count; s++)
        {
            if (steps[s] is not ElementwiseStep e) continue;
            var laterReads = new HashSet<int>();
            for (int t = s + 1; t < steps.Count; t++)
                foreach (int b in steps[t].Reads) laterReads.Add(b);
            var keep = new bool[e.Program.Count];
            var lastStore = new Dictionary<int, int>();
            for (int i = 0; i < e.Program.Count; i++)
                if (e.Program[i].Op == EOp.Store) lastStore[e.Program[i].Buffer] = i;
            for (int i = e.Program.Count - 1; i >= 0; i--)
            {
                var instr = e.Program[i];
                if (instr.Op == EOp.Store)
                {
                    var buffer = schedule.Buffers[instr.Buffer];
                    bool needed = lastStore[instr.Buffer] == i && (buffer.Kind != BufferKind.Activation || laterReads.Contains(instr.Buffer));
                    if (needed) keep[i] = true;
                }
                if (keep[i])
                {
                    if (instr.A >= 0) keep[instr.A] = true;
                    if (instr.B >= 0) keep[instr.B] = true;
                }
            }
            var map = new int[e.Program.Count];
            var program = new List<EInstr>();
            for (int i = 0; i < e.Program.Count; i++)
            {
                if (!keep[i]) continue;
                var instr = e.Program[i];
                if (instr.A >= 0) instr.A = map[instr.A];
                if (instr.B >= 0) instr.B = map[instr.B];
                map[i] = program.Count;
                program.Add(instr);
            }
            e.Program.Clear();
            e.Program.AddRange(program);
        }
        steps.RemoveAll(st => st is ElementwiseStep e && e.Program.Count == 0);
    }
}
