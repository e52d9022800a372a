using System;
using System.Globalization;
using System.IO;
using NetDsl.Runtime;
using NetDsl.Runtime.Checkpoints;
using NetDsl.Runtime.Data;
using NetDsl.Runtime.Logging;
using NetDsl.Runtime.Training;
using Samples.FashionMnist;
using Samples.Shared;

// Trains the CNN on Fashion-MNIST: Adam (lr 2e-3) with a cosine schedule, batch 64, a progress bar, TensorBoard
// logs, metrics.csv and curves.png under runs/fashion-cnn, and a checkpoint after every epoch.
// Usage: dotnet run -c Release --project samples/FashionMnist [-- --epochs N] [--resume] [--data DIR] [--seed S] [--out DIR]
const string usage = "FashionMnist [--epochs N] [--resume] [--data DIR] [--seed S] [--out DIR]";
if (SampleArgs.Parse(args, usage, ["--epochs", "--data", "--seed", "--out"], ["--resume"]) is not { } options) return 2;
int epochs = options.Int("--epochs", 5), seed = options.Int("--seed", 1);
const int batchSize = 64;
bool resume = options.Flag("--resume");
string outDir = options.Text("--out") ?? "runs";
var (trainImages, testImages, _) = SampleData.Load(options.Text("--data"));

var net = new FashionCnn(seed);
Console.WriteLine($"FashionCnn: {FashionCnn.ParameterCount:N0} parameters, {FashionCnn.FlopsPerSample:N0} FLOPs per sample; Adam lr 2e-3 with a cosine schedule, batch {batchSize}, {epochs} epochs.");
using var trainer = net.CreateTrainer(new Adam(lr: 2e-3), Loss.CrossEntropy, batchSize, seed);

string runDir = Path.Combine(outDir, "fashion-cnn");
string checkpoint = Path.Combine(runDir, "checkpoint.safetensors");
int start = 0;
if (resume)
{
    if (!File.Exists(checkpoint))
    {
        Console.Error.WriteLine($"--resume: there is no checkpoint at {checkpoint}; train without --resume first.");
        return 1;
    }
    var info = Checkpoint.Load(checkpoint, net, trainer);
    start = info.Epoch;
    Console.WriteLine($"Resumed from {checkpoint}: {info.Epoch} epochs and {info.Step:N0} steps done.");
    if (start >= epochs)
    {
        Console.WriteLine($"Nothing to do: the checkpoint already has {start} epochs; pass --epochs {start + 5} to train further.");
        return 0;
    }
}

using var train = new DataLoader(Dataset.FromImages(trainImages, 28, 28), batchSize, shuffle: true, seed: seed);
using var test = new DataLoader(Dataset.FromImages(testImages, 28, 28), 1000, shuffle: false);
using var log = new TrainingLog("fashion-cnn", outDir, resume);
var result = trainer.Fit(train, new FitOptions
{
    Epochs = epochs,
    StartEpoch = start,
    Validation = test,
    Schedule = LearningRateSchedule.Cosine(epochs),
    Log = log,
    CheckpointPath = checkpoint,
});

var last = result.History[^1];
Console.WriteLine($"Test accuracy after epoch {last.Epoch}: {100 * last.ValidationAccuracy:F2}% (test loss {last.ValidationLoss:F4}).");
Console.WriteLine($"TensorBoard: tensorboard --logdir {outDir}   CSV: {Path.Combine(log.Directory, "metrics.csv")}   curves: {Path.Combine(log.Directory, "curves.png")}   checkpoint: {checkpoint}");
return 0;
