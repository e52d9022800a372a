using System;
using NetDsl.Runtime;
using NetDsl.Runtime.Data;
using NetDsl.Runtime.Logging;
using NetDsl.Runtime.Training;
using Samples.SequenceLstm;
using Samples.Shared;

// An LSTM reads each Fashion-MNIST image row by row (28 steps of 28 pixels) and classifies it.
// Usage: dotnet run -c Release --project samples/SequenceLstm [-- --epochs N] [--data DIR] [--seed S] [--out DIR]
const string usage = "SequenceLstm [--epochs N] [--data DIR] [--seed S] [--out DIR]";
if (SampleArgs.Parse(args, usage, ["--epochs", "--data", "--seed", "--out"], []) is not { } options) return 2;
int epochs = options.Int("--epochs", 5), seed = options.Int("--seed", 1);
string outDir = options.Text("--out") ?? "runs";
var (trainImages, testImages, _) = SampleData.Load(options.Text("--data"));

var net = new RowLstm(seed);
const int batchSize = 64;
Console.WriteLine($"RowLstm: {RowLstm.ParameterCount:N0} parameters, {RowLstm.TrainingStepCount} compiled steps per training step; Adam lr 2e-3 with a cosine schedule, gradient norm clipped at 1, batch {batchSize}, {epochs} epochs.");
using var trainer = net.CreateTrainer(new Adam(lr: 2e-3), Loss.CrossEntropy, batchSize, seed);
// The images as sequences: [28 rows, 28 pixels] per sample (the same floats as [1, 28, 28]).
using var train = new DataLoader(new Dataset(trainImages.Images, trainImages.Labels, [28, 28]), batchSize, shuffle: true, seed: seed);
using var test = new DataLoader(new Dataset(testImages.Images, testImages.Labels, [28, 28]), 1000, shuffle: false);
using var log = new TrainingLog("sequence-lstm", outDir);
var result = trainer.Fit(train, new FitOptions
{
    Epochs = epochs,
    Validation = test,
    Schedule = LearningRateSchedule.Cosine(epochs),
    ClipGradientNorm = 1.0,
    Log = log,
});
var last = result.History[^1];
Console.WriteLine($"Test accuracy after epoch {last.Epoch}: {100 * last.ValidationAccuracy:F2}% (test loss {last.ValidationLoss:F4}). Logs in {log.Directory}.");
return 0;
