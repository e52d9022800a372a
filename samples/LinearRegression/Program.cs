using System;
using NetDsl.Runtime;
using Samples.LinearRegression;

// The reference article's gradient descent: θ ← θ − α·∇J(θ) over all m points at once, fitting y = 3x + 2
// from noisy samples. J is the mean squared error.
const int m = 200;
var rng = new Random(42);
var xs = new float[m];
var ys = new float[m];
for (int i = 0; i < m; i++)
{
    xs[i] = (float)(rng.NextDouble() * 4 - 2);                       // x in [-2, 2]
    double noise = Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
    ys[i] = (float)(3 * xs[i] + 2 + 0.3 * noise);                    // y = 3x + 2 + N(0, 0.3²)
}

var model = new LinearModel(seed: 0);
using var trainer = model.CreateTrainer(new Sgd(lr: 0.1), Loss.MeanSquaredError, batchSize: m);
for (int epoch = 1; epoch <= 200; epoch++)
{
    float loss = trainer.Step(xs, ys); // full batch: plain gradient descent
    if (epoch is 1 or 10 or 50 or 200) Console.WriteLine($"iteration {epoch,3}: J(θ) = {loss:F5}");
}

float slope = model.Parameter("line.weight")[0];
float intercept = model.Parameter("line.bias")[0];
Console.WriteLine($"recovered y = {slope:F3}·x + {intercept:F3} (true: y = 3·x + 2)");
return Math.Abs(slope - 3) < 0.1 && Math.Abs(intercept - 2) < 0.1 ? 0 : 1;
