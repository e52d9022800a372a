using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using NetDsl.Runtime.Checkpoints;
using NetDsl.Runtime.Data;
using NetDsl.Runtime.Logging;
using NetDsl.Runtime.Tests.Networks;
using NetDsl.Runtime.Tests.Support;
using NetDsl.Runtime.Training;
using Xunit;
using Xunit.Abstractions;

namespace NetDsl.Runtime.Tests;

/// <summary>
/// The catalog of bad input at run time (each case: the exception type and a message naming the expected value),
/// files that are corrupt or interrupted, and the resource soak.
/// </summary>
public sealed class ReliabilityTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("netdsl-rel-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    // ---- run-time input -----------------------------------------------------------------------------------

    [Fact]
    public void NonFiniteInputsAndTargetsAreRejectedNamingTheElement()
    {
        var net = new Mlp(1);
        using var trainer = net.CreateTrainer(new Sgd(lr: 0.1), Loss.CrossEntropy, batchSize: 4);
        var x = new float[2 * 20];
        x[27] = float.NaN;
        var e = Assert.Throws<ArgumentException>(() => trainer.Step(x, new[] { 0, 1 }));
        Assert.Equal("inputs", e.ParamName);
        Assert.Contains("input element 27 (sample 1, position 7) is NaN; every input must be a finite number", e.Message);
        x[27] = float.PositiveInfinity;
        e = Assert.Throws<ArgumentException>(() => trainer.ComputeGradients(x, new[] { 0, 1 }));
        Assert.Contains("is ∞", e.Message.Replace("Infinity", "∞"));
        Assert.Equal(0, trainer.StepCount);

        var linear = new LinearNet(1);
        using var mse = linear.CreateTrainer(new Sgd(lr: 0.1), Loss.MeanSquaredError, batchSize: 2);
        var targets = new float[4];
        targets[3] = float.NegativeInfinity;
        e = Assert.Throws<ArgumentException>(() => mse.Step(new float[5], targets.AsSpan(0, 4)));
        Assert.Contains("target element 3 (sample 0, position 3)", e.Message);
    }

    private delegate bool FiniteCheck(ReadOnlySpan<float> values);

    /// <summary>
    /// The check behind <see cref="Trainer{T}.CheckFinite"/> (every step's gradients): buffers from 64 Ki elements are
    /// split over the threads, so a NaN or an infinity must be found in any thread's slice, at either end of it, and a
    /// finite buffer (huge values, −0, subnormals) must pass, on both sides of the threshold.
    /// </summary>
    [Fact]
    public void TheFiniteCheckFindsANonFiniteValueAnywhereInLargeBuffers()
    {
        var check = typeof(Trainer<float>).GetMethod("AllFinite", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!
            .CreateDelegate<FiniteCheck>();
        foreach (int n in new[] { 1, 17, (1 << 16) - 1, 1 << 16, 235_146, (1 << 20) + 3 })
        {
            var values = new float[n];
            for (int i = 0; i < n; i++) values[i] = (i % 5) switch { 0 => float.MaxValue, 1 => -0f, 2 => float.Epsilon, 3 => -float.MaxValue, _ => i };
            Assert.True(check(values), $"n = {n}: finite values reported as non-finite");
            foreach (int at in new[] { 0, n / 4, n / 2 - 1, n / 2, n / 2 + 1, 3 * n / 4, n - 1 }.Where(i => i >= 0 && i < n).Distinct())
                foreach (float bad in new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity })
                {
                    float keep = values[at];
                    values[at] = bad;
                    Assert.False(check(values), $"n = {n}: {bad} at {at} not found");
                    values[at] = keep;
                }
        }
    }

    [Fact]
    public void ADivergedStepStopsWithTheStepAndLayerAndKeepsTheLastGoodParameters()
    {
        var net = new BatchNorm1dNet(1);
        using var trainer = net.CreateTrainer(new Sgd(lr: 0.1), Loss.CrossEntropy, batchSize: 4);
        var x = Numerics.Uniform<float>(4 * 5, seed: 1);
        var labels = new[] { 0, 1, 2, 3 };
        trainer.Step(x, labels);
        trainer.Step(x, labels);
        var parameters = net.ParameterData.ToArray();
        var state = net.StateData.ToArray();

        // Inputs of 3e38 overflow the first layer: the batch statistics become infinite and the loss NaN.
        var huge = x.Select(v => v * 3e38f).ToArray();
        var e = Assert.Throws<TrainingDivergedException>(() => trainer.Step(huge, labels));
        Assert.Equal(3, e.Step);
        Assert.Equal("fc2.bias", e.Parameter);
        Assert.Contains("Training diverged at step 3: the loss is NaN and the gradient of fc2.bias", e.Message);
        Assert.Contains("The update was not applied", e.Message);
        Assert.Equal(parameters, net.ParameterData.ToArray());
        Assert.Equal(state, net.StateData.ToArray());
        Assert.Equal(2, trainer.StepCount);

        // Training goes on from the last good step; with the check off, the NaN is returned instead.
        trainer.Step(x, labels);
        trainer.CheckFinite = false;
        Assert.True(float.IsNaN(trainer.Step(huge, labels)));
    }

    [Fact]
    public void LearningRatesMustBeFiniteAndNotNegative()
    {
        foreach (double lr in new[] { -0.1, double.NaN, double.PositiveInfinity })
        {
            var e = Assert.Throws<ArgumentOutOfRangeException>(() => new Sgd(lr: lr));
            Assert.Contains("The learning rate must be a finite number >= 0", e.Message);
            Assert.Throws<ArgumentOutOfRangeException>(() => new Adam(lr: lr));
            var adam = new AdamW();
            Assert.Throws<ArgumentOutOfRangeException>(() => adam.LearningRate = lr);
            Assert.Equal(1e-3, adam.LearningRate);
        }
    }

    [Fact]
    public async Task ATrainerUsedFromTwoThreadsDetectsItAndStaysCorrect()
    {
        var net = new SeedCnn(1);
        var x = Numerics.Uniform<float>(8 * 3 * 32 * 32, seed: 1);
        var labels = Numerics.Labels(8, 10, seed: 2);
        int steps = 0, refused = 0;
        using (var trainer = net.CreateTrainer(new Sgd(lr: 0.01, momentum: 0.9), Loss.CrossEntropy, batchSize: 8))
        {
            using var done = new CancellationTokenSource();
            var other = Task.Run(() =>
            {
                while (!done.IsCancellationRequested)
                {
                    try { trainer.Step(x, labels); }
                    catch (InvalidOperationException ex) when (ex.Message.Contains("already running a step on another thread", StringComparison.Ordinal)) { Interlocked.Increment(ref refused); continue; }
                    Interlocked.Increment(ref steps);
                }
            });
            var clock = Stopwatch.StartNew();
            while (Volatile.Read(ref refused) == 0 && clock.Elapsed < TimeSpan.FromSeconds(20))
            {
                try
                {
                    trainer.Step(x, labels);
                    Interlocked.Increment(ref steps);
                }
                catch (InvalidOperationException) { Interlocked.Increment(ref refused); }
            }
            done.Cancel();
            await other;
        }
        Assert.True(refused > 0, "two threads never overlapped in 20 s");

        // Refused calls changed nothing: the result is that of the same number of steps in sequence.
        var reference = new SeedCnn(1);
        using (var trainer = reference.CreateTrainer(new Sgd(lr: 0.01, momentum: 0.9), Loss.CrossEntropy, batchSize: 8))
            for (int i = 0; i < steps; i++) trainer.Step(x, labels);
        Assert.Equal(reference.ParameterData.ToArray(), net.ParameterData.ToArray());
    }

    [Fact]
    public void ShortOrWrongSpansAreRejectedAtEveryEntryPoint()
    {
        var net = new SeedCnn(1);
        int input = 3 * 32 * 32;
        using var trainer = net.CreateTrainer(new Adam(), Loss.CrossEntropy, batchSize: 4);
        void Rejects(Action call, string expected)
        {
            var e = Record.Exception(call);
            Assert.IsAssignableFrom<ArgumentException>(e);
            Assert.Contains(expected, e!.Message);
        }
        Rejects(() => net.Predict(new float[input - 1], new float[10]), $"expected a positive multiple of {input}");
        Rejects(() => net.Predict(Array.Empty<float>(), Array.Empty<float>()), $"expected a positive multiple of {input}");
        Rejects(() => net.Predict(new float[input], new float[9]), "a batch of 1 needs 10");
        Rejects(() => net.Predict(new float[input], new float[11]), "a batch of 1 needs 10");
        Rejects(() => trainer.Predict(new float[2 * input], new float[10]), "a batch of 2 needs 20");
        Rejects(() => trainer.Step(new float[input + 5], new int[1]), $"expected a positive multiple of {input}");
        Rejects(() => trainer.Step(new float[input], Array.Empty<int>()), "0 labels for 1 samples");
        Rejects(() => trainer.ComputeGradients(new float[input], new int[2]), "2 labels for 1 samples");
        Rejects(() => trainer.Step(new float[5 * input], new int[5]), "at most 4");
        Rejects(() => net.Parameter("fc3.weight"), "no parameter named 'fc3.weight'");
        Rejects(() => net.State("bn.running_mean"), "no state tensor named 'bn.running_mean'");
        Rejects(() => trainer.ClipGradientNorm(0), "must be positive");
        using var wrongShape = new DataLoader(new Dataset(new float[8 * 10], new int[8], [10]), 4);
        Rejects(() => trainer.Evaluate(wrongShape), $"takes {input}");
        Rejects(() => _ = new Dataset(new float[10], new int[3], [4]), "not a multiple of the sample size 4");
        Rejects(() => _ = new Dataset(new float[8], new int[3], [4]), "3 labels for 2 samples");
        Assert.Throws<ArgumentOutOfRangeException>(() => new DataLoader(new Dataset(new float[8], new int[2], [4]), 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => net.CreateTrainer(new Adam(), Loss.CrossEntropy, batchSize: 0));
        var ids = new EmbeddingNet(1);
        var bad = Assert.Throws<ArgumentOutOfRangeException>(() => ids.Predict(new float[] { 1, 2, 10, 3 }, new float[4]));
        Assert.Contains("Token id 10 at position 2 of the batch is not an integer in [0, 10)", bad.Message);
        bad = Assert.Throws<ArgumentOutOfRangeException>(() => ids.Predict(new float[] { 1, 2.5f, 0, 3 }, new float[4]));
        Assert.Contains("Token id 2.5", bad.Message);
    }

    // ---- files --------------------------------------------------------------------------------------------

    [Fact]
    public void TruncatedOrMistypedCheckpointsAreRefusedAndChangeNothing()
    {
        var source = new SeedCnn(1);
        string path = Path.Combine(_dir, "good.safetensors");
        Checkpoint.Save(path, source);
        var bytes = File.ReadAllBytes(path);
        var net = new SeedCnn(2);
        var before = net.ParameterData.ToArray();

        foreach (int keep in new[] { 4, 8, 100, bytes.Length / 2, bytes.Length - 1 })
        {
            string cut = Path.Combine(_dir, $"cut{keep}.safetensors");
            File.WriteAllBytes(cut, bytes.AsSpan(0, keep).ToArray());
            var e = Assert.Throws<InvalidDataException>(() => Checkpoint.Load(cut, net));
            Assert.Contains(cut, e.Message);
            Assert.Equal(before, net.ParameterData.ToArray());
        }

        // A float64 file for a float32 network.
        string f64 = Path.Combine(_dir, "f64.safetensors");
        SafeTensors.Write(f64, source.Description.Parameters.Select(p => SafeTensors.FromDoubles(p.Name, p.Shape.Select(v => (long)v).ToArray(), source.Parameter(p.Name).ToArray().Select(v => (double)v).ToArray())).ToList());
        var dtype = Assert.Throws<InvalidDataException>(() => Checkpoint.Load(f64, net));
        Assert.Contains("tensor 'conv1.weight' is F64; expected F32", dtype.Message);
        Assert.Equal(before, net.ParameterData.ToArray());
    }

    [Fact]
    public void AFailedSaveLeavesThePreviousFileIntactAndNoTemporaryFile()
    {
        string path = Path.Combine(_dir, "model.safetensors");
        var net = new Mlp(1);
        Checkpoint.Save(path, net);
        var good = File.ReadAllBytes(path);

        // A writer that dies half way through, as a crash or a full disk would.
        Assert.Throws<IOException>(() => AtomicFile.Write(path, stream =>
        {
            stream.Write(good.AsSpan(0, good.Length / 2));
            throw new IOException("disk full (simulated)");
        }));
        Assert.Equal(good, File.ReadAllBytes(path));
        Assert.Equal(new[] { "model.safetensors" }, Directory.GetFiles(_dir).Select(Path.GetFileName));
        Checkpoint.Load(path, new Mlp(3)); // still loads
    }

    [Fact]
    public void LogsCutMidRecordStillReadUpToTheLastCompleteRecord()
    {
        string dir = Path.Combine(_dir, "tb");
        string file;
        using (var writer = new TensorBoardWriter(dir))
        {
            for (int i = 0; i < 5; i++) writer.Scalar("loss", i, i);
            file = writer.Path;
            // While the writer is still open (as at a crash), every record so far is on disk.
            using var read = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            Assert.Equal(6, CompleteRecords(ReadAll(read)));
        }
        var bytes = File.ReadAllBytes(file);
        for (int cut = bytes.Length - 1; cut > 0; cut -= 7)
            Assert.True(CompleteRecords(bytes.AsSpan(0, cut).ToArray()) >= (cut >= bytes.Length - 30 ? 5 : 0));

        // The CSV is flushed a line at a time.
        var net = new ReluNet(1);
        using var trainer = net.CreateTrainer(new Sgd(lr: 0.1), Loss.CrossEntropy, 4);
        using var loader = new DataLoader(new Dataset(Numerics.Uniform<float>(8 * 5, 1), Numerics.Labels(8, 4, 2), [5]), 4);
        var log = new TrainingLog("csv", _dir);
        trainer.Fit(loader, new FitOptions { Epochs = 2, Log = log, Output = null });
        using (var read = new FileStream(Path.Combine(_dir, "csv", "metrics.csv"), FileMode.Open, FileAccess.Read, FileShare.ReadWrite))
            Assert.Equal(3, new StreamReader(read).ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
        log.Dispose();
    }

    private static byte[] ReadAll(Stream s)
    {
        using var m = new MemoryStream();
        s.CopyTo(m);
        return m.ToArray();
    }

    /// <summary>Records whose length and data CRCs check, read as TensorBoard reads: stop at the first incomplete one.</summary>
    private static int CompleteRecords(byte[] file)
    {
        int count = 0;
        for (int at = 0; at + 12 <= file.Length;)
        {
            long length = BitConverter.ToInt64(file, at);
            if (length < 0 || at + 12 + length + 4 > file.Length) break;
            if (BitConverter.ToUInt32(file, at + 8) != Crc32C.Mask(Crc32C.Compute(file.AsSpan(at, 8)))) break;
            if (BitConverter.ToUInt32(file, at + 12 + (int)length) != Crc32C.Mask(Crc32C.Compute(file.AsSpan(at + 12, (int)length)))) break;
            count++;
            at += 12 + (int)length + 4;
        }
        return count;
    }

    [Fact]
    public void MalformedIdxFilesNameTheOffset()
    {
        string path = Path.Combine(_dir, "labels.idx");
        File.WriteAllBytes(path, new byte[] { 0, 0, 8, 1, 0, 0, 0, 10, 1, 2, 3 });
        var e = Assert.Throws<InvalidDataException>(() => Idx.ReadLabels(path));
        Assert.Contains("declares 10 data bytes (10) but 3 follow it at offset 8; the file is truncated", e.Message);
        File.WriteAllBytes(path, new byte[] { 0, 0, 8, 1, 0, 0 });
        e = Assert.Throws<InvalidDataException>(() => Idx.ReadLabels(path));
        Assert.Contains("ends at offset 6, inside the IDX header", e.Message);
        File.WriteAllBytes(path, new byte[] { 0, 0, 9, 1, 0, 0, 0, 0 });
        e = Assert.Throws<InvalidDataException>(() => Idx.ReadLabels(path));
        Assert.Contains("bad IDX magic number at offset 0", e.Message);
        File.WriteAllBytes(path, new byte[] { 0x1F, 0x8B, 8, 0, 1, 2, 3 });
        e = Assert.Throws<InvalidDataException>(() => Idx.ReadLabels(path));
        Assert.Contains("gzip", e.Message);
        File.WriteAllText(Path.Combine(_dir, "empty.csv"), "a,b\n");
        e = Assert.Throws<InvalidDataException>(() => Csv.ReadRegression(Path.Combine(_dir, "empty.csv")));
        Assert.Contains("no data rows", e.Message);
    }
}

/// <summary>Tests that measure the whole process (its private memory) and so must not share it with other tests.</summary>
[CollectionDefinition(nameof(WholeProcess), DisableParallelization = true)]
public sealed class WholeProcess;

/// <summary>The resource soak: steps and trainers leave the managed heap and the process's memory flat.</summary>
[Collection(nameof(WholeProcess))]
public sealed class SoakTests(ITestOutputHelper output)
{
    [Fact]
    public void TenThousandStepsAndAThousandTrainersLeaveMemoryFlat()
    {
        var net = new Mlp(1);
        var x = Numerics.Uniform<float>(16 * 20, seed: 1);
        var labels = Numerics.Labels(16, 4, seed: 2);
        using (var warm = net.CreateTrainer(new Adam(), Loss.CrossEntropy, 16))
            for (int i = 0; i < 100; i++) warm.Step(x, labels);
        Settle();
        long managed0 = GC.GetTotalMemory(forceFullCollection: true);
        long process0 = Process.GetCurrentProcess().PrivateMemorySize64;
        long allocated0 = GC.GetTotalAllocatedBytes(precise: true);

        using (var trainer = net.CreateTrainer(new Adam(), Loss.CrossEntropy, 16))
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 10_000; i++) trainer.Step(x, labels);
            long perStep = (GC.GetAllocatedBytesForCurrentThread() - before) / 10_000;
            Assert.Equal(0, perStep);
        }
        for (int i = 0; i < 1000; i++)
        {
            using var trainer = net.CreateTrainer(new Adam(), Loss.CrossEntropy, 16);
            trainer.Step(x, labels);
        }
        Settle();
        long managed1 = GC.GetTotalMemory(forceFullCollection: true);
        long process1 = Process.GetCurrentProcess().PrivateMemorySize64;
        output.WriteLine($"managed heap after warm-up {managed0:N0} B, after 10,000 steps and 1,000 trainers {managed1:N0} B ({managed1 - managed0:+#,0;-#,0;0} B); " +
            $"process private memory {process0:N0} → {process1:N0} B; allocated in total {GC.GetTotalAllocatedBytes(precise: true) - allocated0:N0} B (the trainers' own buffers)");
        Assert.True(managed1 - managed0 < 1_000_000, $"the managed heap grew by {managed1 - managed0:N0} bytes");
        Assert.True(process1 - process0 < 64L << 20, $"private memory grew by {process1 - process0:N0} bytes");
    }

    /// <summary>A full, compacting collection that also returns freed segments to the operating system.</summary>
    private static void Settle()
    {
        GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
    }
}
