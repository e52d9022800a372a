using NetDsl;

namespace Samples.LinearRegression;

/// <summary>h(x) = θ₁·x + θ₀: one Linear layer with one input and one output.</summary>
[Network]
public partial class LinearModel
{
    readonly Linear line = new(1, 1);

    Tensor Forward([Shape(1)] Tensor x) => line.Apply(x);
}
