using System.Collections.Generic;
using System.Linq;
using NetDsl.Generator.Graph;

namespace NetDsl.Generator.Fusion;

/// <summary>
/// Fuses work into the steps next to it (GEMM, convolution, max pooling), after elementwise fusion:
/// <list type="bullet">
/// <item>an elementwise step right after a dense step that reads its result becomes the dense step's epilogue
/// (bias + activation after a Linear or Conv2d, an activation's gradient after the GEMM that produced the
/// upstream gradient), so the raw result never goes to memory unless a later step reads it;</item>
/// <item>a ReLU's gradient right after a max-pooling backward step becomes that step's gate (see
/// <see cref="FusePoolGates"/>);</item>
/// <item>a bias gradient joins the weight-gradient step that reads the same upstream gradient, so one pass
/// over dY yields both.</item>
/// </list>
/// </summary>
internal static class EpilogueFusion
{
    public static void Run(Schedule schedule)
    {
        FuseEpilogues(schedule);
        FusePoolGates(schedule);
        FuseBiasGradients(schedule);
    }

    /// <summary>
    /// A ReLU's gradient right after the max-pooling backward step that produced its upstream gradient
    /// (<c>MaxPool2d(Relu(x))</c>, the usual CNN block) becomes a gate on the pooling step: the winning input of a
    /// window equals the pooled output, so masking by the pooled output routes the same values, and the
    /// upstream gradient of the pooling's input is never written and read back.
    /// </summary>
    private static void FusePoolGates(Schedule schedule)
    {
        var steps = schedule.Steps;
        for (int i = schedule.ForwardSteps; i + 1 < steps.Count; i++)
        {
            if (steps[i] is not PoolStep { Max: true, Backward: true, Accumulate: false, Gate: < 0 } pool || steps[i + 1] is not ElementwiseStep e) continue;
            if (e.PerSample != pool.Geometry.InSize || e.Program.Count != 4) continue;
            var forward = steps.Take(schedule.ForwardSteps).OfType<PoolStep>().FirstOrDefault(f => !f.Backward && f.Index == pool.Index);
            if (forward is null) continue;
            // Exactly out = (poolInput > 0 ? poolGradient : 0), the loads in either order.
            var mask = e.Program[2];
            var store = e.Program[3];
            if (mask.Op != EOp.PositiveMask || store.Op != EOp.Store || store.A != 2 || mask.A == mask.B) continue;
            if (!IsLoad(e.Program, mask.A, forward.In) || !IsLoad(e.Program, mask.B, pool.Out)) continue;
            if (schedule.Buffers[pool.Out].Kind != BufferKind.Activation || store.Buffer == forward.Out) continue;
            if (steps.Skip(i + 2).Any(s => s.Reads.Contains(pool.Out))) continue;

            pool.Gate = forward.Out;
            pool.Out = store.Buffer;
            pool.Comment += "; then " + e.Comment + " (the pooled output's sign)";
            foreach (int n in e.Nodes)
                if (!pool.Nodes.Contains(n)) pool.Nodes.Add(n);
            steps.RemoveAt(i + 1);
        }
    }

    private static bool IsLoad(List<EInstr> program, int register, int buffer)
        => register is 0 or 1 && program[register].Op == EOp.Load && program[register].Buffer == buffer;

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
