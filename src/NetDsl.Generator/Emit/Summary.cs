using System.Collections.Generic;
using System.Linq;
using NetDsl.Generator.Graph;
using NetDsl.Generator.Memory;
using NetDsl.Generator.Shapes;

namespace NetDsl.Generator.Emit;

/// <summary>One row of the summary table: a layer application or an operation.</summary>
internal sealed record SummaryRow(string Name, string Op, string Input, string Output, string Parameters);

/// <summary>
/// What the generated class reports about the network: the layer-by-layer table and the totals, shown on hover
/// in the IDE (the class's XML docs) and exposed as constants.
/// </summary>
internal sealed class Summary
{
    private Summary(List<SummaryRow> rows, long parameters, long flops, int elementBytes, MemoryPlan training, MemoryPlan inference, int trainingSteps, int inferenceSteps)
    {
        Rows = rows;
        Parameters = parameters;
        FlopsPerSample = flops;
        ElementBytes = elementBytes;
        Training = training;
        Inference = inference;
        TrainingSteps = trainingSteps;
        InferenceSteps = inferenceSteps;
    }

    public List<SummaryRow> Rows { get; }

    public long Parameters { get; }

    public long FlopsPerSample { get; }

    public int ElementBytes { get; }

    public MemoryPlan Training { get; }

    public MemoryPlan Inference { get; }

    /// <summary>Steps (kernel launches on a device) of one training step, forward and backward.</summary>
    public int TrainingSteps { get; }

    public int InferenceSteps { get; }

    public static Summary Build(NetworkGraph graph, MemoryPlan training, MemoryPlan inference, int trainingSteps, int inferenceSteps)
    {
        var alive = ScheduleBuilder.Alive(graph);
        var rows = new List<SummaryRow>();
        var counted = new HashSet<int>();
        long flops = 0;
        foreach (var node in graph.Nodes)
        {
            if (!alive[node.Id]) continue;
            flops += Flops(graph, node);
            var composite = graph.Composites.FirstOrDefault(c => node.Id >= c.First && node.Id <= c.Last);
            if (composite is not null)
            {
                // A recurrent layer is one row, at its first node.
                if (node.Id == composite.First)
                {
                    var owned = graph.Params.Select((p, i) => (p, i)).Where(t => t.p.Layer == node.Layer).ToList();
                    bool first = owned.All(t => counted.Add(t.i));
                    rows.Add(new SummaryRow(graph[composite.Last].Label, composite.Kind, ShapeMath.WithBatch(graph[composite.Input].Shape), ShapeMath.WithBatch(graph[composite.Last].Shape),
                        first ? Invariant.Grouped(owned.Sum(t => (long)t.p.Length)) : "shared"));
                }
                continue;
            }
            switch (node.Op)
            {
                case OpKind.Input:
                    rows.Add(new SummaryRow(node.Label, "input", "", ShapeMath.WithBatch(node.Shape), ""));
                    break;
                case OpKind.BiasAdd:
                    break; // part of its layer's row
                case OpKind.MatMul:
                case OpKind.Conv2d:
                case OpKind.ConvTranspose2d:
                case OpKind.BatchNorm:
                case OpKind.LayerNorm:
                case OpKind.Embedding:
                    {
                        // The layer's row ends at its bias when it has one.
                        var last = graph.Nodes.FirstOrDefault(n => n.Op == OpKind.BiasAdd && n.Inputs[0] == node.Id) ?? node;
                        string op = node.Op switch
                        {
                            OpKind.MatMul => "Linear",
                            OpKind.Conv2d => $"Conv2d(k{node.Kernel}, s{node.Stride}, p{node.Padding})",
                            OpKind.ConvTranspose2d => $"ConvTranspose2d(k{node.Kernel}, s{node.Stride}, p{node.Padding})",
                            OpKind.BatchNorm => "BatchNorm",
                            OpKind.LayerNorm => "LayerNorm",
                            _ => "Embedding",
                        };
                        var owned = graph.Params.Select((p, i) => (p, i)).Where(t => t.p.Layer == node.Layer).ToList();
                        bool first = owned.All(t => counted.Add(t.i));
                        string pars = first ? Invariant.Grouped(owned.Sum(t => (long)t.p.Length)) : "shared";
                        rows.Add(new SummaryRow(node.Label, op, ShapeMath.WithBatch(graph[node.Inputs[0]].Shape), ShapeMath.WithBatch(last.Shape), pars));
                        break;
                    }
                default:
                    rows.Add(new SummaryRow(node.Label, node.Op.ToString(), string.Join(" ", node.Inputs.Select(i => ShapeMath.WithBatch(graph[i].Shape))), ShapeMath.WithBatch(node.Shape), ""));
                    break;
            }
        }
        int bytes = graph.ElementType == "double" ? 8 : 4;
        return new Summary(rows, graph.ParameterCount, flops, bytes, training, inference, trainingSteps, inferenceSteps);
    }

    /// <summary>Forward FLOPs of one sample: 2 per multiply-add, 1 per elementwise or pooled element.</summary>
    private static long Flops(NetworkGraph graph, Node node)
    {
        switch (node.Op)
        {
            case OpKind.MatMul:
                return 2L * graph[node.Inputs[0]].Elements * node.Shape[node.Shape.Length - 1];
            case OpKind.Conv2d:
                return 2L * node.Elements * graph[node.Inputs[0]].Shape[0] * node.Kernel * node.Kernel;
            case OpKind.MaxPool2d:
            case OpKind.AvgPool2d:
                return node.Elements * node.Kernel * node.Kernel;
            case OpKind.ConvTranspose2d:
                return 2L * graph[node.Inputs[0]].Elements * node.Shape[0] * node.Kernel * node.Kernel;
            case OpKind.Softmax:
            case OpKind.LogSoftmax:
                return 3 * node.Elements;
            case OpKind.BatchNorm:
            case OpKind.LayerNorm:
                return 4 * node.Elements;
            case OpKind.Input:
            case OpKind.Reshape:
            case OpKind.Concat:
            case OpKind.Slice:
            case OpKind.Zeros:
            case OpKind.Embedding:
            case OpKind.Upsample:
                return 0;
            default:
                return node.Elements;
        }
    }

    /// <summary>The table as aligned text lines.</summary>
    public IEnumerable<string> Table()
    {
        var all = new List<SummaryRow> { new("layer / op", "kind", "input", "output", "parameters") };
        all.AddRange(Rows);
        int w0 = all.Max(r => r.Name.Length), w1 = all.Max(r => r.Op.Length), w2 = all.Max(r => r.Input.Length), w3 = all.Max(r => r.Output.Length);
        int w4 = all.Max(r => r.Parameters.Length);
        foreach (var r in all)
            yield return (r.Name.PadRight(w0) + "  " + r.Op.PadRight(w1) + "  " + r.Input.PadRight(w2) + "  " + r.Output.PadRight(w3) + "  " + r.Parameters.PadLeft(w4)).TrimEnd();
    }
}
