using NetDsl;

namespace Samples.FashionMnist;

/// <summary>
/// The CNN of the reference article, for 1×28×28 images: two blocks of Conv2d → BatchNorm → ReLU → 2×2 max pool,
/// then two Linear layers with Dropout between them. Shapes are checked at build time: 64 channels of 7×7 reach fc1.
/// </summary>
[Network]
public partial class FashionCnn
{
    readonly Conv2d conv1 = new(1, 32, kernel: 3, padding: 1);
    readonly BatchNorm2d bn1 = new(32);
    readonly Conv2d conv2 = new(32, 64, kernel: 3, padding: 1);
    readonly BatchNorm2d bn2 = new(64);
    readonly Linear fc1 = new(64 * 7 * 7, 128);
    readonly Linear fc2 = new(128, 10);

    Tensor Forward([Shape(1, 28, 28)] Tensor image)
    {
        var x = MaxPool2d(Relu(bn1.Apply(conv1.Apply(image))), 2);
        x = MaxPool2d(Relu(bn2.Apply(conv2.Apply(x))), 2);
        x = Dropout(Relu(fc1.Apply(Flatten(x))), 0.3f);
        return fc2.Apply(x);
    }
}
