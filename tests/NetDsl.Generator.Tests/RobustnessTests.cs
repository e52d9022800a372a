using System.Linq;
using Xunit;

namespace NetDsl.Generator.Tests;

/// <summary>Half-typed code, as an editor sees it: diagnostics, never a generator or analyzer crash.</summary>
public class RobustnessTests
{
    public static TheoryData<string> Incomplete() => new()
    {
        "[Network] public partial class Net { readonly Linear fc = new(3, ",
        "[Network] public partial class Net { readonly Linear fc = new(3, 2); Tensor Forward([Shape(3)] Tensor x) => fc.Apply(",
        "[Network] public partial class Net { readonly Linear fc = new(3, 2); Tensor Forward([Shape(3)] Tensor x) { x = ; return x; } }",
        "[Network] public partial class Net { readonly Linear fc = new(3, 2); Tensor Forward([Shape(3)] Tensor x) { return MaxPool2d(x, ); } }",
        "[Network] public partial class Net { readonly Linear fc = new(\"3\", 2); Tensor Forward([Shape(3)] Tensor x) => fc.Apply(x); }",
        "[Network] public partial class Net { readonly Conv2d c = new(1, 2, kernel: 0); Tensor Forward([Shape(1, 4, 4)] Tensor x) => c.Apply(x); }",
        "[Network] public partial class Net { Tensor Forward([Shape()] Tensor x) => x; }",
        "[Network] public partial class Net { Tensor Forward([Shape(-1, 0)] Tensor x) => Relu(x); }",
        "[Network] public partial class Net { Tensor Forward([Shape(3)] int x) => x; }",
        "[Network] public partial class Net { Tensor Forward([Shape(3)] Tensor x) => Reshape(x, -1, -1); }",
        "[Network] public partial class Net { Tensor Forward([Shape(3)] Tensor x) => Concat([], dim: 1); }",
        "[Network] public partial class Net { Tensor Forward([Shape(3)] Tensor x) => Softmax(x, dim: 99); }",
        "[Network] public partial class Net { Tensor Forward([Shape(3)] Tensor x) => x.Apply(x); }",
        "[Network] public partial class Net { Tensor Forward([Shape(3)] Tensor x) { var y = Relu(x) }",
        "[Network] public partial class Net : Net { Tensor Forward([Shape(3)] Tensor x) => x; }",
        "[Network] public partial record Net { Tensor Forward([Shape(3)] Tensor x) => x; }",
        "[Network] public static partial class Net { static Tensor Forward([Shape(3)] Tensor x) => x; }",
        "public partial class Outer { [Network] public partial class Net { Tensor Forward([Shape(3)] Tensor x) => x; } }",
        "[Network] public partial class Net { readonly Linear fc = new(3, 2); Tensor Forward([Shape(3)] Tensor x) => Relu(fc.Apply(fc.Apply(x))); }",
        "[Network] public partial class Net { readonly Linear fc = new(int.MaxValue, int.MaxValue); Tensor Forward([Shape(int.MaxValue)] Tensor x) => fc.Apply(x); }",
        "[Network] public partial class Net { Tensor Forward([Shape(3)] Tensor x) => Dropout(x, float.NaN); }",
        "[Network] public partial class Net { Tensor Forward([Shape(4, 4, 4)] Tensor x) => MaxPool2d(x, 2, stride: 0, padding: -1); }",
        "[Network] public partial class Net<T> where T : struct { readonly Linear fc = new(1, 1); Tensor Forward([Shape(1)] Tensor x) => fc.Apply(x); }",
        "[Network] public partial class Net { Tensor Forward([Shape(null)] Tensor x) => x; }",
        "[Network] public partial class Net { readonly Linear fc = new(1, 2); Tensor Forward([Shape(4)] Tensor x) => fc.Apply(Select(x, dim: 1, index: -1)); }",
        "[Network] public partial class Net { Tensor Forward([Shape(null!)] Tensor x) => x; }",
        "[Network] public partial class Net<T> { readonly Linear fc = new(1, 1); Tensor Forward([Shape(1)] Tensor x) => fc.Apply(x); }",
        "[Network] public partial class Net : Net { readonly Linear fc = new(1, 1); Tensor Forward([Shape(1)] Tensor x) => fc.Apply(x); }",
        "[Network] public partial class Net { readonly Linear fc = new(1000000, 1000000); Tensor Forward([Shape(1000000)] Tensor x) => fc.Apply(x); }",
        "[Network] public partial class Net { Tensor Forward([Shape(65536, 65536, 65536)] Tensor x) => Relu(x); }",
    };

    [Theory]
    [MemberData(nameof(Incomplete))]
    public void IncompleteCodeGivesDiagnosticsNotCrashes(string body)
    {
        var result = Harness.Run("using NetDsl;\n" + body);
        Assert.DoesNotContain(result.Diagnostics, d => d.Id is "CS8785" or "AD0001" or "NDSL0900");
        // Code that does not compile must say why: the C# compiler or NetDsl reports an error.
        Assert.NotEmpty(result.Errors);
    }
}
