using NetDsl;

namespace NetDsl.Runtime.Tests.Gpu.Networks;

[Network(Precision = Precision.Float64)]
public partial class F64Mlp
{
    readonly Linear fc = new(20, 4);
    Tensor Forward([Shape(20)] Tensor x) => fc.Apply(x);
}
