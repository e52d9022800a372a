using System.Linq;
using System.Text.RegularExpressions;
using Xunit;

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

    [Theory]
    [InlineData("x = MaxPool2d(Tanh(conv1.Apply(x)), 2);", "Float32", "new(1, 4, kernel: 3, padding: 1)", 0)] // not a ReLU
    [InlineData("x = MaxPool2d(Relu(conv1.Apply(x)), 2);", "Float64", "new(1, 4, kernel: 3, padding: 1)", 0)] // float only
    [InlineData("var r = Relu(conv1.Apply(x)); x = MaxPool2d(r, 2) + MaxPool2d(r * r, 2);", "Float32", "new(1, 4, kernel: 3, padding: 1)", 0)] // r read again
    // Without a bias the forward block is not bias + ReLU, but the backward one (pooling gradient and weight gradient) is.
    [InlineData("x = MaxPool2d(Relu(conv1.Apply(x)), 2);", "Float32", "new(1, 4, kernel: 3, padding: 1, bias: false)", 1)]
    public void OtherFirstBlocksKeepTheirSteps(string first, string precision, string conv1, int backwardBlocks)
    {
        var code = Generate(first + "\n        x = MaxPool2d(Relu(conv2.Apply(x)), 2);\n        return fc.Apply(Flatten(x));", precision, conv1);
        Assert.Equal(backwardBlocks, Count(code, "BackwardWeightThroughMaxPool"));
        if (backwardBlocks > 0) Assert.Contains("default, biasAccumulate: false);", code);
        Assert.Contains("Convolution.Forward(new global::NetDsl.Runtime.Cpu.Window2d(1, 8, 8, 4, 8, 8, 3, 1, 1)", code);
        // The second block is fused in float wherever the first is not.
        Assert.Equal(precision == "Float32" ? 2 : 0, Count(code, "ForwardReluMaxPool"));
    }
}
