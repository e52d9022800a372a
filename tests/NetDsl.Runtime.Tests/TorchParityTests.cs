using System;
using System.Collections.Generic;
using System.Linq;
using NetDsl.Runtime.Tests.Networks;
using NetDsl.Runtime.Tests.Support;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace NetDsl.Runtime.Tests;

using Tensor = TorchSharp.torch.Tensor;

/// <summary>
/// Parity with PyTorch (LibTorch 2.10 via TorchSharp-cpu 0.107.0): with the same weights and inputs, the same
/// outputs, loss, gradients, and parameters after 3 optimizer steps, within 1e-4 relative (see
/// <see cref="Numerics.AssertClose{T}"/>), for every op, loss and optimizer, the MLP and the corrected CNN.
/// </summary>
public class TorchParityTests
{
    private const double Tolerance = 1e-4;

    private static readonly Dictionary<string, Func<CompiledNetwork<float>>> Networks = new()
    {
        ["LinearNet"] = () => new LinearNet(3),
        ["LinearNoBiasSequenceNet"] = () => new LinearNoBiasSequenceNet(3),
        ["ConvNet"] = () => new ConvNet(3),
        ["ConvChainNet"] = () => new ConvChainNet(3),
        ["MaxPoolNet"] = () => new MaxPoolNet(3),
        ["MaxPoolOverlapNet"] = () => new MaxPoolOverlapNet(3),
        ["AvgPoolNet"] = () => new AvgPoolNet(3),
        ["ReshapeNet"] = () => new ReshapeNet(3),
        ["ReluNet"] = () => new ReluNet(3),
        ["LeakyReluNet"] = () => new LeakyReluNet(3),
        ["SigmoidNet"] = () => new SigmoidNet(3),
        ["TanhNet"] = () => new TanhNet(3),
        ["GeluNet"] = () => new GeluNet(3),
        ["SoftmaxNet"] = () => new SoftmaxNet(3),
        ["LogSoftmaxNet"] = () => new LogSoftmaxNet(3),
        ["ChannelSoftmaxNet"] = () => new ChannelSoftmaxNet(3),
        ["ResidualNet"] = () => new ResidualNet(3),
        ["MultiplyNet"] = () => new MultiplyNet(3),
        ["ConcatNet"] = () => new ConcatNet(3),
        ["ChannelConcatNet"] = () => new ChannelConcatNet(3),
        ["SharedWeightsNet"] = () => new SharedWeightsNet(3),
        ["Mlp"] = () => new Mlp(3),
        ["SeedCnn"] = () => new SeedCnn(3),
    };

    public static TheoryData<string> NetworkNames() => new(Networks.Keys);

    /// <summary>Cross-entropy on each network, SGD with momentum for the 3 steps.</summary>
    [Theory]
    [MemberData(nameof(NetworkNames))]
    public void OperationsMatchPyTorch(string name)
        => Run(Networks[name](), TorchReference.Networks[name], "CrossEntropy", "SgdMomentum", batch: name == "SeedCnn" ? 4 : 6);

    public static TheoryData<string> LossNames() => new() { "CrossEntropy", "MeanSquaredError", "BinaryCrossEntropyWithLogits" };

    [Theory]
    [MemberData(nameof(LossNames))]
    public void LossesMatchPyTorch(string loss) => Run(new Mlp(4), TorchReference.Networks["Mlp"], loss, "Sgd", batch: 8);

    public static TheoryData<string> OptimizerNames() => new() { "Sgd", "SgdMomentum", "SgdNesterov", "SgdWeightDecay", "Adam", "AdamWeightDecay", "AdamW" };

    [Theory]
    [MemberData(nameof(OptimizerNames))]
    public void OptimizersMatchPyTorch(string optimizer) => Run(new Mlp(5), TorchReference.Networks["Mlp"], "CrossEntropy", optimizer, batch: 8);

    private static (Optimizer Ours, Func<IEnumerable<TorchSharp.Modules.Parameter>, optim.Optimizer> Theirs) Optimizers(string name) => name switch
    {
        "Sgd" => (new Sgd(lr: 0.1), p => optim.SGD(p, 0.1)),
        "SgdMomentum" => (new Sgd(lr: 0.05, momentum: 0.9), p => optim.SGD(p, 0.05, momentum: 0.9)),
        "SgdNesterov" => (new Sgd(lr: 0.05, momentum: 0.9, nesterov: true), p => optim.SGD(p, 0.05, momentum: 0.9, nesterov: true)),
        "SgdWeightDecay" => (new Sgd(lr: 0.05, momentum: 0.5, dampening: 0.1, weightDecay: 0.01), p => optim.SGD(p, 0.05, momentum: 0.5, dampening: 0.1, weight_decay: 0.01)),
        "Adam" => (new Adam(lr: 1e-3), p => optim.Adam(p, 1e-3)),
        "AdamWeightDecay" => (new Adam(lr: 2e-3, beta1: 0.8, beta2: 0.99, eps: 1e-7, weightDecay: 0.05), p => optim.Adam(p, 2e-3, beta1: 0.8, beta2: 0.99, eps: 1e-7, weight_decay: 0.05)),
        "AdamW" => (new AdamW(lr: 1e-3, weightDecay: 0.1), p => optim.AdamW(p, 1e-3, weight_decay: 0.1)),
        _ => throw new ArgumentException(name),
    };

    private static void Run(CompiledNetwork<float> net, TorchReference.Forward forward, string lossName, string optimizerName, int batch)
    {
        using var scope = NewDisposeScope();
        var d = net.Description;
        var x = Numerics.Uniform<float>(batch * d.InputSize, seed: 100);
        var labels = Numerics.Labels(batch, d.OutputSize, seed: 101);
        var targets = Numerics.Uniform<float>(batch * d.OutputSize, seed: 102, lo: lossName == "MeanSquaredError" ? -1 : 0, hi: 1);
        var loss = lossName switch { "CrossEntropy" => Loss.CrossEntropy, "MeanSquaredError" => Loss.MeanSquaredError, _ => Loss.BinaryCrossEntropyWithLogits };
        var (ours, theirs) = Optimizers(optimizerName);

        var parameters = TorchReference.Parameters(net);
        var p = TorchReference.AsTensors(parameters);
        var xt = TorchReference.Input(x, batch, d.InputShape);
        var optimizer = theirs(parameters.Values);
        using var trainer = net.CreateTrainer(ours, loss, batch);

        Tensor TorchLoss()
        {
            var y = forward(xt, p);
            return lossName switch
            {
                "CrossEntropy" => F.cross_entropy(y, tensor(labels.Select(l => (long)l).ToArray())),
                "MeanSquaredError" => F.mse_loss(y, tensor(targets, new long[] { batch, d.OutputSize })),
                _ => F.binary_cross_entropy_with_logits(y, tensor(targets, new long[] { batch, d.OutputSize })),
            };
        }
        float OurStep(bool update) => loss.TakesClassLabels
            ? (update ? trainer.Step(x, labels) : trainer.ComputeGradients(x, labels))
            : (update ? trainer.Step(x, targets) : trainer.ComputeGradients(x, targets));

        // Forward, loss and gradients.
        float ourLoss = OurStep(update: false);
        var theirOutput = forward(xt, p);
        Numerics.AssertClose<float>(TorchReference.Data(theirOutput), trainer.Outputs, Tolerance, "output");
        var theirLoss = TorchLoss();
        theirLoss.backward();
        Numerics.AssertClose<float>(new[] { theirLoss.item<float>() }, new[] { ourLoss }, Tolerance, "loss");
        foreach (var info in d.Parameters)
            Numerics.AssertClose<float>(TorchReference.Data(parameters[info.Name].grad!), trainer.Gradients.Slice(info.Offset, info.Length), Tolerance, "gradient of " + info.Name);

        // Three optimizer steps on the same batch.
        trainer.ApplyUpdate();
        optimizer.step();
        for (int step = 2; step <= 3; step++)
        {
            OurStep(update: true);
            optimizer.zero_grad();
            TorchLoss().backward();
            optimizer.step();
        }
        foreach (var info in d.Parameters)
            Numerics.AssertClose<float>(TorchReference.Data(parameters[info.Name]), net.Parameter(info.Name), Tolerance, $"{info.Name} after 3 {optimizerName} steps");
    }

    [Fact]
    public void DropoutMatchesPyTorchGivenTheSameMask()
    {
        using var scope = NewDisposeScope();
        const int batch = 200;
        const float rate = 0.4f;
        var net = new DropoutNet(7);
        var x = Numerics.Uniform<float>(batch * 6, seed: 1);
        var targets = Numerics.Uniform<float>(batch * 5, seed: 2);
        using var trainer = net.CreateTrainer(new Sgd(lr: 0.1), Loss.MeanSquaredError, batch);
        trainer.ComputeGradients(x, targets);
        var ours = trainer.Outputs.ToArray();

        var parameters = TorchReference.Parameters(net);
        var pre = F.linear(TorchReference.Input(x, batch, new[] { 6 }), parameters["fc.weight"], parameters["fc.bias"]);
        // The mask NetDsl drew: kept elements are scaled by 1/(1-p), dropped ones are zero.
        var mask = ours.Select(v => v != 0 ? 1f / (1 - rate) : 0f).ToArray();
        double kept = mask.Count(m => m != 0) / (double)mask.Length;
        Assert.InRange(kept, 0.6 - 0.05, 0.6 + 0.05);
        var y = pre * tensor(mask, new long[] { batch, 5 });
        Numerics.AssertClose<float>(TorchReference.Data(y), ours, Tolerance, "dropout output");
        var l = F.mse_loss(y, tensor(targets, new long[] { batch, 5 }));
        l.backward();
        Numerics.AssertClose<float>(TorchReference.Data(parameters["fc.weight"].grad!), trainer.Gradients.Slice(0, 30), Tolerance, "fc.weight gradient through dropout");

        // In inference dropout is the identity.
        var predicted = new float[batch * 5];
        net.Predict(x, predicted);
        Numerics.AssertClose<float>(TorchReference.Data(pre), predicted, Tolerance, "inference output");
    }

    [Theory]
    [InlineData("Mlp")]
    [InlineData("SeedCnn")]
    public void PredictMatchesPyTorchAtBatchOneAndMany(string name)
    {
        using var scope = NewDisposeScope();
        var net = Networks[name]();
        var d = net.Description;
        const int batch = 5;
        var x = Numerics.Uniform<float>(batch * d.InputSize, seed: 9);
        var all = new float[batch * d.OutputSize];
        net.Predict(x, all);
        var expected = TorchReference.Data(TorchReference.Networks[name](TorchReference.Input(x, batch, d.InputShape), TorchReference.AsTensors(TorchReference.Parameters(net))));
        Numerics.AssertClose<float>(expected, all, Tolerance, "batch output");
        for (int b = 0; b < batch; b++)
        {
            var one = new float[d.OutputSize];
            net.Predict(x.AsSpan(b * d.InputSize, d.InputSize), one);
            Numerics.AssertClose<float>(expected.AsSpan(b * d.OutputSize, d.OutputSize), one, Tolerance, $"sample {b} alone");
        }
    }
}
