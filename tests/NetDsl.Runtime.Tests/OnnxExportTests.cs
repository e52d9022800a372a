using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using NetDsl.Runtime.Export;
using NetDsl.Runtime.Tests.Networks;
using NetDsl.Runtime.Tests.Support;
using Xunit;

namespace NetDsl.Runtime.Tests;

/// <summary>
/// ONNX export: each network is trained for two steps (so batch normalization has running statistics), exported,
/// and run by ONNX Runtime 1.31 on a batch of 5; its outputs must equal NetDsl's <c>Predict</c> within 1e-5
/// (absolute, plus 1e-5 relative to the output's scale).
/// </summary>
public class OnnxExportTests
{
    private static readonly Dictionary<string, Func<CompiledNetwork<float>>> Networks = new()
    {
        ["LinearNet"] = () => new LinearNet(3),
        ["LinearNoBiasSequenceNet"] = () => new LinearNoBiasSequenceNet(3),
        ["ConvNet"] = () => new ConvNet(3),
        ["MaxPoolOverlapNet"] = () => new MaxPoolOverlapNet(3),
        ["AvgPoolNet"] = () => new AvgPoolNet(3),
        ["ReshapeNet"] = () => new ReshapeNet(3),
        ["LeakyReluNet"] = () => new LeakyReluNet(3),
        ["SigmoidNet"] = () => new SigmoidNet(3),
        ["GeluNet"] = () => new GeluNet(3),
        ["SoftmaxNet"] = () => new SoftmaxNet(3),
        ["LogSoftmaxNet"] = () => new LogSoftmaxNet(3),
        ["ChannelSoftmaxNet"] = () => new ChannelSoftmaxNet(3),
        ["DropoutDeepNet"] = () => new DropoutDeepNet(3),
        ["ResidualNet"] = () => new ResidualNet(3),
        ["MultiplyNet"] = () => new MultiplyNet(3),
        ["ChannelConcatNet"] = () => new ChannelConcatNet(3),
        ["SharedWeightsNet"] = () => new SharedWeightsNet(3),
        ["SeedCnn"] = () => new SeedCnn(3),
        ["BatchNorm2dNet"] = () => new BatchNorm2dNet(3),
        ["BatchNorm1dNet"] = () => new BatchNorm1dNet(3),
        ["BatchNorm1dSequenceNet"] = () => new BatchNorm1dSequenceNet(3),
        ["LayerNormNet"] = () => new LayerNormNet(3),
        ["LayerNormSequenceNet"] = () => new LayerNormSequenceNet(3),
        ["EmbeddingNet"] = () => new EmbeddingNet(3),
        ["ConvTransposeNet"] = () => new ConvTransposeNet(3),
        ["ConvTransposeChainNet"] = () => new ConvTransposeChainNet(3),
        ["UpsampleNet"] = () => new UpsampleNet(3),
        ["SliceSelectSubtractNet"] = () => new SliceSelectSubtractNet(3),
        ["RnnNet"] = () => new RnnNet(3),
        ["GruNet"] = () => new GruNet(3),
        ["LstmNet"] = () => new LstmNet(3),
        ["LstmAllStatesNet"] = () => new LstmAllStatesNet(3),
    };

    public static TheoryData<string> Names() => new(Networks.Keys);

    [Theory]
    [MemberData(nameof(Names))]
    public void OnnxRuntimeReproducesPredict(string name)
    {
        var net = Networks[name]();
        var d = net.Description;
        const int batch = 5;
        var x = GradientCheckTests.InputsFor<float>(d, batch, seed: 7);
        using (var trainer = net.CreateTrainer(new Adam(lr: 0.01), Loss.CrossEntropy, batch))
            for (int i = 0; i < 2; i++) trainer.Step(x, Numerics.Labels(batch, d.OutputSize, seed: i));
        var expected = new float[batch * d.OutputSize];
        net.Predict(x, expected);

        string path = Path.Combine(Path.GetTempPath(), $"netdsl-{name}-{Guid.NewGuid():N}.onnx");
        try
        {
            Onnx.Save(path, net);
            using var session = new InferenceSession(path);
            Assert.Equal("input", session.InputMetadata.Keys.Single());
            Assert.Equal("output", session.OutputMetadata.Keys.Single());
            var input = new DenseTensor<float>(x, new[] { batch }.Concat(d.InputShape).ToArray());
            using var results = session.Run(new[] { NamedOnnxValue.CreateFromTensor("input", input) });
            var actual = results.Single().AsEnumerable<float>().ToArray();
            Assert.Equal(expected.Length, actual.Length);
            double scale = expected.Max(v => Math.Abs(v));
            for (int i = 0; i < expected.Length; i++)
                Assert.True(Math.Abs(actual[i] - expected[i]) <= 1e-5 + 1e-5 * scale,
                    $"{name}: output {i} is {actual[i]} in ONNX Runtime but {expected[i]} in NetDsl.");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void TheModelNamesItsParametersLikeTheStateDict()
    {
        var net = new SeedCnn(1);
        byte[] model = Onnx.Build(net);
        string text = System.Text.Encoding.UTF8.GetString(model);
        foreach (var p in net.Description.Parameters) Assert.Contains(p.Name, text, StringComparison.Ordinal);
        using var session = new InferenceSession(model);
        Assert.Equal(new[] { -1, 3, 32, 32 }, session.InputMetadata["input"].Dimensions);
        Assert.Equal(new[] { -1, 10 }, session.OutputMetadata["output"].Dimensions);
    }
}
