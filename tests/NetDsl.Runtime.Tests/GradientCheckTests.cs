using System;
using System.Collections.Generic;
using System.Linq;
using NetDsl.Runtime.Tests.Networks.F64;
using NetDsl.Runtime.Tests.Support;
using Xunit;

namespace NetDsl.Runtime.Tests;

/// <summary>
/// The generated backward pass against central finite differences, in double precision: every parameter's
/// gradient of an MSE loss, for a network around every operation. With h = 1e-6 the central difference is
/// accurate to about 1e-10 here, so the tolerance (1e-6 relative plus 1e-8 absolute) leaves room only for
/// rounding, not for a wrong derivative.
/// </summary>
public class GradientCheckTests
{
    private static readonly Dictionary<string, Func<CompiledNetwork<double>>> Networks = new()
    {
        ["Linear"] = () => new LinearNet(11),
        ["LinearNoBiasSequence"] = () => new LinearNoBiasSequenceNet(11),
        ["Conv2d stride 2 padding 1"] = () => new ConvNet(11),
        ["Conv2d chain"] = () => new ConvChainNet(11),
        ["MaxPool2d"] = () => new MaxPoolNet(11),
        ["MaxPool2d overlapping, padded"] = () => new MaxPoolOverlapNet(11),
        ["AvgPool2d"] = () => new AvgPoolNet(11),
        ["Reshape and Flatten"] = () => new ReshapeNet(11),
        ["Relu"] = () => new ReluNet(11),
        ["LeakyRelu"] = () => new LeakyReluNet(11),
        ["Sigmoid"] = () => new SigmoidNet(11),
        ["Tanh"] = () => new TanhNet(11),
        ["Gelu"] = () => new GeluNet(11),
        ["Softmax"] = () => new SoftmaxNet(11),
        ["LogSoftmax"] = () => new LogSoftmaxNet(11),
        ["Softmax over channels"] = () => new ChannelSoftmaxNet(11),
        ["Dropout"] = () => new DropoutNet(11),
        ["Dropout between layers"] = () => new DropoutDeepNet(11),
        ["Add (residual, fan-out)"] = () => new ResidualNet(11),
        ["Multiply"] = () => new MultiplyNet(11),
        ["Concat features"] = () => new ConcatNet(11),
        ["Concat channels"] = () => new ChannelConcatNet(11),
        ["Shared weights"] = () => new SharedWeightsNet(11),
        ["Mlp"] = () => new Mlp(11),
        ["BatchNorm2d"] = () => new BatchNorm2dNet(11),
        ["BatchNorm1d"] = () => new BatchNorm1dNet(11),
        ["BatchNorm1d over a sequence, no affine"] = () => new BatchNorm1dSequenceNet(11),
        ["LayerNorm"] = () => new LayerNormNet(11),
        ["LayerNorm over a sequence"] = () => new LayerNormSequenceNet(11),
        ["Embedding"] = () => new EmbeddingNet(11),
        ["ConvTranspose2d stride 2, output padding"] = () => new ConvTransposeNet(11),
        ["ConvTranspose2d after Conv2d, no bias"] = () => new ConvTransposeChainNet(11),
        ["Upsample"] = () => new UpsampleNet(11),
        ["Slice, Select, Subtract"] = () => new SliceSelectSubtractNet(11),
        ["RNN"] = () => new RnnNet(11),
        ["GRU"] = () => new GruNet(11),
        ["LSTM"] = () => new LstmNet(11),
        ["LSTM all states, no bias"] = () => new LstmAllStatesNet(11),
    };

    /// <summary>Inputs for a network: token ids for embeddings, uniform values otherwise.</summary>
    internal static T[] InputsFor<T>(NetworkDescription d, int batch, int seed) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
        => d.Parameters.Count > 0 && d.Parameters[0].Name == "embed.weight"
            ? Numerics.Labels(batch * d.InputSize, d.Parameters[0].Shape[0], seed).Select(l => T.CreateTruncating(l)).ToArray()
            : Numerics.Uniform<T>(batch * d.InputSize, seed: seed);

    public static TheoryData<string> Names() => new(Networks.Keys);

    [Theory]
    [MemberData(nameof(Names))]
    public void ParameterGradientsMatchCentralDifferences(string name)
    {
        var net = Networks[name]();
        const int batch = 3;
        var d = net.Description;
        using var trainer = net.CreateTrainer(new Sgd(lr: 0), Loss.MeanSquaredError, batch, seed: 5);
        var x = InputsFor<double>(d, batch, seed: 21);
        var t = Numerics.Uniform<double>(batch * d.OutputSize, seed: 22);

        trainer.ComputeGradients(x, t);
        var analytic = trainer.Gradients.ToArray();
        var p = net.ParameterData;
        const double h = 1e-6;
        for (int i = 0; i < p.Length; i++)
        {
            double saved = p[i];
            p[i] = saved + h;
            double plus = trainer.ComputeGradients(x, t);
            p[i] = saved - h;
            double minus = trainer.ComputeGradients(x, t);
            p[i] = saved;
            double numeric = (plus - minus) / (2 * h);
            double tolerance = 1e-8 + 1e-6 * Math.Max(Math.Abs(numeric), Math.Abs(analytic[i]));
            Assert.True(Math.Abs(numeric - analytic[i]) <= tolerance,
                $"{name}: d loss / d {NameOf(d, i)} is {analytic[i]:G10} by backprop but {numeric:G10} by central differences.");
        }
    }

    private static string NameOf(NetworkDescription d, int index)
    {
        foreach (var p in d.Parameters)
            if (index >= p.Offset && index < p.Offset + p.Length) return $"{p.Name}[{index - p.Offset}]";
        return $"parameter {index}";
    }

    public static TheoryData<string> Losses() => new() { "CrossEntropy", "MeanSquaredError", "BinaryCrossEntropyWithLogits" };

    [Theory]
    [MemberData(nameof(Losses))]
    public void LossGradientsMatchCentralDifferences(string name)
    {
        const int batch = 4, size = 5;
        var loss = name switch { "CrossEntropy" => Loss.CrossEntropy, "MeanSquaredError" => Loss.MeanSquaredError, _ => Loss.BinaryCrossEntropyWithLogits };
        var z = Numerics.Uniform<double>(batch * size, seed: 3, lo: -3, hi: 3);
        var labels = Numerics.Labels(batch, size, seed: 4);
        var targets = Numerics.Uniform<double>(batch * size, seed: 5, lo: 0, hi: 1);
        var grad = new double[z.Length];
        var scratch = new double[z.Length];
        double Eval(double[] values, double[] g) => loss.TakesClassLabels
            ? loss.Evaluate<double>(values, labels, g, batch, size)
            : loss.Evaluate<double>(values, targets, g, batch, size);
        Eval(z, grad);
        const double h = 1e-6;
        for (int i = 0; i < z.Length; i++)
        {
            double saved = z[i];
            z[i] = saved + h;
            double plus = Eval(z, scratch);
            z[i] = saved - h;
            double minus = Eval(z, scratch);
            z[i] = saved;
            double numeric = (plus - minus) / (2 * h);
            Assert.True(Math.Abs(numeric - grad[i]) <= 1e-8 + 1e-6 * Math.Abs(numeric), $"{name}: d/dz[{i}] is {grad[i]:G10} analytically, {numeric:G10} numerically.");
        }
    }
}
