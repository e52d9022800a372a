using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using NetDsl.Runtime;
using NetDsl.Runtime.Data;
using NetDsl.Runtime.Logging;
using NetDsl.Runtime.Training;
using Samples.Overfitting;
using Samples.Shared;

// Trains the same small CNN on only 1,000 Fashion-MNIST images twice: plain, and with Dropout, weight decay
// (AdamW) and augmentation (random horizontal flips and 1-pixel random shifts). Prints the gap between training and
// validation accuracy per epoch and draws both runs' curves into one PNG.
// Usage: dotnet run -c Release --project samples/Overfitting [-- --epochs N] [--train N] [--data DIR] [--seed S] [--out DIR]
const string usage = "Overfitting [--epochs N] [--train N] [--data DIR] [--seed S] [--out DIR]";
if (SampleArgs.Parse(args, usage, ["--epochs", "--train", "--data", "--seed", "--out"], []) is not { } options) return 2;
int epochs = options.Int("--epochs", 50), seed = options.Int("--seed", 1), trainCount = options.Int("--train", 1000);
string outDir = options.Text("--out") ?? "runs";
var (trainImages, testImages, _) = SampleData.Load(options.Text("--data"));
var small = Dataset.FromImages(trainImages, 28, 28).Take(trainCount);
var validation = Dataset.FromImages(testImages, 28, 28);
Console.WriteLine($"Training on {small.Count:N0} images, validating on {validation.Count:N0}, {epochs} epochs each, batch 32, Adam(W) lr 1e-3.");

const int batchSize = 32;
var plain = Run("plain", new PlainCnn(seed), new Adam(lr: 1e-3), []);
var regularized = Run("regularized", new RegularizedCnn(seed), new AdamW(lr: 1e-3, weightDecay: 0.01), [new RandomHorizontalFlip(), new RandomCrop(padding: 1)]);

Console.WriteLine();
Console.WriteLine("         |        plain: no regularization         | regularized: dropout, weight decay, augmentation");
Console.WriteLine(" epoch   |  train acc    val acc    gap   val loss |  train acc    val acc    gap   val loss");
for (int e = 0; e < epochs; e++)
{
    if (e + 1 != 1 && (e + 1) % 5 != 0 && e + 1 != epochs) continue;
    var p = plain[e];
    var r = regularized[e];
    Console.WriteLine($" {e + 1,5}   |  {p.Train,8:P1}  {p.Validation,8:P1}  {p.Train - p.Validation,6:P1}  {p.ValidationLoss,8:F3} |  {r.Train,8:P1}  {r.Validation,8:P1}  {r.Train - r.Validation,6:P1}  {r.ValidationLoss,8:F3}");
}
var (pl, rl) = (plain[^1], regularized[^1]);
Console.WriteLine();
Console.WriteLine($"After {epochs} epochs the train-validation accuracy gap is {pl.Train - pl.Validation:P1} plain and {rl.Train - rl.Validation:P1} regularized; " +
    $"validation accuracy {pl.Validation:P1} → {rl.Validation:P1}, best validation loss {plain.Min(m => m.ValidationLoss):F3} → {regularized.Min(m => m.ValidationLoss):F3}.");

string dir = Path.Combine(outDir, "overfitting");
Directory.CreateDirectory(dir);
Charts.Series S(string name, List<Row> rows, Func<Row, double> pick) => new(name, rows.Select((m, i) => ((double)(i + 1), pick(m))).ToList());
var chart = Charts.Render(new List<(string, IReadOnlyList<Charts.Series>)>
{
    ("accuracy", new[] { S("plain train", plain, m => m.Train), S("plain validation", plain, m => m.Validation), S("regularized train", regularized, m => m.Train), S("regularized validation", regularized, m => m.Validation) }),
    ("validation loss", new[] { S("plain", plain, m => m.ValidationLoss), S("regularized", regularized, m => m.ValidationLoss) }),
});
string png = Path.Combine(dir, "curves.png");
chart.Save(png);
Console.WriteLine($"Curves: {png}");
return 0;

// Trains one model epoch by epoch; after each, measures accuracy on the clean training images and on validation, in inference mode.
List<Row> Run(string name, CompiledNetwork<float> net, Optimizer optimizer, IBatchTransform[] augment)
{
    using var trainer = net.CreateTrainer(optimizer, Loss.CrossEntropy, batchSize, seed);
    using var train = new DataLoader(small, batchSize, shuffle: true, seed: seed, transforms: augment);
    using var trainEval = new DataLoader(small, 500, shuffle: false);
    using var val = new DataLoader(validation, 1000, shuffle: false);
    var rows = new List<Row>();
    Console.Write($"{name}: ");
    for (int e = 0; e < epochs; e++)
    {
        trainer.Fit(train, new FitOptions { StartEpoch = e, Epochs = e + 1, Output = null });
        var (_, trainAccuracy) = trainer.Evaluate(trainEval);
        var (valLoss, valAccuracy) = trainer.Evaluate(val);
        rows.Add(new Row(trainAccuracy!.Value, valAccuracy!.Value, valLoss));
        Console.Write('.');
    }
    Console.WriteLine($" done: train {rows[^1].Train:P1}, validation {rows[^1].Validation:P1}");
    return rows;
}

internal sealed record Row(double Train, double Validation, double ValidationLoss);
