using System;
using System.Diagnostics;
using NetDsl.Runtime;
using NetDsl.Runtime.Data;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace NetDsl.Benchmarks;

/// <summary>W-epoch: one shuffled epoch of the W-cnn over Fashion-MNIST's 60,000 training images at batch 64, wall time.</summary>
public static class Epoch
{
    public static int Run(string? directory)
    {
        TorchModels.UseThreads(Workload.Threads);
        string dir = directory ?? FashionMnist.DebianPath;
        if (!FashionMnist.IsPresent(dir))
        {
            Console.Error.WriteLine($"Fashion-MNIST not found in {dir} (apt-get install dataset-fashion-mnist, or pass a directory).");
            return 2;
        }
        var (train, _) = FashionMnist.Load(dir);
        const int batch = 64;
        int size = train.ImageSize;
        var order = new int[train.Count];
        var images = new float[batch * size];
        var labels = new int[batch];
        var longLabels = new long[batch];

        for (int round = 0; round < 2; round++)
        {
            var net = new MnistCnn(1);
            var model = TorchModels.Cnn(net);
            var torchOptimizer = optim.SGD(model.parameters(), 0.01, momentum: 0.9);
            using var trainer = net.CreateTrainer(new Sgd(lr: 0.01, momentum: 0.9), Loss.CrossEntropy, batch);

            double torchSeconds = Time(order, 1, n =>
            {
                using var scope = NewDisposeScope();
                var x = torch.tensor(images, new long[] { n, 1, 28, 28 }).narrow(0, 0, n);
                var y = torch.tensor(longLabels).narrow(0, 0, n);
                torchOptimizer.zero_grad();
                var loss = F.cross_entropy(model.forward(x), y);
                loss.backward();
                torchOptimizer.step();
            }, train, images, labels, longLabels);
            double ourSeconds = Time(order, 1, n => trainer.Step(images.AsSpan(0, n * size), labels.AsSpan(0, n)), train, images, labels, longLabels);
            Console.WriteLine($"W-epoch round {round + 1}: TorchSharp {torchSeconds:F1} s, NetDsl {ourSeconds:F1} s, ratio {torchSeconds / ourSeconds:F2}x");
        }
        return 0;
    }

    private static double Time(int[] order, int seed, Action<int> step, ImageSet train, float[] images, int[] labels, long[] longLabels)
    {
        for (int i = 0; i < order.Length; i++) order[i] = i;
        new Random(seed).Shuffle(order);
        int size = train.ImageSize, batch = labels.Length;
        var clock = Stopwatch.StartNew();
        for (int start = 0; start < order.Length; start += batch)
        {
            int n = Math.Min(batch, order.Length - start);
            for (int b = 0; b < n; b++)
            {
                int src = order[start + b];
                Array.Copy(train.Images, src * size, images, b * size, size);
                labels[b] = train.Labels[src];
                longLabels[b] = labels[b];
            }
            step(n);
        }
        return clock.Elapsed.TotalSeconds;
    }
}
