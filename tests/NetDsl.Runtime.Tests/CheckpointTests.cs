using System;
using System.IO;
using System.Linq;
using NetDsl.Runtime.Checkpoints;
using NetDsl.Runtime.Tests.Networks;
using NetDsl.Runtime.Tests.Support;
using TorchSharp;
using TorchSharp.PyBridge;
using Xunit;
using static TorchSharp.torch;

namespace NetDsl.Runtime.Tests;

/// <summary>
/// Checkpoints: weights and running statistics move both ways between NetDsl and PyTorch (TorchSharp modules
/// loading and saving safetensors by state_dict name); resuming reproduces uninterrupted training bit for bit;
/// a file that does not fit is refused with the tensor named, and nothing changes.
/// </summary>
public sealed class CheckpointTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("netdsl-ckpt-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static float[] Inputs(CompiledNetwork<float> net, int batch, int seed) => GradientCheckTests.InputsFor<float>(net.Description, batch, seed);

    private static void Train(CompiledNetwork<float> net, Trainer<float> trainer, int steps, int from = 0)
    {
        for (int s = from; s < from + steps; s++)
            trainer.Step(Inputs(net, 8, seed: s), Numerics.Labels(8, net.Description.OutputSize, seed: 100 + s));
    }

    [Theory]
    [InlineData("BatchNorm2dNet")]
    [InlineData("LstmNet")]
    [InlineData("EmbeddingNet")]
    public void PyTorchLoadsNetDslCheckpointsAndPredictsTheSame(string name)
    {
        using var scope = NewDisposeScope();
        var (ours, theirs) = ModuleParityTests.Cases[name];
        var net = ours();
        using (var trainer = net.CreateTrainer(new Adam(lr: 0.01), Loss.CrossEntropy, 8)) Train(net, trainer, 3);
        string path = Path.Combine(_dir, name + ".safetensors");
        Checkpoint.Save(path, net);

        var module = theirs();
        module.load_safetensors(path, strict: true);
        module.eval();
        var x = Inputs(net, 5, seed: 42);
        var expected = new float[5 * net.Description.OutputSize];
        net.Predict(x, expected);
        using (no_grad())
            Numerics.AssertClose<float>(TorchReference.Data(module.call(TorchReference.Input(x, 5, net.Description.InputShape))), expected, 1e-5, "PyTorch's output from NetDsl's checkpoint");
        if (name == "BatchNorm2dNet")
            Assert.Equal(3L, module.named_buffers().Single(b => b.name == "bn.num_batches_tracked").buffer.item<long>());
    }

    [Fact]
    public void NetDslLoadsPyTorchCheckpointsWithRunningStatistics()
    {
        using var scope = NewDisposeScope();
        var (ours, theirs) = ModuleParityTests.Cases["BatchNorm2dNet"];
        var module = theirs();
        module.train();
        using (no_grad())
            for (int s = 0; s < 2; s++) module.call(TorchReference.Input(Numerics.Uniform<float>(8 * 32, seed: s), 8, new[] { 2, 4, 4 }));
        string path = Path.Combine(_dir, "from-pytorch.safetensors");
        module.save_safetensors(path);

        var net = ours();
        Checkpoint.Load(path, net);
        Assert.Equal(2f, net.State("bn.num_batches_tracked")[0]);
        module.eval();
        var x = Numerics.Uniform<float>(5 * 32, seed: 9);
        var ourOutput = new float[5 * 4];
        net.Predict(x, ourOutput);
        using (no_grad())
            Numerics.AssertClose<float>(TorchReference.Data(module.call(TorchReference.Input(x, 5, new[] { 2, 4, 4 }))), ourOutput, 1e-5, "NetDsl's output from PyTorch's checkpoint");
    }

    [Fact]
    public void ResumingReproducesUninterruptedTrainingExactly()
    {
        var straight = new BatchNorm1dNet(5);
        using (var t = straight.CreateTrainer(new Adam(lr: 0.01), Loss.CrossEntropy, 8, seed: 3)) Train(straight, t, 6);

        string path = Path.Combine(_dir, "resume.safetensors");
        var first = new BatchNorm1dNet(5);
        using (var t = first.CreateTrainer(new Adam(lr: 0.01), Loss.CrossEntropy, 8, seed: 3))
        {
            Train(first, t, 3);
            Checkpoint.Save(path, first, t, epoch: 1);
        }
        var resumed = new BatchNorm1dNet(99);
        using (var t = resumed.CreateTrainer(new Adam(lr: 0.01), Loss.CrossEntropy, 8, seed: 3))
        {
            var info = Checkpoint.Load(path, resumed, t);
            Assert.Equal(1, info.Epoch);
            Assert.Equal(3, info.Step);
            Train(resumed, t, 3, from: 3);
        }
        Assert.Equal(straight.ParameterData.ToArray(), resumed.ParameterData.ToArray());
        Assert.Equal(straight.StateData.ToArray(), resumed.StateData.ToArray());
    }

    [Fact]
    public void AMismatchedCheckpointIsRefusedNamingTheTensorAndChangesNothing()
    {
        string path = Path.Combine(_dir, "other.safetensors");
        Checkpoint.Save(path, new LinearNet(1));
        var net = new ReluNet(2);
        var before = net.ParameterData.ToArray();
        var e = Assert.Throws<InvalidDataException>(() => Checkpoint.Load(path, net));
        Assert.Contains("'fc1.weight'", e.Message);
        Assert.Equal(before, net.ParameterData.ToArray());

        // Same names, other shape.
        string shaped = Path.Combine(_dir, "shape.safetensors");
        SafeTensors.Write(shaped, new[]
        {
            SafeTensors.FromFloats("fc.weight", new long[] { 4, 6 }, new float[24]),
            SafeTensors.FromFloats("fc.bias", new long[] { 4 }, new float[4]),
        });
        var linear = new LinearNet(1);
        e = Assert.Throws<InvalidDataException>(() => Checkpoint.Load(shaped, linear));
        Assert.Contains("'fc.weight' has shape [4, 6]; expected [4, 5]", e.Message);

        // A missing running statistic.
        string noStats = Path.Combine(_dir, "nostats.safetensors");
        var bn = new BatchNorm1dNet(1);
        SafeTensors.Write(noStats, bn.Description.Parameters.Select(p => SafeTensors.FromFloats(p.Name, p.Shape.Select(v => (long)v).ToArray(), bn.Parameter(p.Name))).ToList());
        e = Assert.Throws<InvalidDataException>(() => Checkpoint.Load(noStats, bn));
        Assert.Contains("'bn.running_mean'", e.Message);
    }

    [Fact]
    public void CorruptDataIsDetectedByTheChecksum()
    {
        string path = Path.Combine(_dir, "corrupt.safetensors");
        var net = new LinearNet(1);
        Checkpoint.Save(path, net);
        var bytes = File.ReadAllBytes(path);
        bytes[^3] ^= 0x40; // a bit of the last tensor's data
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<InvalidDataException>(() => Checkpoint.Load(path, new LinearNet(2)));
        Assert.Contains("checksum", e.Message);
    }
}
