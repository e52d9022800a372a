using System;
using System.IO;
using NetDsl.Runtime;
using NetDsl.Runtime.Data;
using NetDsl.Runtime.Logging;
using NetDsl.Runtime.Training;
using Samples.Autoencoder;
using Samples.Shared;

// Trains a convolutional autoencoder on Fashion-MNIST with MSE, reports the test reconstruction error and writes a
// PNG grid: test images above their reconstructions.
// Usage: dotnet run -c Release --project samples/Autoencoder [-- --epochs N] [--data DIR] [--seed S] [--out DIR]
const string usage = "Autoencoder [--epochs N] [--data DIR] [--seed S] [--out DIR]";
if (SampleArgs.Parse(args, usage, ["--epochs", "--data", "--seed", "--out"], []) is not { } options) return 2;
int epochs = options.Int("--epochs", 5), seed = options.Int("--seed", 1);
string outDir = options.Text("--out") ?? "runs";
var (trainImages, testImages, _) = SampleData.Load(options.Text("--data"));

var net = new ConvAutoencoder(seed);
const int batchSize = 64;
Console.WriteLine($"ConvAutoencoder: {ConvAutoencoder.ParameterCount:N0} parameters; code 8×7×7 = 392 numbers per 784-pixel image; Adam lr 2e-3, MSE, batch {batchSize}, {epochs} epochs.");
using var trainer = net.CreateTrainer(new Adam(lr: 2e-3), Loss.MeanSquaredError, batchSize, seed);
// The targets are the inputs themselves.
using var train = new DataLoader(new Dataset(trainImages.Images, trainImages.Images, [1, 28, 28], 784), batchSize, shuffle: true, seed: seed);
using var test = new DataLoader(new Dataset(testImages.Images, testImages.Images, [1, 28, 28], 784), 1000, shuffle: false);
using var log = new TrainingLog("autoencoder", outDir);
var result = trainer.Fit(train, new FitOptions { Epochs = epochs, Validation = test, Schedule = LearningRateSchedule.Cosine(epochs), Log = log });
Console.WriteLine($"Test reconstruction MSE after epoch {result.History[^1].Epoch}: {result.History[^1].ValidationLoss:F5} per pixel (predicting the mean image gives {MeanImageMse(trainImages, testImages):F5}).");

// The grid: 10 test images (one per class where possible) above their reconstructions, each pixel 3×3.
const int count = 10, scale = 3, pad = 4, cell = 28 * scale + pad;
var picks = new int[count];
for (int c = 0, found = 0; c < testImages.Count && found < count; c++)
    if (Array.IndexOf(picks, c, 0, found) < 0 && testImages.Labels[c] == found) picks[found++] = c;
var inputs = new float[count * 784];
for (int i = 0; i < count; i++) testImages.Images.AsSpan(picks[i] * 784, 784).CopyTo(inputs.AsSpan(i * 784));
var reconstructions = new float[inputs.Length];
net.Predict(inputs, reconstructions);
var image = new RgbImage(count * cell + pad, 2 * cell + pad);
image.Fill(0, 0, image.Width, image.Height, (255, 255, 255));
for (int i = 0; i < count; i++)
    for (int row = 0; row < 2; row++)
    {
        var pixels = (row == 0 ? inputs : reconstructions).AsSpan(i * 784, 784);
        for (int y = 0; y < 28; y++)
            for (int x = 0; x < 28; x++)
            {
                byte v = (byte)(255 - Math.Clamp(pixels[y * 28 + x], 0f, 1f) * 255);
                image.Fill(pad + i * cell + x * scale, pad + row * cell + y * scale, scale, scale, (v, v, v));
            }
    }
string grid = Path.Combine(log.Directory, "reconstructions.png");
image.Save(grid);
Console.WriteLine($"Wrote {grid} (top: test images, bottom: reconstructions) and {Path.Combine(log.Directory, "curves.png")}.");
return 0;

static double MeanImageMse(ImageSet train, ImageSet test)
{
    var mean = new double[784];
    for (int i = 0; i < train.Count; i++)
        for (int p = 0; p < 784; p++) mean[p] += train.Images[i * 784 + p];
    for (int p = 0; p < 784; p++) mean[p] /= train.Count;
    double sum = 0;
    for (int i = 0; i < test.Count; i++)
        for (int p = 0; p < 784; p++)
        {
            double d = test.Images[i * 784 + p] - mean[p];
            sum += d * d;
        }
    return sum / ((double)test.Count * 784);
}
