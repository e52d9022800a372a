using System;
using System.Linq;
using System.Threading.Tasks;
using NetDsl.Runtime.Tests.Support;
using Xunit;

namespace NetDsl.Runtime.Tests;

/// <summary>
/// <see cref="InferenceSession{T}"/>: a frozen copy whose Linear weights are packed once. Its outputs must equal the
/// network's own <c>Predict</c> bit for bit, whatever the batch (dot products, the direct path, packed panels split
/// by rows or columns), and nothing done to the network afterwards may reach it.
/// </summary>
public class InferenceSessionTests
{
    private static void AssertSameBits(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i]),
                $"{what}: output {i} is {actual[i]:R}, the network's Predict gives {expected[i]:R}");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(64)]
    [InlineData(256)]
    [InlineData(300)]
    public void MlpSessionPredictsAsTheNetworkBitForBit(int batch)
    {
        var net = new SessionMlp(3);
        var session = net.CreateInferenceSession();
        var x = Numerics.Uniform<float>(batch * 784, batch);
        var expected = new float[batch * 10];
        net.Predict(x, expected);
        var actual = new float[batch * 10];
        session.Predict(x, actual);
        AssertSameBits(expected, actual, $"batch {batch}");
        session.Predict(x, actual); // the packed weights reused
        AssertSameBits(expected, actual, $"batch {batch}, again");
        // From 64 rows on the first layers take the packed path, and their weights are packed once.
        if (batch >= 64) Assert.True(session.PackedWeights >= 2, $"{session.PackedWeights} weight matrices packed");
        if (batch == 1) Assert.Equal(0, session.PackedWeights); // dot products read the weights where they are
    }

    [Theory]
    [InlineData(1)]
    [InlineData(40)]
    public void CnnSessionPredictsAsTheNetworkBitForBit(int batch)
    {
        var net = new SessionCnn(5);
        var session = net.CreateInferenceSession();
        var x = Numerics.Uniform<float>(batch * 28 * 28, batch);
        var expected = new float[batch * 10];
        net.Predict(x, expected);
        var actual = new float[batch * 10];
        session.Predict(x, actual);
        AssertSameBits(expected, actual, $"batch {batch}");
    }

    [Fact]
    public void TheSessionKeepsTheParametersItWasCreatedWith()
    {
        var net = new SessionMlp(3);
        var x = Numerics.Uniform<float>(128 * 784, 1);
        var session = net.CreateInferenceSession();
        var before = new float[128 * 10];
        session.Predict(x, before);

        // Training-like changes to the network: every weight scaled, then a re-initialization.
        foreach (ref float p in net.ParameterData) p *= 0.5f;
        var changed = new float[128 * 10];
        net.Predict(x, changed);
        Assert.NotEqual(before, changed);
        var after = new float[128 * 10];
        session.Predict(x, after);
        AssertSameBits(before, after, "the session after the network's weights changed");

        // A new session sees the network as it is now.
        var fresh = new float[128 * 10];
        net.CreateInferenceSession().Predict(x, fresh);
        AssertSameBits(changed, fresh, "a session created after the change");
    }

    [Fact]
    public void TheSessionKeepsTheRunningStatisticsItWasCreatedWith()
    {
        var net = new Networks.BatchNorm2dNet(1);
        var x = Numerics.Uniform<float>(16 * 32, 1);
        var labels = Numerics.Labels(16, 4, 2);
        using var trainer = net.CreateTrainer(new Sgd(0.1), Loss.CrossEntropy, 16);
        for (int i = 0; i < 3; i++) trainer.Step(x, labels);
        var session = net.CreateInferenceSession();
        var expected = new float[16 * 4];
        net.Predict(x, expected);
        var actual = new float[16 * 4];
        session.Predict(x, actual);
        AssertSameBits(expected, actual, "after three steps");

        // More training moves the parameters and the running statistics of the network, not of the session.
        var stats = net.State("bn.running_mean").ToArray();
        for (int i = 0; i < 3; i++) trainer.Step(x, labels);
        Assert.NotEqual(stats, net.State("bn.running_mean").ToArray());
        session.Predict(x, actual);
        AssertSameBits(expected, actual, "after three more steps of the network");
    }

    [Fact]
    public void SessionPredictAllocatesNothingOnceWarm()
    {
        var session = new SessionMlp(3).CreateInferenceSession();
        var x = Numerics.Uniform<float>(256 * 784, 1);
        var y = new float[256 * 10];
        for (int i = 0; i < 3; i++) session.Predict(x, y);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 20; i++) session.Predict(x, y);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public void ConcurrentCallsGiveTheSequentialResults()
    {
        var net = new SessionMlp(4);
        var session = net.CreateInferenceSession();
        var inputs = Enumerable.Range(0, 8).Select(i => Numerics.Uniform<float>(96 * 784, 10 + i)).ToArray();
        var expected = inputs.Select(x => { var y = new float[96 * 10]; net.Predict(x, y); return y; }).ToArray();
        var actual = inputs.Select(_ => new float[96 * 10]).ToArray();
        Parallel.For(0, inputs.Length, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
        {
            for (int r = 0; r < 3; r++) session.Predict(inputs[i], actual[i]);
        });
        for (int i = 0; i < inputs.Length; i++) AssertSameBits(expected[i], actual[i], $"input {i}");
    }

    [Fact]
    public void DoubleSessionsPredictAsTheNetwork()
    {
        var net = new Networks.F64.ReluNet(2);
        var session = net.CreateInferenceSession();
        var x = Numerics.Uniform<double>(30 * 5, 1);
        var expected = new double[30 * 4];
        net.Predict(x, expected);
        var actual = new double[30 * 4];
        session.Predict(x, actual);
        Assert.Equal(expected, actual);
        Assert.Equal(0, session.PackedWeights);
    }

    [Fact]
    public void BadArgumentsAreRefusedAsByPredict()
    {
        var session = new SessionMlp(1).CreateInferenceSession();
        var error = Assert.Throws<ArgumentException>(() => session.Predict(new float[2 * 784], new float[19]));
        Assert.Contains("a batch of 2 needs 20", error.Message);
        Assert.Equal(784, session.Description.InputSize);
    }
}

/// <summary>W-mlp's shape: its first two layers take the packed GEMM path from 64 rows on.</summary>
[Network]
public partial class SessionMlp
{
    readonly Linear fc1 = new(784, 256);
    readonly Linear fc2 = new(256, 128);
    readonly Linear fc3 = new(128, 10);
    Tensor Forward([Shape(784)] Tensor x) => fc3.Apply(Relu(fc2.Apply(Relu(fc1.Apply(x)))));
}

/// <summary>A small CNN: convolutions (weights as the A operand), then Linear layers (weights as B).</summary>
[Network]
public partial class SessionCnn
{
    readonly Conv2d conv = new(1, 8, kernel: 3, padding: 1);
    readonly Linear fc1 = new(8 * 14 * 14, 64);
    readonly Linear fc2 = new(64, 10);
    Tensor Forward([Shape(1, 28, 28)] Tensor x) => fc2.Apply(Relu(fc1.Apply(Flatten(MaxPool2d(Relu(conv.Apply(x)), 2)))));
}
