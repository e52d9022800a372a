using NetDsl;

namespace Samples.Autoencoder;

/// <summary>
/// A convolutional autoencoder for 1×28×28 images: two stride-2 convolutions compress an image to an 8×7×7 code
/// (392 numbers for 784 pixels), and two transposed convolutions decode it back; a sigmoid keeps the pixels in
/// [0, 1].
/// </summary>
[Network]
public partial class ConvAutoencoder
{
    readonly Conv2d enc1 = new(1, 16, kernel: 3, stride: 2, padding: 1);   // → 16×14×14
    readonly Conv2d enc2 = new(16, 8, kernel: 3, stride: 2, padding: 1);   // → 8×7×7: the code, 392 numbers
    readonly ConvTranspose2d dec1 = new(8, 16, kernel: 3, stride: 2, padding: 1, outputPadding: 1); // → 16×14×14
    readonly ConvTranspose2d dec2 = new(16, 1, kernel: 3, stride: 2, padding: 1, outputPadding: 1); // → 1×28×28

    Tensor Forward([Shape(1, 28, 28)] Tensor image)
    {
        var code = Relu(enc2.Apply(Relu(enc1.Apply(image))));
        return Sigmoid(dec2.Apply(Relu(dec1.Apply(code))));
    }
}
