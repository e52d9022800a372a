using System;
using System.IO;
using System.Threading;
using NetDsl;
using NetDsl.Runtime;
using NetDsl.Runtime.Distributed;

// Modes (all write what they computed to OUT, for the test to compare):
//   distributed OUT   under mpiexec -n N: 20 steps of a global batch of 64 split over the ranks; each rank writes rank<r>.bin
//   single OUT        one process, batch 64, the ordinary trainer: single.bin
//   hang OUT          rank 1 stops taking part at step 3 (sleeps); the others must time out with a clear error
//   crash OUT         rank 1 exits with code 5 at step 3; the job must end, not hang
//   bandwidth OUT     allreduce time for 4 KB to 16 MB messages: bandwidth.txt (rank 0)
string mode = args[0], output = args[1];
Directory.CreateDirectory(output);
const int Steps = 20, GlobalBatch = 64;
var data = Data(Steps * GlobalBatch);

switch (mode)
{
    case "single":
    {
        var net = new ProbeCnn(seed: 3);
        using var trainer = net.CreateTrainer(new Sgd(lr: 0.05, momentum: 0.9), Loss.CrossEntropy, GlobalBatch);
        for (int s = 0; s < Steps; s++)
            trainer.Step(data.X.AsSpan(s * GlobalBatch * ProbeCnn.InputSize, GlobalBatch * ProbeCnn.InputSize), data.Y.AsSpan(s * GlobalBatch, GlobalBatch));
        Write(Path.Combine(output, "single.bin"), net.ParameterData);
        return 0;
    }
    case "bandwidth":
    {
        using var world = Communicator.FromEnvironment();
        using var report = world.IsRoot ? new StreamWriter(Path.Combine(output, "bandwidth.txt")) : null;
        for (int bytes = 4096; bytes <= 16 << 20; bytes *= 4)
        {
            var buffer = new float[bytes / 4];
            world.AllreduceSum<float>(buffer); // warm-up
            int repeats = Math.Max(5, (64 << 20) / bytes);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            for (int r = 0; r < repeats; r++) world.AllreduceSum<float>(buffer);
            double seconds = clock.Elapsed.TotalSeconds / repeats;
            report?.WriteLine($"{bytes} {seconds * 1e6:F1}");
            if (world.IsRoot) Console.WriteLine($"allreduce of {bytes,10:N0} bytes over {world.Size} processes: {seconds * 1e6,9:F1} µs, {bytes / seconds / 1e9:F2} GB/s");
        }
        return 0;
    }
    default:
    {
        using var world = Communicator.FromEnvironment();
        // Different seeds on purpose: the trainer must start every rank from rank 0's parameters.
        var net = new ProbeCnn(seed: 3 + 100 * world.Rank);
        try
        {
            using var trainer = new DistributedTrainer<float>(net, new Sgd(lr: 0.05, momentum: 0.9), Loss.CrossEntropy, GlobalBatch, world);
            if (world.IsRoot) Console.WriteLine(trainer.DescribePlan());
            for (int s = 0; s < Steps; s++)
            {
                if (s == 3 && world.Rank == 1 && mode == "hang") Thread.Sleep(Timeout.Infinite);
                if (s == 3 && world.Rank == 1 && mode == "crash") Environment.Exit(5);
                var (start, count) = DistributedTrainer<float>.Shard(s * GlobalBatch, GlobalBatch, world.Rank, world.Size);
                float loss = trainer.Step(data.X.AsSpan(start * ProbeCnn.InputSize, count * ProbeCnn.InputSize), data.Y.AsSpan(start, count));
                if (world.IsRoot && s % 5 == 0) Console.WriteLine($"step {s}: loss {loss:F4}");
            }
            Write(Path.Combine(output, $"rank{world.Rank}.bin"), net.ParameterData);
            Console.WriteLine($"rank {world.Rank} of {world.Size} done; waited {trainer.CommunicationWait.TotalMilliseconds:F1} ms for allreduces");
            return 0;
        }
        catch (CommunicationTimeoutException e)
        {
            Console.Error.WriteLine(e.Message);
            world.Abort(3);
            return 3;
        }
    }
}

static (float[] X, int[] Y) Data(int n)
{
    var x = new float[n * ProbeCnn.InputSize];
    var y = new int[n];
    var random = new Random(42);
    for (int i = 0; i < x.Length; i++) x[i] = (float)(random.NextDouble() * 2 - 1);
    for (int i = 0; i < n; i++) y[i] = random.Next(ProbeCnn.OutputSize);
    return (x, y);
}

static void Write(string path, ReadOnlySpan<float> values)
{
    using var file = File.Create(path);
    file.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values));
}

/// <summary>A small CNN without dropout or batch norm, so that 2 × 32 equals 1 × 64 up to rounding.</summary>
[Network(GradientBucketBytes = 4096)]
public partial class ProbeCnn
{
    readonly Conv2d conv1 = new(1, 4, kernel: 3, padding: 1);
    readonly Conv2d conv2 = new(4, 8, kernel: 3, padding: 1);
    readonly Linear fc1 = new(8 * 4 * 4, 32);
    readonly Linear fc2 = new(32, 5);

    Tensor Forward([Shape(1, 8, 8)] Tensor x)
    {
        x = Relu(conv1.Apply(x));
        x = MaxPool2d(Relu(conv2.Apply(x)), 2);
        return fc2.Apply(Tanh(fc1.Apply(Flatten(x))));
    }
}
