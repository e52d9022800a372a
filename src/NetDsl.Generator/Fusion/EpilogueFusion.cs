using System.Collections.Generic;
using System.Linq;
using NetDsl.Generator.Graph;

namespace NetDsl.Generator.Fusion;

/// <summary>
/// Fuses work into dense steps (GEMM and convolution), after elementwise fusion:
/// <list type="bullet">
/// <item>an elementwise step right after a dense step that reads its result becomes the dense step's epilogue
/// (bias + activation after a Linear or Conv2d, an activation's gradient after the GEMM that produced the
/// upstream gradient), so the raw result never goes to memory unless a later step reads it;</item>
/// <item>a bias gradient joins the weight-gradient step that reads the same upstream gradient, so one pass
/// over dY yields both.</item>
/// </list>
/// </summary>
internal static class EpilogueFusion
{
    public static void Run(Schedule schedule)
    {
        FuseEpilogues(schedule);
        FuseBiasGradients(schedule);
    }

    private static void FuseEpilogues(Schedule schedule)
    {
        var steps = schedule.Steps;
        for (int i = 0; i + 1 < steps.Count; i++)
        {
            if (steps[i] is not DenseStep dense || steps[i + 1] is not ElementwiseStep e) continue;
            if (i + 1 == schedule.ForwardSteps) continue; // forward and backward are separate methods
            if (dense.AccumulatesOutput || dense.Epilogue is not null || dense.BiasGrad >= 0) continue;
            if (!ProducesPerSample(dense, e.PerSample)) continue;
            if (!e.Program.Any(x => x.Op == EOp.Load && x.Buffer == dense.Output)) continue;
            if (schedule.Buffers[dense.Output].Kind != BufferKind.Activation) continue;

            var program = e.Program.Select(x => x.Op == EOp.Load && x.Buffer == dense.Output
                ? new EInstr(EOp.Accumulator)
                : new EInstr(x.Op, x.A, x.B, x.Buffer, x.Value) { Channels = x.Channels, Inner = x.Inner, Seed = x.Seed }).ToList();
            bool readLater = steps.Skip(i + 2).Any(s => s.Reads.Contains(dense.Output));
            var loaded = new HashSet<int>(program.Where(x => x.Op == EOp.Load).Select(x => x.Buffer));
            // Without the raw result in memory, the result is computed into the epilogue's first store; that
            // buffer must not also be an input the epilogue reads.
            var firstStore = program.FirstOrDefault(x => x.Op == EOp.Store);
            bool keepAccumulator = readLater || firstStore is null || loaded.Contains(firstStore.Buffer);
            if (keepAccumulator && !program.Any(x => x.Op == EOp.Store))
                continue;

            dense.Epilogue = program;
            dense.StoreAccumulator = keepAccumulator;
            dense.Comment += "; then " + e.Comment;
            foreach (int n in e.Nodes)
                if (!dense.Nodes.Contains(n)) dense.Nodes.Add(n);
            steps.RemoveAt(i + 1);
            if (i + 1 < schedule.ForwardSteps) schedule.ForwardSteps--;
        }
    }

    /// <summary>Whether the dense step produces <paramref name="perSample"/> elements per sample of the batch (the epilogue's loop).</summary>
    private static bool ProducesPerSample(DenseStep dense, int perSample) => dense switch
    {
        GemmStep g => g.M.PerBatch && !g.N.PerBatch && (long)g.M.Value * g.N.Value == perSample,
        ConvStep { Pass: ConvPass.Forward } c => c.Geometry.OutSize == perSample,
        ConvStep { Pass: ConvPass.BackwardData } c => c.Geometry.InSize == perSample,
        _ => false,
    };

    private static void FuseBiasGradients(Schedule schedule)
    {
        var steps = schedule.Steps;
        for (int j = 0; j < steps.Count; j++)
        {
            if (steps[j] is not BiasGradStep bias) continue;
            for (int k = j + 1; k < steps.Count; k++)
            {
                var s = steps[k];
                bool match = s is GemmStep { TransA: true } g && g.A == bias.In && g.BiasGrad < 0 && g.K.PerBatch
                             && g.M.Value == bias.Channels && bias.Inner == 1
                          || s is ConvStep { Pass: ConvPass.BackwardWeight } c && c.In2 == bias.In && c.BiasGrad < 0
                             && c.Geometry.OutChannels == bias.Channels && c.Geometry.OutHeight * c.Geometry.OutWidth == bias.Inner && bias.Outer == 1;
                if (match)
                {
                    var dense = (DenseStep)s;
                    dense.BiasGrad = bias.Out;
                    dense.BiasGradAccumulate = bias.Accumulate;
                    dense.Comment = bias.Comment + "; " + dense.Comment;
                    foreach (int n in bias.Nodes)
                        if (!dense.Nodes.Contains(n)) dense.Nodes.Add(n);
                    steps.RemoveAt(j);
                    if (j < schedule.ForwardSteps) schedule.ForwardSteps--;
                    j--;
                    break;
                }
                // Stop at anything that touches the upstream gradient or the bias gradient in between.
                if (s.Writes.Contains(bias.In) || s.Writes.Contains(bias.Out) || s.Reads.Contains(bias.Out)) break;
            }
        }
    }
}
