using System;
using System.Linq;
using NetDsl.Runtime.Tests.Networks;
using NetDsl.Runtime.Tests.Support;
using Xunit;

namespace NetDsl.Runtime.Tests;

/// <summary>The batch is a runtime value up to a capacity; initialization follows PyTorch; bad calls say what was expected.</summary>
public class TrainerTests
{
    /// <summary>
    /// Parameters, state, activations and gradients start on a cache line: 512-bit loads from a plain managed
    /// array (16 bytes past its header) straddle two lines, which halved the speed of streaming a batch-1 layer's
    /// weights. Checked over many allocations of different sizes, since an array not aligned on purpose still
    /// lands on a boundary now and then.
    /// </summary>
    [Fact]
    public unsafe void BuffersStartOnA64ByteBoundary()
    {
        static long Misaligned<TElement>(Span<TElement> span) where TElement : unmanaged
        {
            fixed (TElement* p = span) return (long)p % 64;
        }
        for (int i = 0; i < 16; i++)
        {
            var net = new BatchNorm2dNet(i);
            _ = new byte[8 * i + 8]; // shift the next allocation
            var ws = new Workspace<float>(net.Description.TrainingPlan, 3 + i, net.Description.ParameterBufferLength);
            Assert.Equal(0, Misaligned(net.ParameterData));
            Assert.Equal(0, Misaligned(net.StateData));
            Assert.Equal(0, Misaligned(ws.Activations));
            Assert.Equal(0, Misaligned(ws.Gradients));
            Assert.Equal(net.Description.ParameterBufferLength, net.ParameterData.Length);
            Assert.Equal(net.Description.ParameterBufferLength, ws.Gradients.Length);
        }
    }

    /// <summary>
    /// Every parameter tensor starts on a cache line within the buffer (a multiple of 16 elements), so a weight
    /// matrix after an odd-sized bias is still read with aligned loads; the gaps between tensors are zero after
    /// initialization and stay zero through training with momentum, weight decay and Adam, and the counts keep
    /// PyTorch's meaning. (Mlp: fc2.bias has 8 elements, so fc3.weight would start half a line off.)
    /// </summary>
    [Fact]
    public void ParameterTensorsStartOnCacheLinesAndTheGapsStayZero()
    {
        foreach (Optimizer optimizer in new Optimizer[] { new Sgd(lr: 0.1, momentum: 0.9, weightDecay: 0.01), new Adam(lr: 1e-2, weightDecay: 0.01), new AdamW(lr: 1e-2) })
        {
            var net = new Mlp(3);
            var d = net.Description;
            Assert.All(d.Parameters, p => Assert.True(p.Offset % 16 == 0, $"{p.Name} starts at {p.Offset}"));
            Assert.Equal(20 * 16 + 16 + 16 * 8 + 8 + 8 * 4 + 4, d.ParameterCount);
            Assert.Equal(Mlp.ParameterCount, d.ParameterCount);
            var tensors = d.Parameters.OrderBy(p => p.Offset).ToList();
            Assert.True(tensors.Zip(tensors.Skip(1), (a, b) => b.Offset - (a.Offset + a.Length)).Any(gap => gap > 0), "the test network has no gap");
            Assert.Equal(tensors[^1].Offset + tensors[^1].Length, d.ParameterBufferLength);
            var inGap = Enumerable.Range(0, d.ParameterBufferLength).Where(i => !d.Parameters.Any(p => i >= p.Offset && i < p.Offset + p.Length)).ToList();
            Assert.NotEmpty(inGap);
            Assert.All(inGap, i => Assert.Equal(0f, net.ParameterData[i]));

            using var trainer = net.CreateTrainer(optimizer, Loss.CrossEntropy, batchSize: 32);
            var x = Numerics.Uniform<float>(32 * 20, seed: 7);
            var labels = Numerics.Labels(32, 4, seed: 8);
            for (int step = 0; step < 5; step++) trainer.Step(x, labels);
            Assert.All(inGap, i => Assert.Equal(0f, net.ParameterData[i]));
            Assert.All(inGap, i => Assert.Equal(0f, trainer.Gradients[i]));
            Assert.Contains(net.ParameterData.ToArray(), v => v != 0);

            // A state made for the parameter count (shorter than the buffer) refuses the buffer instead of writing
            // past its own arrays.
            var tooShort = optimizer.CreateState<float>(d.ParameterCount);
            var grads = new float[d.ParameterBufferLength];
            var error = Assert.Throws<ArgumentException>(() => tooShort.Step(net.ParameterData, grads));
            Assert.Contains($"{d.ParameterCount} elements", error.Message);
            Assert.Contains("ParameterBufferLength", error.Message);
        }
    }

    [Fact]
    public void AShortLastBatchEqualsTheSameSamplesAlone()
    {
        var a = new Mlp(1);
        var b = new Mlp(1);
        var x = Numerics.Uniform<float>(10 * 20, seed: 3);
        var labels = Numerics.Labels(10, 4, seed: 4);
        using var big = a.CreateTrainer(new Sgd(lr: 0.1), Loss.CrossEntropy, batchSize: 64);
        using var exact = b.CreateTrainer(new Sgd(lr: 0.1), Loss.CrossEntropy, batchSize: 10);
        float la = big.Step(x, labels);
        float lb = exact.Step(x, labels);
        Assert.Equal(lb, la);
        Assert.True(a.ParameterData.SequenceEqual(b.ParameterData));
    }

    [Fact]
    public void TrainsAtBatch64AndPredictsAtBatch1WithTheSameNetwork()
    {
        var net = new Mlp(2);
        using var trainer = net.CreateTrainer(new Adam(lr: 1e-2), Loss.CrossEntropy, batchSize: 64);
        var x = Numerics.Uniform<float>(64 * 20, seed: 5);
        var labels = Numerics.Labels(64, 4, seed: 6);
        float first = trainer.Step(x, labels);
        float last = first;
        for (int i = 0; i < 100; i++) last = trainer.Step(x, labels);
        Assert.True(last < first * 0.5f, $"loss went from {first} to {last}");
        var one = new float[4];
        net.Predict(x.AsSpan(0, 20), one);
        var rows = new float[64 * 4];
        net.Predict(x, rows);
        // A batch of 1 and a batch of 64 may sum in different orders (different GEMM kernels), so not bitwise.
        Numerics.AssertClose<float>(rows.AsSpan(0, 4), one, 1e-5, "sample 0 alone vs in a batch of 64");
    }

    [Fact]
    public void InitializationFollowsPyTorchDefaultsAndIsSeeded()
    {
        var net = new SeedCnn(42);
        foreach (var p in net.Description.Parameters)
        {
            double fanIn = p.Shape.Length == 1 ? net.Description.Parameters.First(w => w.Name == p.Name.Replace(".bias", ".weight")).Shape.Skip(1).Aggregate(1, (x, y) => x * y)
                                               : p.Shape.Skip(1).Aggregate(1, (x, y) => x * y);
            double bound = 1 / Math.Sqrt(fanIn);
            Assert.Equal(bound, p.Bound, 12);
            var values = net.Parameter(p.Name).ToArray();
            Assert.All(values, v => Assert.InRange(v, -bound, bound));
            if (values.Length >= 10000)
            {
                // U(-b, b) has mean 0 and variance b²/3.
                double mean = values.Average(v => (double)v), variance = values.Average(v => (v - mean) * (v - mean));
                Assert.InRange(mean, -0.02 * bound, 0.02 * bound);
                Assert.InRange(variance, 0.97 * bound * bound / 3, 1.03 * bound * bound / 3);
            }
        }
        Assert.True(new SeedCnn(42).ParameterData.SequenceEqual(net.ParameterData));
        Assert.False(new SeedCnn(43).ParameterData.SequenceEqual(net.ParameterData));
    }

    [Fact]
    public void BadBatchesAreRejectedWithTheExpectedSizes()
    {
        var net = new Mlp(1);
        using var trainer = net.CreateTrainer(new Sgd(lr: 0.1), Loss.CrossEntropy, batchSize: 4);
        var tooBig = new float[5 * 20];
        var ex = Assert.Throws<ArgumentException>(() => trainer.Step(tooBig, new int[5]));
        Assert.Contains("5 samples but this trainer was created for at most 4", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => trainer.Step(new float[21], new int[1]));
        Assert.Contains("expected a positive multiple of 20", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => trainer.Step(new float[40], new int[3]));
        Assert.Contains("3 labels for 2 samples", ex.Message);
        var range = Assert.Throws<ArgumentOutOfRangeException>(() => trainer.Step(new float[40], new[] { 0, 4 }));
        Assert.Contains("expected 0 to 3", range.Message);
        ex = Assert.Throws<ArgumentException>(() => trainer.Step(new float[40], new float[8]));
        Assert.Contains("takes integer class labels", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => net.Predict(new float[40], new float[7]));
        Assert.Contains("a batch of 2 needs 8", ex.Message);
    }

    [Fact]
    public void ADisposedTrainerRefusesWork()
    {
        var net = new Mlp(1);
        var trainer = net.CreateTrainer(new Sgd(lr: 0.1), Loss.CrossEntropy, batchSize: 4);
        trainer.Dispose();
        Assert.Throws<ObjectDisposedException>(() => trainer.Step(new float[20], new int[1]));
    }

    [Fact]
    public void GradientsDoNotLeakBetweenSteps()
    {
        // Every gradient buffer is overwritten by its first contribution, so computing twice gives the same result.
        var net = new SharedWeightsNet(1);
        using var trainer = net.CreateTrainer(new Sgd(lr: 0), Loss.MeanSquaredError, batchSize: 3);
        var x = Numerics.Uniform<float>(12, seed: 1);
        var t = Numerics.Uniform<float>(6, seed: 2);
        trainer.ComputeGradients(x, t);
        var first = trainer.Gradients.ToArray();
        trainer.ComputeGradients(x, t);
        Assert.Equal(first, trainer.Gradients.ToArray());
    }
}
