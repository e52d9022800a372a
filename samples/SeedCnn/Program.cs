using System;
using System.Linq;
using NetDsl.Runtime;
using Samples.SeedCnn;

// The reference article's CNN, corrected (fc1 takes 64x8x8 = 4096 features; the article's 64x6x6 does not build:
// see README.md). It has no dataset of its own, so this trains a few steps on random images to show the API.
var net = new SeedCnn(seed: 1);
Console.WriteLine($"SeedCnn: input [{string.Join(",", SeedCnn.InputShape.ToArray())}], {SeedCnn.ParameterCount:N0} parameters, {SeedCnn.FlopsPerSample:N0} FLOPs per sample,");
Console.WriteLine($"{SeedCnn.TrainingBytesPerSample:N0} bytes of planned training memory per sample, {SeedCnn.TrainingStepCount} steps per training step.");

const int batch = 16;
var rng = new Random(7);
var images = new float[batch * SeedCnn.InputSize];
var labels = new int[batch];
for (int i = 0; i < images.Length; i++) images[i] = (float)rng.NextDouble();
for (int i = 0; i < batch; i++) labels[i] = rng.Next(10);

using var trainer = net.CreateTrainer(new Adam(lr: 1e-3), Loss.CrossEntropy, batchSize: batch);
for (int step = 1; step <= 20; step++)
{
    float loss = trainer.Step(images, labels); // forward + backward + update
    if (step % 5 == 0) Console.WriteLine($"step {step}: loss {loss:F4} (memorizing {batch} random images)");
}

var logits = new float[SeedCnn.OutputSize];
net.Predict(images.AsSpan(0, SeedCnn.InputSize), logits); // batch 1, same compiled network
Console.WriteLine($"prediction for image 0: class {Array.IndexOf(logits, logits.Max())} (label {labels[0]})");
