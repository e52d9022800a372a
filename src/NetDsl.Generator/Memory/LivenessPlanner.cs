using System;
using System.Collections.Generic;
using System.Linq;
using NetDsl.Generator.Graph;
using NetDsl.Generator.Shapes;

namespace NetDsl.Generator.Memory;

/// <summary>Where a schedule's buffers live, in elements per sample of batch capacity.</summary>
internal sealed class MemoryPlan
{
    public MemoryPlan(int activationsPerSample, int indicesPerSample, long unplannedPerSample, long scratch)
    {
        ActivationsPerSample = activationsPerSample;
        IndicesPerSample = indicesPerSample;
        UnplannedPerSample = unplannedPerSample;
        Scratch = scratch;
    }

    /// <summary>The activation arena's size: the peak of the plan.</summary>
    public int ActivationsPerSample { get; }

    public int IndicesPerSample { get; }

    /// <summary>The sum of all activation buffers, what the arena would need without sharing.</summary>
    public long UnplannedPerSample { get; }

    /// <summary>im2col scratch elements, independent of the batch.</summary>
    public long Scratch { get; }
}

/// <summary>
/// Places activation and index buffers in their arenas so that buffers alive at the same time never overlap,
/// from their live ranges over the schedule (forward and backward together for training). A pointwise step
/// may write over an input that dies in it. Placement is greedy, largest buffer first, at the lowest offset
/// that fits and is a multiple of 16 elements.
/// </summary>
internal static class LivenessPlanner
{
    public static MemoryPlan Plan(Schedule schedule)
    {
        var start = new Dictionary<int, int>();
        var end = new Dictionary<int, int>();
        void Touch(int buffer, int time)
        {
            start[buffer] = start.TryGetValue(buffer, out int s) ? Math.Min(s, time) : time;
            end[buffer] = end.TryGetValue(buffer, out int e) ? Math.Max(e, time) : time;
        }
        long scratch = 0;
        for (int i = 0; i < schedule.Steps.Count; i++)
        {
            var step = schedule.Steps[i];
            foreach (int b in step.Reads) Touch(b, 2 * i);
            foreach (int b in step.Writes) Touch(b, step.IsPointwise ? 2 * i + 1 : 2 * i);
            if (step is ConvStep conv) scratch = Math.Max(scratch, conv.Geometry.ColumnSize);
        }

        long unplanned = 0;
        int activations = Place(schedule, BufferKind.Activation, start, end, ref unplanned);
        long ignored = 0;
        int indices = Place(schedule, BufferKind.Index, start, end, ref ignored);
        return new MemoryPlan(activations, indices, unplanned, scratch);
    }

    private static int Place(Schedule schedule, BufferKind kind, Dictionary<int, int> start, Dictionary<int, int> end, ref long total)
    {
        var buffers = schedule.Buffers.Where(b => b.Kind == kind && start.ContainsKey(b.Id))
            .OrderByDescending(b => b.PerSample).ThenBy(b => start[b.Id]).ThenBy(b => b.Id).ToList();
        var placed = new List<ScheduleBuffer>();
        long peak = 0;
        foreach (var b in buffers)
        {
            total += b.PerSample;
            var taken = placed.Where(p => start[p.Id] <= end[b.Id] && start[b.Id] <= end[p.Id])
                .Select(p => (From: (long)p.Offset, To: (long)p.Offset + p.PerSample)).OrderBy(r => r.From).ToList();
            long offset = 0;
            foreach (var (from, to) in taken)
            {
                if (offset + b.PerSample <= from) break;
                offset = Math.Max(offset, ShapeMath.ToLine(to)); // every buffer starts on a line (ShapeMath.LineElements per sample)
            }
            b.Offset = (int)offset;
            placed.Add(b);
            peak = Math.Max(peak, offset + b.PerSample);
        }
        return (int)Math.Min(peak, int.MaxValue);
    }
}
