using NetDsl;

namespace Samples.SeedCnn;

[Network]
public partial class SeedCnn
{
    readonly Conv2d conv1 = new(3, 32, kernel: 3, padding: 1);
    readonly Conv2d conv2 = new(32, 64, kernel: 3, padding: 1);
    readonly Linear fc1 = new(64 * 8 * 8, 128);
    readonly Linear fc2 = new(128, 10);

    Tensor Forward([Shape(3, 32, 32)] Tensor x)
    {
        x = MaxPool2d(Relu(conv1.Apply(x)), 2);
        x = MaxPool2d(Relu(conv2.Apply(x)), 2);
        x = Relu(fc1.Apply(Flatten(x)));
        return fc2.Apply(x);
    }
}
