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
/// Parity with PyTorch's own modules (nn.BatchNorm1d/2d, nn.LayerNorm, nn.Embedding, nn.ConvTranspose2d,
/// nn.Upsample, nn.RNN/GRU/LSTM with batch_first) through TorchSharp: NetDsl's state_dict (parameters and
/// running statistics) is loaded into the module by name, then both train 3 steps of SGD with momentum on
/// the same batch. Outputs, loss and every gradient of the first step, the parameters and running statistics
/// after 3 steps, and the inference output must agree within 1e-4 relative (<see cref="Numerics.AssertClose{T}"/>).
/// </summary>
public class ModuleParityTests
{
    private const double Tolerance = 1e-4;

    /// <summary>A PyTorch network made of named submodules and a forward function over them.</summary>
    internal sealed class TorchNet : nn.Module<Tensor, Tensor>
    {
        private readonly Func<Func<string, nn.Module>, Tensor, Tensor> _forward;

        public TorchNet(Func<Func<string, nn.Module>, Tensor, Tensor> forward, params (string Name, nn.Module Module)[] modules) : base("TorchNet")
        {
            _forward = forward;
            foreach (var (name, module) in modules) register_module(name, module);
        }

        public override Tensor forward(Tensor x) => _forward(name => named_children().First(c => c.name == name).module, x);
    }

    private static Tensor Call(nn.Module m, Tensor x) => ((nn.Module<Tensor, Tensor>)m).call(x);

    private static Tensor Linear(Func<string, nn.Module> m, string name, Tensor x) => Call(m(name), x);

    internal static readonly Dictionary<string, (Func<CompiledNetwork<float>> Ours, Func<TorchNet> Theirs)> Cases = new()
    {
        ["BatchNorm2dNet"] = (() => new BatchNorm2dNet(3), () => new TorchNet(
            (m, x) => Linear(m, "fc", F.relu(Call(m("bn"), Call(m("conv"), x))).flatten(1)),
            ("conv", nn.Conv2d(2, 3, 3, padding: 1)), ("bn", nn.BatchNorm2d(3)), ("fc", nn.Linear(48, 4)))),
        ["BatchNorm1dNet"] = (() => new BatchNorm1dNet(3), () => new TorchNet(
            (m, x) => Linear(m, "fc2", tanh(Call(m("bn"), Call(m("fc1"), x)))),
            ("fc1", nn.Linear(5, 6)), ("bn", nn.BatchNorm1d(6, momentum: 0.2)), ("fc2", nn.Linear(6, 4)))),
        ["BatchNorm1dSequenceNet"] = (() => new BatchNorm1dSequenceNet(3), () => new TorchNet(
            (m, x) => Linear(m, "fc", Call(m("bn"), x).flatten(1)),
            ("bn", nn.BatchNorm1d(3, affine: false)), ("fc", nn.Linear(12, 4)))),
        ["LayerNormNet"] = (() => new LayerNormNet(3), () => new TorchNet(
            (m, x) => Linear(m, "fc2", F.gelu(Call(m("norm"), Call(m("fc1"), x)))),
            ("fc1", nn.Linear(5, 6)), ("norm", nn.LayerNorm(6)), ("fc2", nn.Linear(6, 4)))),
        ["LayerNormSequenceNet"] = (() => new LayerNormSequenceNet(3), () => new TorchNet(
            (m, x) => Linear(m, "fc2", Call(m("norm"), Call(m("fc1"), x)).flatten(1)),
            ("fc1", nn.Linear(4, 5)), ("norm", nn.LayerNorm(5, eps: 1e-3)), ("fc2", nn.Linear(15, 3)))),
        ["EmbeddingNet"] = (() => new EmbeddingNet(3), () => new TorchNet(
            (m, x) => Linear(m, "fc", Call(m("embed"), x.to_type(ScalarType.Int64)).flatten(1)),
            ("embed", nn.Embedding(10, 3)), ("fc", nn.Linear(12, 4)))),
        ["ConvTransposeNet"] = (() => new ConvTransposeNet(3), () => new TorchNet(
            (m, x) => Linear(m, "fc", tanh(Call(m("up"), x)).flatten(1)),
            ("up", nn.ConvTranspose2d(2, 3, 3, stride: 2, padding: 1, output_padding: 1)), ("fc", nn.Linear(108, 4)))),
        ["ConvTransposeChainNet"] = (() => new ConvTransposeChainNet(3), () => new TorchNet(
            (m, x) => Linear(m, "fc", Call(m("up"), F.relu(Call(m("conv"), x))).flatten(1)),
            ("conv", nn.Conv2d(2, 3, 1)), ("up", nn.ConvTranspose2d(3, 2, 2, stride: 2, bias: false)), ("fc", nn.Linear(72, 3)))),
        ["UpsampleNet"] = (() => new UpsampleNet(3), () => new TorchNet(
            (m, x) => Linear(m, "fc", Call(m("conv2"), Call(m("up"), Call(m("conv1"), x))).flatten(1)),
            ("conv1", nn.Conv2d(2, 2, 1)), ("up", nn.Upsample(scale_factor: new[] { 2.0, 2.0 }, mode: UpsampleMode.Nearest)), ("conv2", nn.Conv2d(2, 1, 3, padding: 1)), ("fc", nn.Linear(36, 3)))),
        ["SliceSelectSubtractNet"] = (() => new SliceSelectSubtractNet(3), () => new TorchNet(
            (m, x) =>
            {
                var h = Call(m("seq"), x);
                var d = tanh(h.select(1, -1)).narrow(1, 1, 3) - h.select(1, 0).narrow(1, 3, 3);
                return Call(m("fc2"), d);
            },
            ("fc2", nn.Linear(3, 4)), ("seq", nn.Linear(4, 6)))),
        ["RnnNet"] = (() => new RnnNet(3), () => new TorchNet(
            (m, x) => Linear(m, "fc", ((TorchSharp.Modules.RNN)m("rnn")).call(x, null).Item1.select(1, -1)),
            ("rnn", nn.RNN(3, 5, batchFirst: true)), ("fc", nn.Linear(5, 3)))),
        ["GruNet"] = (() => new GruNet(3), () => new TorchNet(
            (m, x) => Linear(m, "fc", ((TorchSharp.Modules.GRU)m("gru")).call(x, null).Item1.select(1, -1)),
            ("gru", nn.GRU(3, 4, batchFirst: true)), ("fc", nn.Linear(4, 3)))),
        ["LstmNet"] = (() => new LstmNet(3), () => new TorchNet(
            (m, x) => Linear(m, "fc", ((TorchSharp.Modules.LSTM)m("lstm")).call(x, null).Item1.select(1, -1)),
            ("lstm", nn.LSTM(3, 4, batchFirst: true)), ("fc", nn.Linear(4, 3)))),
        ["LstmAllStatesNet"] = (() => new LstmAllStatesNet(3), () => new TorchNet(
            (m, x) => Linear(m, "fc", ((TorchSharp.Modules.LSTM)m("lstm")).call(x, null).Item1.flatten(1)),
            ("lstm", nn.LSTM(2, 3, bias: false, batchFirst: true)), ("fc", nn.Linear(9, 3)))),
    };

    public static TheoryData<string> Names() => new(Cases.Keys);

    [Theory]
    [MemberData(nameof(Names))]
    public void TrainsAndPredictsLikeThePyTorchModule(string name)
    {
        using var scope = NewDisposeScope();
        var net = Cases[name].Ours();
        var module = Cases[name].Theirs();
        var d = net.Description;
        const int batch = 6;
        var x = GradientCheckTests.InputsFor<float>(d, batch, seed: 100);
        var labels = Numerics.Labels(batch, d.OutputSize, seed: 101);
        var xt = TorchReference.Input(x, batch, d.InputShape);
        var target = tensor(labels.Select(l => (long)l).ToArray());

        // NetDsl's state_dict into the module: every parameter and buffer must exist there with the same shape.
        var parameters = module.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var buffers = module.named_buffers().ToDictionary(b => b.name, b => b.buffer);
        Assert.Equal(d.Parameters.Select(p => p.Name).OrderBy(n => n, StringComparer.Ordinal), parameters.Keys.OrderBy(n => n, StringComparer.Ordinal));
        Assert.Equal(d.States.Select(s => s.Name).OrderBy(n => n, StringComparer.Ordinal), buffers.Keys.OrderBy(n => n, StringComparer.Ordinal));
        using (no_grad())
        {
            foreach (var info in d.Parameters)
            {
                Assert.Equal(info.Shape.Select(v => (long)v), parameters[info.Name].shape);
                parameters[info.Name].copy_(tensor(net.Parameter(info.Name).ToArray(), parameters[info.Name].shape));
            }
            foreach (var info in d.States)
                buffers[info.Name].copy_(tensor(net.State(info.Name).ToArray(), buffers[info.Name].shape).to_type(buffers[info.Name].dtype));
        }

        var optimizer = optim.SGD(module.parameters(), 0.05, momentum: 0.9);
        using var trainer = net.CreateTrainer(new Sgd(lr: 0.05, momentum: 0.9), Loss.CrossEntropy, batch);
        module.train();

        float ourLoss = trainer.ComputeGradients(x, labels);
        var output = module.call(xt);
        Numerics.AssertClose<float>(TorchReference.Data(output), trainer.Outputs, Tolerance, "output");
        var loss = F.cross_entropy(output, target);
        loss.backward();
        Numerics.AssertClose<float>(new[] { loss.item<float>() }, new[] { ourLoss }, Tolerance, "loss");
        foreach (var info in d.Parameters)
        {
            var expected = TorchReference.Data(parameters[info.Name].grad!);
            var actual = trainer.Gradients.Slice(info.Offset, info.Length);
            if (expected.Max(Math.Abs) < 1e-6f)
            {
                // A bias right before batch normalization has no effect, so its gradient is zero up to rounding on both sides.
                Assert.True(actual.ToArray().Max(Math.Abs) < 1e-6f, $"gradient of {info.Name} should be zero up to rounding, as PyTorch's is");
                continue;
            }
            Numerics.AssertClose<float>(expected, actual, Tolerance, "gradient of " + info.Name);
        }

        trainer.ApplyUpdate();
        optimizer.step();
        for (int step = 2; step <= 3; step++)
        {
            trainer.Step(x, labels);
            optimizer.zero_grad();
            F.cross_entropy(module.call(xt), target).backward();
            optimizer.step();
        }
        foreach (var info in d.Parameters)
            Numerics.AssertClose<float>(TorchReference.Data(parameters[info.Name]), net.Parameter(info.Name), Tolerance, $"{info.Name} after 3 steps");
        foreach (var info in d.States)
            Numerics.AssertClose<float>(TorchReference.Data(buffers[info.Name].to_type(ScalarType.Float32)), net.State(info.Name), Tolerance, $"{info.Name} after 3 steps");

        // Inference: the running statistics, as module.eval().
        module.eval();
        var predicted = new float[batch * d.OutputSize];
        net.Predict(x, predicted);
        using (no_grad())
            Numerics.AssertClose<float>(TorchReference.Data(module.call(xt)), predicted, Tolerance, "inference output");
    }
}
