using System.Linq;
using Microsoft.CodeAnalysis;
using Xunit;

namespace NetDsl.Generator.Tests;

/// <summary>One test per diagnostic id: the id, the exact span (line and column) and the numbers in the message.</summary>
public class DiagnosticTests
{
    private const string Usings = "using NetDsl;\n";

    private static void LineColumn(Diagnostic d, int line, int column)
    {
        var position = d.Location.GetLineSpan().StartLinePosition;
        Assert.Equal((line, column), (position.Line + 1, position.Character + 1));
    }

    [Fact]
    public void NDSL0101_SeedCnnFlattenedSizeIsReportedOnFc1WithItsProvenance()
    {
        var d = Markup.Verify(Usings + """
            [Network]
            public partial class SeedCnn
            {
                readonly Conv2d conv1 = new(3, 32, kernel: 3, padding: 1);
                readonly Conv2d conv2 = new(32, 64, kernel: 3, padding: 1);
                readonly Linear fc1 = new(64 * 6 * 6, 128);
                readonly Linear fc2 = new(128, 10);

                Tensor Forward([Shape(3, 32, 32)] Tensor x)
                {
                    x = MaxPool2d(Relu(conv1.Apply(x)), 2);
                    x = MaxPool2d(Relu(conv2.Apply(x)), 2);
                    x = Relu({|NDSL0101:fc1.Apply(Flatten(x))|});
                    return fc2.Apply(x);
                }
            }
            """).Single();
        LineColumn(d, 14, 18);
        Assert.Equal(
            "fc1 expects 2304 input features but receives 4096 = 64x8x8: x [B,3,32,32] → conv1 [B,32,32,32] → relu → max_pool2d(2) [B,32,16,16] → conv2 [B,64,16,16] → relu → max_pool2d(2) [B,64,8,8] → flatten [B,4096]",
            d.GetMessage());
        // The declaration of fc1 is attached as the related location.
        var related = Assert.Single(d.AdditionalLocations);
        Assert.Equal(7, related.GetLineSpan().StartLinePosition.Line + 1);
        Assert.Equal(DiagnosticSeverity.Error, d.Severity);
    }

    [Fact]
    public void NDSL0101_ConvChannelMismatch()
    {
        var d = Markup.Verify(Usings + """
            [Network]
            public partial class Net
            {
                readonly Conv2d a = new(1, 8, kernel: 3);
                readonly Conv2d b = new(16, 4, kernel: 3);
                Tensor Forward([Shape(1, 10, 10)] Tensor x) => {|NDSL0101:b.Apply(a.Apply(x))|};
            }
            """).Single();
        LineColumn(d, 7, 52);
        Assert.Equal("b expects 16 input channels but receives 8 channels [B,8,8,8]: x [B,1,10,10] → a [B,8,8,8]", d.GetMessage());
    }

    [Fact]
    public void NDSL0102_ElementwiseMismatchNamesBothShapesAndOrigins()
    {
        var d = Markup.Verify(Usings + """
            [Network]
            public partial class Net
            {
                readonly Linear a = new(4, 8);
                readonly Linear b = new(4, 6);
                Tensor Forward([Shape(4)] Tensor x) => a.Apply(x) {|NDSL0102:+|} b.Apply(x);
            }
            """).Single();
        LineColumn(d, 7, 55);
        Assert.Equal("Add needs operands of the same shape but receives [B,8] and [B,6]: the left comes from x [B,4] → a [B,8]; the right from x [B,4] → b [B,6]", d.GetMessage());
    }

    [Fact]
    public void NDSL0103_SpatialSizeBecomesZero()
    {
        var d = Markup.Verify(Usings + """
            [Network]
            public partial class Net
            {
                readonly Conv2d conv = new(1, 4, kernel: 5);
                Tensor Forward([Shape(1, 8, 8)] Tensor x) => {|NDSL0103:MaxPool2d(conv.Apply(x), 8)|};
            }
            """).Single();
        LineColumn(d, 6, 50);
        Assert.Equal("max_pool2d(8) with kernel 8, stride 8 and padding 0 on input [B,4,4,4] gives an output of 0x0; the input is height 4 but must be at least 8: x [B,1,8,8] → conv [B,4,4,4]", d.GetMessage());
    }

    [Fact]
    public void NDSL0104_LinearOnImageSuggestsFlatten()
    {
        var d = Markup.Verify(Usings + """
            [Network]
            public partial class Net
            {
                readonly Conv2d conv = new(1, 4, kernel: 3, padding: 1);
                readonly Linear fc = new(256, 10);
                Tensor Forward([Shape(1, 8, 8)] Tensor x) => {|NDSL0104:fc.Apply(conv.Apply(x))|};
            }
            """).Single();
        LineColumn(d, 7, 50);
        Assert.Equal("fc expects a flat input [B,256] (or a sequence [B,T,256]) but receives [B,4,8,8]; insert Flatten(...) before fc to get [B,256]: x [B,1,8,8] → conv [B,4,8,8]", d.GetMessage());
    }

    [Fact]
    public void NDSL0105_ReshapeElementCount()
    {
        var d = Markup.Verify(Usings + """
            [Network]
            public partial class Net
            {
                readonly Linear fc = new(12, 12);
                Tensor Forward([Shape(12)] Tensor x) => {|NDSL0105:Reshape(fc.Apply(x), 5, 2)|};
            }
            """).Single();
        Assert.Equal("Reshape to [5,2] needs 10 elements per sample but the input [B,12] has 12: x [B,12] → fc", d.GetMessage());
    }

    [Fact]
    public void NDSL0106_ConcatMismatch()
    {
        var d = Markup.Verify(Usings + """
            [Network]
            public partial class Net
            {
                readonly Conv2d a = new(1, 2, kernel: 3);
                readonly Conv2d b = new(1, 2, kernel: 1);
                Tensor Forward([Shape(1, 6, 6)] Tensor x) => {|NDSL0106:Concat([a.Apply(x), b.Apply(x)], dim: 1)|};
            }
            """).Single();
        Assert.Equal("Concat along dim 1 needs equal sizes in every other dimension but receives [B,2,4,4] (from x [B,1,6,6] → a [B,2,4,4]) and [B,2,6,6] (from x [B,1,6,6] → b [B,2,6,6])", d.GetMessage());
    }

    [Fact]
    public void NDSL0107_SoftmaxOverTheBatchIsRejected()
    {
        var d = Markup.Verify(Usings + """
            [Network]
            public partial class Net
            {
                readonly Linear fc = new(3, 3);
                Tensor Forward([Shape(3)] Tensor x) => Softmax(fc.Apply(x), dim: {|NDSL0107:0|});
            }
            """).Single();
        Assert.Equal("Softmax dim 0 is out of range for [B,3]: expected 1 or -1 (dim 0 is the batch)", d.GetMessage());
    }

    [Fact]
    public void NDSL0108_AbsurdSizesGiveADiagnosticNotAnOverflow()
    {
        var ds = Markup.Verify(Usings + """
            [Network]
            public partial class Net
            {
                readonly Linear {|NDSL0108:huge|} = new(1_000_000, 1_000_000);
                Tensor Forward([Shape(1000000)] Tensor x) => huge.Apply(x);
            }
            """);
        Assert.Equal("huge.weight [1000000,1000000] has 1,000,000,000,000 elements, more than the 2,147,483,647 a NetDsl buffer can hold", ds[0].GetMessage());
    }

    [Fact]
    public void NDSL0108_InputShapeWhoseProductOverflowsInt64()
    {
        var d = Markup.Verify(Usings + """
            [Network]
            public partial class Net
            {
                Tensor Forward([Shape(2000000000, 2000000000, 2000000000)] Tensor {|NDSL0108:x|}) => Relu(x);
            }
            """).Single();
        Assert.Contains("more than 9.2e18", d.GetMessage());
    }

    [Fact]
    public void NDSL0001_NotPartial()
    {
        var d = Markup.Verify(Usings + """
            [Network]
            public class {|NDSL0001:Net|}
            {
                Tensor Forward([Shape(3)] Tensor x) => x;
            }
            """).Single();
        LineColumn(d, 3, 14);
        Assert.Equal("'Net' must be declared partial so that NetDsl can generate the rest of it", d.GetMessage());
    }

    [Fact]
    public void NDSL0002_MissingForward()
    {
        var d = Markup.Verify(Usings + """
            [Network]
            public partial class {|NDSL0002:Net|}
            {
            }
            """).Single();
        Assert.Contains("'Net' has no Forward method", d.GetMessage());
    }

    [Fact]
    public void NDSL0003_DuplicateForward()
    {
        Markup.Verify(Usings + """
            [Network]
            public partial class Net
            {
                Tensor Forward([Shape(3)] Tensor x) => Relu(x);
                Tensor {|NDSL0003:Forward|}([Shape(3)] Tensor x, [Shape(3)] Tensor y) => Relu(x);
            }
            """);
    }

    [Fact]
    public void NDSL0004_MissingShape()
    {
        var d = Markup.Verify(Usings + """
            [Network]
            public partial class Net
            {
                Tensor Forward(Tensor {|NDSL0004:x|}) => Relu(x);
            }
            """).Single();
        Assert.Equal("Forward input 'x' has no shape; declare its per-sample shape, e.g. [Shape(3, 32, 32)] Tensor x", d.GetMessage());
    }

    [Fact]
    public void NDSL0005_NonConstantLayerArgument_ConstFieldsAreFine()
    {
        var d = Markup.Verify(Usings + """
            [Network]
            public partial class Net
            {
                const int Hidden = 8;
                static int width = 3;
                readonly Linear a = new({|NDSL0005:width|}, Hidden);
                readonly Linear b = new(Hidden, 2);
                Tensor Forward([Shape(3)] Tensor x) => b.Apply(Relu(a.Apply(x)));
            }
            """).Single();
        LineColumn(d, 7, 29);
        Assert.Equal("Argument 'inFeatures' of a must be a compile-time constant (a literal or a const field), but 'width' is not", d.GetMessage());
    }

    [Fact]
    public void NDSL0005_NonConstantOperationArgument()
    {
        var d = Markup.Verify(Usings + """
            [Network]
            public partial class Net
            {
                static int k = 2;
                Tensor Forward([Shape(1, 4, 4)] Tensor x) => MaxPool2d(x, {|NDSL0005:k|});
            }
            """).Single();
        Assert.Equal("Argument 'kernel' of MaxPool2d must be a compile-time constant (a literal or a const field), but 'k' is not", d.GetMessage());
    }

    [Fact]
    public void NDSL0006_UnsupportedStatement()
    {
        var d = Markup.Verify(Usings + """
            [Network]
            public partial class Net
            {
                Tensor Forward([Shape(3)] Tensor x)
                {
                    {|NDSL0006:for (int i = 0; i < 2; i++) x = Relu(x);|}
                    return x;
                }
            }
            """).Single();
        Assert.Contains("'for (int i = 0; i < 2; i++) x = Relu(x);' is not supported", d.GetMessage());
    }

    [Fact]
    public void NDSL0007_UnsupportedCall()
    {
        var d = Markup.Verify(Usings + """
            [Network]
            public partial class Net
            {
                static Tensor Swish(Tensor t) => t;
                Tensor Forward([Shape(3)] Tensor x) => {|NDSL0007:Swish(x)|};
            }
            """).Single();
        Assert.StartsWith("'Swish' is not a NetDsl tensor operation; the operations are Add, AvgPool2d, Concat", d.GetMessage());
    }

    [Fact]
    public void NDSL0008_UnusedLayerIsAWarning()
    {
        var d = Markup.Verify(Usings + """
            [Network]
            public partial class Net
            {
                readonly Linear used = new(3, 2);
                readonly Linear {|NDSL0008:spare|} = new(3, 2);
                Tensor Forward([Shape(3)] Tensor x) => used.Apply(x);
            }
            """).Single();
        Assert.Equal(DiagnosticSeverity.Warning, d.Severity);
        Assert.Contains("Layer 'spare' is declared but never applied", d.GetMessage());
    }

    [Fact]
    public void NDSL0008_CanBeSuppressedWithPragma()
    {
        var result = Harness.Run(Usings + """
            [Network]
            public partial class Net
            {
                readonly Linear used = new(3, 2);
            #pragma warning disable NDSL0008 // kept for loading old checkpoints
                readonly Linear spare = new(3, 2);
            #pragma warning restore NDSL0008
                Tensor Forward([Shape(3)] Tensor x) => used.Apply(x);
            }
            """);
        Assert.Empty(result.Ndsl);
    }

    [Fact]
    public void NDSL0009_GenericClass()
    {
        var d = Markup.Verify(Usings + """
            [Network]
            public partial class {|NDSL0009:Net|}<T>
            {
                Tensor Forward([Shape(3)] Tensor x) => x;
            }
            """).Single();
        Assert.Contains("generic classes are not supported", d.GetMessage());
    }

    [Fact]
    public void NDSL0009_BaseClass()
    {
        var d = Markup.Verify(Usings + """
            public class Base { }
            [Network]
            public partial class Net : {|NDSL0009:Base|}
            {
                Tensor Forward([Shape(3)] Tensor x) => x;
            }
            """).Single();
        Assert.Contains("it derives from 'Base'", d.GetMessage());
    }

    [Fact]
    public void NDSL0010_InvalidArguments()
    {
        var ds = Markup.Verify(Usings + """
            [Network]
            public partial class Net
            {
                readonly Linear {|NDSL0008:a|} = new({|NDSL0010:0|}, 4);
                readonly Linear b = new(3, 4);
                Tensor Forward([Shape(3)] Tensor x) => Dropout(b.Apply(x), {|NDSL0010:1.5f|});
            }
            """);
        Assert.Contains(ds, d => d.GetMessage() == "a inFeatures is 0; expected a positive number of features");
        Assert.Contains(ds, d => d.GetMessage() == "Dropout p is 1.5; expected a probability in [0, 1)");
    }

    [Fact]
    public void NDSL0011_TwoInputs()
    {
        var d = Markup.Verify(Usings + """
            [Network]
            public partial class Net
            {
                Tensor {|NDSL0011:Forward|}([Shape(3)] Tensor a, [Shape(3)] Tensor b) => a + b;
            }
            """).Single();
        Assert.Equal("Forward of 'Net' takes 2 inputs; it must take exactly one Tensor input (several inputs are not supported yet)", d.GetMessage());
    }

    [Fact]
    public void NDSL0012_LayerWithoutInitializer()
    {
        Markup.Verify(Usings + """
            [Network]
            public partial class Net
            {
                readonly Linear {|NDSL0012:fc|};
                Tensor Forward([Shape(3)] Tensor x) => fc.Apply(x);
            }
            """);
    }

    [Fact]
    public void NDSL0013_UndefinedTensor()
    {
        var d = Markup.Verify(Usings + """
            [Network]
            public partial class Net
            {
                Tensor Forward([Shape(3)] Tensor x)
                {
                    Tensor y;
                    return Relu({|NDSL0013:y|});
                }
            }
            """).Single();
        Assert.StartsWith("'y' is not a tensor defined in Forward", d.GetMessage());
    }

    [Fact]
    public void NDSL0900_AnInternalFailureBecomesADiagnosticNotAnException()
    {
        // A spec no parser would produce (Relu without its argument) makes lowering fail internally.
        var spec = new NetDsl.Generator.Model.NetworkSpec("", "Broken", "public", "float",
            NetDsl.Generator.Model.EquatableArray<NetDsl.Generator.Model.LayerSpec>.Empty,
            new NetDsl.Generator.Model.EquatableArray<NetDsl.Generator.Model.InputSpec>(new[] { new NetDsl.Generator.Model.InputSpec("x", new NetDsl.Generator.Model.EquatableArray<int>(new[] { 3 }), 0) }),
            new NetDsl.Generator.Model.EquatableArray<NetDsl.Generator.Model.StatementSpec>(new[]
            {
                new NetDsl.Generator.Model.StatementSpec(NetDsl.Generator.Model.StatementKind.Return, "",
                    new NetDsl.Generator.Model.ExprSpec(NetDsl.Generator.Model.ExprKind.Op, "Relu", NetDsl.Generator.Model.EquatableArray<NetDsl.Generator.Model.ExprSpec>.Empty, NetDsl.Generator.Model.EquatableArray<NetDsl.Generator.Model.ArgSpec>.Empty, 0), 0),
            }),
            NetDsl.Generator.Model.EquatableArray<NetDsl.Generator.Diagnostics.DiagnosticInfo>.Empty, CanEmit: true);
        var diagnostics = NetworkCompiler.Diagnose(spec, default);
        var d = Assert.Single(diagnostics);
        Assert.Equal("NDSL0900", d.Id);
        var generated = NetworkCompiler.Generate(spec, default);
        Assert.NotNull(generated.InternalError);
        Assert.Contains("has NetDsl errors", generated.Source); // the stand-in, not a crash
    }

    [Fact]
    public void NDSL0109_SelectIndexOutOfRangeNamesTheValidRange()
    {
        var d = Markup.Verify(Usings + """
            [Network]
            public partial class Net
            {
                readonly Lstm lstm = new(28, 16);
                readonly Linear fc = new(16, 10);
                Tensor Forward([Shape(28, 28)] Tensor x) => fc.Apply(Select(lstm.Apply(x), dim: 1, index: {|NDSL0109:28|}));
            }
            """).Single();
        LineColumn(d, 7, 95);
        Assert.Equal("select(dim 1, 28) index 28 is out of range along dim 1 of [B,28,16]: expected an index from 0 to 27 (or -1 to -28); the tensor comes from x [B,28,28] → lstm [B,28,16]", d.GetMessage());
    }

    [Fact]
    public void NDSL0101_BatchNormChannelsMustMatch()
    {
        var d = Markup.Verify(Usings + """
            [Network]
            public partial class Net
            {
                readonly Conv2d conv = new(1, 8, kernel: 3);
                readonly BatchNorm2d bn = new(16);
                readonly Linear fc = new(8 * 8 * 8, 10);
                Tensor Forward([Shape(1, 10, 10)] Tensor x) => fc.Apply(Flatten({|NDSL0101:bn.Apply(conv.Apply(x))|}));
            }
            """).Single();
        Assert.Equal("bn expects 16 channels but receives 8 channels [B,8,8,8]: x [B,1,10,10] → conv [B,8,8,8]", d.GetMessage());
    }

    [Fact]
    public void NDSL0104_RecurrentLayersNeedASequence()
    {
        var d = Markup.Verify(Usings + """
            [Network]
            public partial class Net
            {
                readonly Gru gru = new(784, 32);
                Tensor Forward([Shape(1, 28, 28)] Tensor x) => {|NDSL0104:gru.Apply(x)|};
            }
            """).Single();
        Assert.Equal("gru expects a sequence batch [B,T,784] but receives [B,1,28,28]: x [B,1,28,28]", d.GetMessage());
    }

    [Fact]
    public void NDSL0101_RecurrentInputFeaturesMustMatch()
    {
        var d = Markup.Verify(Usings + """
            [Network]
            public partial class Net
            {
                readonly Rnn rnn = new(32, 8);
                Tensor Forward([Shape(28, 28)] Tensor x) => Select({|NDSL0101:rnn.Apply(x)|}, dim: 1, index: -1);
            }
            """).Single();
        Assert.Equal("rnn expects 32 input features but receives 28 input features [B,28,28]: x [B,28,28]", d.GetMessage());
    }

    [Fact]
    public void NDSL0010_NormalizationAndTransposedConvolutionArgumentsAreChecked()
    {
        var diagnostics = Markup.Verify(Usings + """
            [Network]
            public partial class Net
            {
                readonly BatchNorm2d bn = new(4, {|NDSL0010:momentum: 1.5f|});
                readonly LayerNorm ln = new(4, {|NDSL0010:eps: 0|});
                readonly ConvTranspose2d up = new(4, 2, kernel: 3, stride: 2, {|NDSL0010:outputPadding: 2|});
                Tensor Forward([Shape(4, 5, 5)] Tensor x) => up.Apply(ln.Apply(bn.Apply(x)));
            }
            """);
        Assert.Contains(diagnostics, d => d.GetMessage() == "bn momentum is 1.5; expected a number in [0, 1]");
        Assert.Contains(diagnostics, d => d.GetMessage() == "ln eps is 0; expected a positive number");
        Assert.Contains(diagnostics, d => d.GetMessage() == "up outputPadding is 2; expected less than the stride (2), as PyTorch requires");
    }

    [Fact]
    public void NewLayersCompileCleanly()
    {
        var result = Harness.Run(Usings + """
            [Network]
            public partial class Net
            {
                readonly Embedding embed = new(100, 8);
                readonly Lstm lstm = new(8, 16);
                readonly Gru gru = new(16, 16);
                readonly LayerNorm norm = new(16);
                readonly Linear fc = new(16, 4);
                readonly BatchNorm1d bn = new(4);
                Tensor Forward([Shape(5)] Tensor tokens)
                {
                    var h = norm.Apply(gru.Apply(lstm.Apply(embed.Apply(tokens))));
                    return bn.Apply(fc.Apply(Select(h, dim: 1, index: -1)));
                }
            }
            """);
        Assert.DoesNotContain(result.Diagnostics, d => d.Severity >= DiagnosticSeverity.Warning);
    }
}
