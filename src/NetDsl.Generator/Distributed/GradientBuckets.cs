using System.Collections.Generic;
using System.Linq;
using NetDsl.Generator.Graph;

namespace NetDsl.Generator.Distributed;

/// <summary>
/// One bucket of the data-parallel communication plan: a contiguous slice of the flat gradient buffer whose
/// gradients are all final after backward step <see cref="ReadyAfterStep"/> (an index into the training schedule).
/// </summary>
internal sealed class GradientBucket
{
    public GradientBucket(int index, int offset, int length, int readyAfterStep, IReadOnlyList<string> parameters)
    {
        Index = index;
        Offset = offset;
        Length = length;
        ReadyAfterStep = readyAfterStep;
        Parameters = parameters;
    }

    public int Index { get; }

    /// <summary>First element in the flat gradient buffer.</summary>
    public int Offset { get; }

    /// <summary>Elements.</summary>
    public int Length { get; }

    /// <summary>The schedule step after which every gradient in the bucket is final.</summary>
    public int ReadyAfterStep { get; }

    /// <summary>The parameters whose gradients the bucket holds, in the order backward finishes them.</summary>
    public IReadOnlyList<string> Parameters { get; }
}

/// <summary>
/// Plans the gradient buckets at compile time, from what only the compiler knows exactly: every gradient's size
/// and the backward step that writes it last. Gradients are taken in the order backward finishes them (ties by
/// descending offset, which is how layers come back in reverse); a bucket grows while the next gradient's slot (the
/// gradient and the alignment gap after it) is adjacent to it in the flat buffer and the cap is not exceeded, so
/// every bucket is one contiguous slice that a single allreduce can send in place. A gradient larger than the cap
/// gets a bucket of its own. Parameters that no step writes (none in a network that compiles) are ready after the
/// last step.
/// </summary>
internal static class GradientBucketPlanner
{
    public static List<GradientBucket> Plan(NetworkGraph graph, Schedule training, int capBytes, int elementBytes)
    {
        int count = graph.Params.Count;
        var readyAfter = new int[count];
        for (int p = 0; p < count; p++) readyAfter[p] = training.Steps.Count - 1;
        var written = new bool[count];
        for (int i = training.ForwardSteps; i < training.Steps.Count; i++)
            foreach (int b in training.Steps[i].Writes)
            {
                var buffer = training.Buffers[b];
                if (buffer.Kind != BufferKind.ParamGrad) continue;
                readyAfter[buffer.Param] = i;
                written[buffer.Param] = true;
            }

        var order = Enumerable.Range(0, count)
            .OrderBy(p => written[p] ? 0 : 1)
            .ThenBy(p => readyAfter[p])
            .ThenByDescending(p => graph.Params[p].Offset)
            .ToList();
        // A parameter's slot runs to where the next one starts: its tensor and the alignment gap after it (zero),
        // so adjacent slots tile the buffer and a bucket of adjacent parameters is still one contiguous slice.
        var slotEnd = new int[count];
        var byOffset = Enumerable.Range(0, count).OrderBy(p => graph.Params[p].Offset).ToList();
        for (int i = 0; i < count; i++)
        {
            var param = graph.Params[byOffset[i]];
            slotEnd[byOffset[i]] = i + 1 < count ? graph.Params[byOffset[i + 1]].Offset : param.Offset + param.Length;
        }
        long cap = capBytes / (long)elementBytes;
        var buckets = new List<GradientBucket>();
        int lo = 0, hi = 0, ready = -1;
        var members = new List<string>();
        foreach (int p in order)
        {
            var param = graph.Params[p];
            int start = param.Offset, end = slotEnd[p];
            bool adjacent = members.Count > 0 && (end == lo || start == hi);
            if (members.Count > 0 && (!adjacent || (long)(hi - lo) + (end - start) > cap))
            {
                buckets.Add(new GradientBucket(buckets.Count, lo, hi - lo, ready, members.ToArray()));
                members.Clear();
            }
            if (members.Count == 0) { lo = start; hi = end; ready = readyAfter[p]; }
            else { lo = System.Math.Min(lo, start); hi = System.Math.Max(hi, end); ready = System.Math.Max(ready, readyAfter[p]); }
            members.Add(param.Name);
        }
        if (members.Count > 0) buckets.Add(new GradientBucket(buckets.Count, lo, hi - lo, ready, members.ToArray()));
        return buckets;
    }
}
