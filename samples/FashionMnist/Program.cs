using System;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using NetDsl.Runtime;
using NetDsl.Runtime.Data;
using Samples.FashionMnist;

// Trains the MLP on Fashion-MNIST with Adam (lr 1e-3), batch 64, and prints per-epoch loss, test accuracy and time.
// Usage: dotnet run --project samples/FashionMnist [-- --data DIR] [--epochs N] [--seed S]
string? dataArg = null;
int epochs = 5, seed = 1, batchSize = 64;
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--data": dataArg = args[++i]; break;
        case "--epochs": epochs = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
        case "--seed": seed = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
        default:
            Console.Error.WriteLine($"Unknown argument '{args[i]}'. Usage: FashionMnist [--data DIR] [--epochs N] [--seed S]");
            return 2;
    }
}

string bundled = Path.Combine(AppContext.BaseDirectory, "data");
string dataDir = dataArg ?? (FashionMnist.IsPresent(FashionMnist.DebianPath) ? FashionMnist.DebianPath : bundled);
var (train, test) = FashionMnist.Load(dataDir);
Console.WriteLine(dataDir == bundled
    ? $"Full Fashion-MNIST not found at {FashionMnist.DebianPath} (apt-get install dataset-fashion-mnist, or pass --data DIR): using the {train.Count:N0}/{test.Count:N0}-image subset shipped with this sample. Accuracy will be lower than on the full set."
    : $"Fashion-MNIST from {dataDir}: {train.Count:N0} training and {test.Count:N0} test images.");

var net = new FashionMlp(seed);
Console.WriteLine($"FashionMlp: {FashionMlp.ParameterCount:N0} parameters, {FashionMlp.FlopsPerSample:N0} FLOPs per sample; Adam lr 1e-3, batch {batchSize}, {epochs} epochs.");
using var trainer = net.CreateTrainer(new Adam(lr: 1e-3), Loss.CrossEntropy, batchSize, seed);

int size = FashionMlp.InputSize;
var order = new int[train.Count];
for (int i = 0; i < order.Length; i++) order[i] = i;
var shuffle = new Random(seed);
var batchImages = new float[batchSize * size];
var batchLabels = new int[batchSize];
var logits = new float[test.Count * FashionMlp.OutputSize];

for (int epoch = 1; epoch <= epochs; epoch++)
{
    var clock = Stopwatch.StartNew();
    shuffle.Shuffle(order);
    double lossSum = 0;
    int batches = 0;
    for (int start = 0; start < order.Length; start += batchSize)
    {
        int n = Math.Min(batchSize, order.Length - start);
        for (int b = 0; b < n; b++)
        {
            int src = order[start + b];
            train.Images.AsSpan(src * size, size).CopyTo(batchImages.AsSpan(b * size));
            batchLabels[b] = train.Labels[src];
        }
        lossSum += trainer.Step(batchImages.AsSpan(0, n * size), batchLabels.AsSpan(0, n));
        batches++;
    }
    double trainSeconds = clock.Elapsed.TotalSeconds;

    net.Predict(test.Images, logits);
    int correct = 0;
    for (int i = 0; i < test.Count; i++)
    {
        var row = logits.AsSpan(i * 10, 10);
        int best = 0;
        for (int c = 1; c < 10; c++) if (row[c] > row[best]) best = c;
        if (best == test.Labels[i]) correct++;
    }
    Console.WriteLine($"epoch {epoch}: train loss {lossSum / batches:F4}, test accuracy {100.0 * correct / test.Count:F2}%, {trainSeconds:F1} s");
}
return 0;
