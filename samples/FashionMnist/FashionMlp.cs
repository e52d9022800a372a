using NetDsl;

namespace Samples.FashionMnist;

/// <summary>The multilayer perceptron 784 → 256 → ReLU → 128 → ReLU → 10.</summary>
[Network]
public partial class FashionMlp
{
    readonly Linear fc1 = new(28 * 28, 256);
    readonly Linear fc2 = new(256, 128);
    readonly Linear fc3 = new(128, 10);

    Tensor Forward([Shape(1, 28, 28)] Tensor image)
    {
        var x = Flatten(image);
        x = Relu(fc1.Apply(x));
        x = Relu(fc2.Apply(x));
        return fc3.Apply(x);
    }
}
