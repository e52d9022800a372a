using System.Linq;
using Xunit;

namespace NetDsl.Generator.Tests;

/// <summary>The data-parallel bucket plan as generated code: the signals in backward, the summary, the cap.</summary>
public class BucketPlanTests
{
    private const string Network = """
        using NetDsl;
        namespace App;
        [Network(GradientBucketBytes = CAP)]
        public partial class Mlp
        {
            readonly Linear fc1 = new(100, 64);
            readonly Linear fc2 = new(64, 32);
            readonly Linear fc3 = new(32, 10);
            Tensor Forward([Shape(100)] Tensor x) => fc3.Apply(Relu(fc2.Apply(Relu(fc1.Apply(x)))));
        }
        """;

    private static string Generate(int cap)
    {
        var result = Harness.Run(Network.Replace("CAP", cap.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        Assert.Empty(result.Errors);
        return result.Generated.Values.Single();
    }

    [Fact]
    public void EachBucketIsSignalledRightAfterTheStepThatFinishesItsLastGradient()
    {
        string code = Generate(1 << 20);
        // One bucket under 1 MiB (27 KB of gradients), signalled after the step that writes fc1's weight gradient.
        string backward = code[code.IndexOf("protected override void Backward", System.StringComparison.Ordinal)..code.IndexOf("protected override void ForwardInference", System.StringComparison.Ordinal)];
        int signal = backward.IndexOf("workspace.GradientBucketReady(0);", System.StringComparison.Ordinal);
        Assert.True(signal > backward.LastIndexOf("gradients.Slice(Layout.fc1_weight", System.StringComparison.Ordinal), "signalled before fc1.weight's gradient is written");
        Assert.Single(System.Text.RegularExpressions.Regex.Matches(backward, @"GradientBucketReady\("));
        Assert.Contains("gradient buckets:        1 of at most 1,048,576 bytes", code);
        Assert.Contains("new(0, 8874, ", code); // the whole gradient buffer, 8,874 floats
    }

    [Fact]
    public void ASmallerCapSplitsThePlanAndStartsTheFirstAllreduceEarlier()
    {
        string code = Generate(4096);
        // fc3 (330 floats) and fc2's bias fit in 4 KB; fc2.weight (8 KB) is alone; fc1.bias is ready with
        // fc1.weight but together they would exceed the cap, so the bias goes first and the weight (25.6 KB) alone.
        Assert.Contains("gradient buckets:        4 of at most 4,096 bytes", code);
        Assert.Contains("#2 after step 8: 256 bytes at element 6,400 (fc1.bias)", code);
        Assert.Contains("\"fc3.bias\", \"fc3.weight\", \"fc2.bias\"", code);
        var signals = System.Text.RegularExpressions.Regex.Matches(code, @"GradientBucketReady\((\d+)\)").Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).ToList();
        Assert.Equal(new[] { 0, 1, 2, 3 }, signals);
    }

    [Fact]
    public void ANonPositiveCapIsNdsl0010()
    {
        var result = Harness.Run(Network.Replace("CAP", "0"));
        var d = Assert.Single(result.Ndsl);
        Assert.Equal("NDSL0010", d.Id);
        Assert.Contains("Network GradientBucketBytes is 0; expected a positive number of bytes", d.GetMessage(System.Globalization.CultureInfo.InvariantCulture));
    }
}
