using System;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using NetDsl.Runtime;
using NetDsl.Runtime.Distributed;
using Samples.FashionMnist;
using Samples.Shared;

// Data-parallel training of the Fashion-MNIST CNN. The same program runs on one process or many:
//   dotnet build -c Release samples/DistributedFashionMnist
//   dotnet samples/DistributedFashionMnist/bin/Release/net10.0/DistributedFashionMnist.dll              (1 process)
//   mpiexec -n 2 -env NETDSL_NUM_THREADS 1 dotnet samples/DistributedFashionMnist/bin/Release/net10.0/DistributedFashionMnist.dll
// Every rank reads the whole data set and takes its shard of each global batch (same shuffle on every rank);
// gradients are averaged with MPI allreduce bucket by bucket as backward finishes them. Rank 0 alone prints,
// evaluates, writes runs/distributed-fashion-cnn/metrics.csv and the checkpoint.
const string usage = "DistributedFashionMnist [--epochs N] [--batch GLOBAL] [--limit N] [--data DIR] [--seed S] [--out DIR]";
using var world = Communicator.FromEnvironment();
var options = SampleArgs.Parse(args, usage, ["--epochs", "--batch", "--limit", "--data", "--seed", "--out"], []);
if (options is null) return 2;
int epochs = options.Int("--epochs", 2), seed = options.Int("--seed", 1), globalBatch = options.Int("--batch", 64);
if (globalBatch < world.Size)
{
    if (world.IsRoot) Console.Error.WriteLine($"--batch {globalBatch} is smaller than the {world.Size} processes; expected at least one sample per process.");
    return 2;
}
string runDir = Path.Combine(options.Text("--out") ?? "runs", "distributed-fashion-cnn");

var (trainImages, testImages, _) = world.IsRoot ? SampleData.Load(options.Text("--data")) : Quiet(() => SampleData.Load(options.Text("--data")));
int trainCount = Math.Min(trainImages.Count, options.Int("--limit", trainImages.Count));
var net = new FashionCnn(seed);
int localCapacity = (globalBatch + world.Size - 1) / world.Size;
using var trainer = new DistributedTrainer<float>(net, new Adam(lr: 1e-3), Loss.CrossEntropy, localCapacity, world, seed);
if (world.IsRoot)
{
    Console.WriteLine($"{world.Size} process(es) ({world.Transport}), {CpuThreads()} thread(s) each; global batch {globalBatch}, {localCapacity} per process; {trainCount:N0} training images, {epochs} epochs.");
    Console.WriteLine(trainer.DescribePlan());
    Directory.CreateDirectory(runDir);
    File.WriteAllText(Path.Combine(runDir, "metrics.csv"), "epoch,processes,seconds,images_per_second,train_loss,test_accuracy,allreduce_wait_seconds\n");
}

try
{
    Train();
}
catch (CommunicationTimeoutException e)
{
    // A peer died or hangs: say so and end the whole job rather than leave the others waiting.
    Console.Error.WriteLine(e.Message);
    world.Abort(3);
    return 3;
}
return 0;

void Train()
{
    var order = new int[trainCount];
    var x = new float[localCapacity * 784];
    var y = new int[localCapacity];
    for (int epoch = 1; epoch <= epochs; epoch++)
    {
        // The same permutation on every rank: a seeded Fisher–Yates shuffle.
        for (int i = 0; i < trainCount; i++) order[i] = i;
        var random = new Random(seed * 1000 + epoch);
        for (int i = trainCount - 1; i > 0; i--) { int j = random.Next(i + 1); (order[i], order[j]) = (order[j], order[i]); }

        var clock = Stopwatch.StartNew();
        var waitBefore = trainer.CommunicationWait;
        double lossSum = 0;
        int batches = 0;
        for (int start = 0; start < trainCount; start += globalBatch)
        {
            int count = Math.Min(globalBatch, trainCount - start);
            if (count < world.Size) break; // a tail too small to give every process a sample
            var (mine, n) = DistributedTrainer<float>.Shard(start, count, world.Rank, world.Size);
            for (int i = 0; i < n; i++)
            {
                int image = order[mine + i];
                trainImages.Images.AsSpan(image * 784, 784).CopyTo(x.AsSpan(i * 784, 784));
                y[i] = trainImages.Labels[image];
            }
            lossSum += trainer.Step(x.AsSpan(0, n * 784), y.AsSpan(0, n));
            batches++;
        }
        double seconds = clock.Elapsed.TotalSeconds;
        double wait = (trainer.CommunicationWait - waitBefore).TotalSeconds;
        trainer.SynchronizeState();
        if (world.IsRoot)
        {
            double accuracy = Accuracy(net, testImages);
            Console.WriteLine($"epoch {epoch}/{epochs}: loss {lossSum / batches:F4} | test accuracy {100 * accuracy:F2}% | {seconds:F1} s, {trainCount / seconds:F0} images/s, waiting for allreduce {wait:F2} s");
            File.AppendAllText(Path.Combine(runDir, "metrics.csv"), string.Create(CultureInfo.InvariantCulture,
                $"{epoch},{world.Size},{seconds:F2},{trainCount / seconds:F0},{lossSum / batches:F4},{accuracy:F4},{wait:F2}\n"));
        }
        trainer.SaveCheckpoint(Path.Combine(runDir, "checkpoint.safetensors"), epoch);
    }
}

static double Accuracy(FashionCnn net, NetDsl.Runtime.Data.ImageSet test)
{
    var logits = new float[test.Count * 10];
    net.Predict(test.Images, logits);
    int correct = 0;
    for (int i = 0; i < test.Count; i++)
    {
        int best = 0;
        for (int c = 1; c < 10; c++) if (logits[i * 10 + c] > logits[i * 10 + best]) best = c;
        if (best == test.Labels[i]) correct++;
    }
    return correct / (double)test.Count;
}

static T Quiet<T>(Func<T> load)
{
    var console = Console.Out;
    Console.SetOut(TextWriter.Null);
    try { return load(); }
    finally { Console.SetOut(console); }
}

static string CpuThreads() => Environment.GetEnvironmentVariable("NETDSL_NUM_THREADS") ?? Environment.ProcessorCount.ToString(CultureInfo.InvariantCulture);
