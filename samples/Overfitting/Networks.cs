using NetDsl;

namespace Samples.Overfitting;

/// <summary>A small CNN with nothing against overfitting.</summary>
[Network]
public partial class PlainCnn
{
    readonly Conv2d conv1 = new(1, 16, kernel: 3, padding: 1);
    readonly Conv2d conv2 = new(16, 32, kernel: 3, padding: 1);
    readonly Linear fc1 = new(32 * 7 * 7, 128);
    readonly Linear fc2 = new(128, 10);

    Tensor Forward([Shape(1, 28, 28)] Tensor image)
    {
        var x = MaxPool2d(Relu(conv1.Apply(image)), 2);
        x = MaxPool2d(Relu(conv2.Apply(x)), 2);
        return fc2.Apply(Relu(fc1.Apply(Flatten(x))));
    }
}

/// <summary>The same CNN with Dropout before each Linear layer (trained with weight decay and augmentation).</summary>
[Network]
public partial class RegularizedCnn
{
    readonly Conv2d conv1 = new(1, 16, kernel: 3, padding: 1);
    readonly Conv2d conv2 = new(16, 32, kernel: 3, padding: 1);
    readonly Linear fc1 = new(32 * 7 * 7, 128);
    readonly Linear fc2 = new(128, 10);

    Tensor Forward([Shape(1, 28, 28)] Tensor image)
    {
        var x = MaxPool2d(Relu(conv1.Apply(image)), 2);
        x = MaxPool2d(Relu(conv2.Apply(x)), 2);
        x = Relu(fc1.Apply(Dropout(Flatten(x), 0.25f)));
        return fc2.Apply(Dropout(x, 0.5f));
    }
}
