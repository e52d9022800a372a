using System.Linq;
using System.Text.RegularExpressions;
using NetDsl.Generator.Graph;
using Xunit;
using static NetDsl.Generator.Tests.SpecBuilder;

namespace NetDsl.Generator.Tests;

/// <summary>
/// The CPU emitter runs a convolution block as one call where the unpooled tensor is read by nothing else: conv +
/// bias + ReLU + max pooling forward, and the gated pooling gradient with the first convolution's weight and bias
/// gradients backward; anything else keeps its steps.
/// </summary>
public class ConvBlockEmitTests
{
    private static string Generate(string forward, string precision = "Float32", string conv1 = "new(1, 4, kernel: 3, padding: 1)")
    {
        var result = Harness.Run($$"""
            using NetDsl;

            [Network(Precision = Precision.{{precision}})]
            public partial class Net
            {
                readonly Conv2d conv1 = {{conv1}};
                readonly Conv2d conv2 = new(4, 8, kernel: 3, padding: 1);
                readonly Linear fc = new(8 * 2 * 2, 3);

                Tensor Forward([Shape(1, 8, 8)] Tensor x)
                {
            {{forward}}
                }
            }
            """);
        Assert.Empty(result.Errors);
        return result.Generated.Single(g => g.Key.Contains("Net")).Value;
    }

    private static int Count(string code, string call) => Regex.Matches(code, Regex.Escape("Convolution." + call + "(")).Count;

    [Fact]
    public void ConvReluPoolBlocksBecomeOneCallEach()
    {
        var code = Generate("""
                    x = MaxPool2d(Relu(conv1.Apply(x)), 2);
                    x = MaxPool2d(Relu(conv2.Apply(x)), 2);
                    return fc.Apply(Flatten(x));
            """);
        // Two blocks in the training forward and two in inference; the first block's gradients in one call.
        Assert.Equal(4, Count(code, "ForwardReluMaxPool"));
        Assert.Equal(1, Count(code, "BackwardWeightThroughMaxPool"));
        Assert.DoesNotContain("Pooling.MaxForward(", code);
        // The second block's input needs a gradient, which reads the pooled gradient: its steps stay.
        Assert.Equal(1, Count(code, "BackwardWeight"));
        Assert.Equal(1, Count(code, "BackwardData"));
        Assert.Contains("Pooling.MaxBackward(", code);
    }

    [Fact]
    public void ABlockWhosePooledOutputReusesItsInputsMemoryKeepsItsSteps()
    {
        // Inference: conv2's input (conv1's ReLU) dies at conv2, so the memory plan may give the pooled output its
        // place; the fused block would then overwrite later samples' input. Training keeps that input for conv2's
        // weight gradient, so there the block fuses.
        var code = Generate("""
                    x = MaxPool2d(Relu(conv2.Apply(Relu(conv1.Apply(x)))), 2);
                    x = MaxPool2d(x, 2);
                    return fc.Apply(Flatten(x));
            """);
        var inference = code.Substring(code.IndexOf("void ForwardInference(", System.StringComparison.Ordinal));
        Assert.Equal(1, Count(code, "ForwardReluMaxPool"));
        Assert.Equal(0, Count(inference, "ForwardReluMaxPool"));

        // And that is because the plan overlaps them there (the same network through the compiler's phases).
        var spec = new SpecBuilder().Input("x", 1, 8, 8).Conv2d("conv1", 1, 4, 3, padding: 1).Conv2d("conv2", 4, 8, 3, padding: 1).Linear("fc", 32, 3)
            .Return(Apply("fc", Op("Flatten", Op("MaxPool2d", Op("MaxPool2d", Op("Relu", Apply("conv2", Op("Relu", Apply("conv1", Var("x"))))), ("kernel", 2)), ("kernel", 2)))));
        var schedule = NetworkCompiler.Compile(Lowering.Lower(spec).Graph!, default).Inference;
        var conv2 = schedule.Steps.OfType<ConvStep>().Last();
        var pool = (PoolStep)schedule.Steps[schedule.Steps.IndexOf(conv2) + 1];
        var (input, pooled) = (schedule.Buffers[conv2.In], schedule.Buffers[pool.Out]);
        Assert.True(input.Offset < pooled.Offset + pooled.PerSample && pooled.Offset < input.Offset + input.PerSample,
            $"conv2's input [{input.Offset}, +{input.PerSample}) and the pooled output [{pooled.Offset}, +{pooled.PerSample})");
    }

    [Theory]
    [InlineData("x = MaxPool2d(Tanh(conv1.Apply(x)), 2);", "Float32", "new(1, 4, kernel: 3, padding: 1)", 0, 2)] // not a ReLU
    [InlineData("x = MaxPool2d(Relu(conv1.Apply(x)), 2);", "Float64", "new(1, 4, kernel: 3, padding: 1)", 0, 0)] // float only
    // r read again; the second block fuses in training only: in inference its pooled output takes the place of its
    // input, which dies at the convolution (see the test above).
    [InlineData("var r = Relu(conv1.Apply(x)); x = MaxPool2d(r, 2) + MaxPool2d(r * r, 2);", "Float32", "new(1, 4, kernel: 3, padding: 1)", 0, 1)]
    // Without a bias the forward block is not bias + ReLU, but the backward one (pooling gradient and weight gradient) is.
    [InlineData("x = MaxPool2d(Relu(conv1.Apply(x)), 2);", "Float32", "new(1, 4, kernel: 3, padding: 1, bias: false)", 1, 2)]
    public void OtherFirstBlocksKeepTheirSteps(string first, string precision, string conv1, int backwardBlocks, int secondBlocks)
    {
        var code = Generate(first + "\n        x = MaxPool2d(Relu(conv2.Apply(x)), 2);\n        return fc.Apply(Flatten(x));", precision, conv1);
        Assert.Equal(backwardBlocks, Count(code, "BackwardWeightThroughMaxPool"));
        if (backwardBlocks > 0) Assert.Contains("default, biasAccumulate: false);", code);
        Assert.Contains("Convolution.Forward(new global::NetDsl.Runtime.Cpu.Window2d(1, 8, 8, 4, 8, 8, 3, 1, 1)", code);
        // The second block (training and inference).
        Assert.Equal(secondBlocks, Count(code, "ForwardReluMaxPool"));
    }
}
