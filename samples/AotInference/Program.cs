using System;
using System.Diagnostics;
using System.IO;
using NetDsl.Runtime.Checkpoints;
using NetDsl.Runtime.Data;
using Samples.FashionMnist;

// Classifies Fashion-MNIST images with a trained FashionCnn, as a NativeAOT executable.
// Usage: AotInference CHECKPOINT IMAGE...
//   CHECKPOINT  a safetensors checkpoint of FashionCnn (samples/FashionMnist writes runs/fashion-cnn/checkpoint.safetensors)
//   IMAGE       a 28×28 binary PGM file (P5, 8-bit), or test:N for image N of the Fashion-MNIST test set
//               (from /usr/share/datasets/fashion-mnist or the directory in FASHION_MNIST)
var clock = Stopwatch.StartNew();
if (args.Length < 2)
{
    Console.Error.WriteLine("Usage: AotInference CHECKPOINT IMAGE...  (IMAGE: a 28x28 P5 PGM file, or test:N for Fashion-MNIST test image N)");
    return 2;
}
var net = new FashionCnn();
try
{
    Checkpoint.Load(args[0], net);
}
catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
{
    Console.Error.WriteLine($"Cannot load the checkpoint: {e.Message}");
    return 1;
}

ImageSet? test = null;
var image = new float[FashionCnn.InputSize];
var logits = new float[FashionCnn.OutputSize];
int status = 0;
for (int i = 1; i < args.Length; i++)
{
    string label;
    try
    {
        if (args[i].StartsWith("test:", StringComparison.Ordinal))
        {
            if (!int.TryParse(args[i].AsSpan(5), out int n) || n < 0)
                throw new InvalidDataException($"'{args[i]}': expected test:N with N a test image index.");
            test ??= FashionMnist.Load(Environment.GetEnvironmentVariable("FASHION_MNIST") ?? FashionMnist.DebianPath).Test;
            if (n >= test.Count) throw new InvalidDataException($"'{args[i]}': the test set has images 0 to {test.Count - 1}.");
            test.Images.AsSpan(n * 784, 784).CopyTo(image);
            label = $" (true class: {FashionMnist.ClassNames[test.Labels[n]]})";
        }
        else
        {
            Pgm.Read(args[i], image);
            label = "";
        }
    }
    catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
    {
        Console.Error.WriteLine(e.Message);
        status = 1;
        continue;
    }
    net.Predict(image, logits);
    int best = 0;
    for (int c = 1; c < logits.Length; c++) if (logits[c] > logits[best]) best = c;
    double sum = 0;
    foreach (float l in logits) sum += Math.Exp(l - logits[best]);
    Console.WriteLine($"{args[i]}: {FashionMnist.ClassNames[best]} ({100 / sum:F1} %){label}");
    if (i == 1) Console.Error.WriteLine($"first prediction {clock.Elapsed.TotalMilliseconds:F1} ms after start");
}
return status;

/// <summary>Binary PGM (P5) reading: the simplest image file a user can make for a 28×28 grayscale picture.</summary>
internal static class Pgm
{
    public static void Read(string path, Span<float> into)
    {
        byte[] data = File.ReadAllBytes(path);
        int at = 0;
        string Token()
        {
            while (at < data.Length && (char.IsWhiteSpace((char)data[at]) || data[at] == '#'))
            {
                if (data[at] == '#') while (at < data.Length && data[at] != '\n') at++;
                else at++;
            }
            int start = at;
            while (at < data.Length && !char.IsWhiteSpace((char)data[at])) at++;
            return System.Text.Encoding.ASCII.GetString(data, start, at - start);
        }
        if (Token() != "P5") throw new InvalidDataException($"{path}: not a binary PGM file (expected the magic 'P5' at offset 0).");
        if (!int.TryParse(Token(), out int w) || !int.TryParse(Token(), out int h) || !int.TryParse(Token(), out int max) || max is < 1 or > 255)
            throw new InvalidDataException($"{path}: bad PGM header; expected width, height and a maximum value of 1 to 255.");
        if (w != 28 || h != 28) throw new InvalidDataException($"{path}: the image is {w}×{h}; FashionCnn takes 28×28.");
        at++; // the single whitespace after the header
        if (data.Length - at < 784) throw new InvalidDataException($"{path}: {data.Length - at} pixel bytes at offset {at}; expected 784.");
        for (int i = 0; i < 784; i++) into[i] = data[at + i] / (float)max;
    }
}
