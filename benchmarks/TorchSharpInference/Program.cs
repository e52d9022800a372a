using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

// AotInference on TorchSharp: the same network, checkpoint and output, for the size and start-up comparison.
// Usage: TorchSharpInference CHECKPOINT IMAGE.pgm...
var clock = Stopwatch.StartNew();
if (args.Length < 2)
{
    Console.Error.WriteLine("Usage: TorchSharpInference CHECKPOINT IMAGE.pgm...");
    return 2;
}
string[] classes = { "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot" };
var net = new FashionCnn();
// A training checkpoint also holds the optimizer's moments (optimizer.*): load the module's entries, all of them.
var loaded = new Dictionary<string, bool>();
net.load_safetensors(args[0], strict: false, loadedParameters: loaded);
foreach (var (name, _) in net.state_dict())
    if (!loaded.GetValueOrDefault(name)) throw new InvalidDataException($"{args[0]} has no '{name}'.");
net.eval();
using var _ = no_grad();
for (int i = 1; i < args.Length; i++)
{
    byte[] data = File.ReadAllBytes(args[i]);
    var pixels = new float[784];
    for (int p = 0; p < 784; p++) pixels[p] = data[data.Length - 784 + p] / 255f; // P5 28×28, 8-bit: the pixels end the file
    using var image = tensor(pixels, new long[] { 1, 1, 28, 28 });
    using var logits = net.forward(image);
    using var probabilities = logits.softmax(1);
    int best = (int)probabilities.argmax(1).item<long>();
    Console.WriteLine($"{args[i]}: {classes[best]} ({100 * probabilities[0, best].item<float>():F1} %)");
    if (i == 1) Console.Error.WriteLine($"first prediction {clock.Elapsed.TotalMilliseconds:F1} ms after start");
}
return 0;

/// <summary>samples/FashionMnist's FashionCnn, in TorchSharp modules with the same state_dict names.</summary>
internal sealed class FashionCnn : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> conv1 = Conv2d(1, 32, 3, padding: 1), conv2 = Conv2d(32, 64, 3, padding: 1);
    private readonly Module<Tensor, Tensor> bn1 = BatchNorm2d(32), bn2 = BatchNorm2d(64);
    private readonly Module<Tensor, Tensor> fc1 = Linear(64 * 7 * 7, 128), fc2 = Linear(128, 10);

    public FashionCnn() : base(nameof(FashionCnn)) => RegisterComponents();

    public override Tensor forward(Tensor image)
    {
        using var scope = NewDisposeScope();
        var x = functional.max_pool2d(functional.relu(bn1.forward(conv1.forward(image))), 2);
        x = functional.max_pool2d(functional.relu(bn2.forward(conv2.forward(x))), 2);
        x = functional.relu(fc1.forward(x.flatten(1)));
        return fc2.forward(x).MoveToOuterDisposeScope();
    }
}
