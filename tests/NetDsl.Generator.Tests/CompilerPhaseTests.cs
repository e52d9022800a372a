using System.Collections.Generic;
using System.Linq;
using NetDsl.Generator.Fusion;
using NetDsl.Generator.Graph;
using NetDsl.Generator.Memory;
using NetDsl.Generator.Model;
using Xunit;
using static NetDsl.Generator.Tests.SpecBuilder;

namespace NetDsl.Generator.Tests;

/// <summary>Shapes, autodiff, fusion and memory planning, tested on specs built by hand (no Roslyn).</summary>
public class CompilerPhaseTests
{
    private static NetworkGraph Lower(NetworkSpec spec)
    {
        var (graph, diagnostics) = Lowering.Lower(spec);
        Assert.True(graph is not null, string.Join("\n", diagnostics.Select(d => d.Id + ": " + string.Join(" | ", d.Args))));
        return graph!;
    }

    private static int[] OutputShape(NetworkSpec spec)
    {
        var g = Lower(spec);
        return g[g.Output].Shape;
    }

    // ---- shapes -------------------------------------------------------------------------------------------

    [Theory]
    [InlineData(32, 3, 1, 1, 32)]
    [InlineData(32, 3, 2, 1, 16)]
    [InlineData(28, 5, 1, 0, 24)]
    [InlineData(7, 3, 2, 0, 3)]
    [InlineData(5, 5, 1, 2, 5)]
    public void ConvolutionOutputSizeFollowsPyTorch(int size, int kernel, int stride, int padding, int expected)
    {
        var spec = new SpecBuilder().Input("x", 2, size, size).Conv2d("c", 2, 4, kernel, stride, padding).Return(Apply("c", Var("x")));
        Assert.Equal(new[] { 4, expected, expected }, OutputShape(spec));
    }

    [Fact]
    public void PoolingStrideDefaultsToTheKernelAndFloors()
    {
        var spec = new SpecBuilder().Input("x", 3, 7, 7).Return(Op("MaxPool2d", Var("x"), ("kernel", 2)));
        Assert.Equal(new[] { 3, 3, 3 }, OutputShape(spec));
    }

    [Fact]
    public void LinearAppliesToTheLastDimensionOfASequence()
    {
        var spec = new SpecBuilder().Input("x", 5, 8).Linear("fc", 8, 3).Return(Apply("fc", Var("x")));
        Assert.Equal(new[] { 5, 3 }, OutputShape(spec));
    }

    [Fact]
    public void ReshapeInfersMinusOne()
    {
        var spec = new SpecBuilder().Input("x", 48).Return(Op("Reshape", Var("x"), ("shape", 3), ("shape", -1), ("shape", 4)));
        Assert.Equal(new[] { 3, 4, 4 }, OutputShape(spec));
    }

    [Fact]
    public void ConcatAddsAlongItsDimension()
    {
        var spec = new SpecBuilder().Input("x", 2, 4, 4).Conv2d("a", 2, 3, 1).Conv2d("b", 2, 5, 1)
            .Return(Op("Concat", new[] { Array(Apply("a", Var("x")), Apply("b", Var("x"))) }, ("dim", 1)));
        Assert.Equal(new[] { 8, 4, 4 }, OutputShape(spec));
    }

    [Fact]
    public void FeatureMismatchCarriesTheFactorizationAndTrail()
    {
        var spec = new SpecBuilder().Input("x", 4, 6, 6).Linear("fc", 100, 2).Return(Apply("fc", Op("Flatten", Var("x"))));
        var (graph, diagnostics) = Lowering.Lower(spec);
        Assert.Null(graph);
        var d = Assert.Single(diagnostics);
        Assert.Equal("NDSL0101", d.Id);
        Assert.Equal(new[] { "fc", "100 input features", "144 = 4x6x6", "x [B,4,6,6] → flatten [B,144]" }, d.Args.ToArray());
    }

    // ---- autodiff -----------------------------------------------------------------------------------------

    private static Schedule Training(NetworkSpec spec, bool fuse = true)
    {
        var schedule = ScheduleBuilder.Build(Lower(spec), ScheduleMode.Training);
        if (fuse) ElementwiseFusion.Run(schedule);
        return schedule;
    }

    private static IEnumerable<Step> Backward(Schedule s) => s.Steps.Skip(s.ForwardSteps);

    [Fact]
    public void TheInputGetsNoGradient()
    {
        var spec = new SpecBuilder().Input("x", 4).Linear("fc", 4, 2).Return(Apply("fc", Var("x")));
        var s = Training(spec);
        // Backward: the bias reduction and dW only; no dX GEMM (nothing upstream has parameters).
        var gemms = Backward(s).OfType<GemmStep>().ToList();
        var dw = Assert.Single(gemms);
        Assert.True(dw.TransA);
        Assert.Single(Backward(s).OfType<BiasGradStep>());
        Assert.Equal(2, Backward(s).Count());
    }

    [Fact]
    public void ALayerAppliedTwiceAccumulatesItsWeightGradient()
    {
        var spec = new SpecBuilder().Input("x", 4).Linear("fc", 4, 4, bias: false).Let("h", Apply("fc", Var("x"))).Return(Apply("fc", Op("Tanh", Var("h"))));
        var s = Training(spec);
        var weightGrads = Backward(s).OfType<GemmStep>().Where(g => s.Buffers[g.C].Kind == BufferKind.ParamGrad).ToList();
        Assert.Equal(2, weightGrads.Count);
        Assert.False(weightGrads[0].Accumulate);
        Assert.True(weightGrads[1].Accumulate);
    }

    [Fact]
    public void FanOutAccumulatesTheGradientOfTheSharedTensor()
    {
        // h feeds both the relu and the sum: its gradient has two contributions.
        var spec = new SpecBuilder().Input("x", 4).Linear("fc", 4, 4).Let("h", Apply("fc", Var("x"))).Return(Op("Add", new[] { Op("Relu", Var("h")), Var("h") }));
        var s = Training(spec, fuse: false);
        var stores = Backward(s).OfType<ElementwiseStep>().SelectMany(e => e.Program.Where(i => i.Op == EOp.Store).Select(i => (Step: e, i.Buffer))).ToList();
        var grouped = stores.GroupBy(x => x.Buffer).Where(g => s.Buffers[g.Key].Name.StartsWith("d_")).ToList();
        var shared = Assert.Single(grouped, g => g.Count() == 2);
        // The second contribution reads the first: it loads the buffer it stores.
        Assert.Contains(shared.Last().Step.Program, i => i.Op == EOp.Load && i.Buffer == shared.Key);
    }

    [Fact]
    public void PassThroughGradientsShareBuffersInsteadOfCopying()
    {
        // a + b with single-consumer operands: both receive d(output) itself; biases pass it through too.
        var spec = new SpecBuilder().Input("x", 4).Linear("a", 4, 3).Linear("b", 4, 3).Return(Op("Add", new[] { Apply("a", Var("x")), Apply("b", Var("x")) }));
        var s = Training(spec);
        Assert.Empty(Backward(s).OfType<ElementwiseStep>());
        Assert.All(Backward(s).OfType<BiasGradStep>(), b => Assert.Equal(BufferKind.OutputGrad, s.Buffers[b.In].Kind));
    }

    [Fact]
    public void DropoutIsTheIdentityInInference()
    {
        var spec = new SpecBuilder().Input("x", 4).Linear("fc", 4, 4).Return(Op("Dropout", Apply("fc", Var("x")), ("p", 0.5)));
        var inference = ScheduleBuilder.Build(Lower(spec), ScheduleMode.Inference);
        ElementwiseFusion.Run(inference);
        Assert.DoesNotContain(inference.Steps.OfType<ElementwiseStep>().SelectMany(e => e.Program), i => i.Op == EOp.DropoutScale);
        var training = Training(spec);
        Assert.Equal(2, training.Steps.OfType<ElementwiseStep>().SelectMany(e => e.Program).Count(i => i.Op == EOp.DropoutScale)); // forward and backward
    }

    // ---- fusion and memory ------------------------------------------------------------------------------

    private static NetworkSpec Cnn() => new SpecBuilder().Input("x", 1, 28, 28)
        .Conv2d("conv1", 1, 8, 3, padding: 1).Conv2d("conv2", 8, 16, 3, padding: 1).Linear("fc1", 16 * 7 * 7, 32).Linear("fc2", 32, 10)
        .Let("x", Op("MaxPool2d", Op("Relu", Apply("conv1", Var("x"))), ("kernel", 2)))
        .Let("x", Op("MaxPool2d", Op("Relu", Apply("conv2", Var("x"))), ("kernel", 2)))
        .Let("x", Op("Relu", Apply("fc1", Op("Flatten", Var("x")))))
        .Return(Apply("fc2", Var("x")));

    [Fact]
    public void BiasAndActivationFuseIntoOneLoopWithoutAnIntermediateBuffer()
    {
        var s = Training(Cnn());
        var forward = s.Steps.Take(s.ForwardSteps).ToList();
        // conv, bias+relu, pool, conv, bias+relu, pool, gemm, bias+relu, gemm, bias
        Assert.Equal(new[] { "ConvStep", "ElementwiseStep", "PoolStep", "ConvStep", "ElementwiseStep", "PoolStep", "GemmStep", "ElementwiseStep", "GemmStep", "ElementwiseStep" },
            forward.Select(x => x.GetType().Name));
        var fused = (ElementwiseStep)forward[1];
        Assert.Single(fused.Program, i => i.Op == EOp.Store); // only the relu output is written
    }

    private static NetworkSpec OddMlp() => new SpecBuilder().Input("x", 7)
        .Linear("fc1", 7, 13).Linear("fc2", 13, 5).Linear("fc3", 5, 3)
        .Let("x", Op("Tanh", Apply("fc1", Var("x"))))
        .Let("x", Op("Tanh", Apply("fc2", Var("x"))))
        .Return(Apply("fc3", Var("x")));

    [Theory]
    [InlineData("cnn")]
    [InlineData("odd mlp")] // 13, 5 and 3 elements a sample: offsets are padded to 16
    public void MemoryPlanNeverOverlapsLiveBuffersAndBeatsTheSum(string network)
    {
        var s = Training(network == "cnn" ? Cnn() : OddMlp());
        var plan = LivenessPlanner.Plan(s);
        Assert.True(plan.ActivationsPerSample < plan.UnplannedPerSample, $"{plan.ActivationsPerSample} vs {plan.UnplannedPerSample}");

        // Recompute live ranges independently: first and last step touching each buffer.
        var first = new Dictionary<int, int>();
        var last = new Dictionary<int, int>();
        for (int i = 0; i < s.Steps.Count; i++)
            foreach (int b in s.Steps[i].Reads.Concat(s.Steps[i].Writes))
            {
                if (!first.ContainsKey(b)) first[b] = i;
                last[b] = i;
            }
        var planned = s.Buffers.Where(b => b.Kind == BufferKind.Activation && first.ContainsKey(b.Id)).ToList();
        foreach (var a in planned)
            foreach (var b in planned.Where(b => b.Id > a.Id))
            {
                bool memory = a.Offset < b.Offset + b.PerSample && b.Offset < a.Offset + a.PerSample;
                if (!memory) continue;
                // Sharing memory is only legal when one dies at (or before) the step the other is born in,
                // and at the same step only for a pointwise step.
                bool disjoint = last[a.Id] < first[b.Id] || last[b.Id] < first[a.Id];
                bool inPlace = (last[a.Id] == first[b.Id] && s.Steps[first[b.Id]].IsPointwise && s.Steps[first[b.Id]].Writes.Contains(b.Id) && !s.Steps[first[b.Id]].Writes.Contains(a.Id))
                               || (last[b.Id] == first[a.Id] && s.Steps[first[a.Id]].IsPointwise && s.Steps[first[a.Id]].Writes.Contains(a.Id) && !s.Steps[first[a.Id]].Writes.Contains(b.Id));
                Assert.True(disjoint || inPlace, $"{a.Name} [{first[a.Id]},{last[a.Id]}] and {b.Name} [{first[b.Id]},{last[b.Id]}] overlap in memory");
            }
        Assert.All(planned, b => Assert.True(b.Offset + b.PerSample <= plan.ActivationsPerSample));
        // Every buffer starts on a cache line (the arena does): offsets are multiples of 16 elements.
        Assert.All(s.Buffers.Where(b => first.ContainsKey(b.Id) && b.Kind is BufferKind.Activation or BufferKind.Index),
            b => Assert.True(b.Offset % 16 == 0, $"{b.Name} starts at {b.Offset}"));
    }
}

public class EpilogueFusionTests
{
    private static Schedule Compile(NetworkSpec spec) => NetworkCompiler.Compile(Lowering.Lower(spec).Graph!, default).Training;

    [Fact]
    public void MlpTrainingStepHasOneForwardStepPerLayerAndTwoBackward()
    {
        var spec = new SpecBuilder().Input("x", 20).Linear("fc1", 20, 16).Linear("fc2", 16, 8).Linear("fc3", 8, 4)
            .Return(Apply("fc3", Op("Relu", Apply("fc2", Op("Relu", Apply("fc1", Var("x")))))));
        var s = Compile(spec);
        // forward: GEMM + bias + relu per layer; backward: (dW + db) per layer and dX + relu' for all but the first.
        Assert.Equal(3, s.ForwardSteps);
        Assert.Equal(8, s.Steps.Count);
        Assert.All(s.Steps, step => Assert.IsType<GemmStep>(step));
        Assert.Equal(3, s.Steps.OfType<GemmStep>().Count(g => g.BiasGrad >= 0));
        Assert.Equal(5, s.Steps.OfType<GemmStep>().Count(g => g.Epilogue is not null));
    }

    [Fact]
    public void TheRawResultIsKeptOnlyWhenALaterStepReadsIt()
    {
        // Gelu's gradient needs its input. Without a bias that input is the GEMM result itself, which is then
        // stored; with a bias it is the biased value, which the epilogue stores, and the raw result is not.
        var noBias = Compile(new SpecBuilder().Input("x", 4).Linear("a", 4, 4, bias: false).Linear("b", 4, 2)
            .Return(Apply("b", Op("Gelu", Apply("a", Var("x"))))));
        var first = (GemmStep)noBias.Steps[0];
        Assert.NotNull(first.Epilogue);
        Assert.True(first.StoreAccumulator);
        Assert.Single(first.Epilogue!, i => i.Op == EOp.Store);

        var biased = Compile(new SpecBuilder().Input("x", 4).Linear("a", 4, 4).Linear("b", 4, 2)
            .Return(Apply("b", Op("Gelu", Apply("a", Var("x"))))));
        var fused = (GemmStep)biased.Steps[0];
        Assert.False(fused.StoreAccumulator);
        Assert.Equal(2, fused.Epilogue!.Count(i => i.Op == EOp.Store));
    }

    [Fact]
    public void AReluGradientAfterMaxPoolingBecomesAGateOnThePooledOutput()
    {
        static Schedule Cnn(string activation) => Compile(new SpecBuilder().Input("x", 1, 8, 8).Conv2d("conv", 1, 4, 3, padding: 1).Linear("fc", 64, 2)
            .Return(Apply("fc", Op("Flatten", Op("MaxPool2d", Op(activation, Apply("conv", Var("x"))), ("kernel", 2))))));

        var relu = Cnn("Relu");
        var forwardPool = relu.Steps.Take(relu.ForwardSteps).OfType<PoolStep>().Single();
        var backwardPool = relu.Steps.Skip(relu.ForwardSteps).OfType<PoolStep>().Single();
        Assert.Equal(forwardPool.Out, backwardPool.Gate);
        Assert.Contains(backwardPool.Gate, backwardPool.Reads);
        Assert.DoesNotContain(relu.Steps, st => st is ElementwiseStep e && e.Program.Any(i => i.Op == EOp.PositiveMask));
        // The gated gradient is what the convolution's weight gradient reads.
        Assert.Contains(relu.Steps, st => st is ConvStep { Pass: ConvPass.BackwardWeight } c && c.In2 == backwardPool.Out);

        // Tanh's gradient is not a sign mask: it stays a loop of its own, and the pooling step is not gated.
        var tanh = Cnn("Tanh");
        Assert.All(tanh.Steps.OfType<PoolStep>(), p => Assert.Equal(-1, p.Gate));
        Assert.Contains(tanh.Steps, st => st is ElementwiseStep e && e.Program.Any(i => i.Op == EOp.TanhGrad));
    }
}
