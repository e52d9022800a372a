using System;
using System.Collections.Generic;
using System.Linq;
using System.Numerics;
using System.Reflection;
using System.Runtime.InteropServices;
using NetDsl.Runtime.Cpu;
using NetDsl.Runtime.Tests.Support;
using Xunit;

namespace NetDsl.Runtime.Tests;

/// <summary>
/// <c>Predict</c> splits a large batch over the threads by samples, each thread running the whole network on its
/// share. Every output must be bit for bit what the unsplit batch gives, for every operation (each network of the
/// test suite, float and double), whatever the shares (uneven thread speeds, shares run in pieces). The switches
/// are the runtime's internal ones, so these tests run alone (they would change how other tests' batches run).
/// </summary>
[Collection(nameof(WholeProcess))]
public sealed class BatchSplitTests : IDisposable
{
    private static readonly Type Switches = typeof(CompiledNetwork<float>).Assembly.GetType("NetDsl.Runtime.BatchSplit")!;
    private readonly bool _enabled = Get<bool>("Enabled");
    private readonly long _minFlops = Get<long>("MinFlops"), _pieceBytes = Get<long>("PieceBytes");

    private static T Get<T>(string name) => (T)Field(name).GetValue(null)!;
    private static void Set(string name, object value) => Field(name).SetValue(null, value);
    private static FieldInfo Field(string name) => Switches.GetField(name, BindingFlags.NonPublic | BindingFlags.Static)!;

    private static readonly Action<int[], double[], int, int> Split = typeof(CpuWorkers)
        .GetMethod("Split", BindingFlags.NonPublic | BindingFlags.Static)!.CreateDelegate<Action<int[], double[], int, int>>();

    private static readonly Action<double[]> SetSpeeds = typeof(CpuWorkers)
        .GetMethod("SetSpeeds", BindingFlags.NonPublic | BindingFlags.Static)!.CreateDelegate<Action<double[]>>();

    public void Dispose()
    {
        Set("Enabled", _enabled);
        Set("MinFlops", _minFlops);
        Set("PieceBytes", _pieceBytes);
        if (CpuWorkers.Count > 1) SetSpeeds(Enumerable.Repeat(1.0, CpuWorkers.Count).ToArray());
    }

    /// <summary>Every network class of the test assembly (float, and double from the F64 namespace).</summary>
    public static IEnumerable<object[]> Networks() => typeof(BatchSplitTests).Assembly.GetTypes()
        .Where(t => !t.IsAbstract && t.Namespace is "NetDsl.Runtime.Tests.Networks" or "NetDsl.Runtime.Tests.Networks.F64"
                    && (typeof(CompiledNetwork<float>).IsAssignableFrom(t) || typeof(CompiledNetwork<double>).IsAssignableFrom(t)))
        .OrderBy(t => t.FullName, StringComparer.Ordinal)
        .Select(t => new object[] { t.FullName! });

    [SkippableTheory]
    [MemberData(nameof(Networks))]
    public void SplitBatchesPredictAsWholeOnesBitForBit(string typeName)
    {
        Skip.If(CpuWorkers.Count < 2, "One thread: Predict never splits a batch.");
        var type = typeof(BatchSplitTests).Assembly.GetType(typeName)!;
        if (typeof(CompiledNetwork<float>).IsAssignableFrom(type)) Check<float>(type);
        else Check<double>(type);
    }

    private void Check<T>(Type type) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var net = (CompiledNetwork<T>)Activator.CreateInstance(type, 7)!;
        var d = net.Description;
        Assert.True(d.FlopsPerSample > 0, $"{type.Name}: the generator gave no FLOP count");
        // Token inputs are small whole numbers (the embedding table's rows); the rest are uniform in [-1, 1).
        bool tokens = type.Name.Contains("Embedding", StringComparison.Ordinal);
        Set("MinFlops", 0L); // split even these small networks
        foreach (int batch in new[] { 32, 37, 100, 300 })
        {
            var x = tokens ? Numerics.Uniform<T>(batch * d.InputSize, batch, 0, 10) : Numerics.Uniform<T>(batch * d.InputSize, batch);
            if (tokens) for (int i = 0; i < x.Length; i++) x[i] = T.Floor(x[i]);
            var whole = new T[batch * d.OutputSize];
            Set("Enabled", false);
            net.Predict(x, whole);
            Set("Enabled", true);
            // Even shares; shares run in the smallest pieces a split allows (32 samples of activations: a share of
            // 150 runs as 5 pieces of 30); then shares skewed 4:1 (the first thread takes about 80 %).
            foreach (var (speed, pieces) in new[] { (1.0, false), (1.0, true), (4.0, true) })
            {
                if (CpuWorkers.Count > 1) SetSpeeds([speed, .. Enumerable.Repeat(1.0, CpuWorkers.Count - 1)]);
                // Pieces of 32 samples, or the default 1 MiB (raised for networks with larger activations, so that
                // they split too).
                Set("PieceBytes", pieces ? 2L * 16 * SampleBytes<T>(d) : Math.Max(_pieceBytes, 2L * 16 * SampleBytes<T>(d)));
                var split = new T[whole.Length];
                net.Predict(x, split);
                if (!MemoryMarshal.AsBytes(whole.AsSpan()).SequenceEqual(MemoryMarshal.AsBytes(split.AsSpan())))
                {
                    int i = Enumerable.Range(0, whole.Length).First(j => !MemoryMarshal.AsBytes(whole.AsSpan(j, 1)).SequenceEqual(MemoryMarshal.AsBytes(split.AsSpan(j, 1))));
                    Assert.Fail($"{type.Name}, batch {batch}, speed {speed}, pieces {pieces}: output {i} is {split[i]} split, {whole[i]} whole");
                }
            }
            Set("PieceBytes", _pieceBytes);
        }
        Assert.NotNull(ChunkWorkspaces(net)); // the batches were split
    }

    private static unsafe long SampleBytes<T>(NetworkDescription d) where T : unmanaged
        => (long)d.InferencePlan.ActivationsPerSample * sizeof(T) + (long)d.InferencePlan.IndicesPerSample * sizeof(int);

    private static object? ChunkWorkspaces<T>(CompiledNetwork<T> net) where T : unmanaged, IFloatingPointIeee754<T>
        => typeof(CompiledNetwork<T>).GetField("_chunkWorkspaces", BindingFlags.NonPublic | BindingFlags.Instance)!.GetValue(net);

    private static object? WholeWorkspace<T>(CompiledNetwork<T> net) where T : unmanaged, IFloatingPointIeee754<T>
        => typeof(CompiledNetwork<T>).GetField("_inferenceWorkspace", BindingFlags.NonPublic | BindingFlags.Instance)!.GetValue(net);

    [SkippableFact]
    public void OnlyLargeBatchesOfNetworksWithSmallActivationsAreSplit()
    {
        Skip.If(CpuWorkers.Count < 2, "One thread: Predict never splits a batch.");
        // W-mlp's shape: 1.5 KiB of activations a sample, 470 kFLOP: a batch of 256 is split, one of 8 is not.
        var mlp = new SessionMlp(1);
        mlp.Predict(Numerics.Uniform<float>(8 * 784, 1), new float[8 * 10]);
        Assert.Null(ChunkWorkspaces(mlp));
        Assert.NotNull(WholeWorkspace(mlp));
        mlp.Predict(Numerics.Uniform<float>(256 * 784, 1), new float[256 * 10]);
        Assert.NotNull(ChunkWorkspaces(mlp));

        // 32 samples of this CNN's activations (32 × 28 × 28 and more each) exceed a piece: it runs whole.
        var cnn = new WideConvNet(1);
        Assert.True(2 * 16 * SampleBytes<float>(cnn.Description) > Get<long>("PieceBytes"));
        cnn.Predict(Numerics.Uniform<float>(256 * 784, 1), new float[256 * 10]);
        Assert.Null(ChunkWorkspaces(cnn));

        // A small network's small batch is not worth waking a thread for (below MinFlops).
        var tiny = new Networks.ReluNet(1);
        tiny.Predict(Numerics.Uniform<float>(256 * 5, 1), new float[256 * 4]);
        Assert.Null(ChunkWorkspaces(tiny));
    }

    [SkippableFact]
    public void SplitPredictAllocatesNothingOnceWarmWhateverTheShares()
    {
        Skip.If(CpuWorkers.Count < 2, "One thread: Predict never splits a batch.");
        var session = new SessionMlp(3).CreateInferenceSession();
        var net = new SessionMlp(3);
        var x = Numerics.Uniform<float>(256 * 784, 1);
        var y = new float[256 * 10];
        for (int i = 0; i < 3; i++) { session.Predict(x, y); net.Predict(x, y); }
        // The calling thread's allocations and each worker's, counted around the calls only (the test runner's own
        // threads may allocate meanwhile; setting the speeds allocates an array).
        var speeds = new[] { 1.0, 4.0, 0.25, 1.0 }.Select(v => new[] { v }.Concat(Enumerable.Repeat(1.0, CpuWorkers.Count - 1)).ToArray()).ToArray();
        foreach (var shares in speeds)
            AssertNothingAllocated($"speeds {shares[0]}", shares, () =>
            {
                for (int i = 0; i < 5; i++) { session.Predict(x, y); net.Predict(x, y); }
            });
    }

    [SkippableFact]
    public void AThreadWhoseShareWasEmptyWhenWarmingUpAllocatesNothingLater()
    {
        Skip.If(CpuWorkers.Count < 2, "One thread: Predict never splits a batch.");
        var net = new SessionMlp(3);
        var x = Numerics.Uniform<float>(32 * 784, 1);
        var y = new float[32 * 10];
        // Two chunks of 16 samples; at these speeds the first thread takes both and the others none (checked on the
        // runtime's own split: with many threads even a 4 : 0.25 skew leaves a chunk to the second).
        double[] skewed = [4.0, .. Enumerable.Repeat(0.25, CpuWorkers.Count - 1)];
        var bounds = new int[CpuWorkers.Count + 1];
        Split(bounds, skewed, 2, 1);
        Skip.If(bounds[1] != 2, $"With {CpuWorkers.Count} threads the skewed split is [{string.Join(", ", bounds)}], not one thread taking both chunks.");
        SetSpeeds(skewed);
        for (int i = 0; i < 3; i++) net.Predict(x, y);
        // Equal speeds from here on: two threads get a share.
        AssertNothingAllocated("equal speeds after a skewed warm-up", speeds: null, () =>
        {
            for (int i = 0; i < 5; i++) net.Predict(x, y);
        });
    }

    [SkippableFact]
    public void AShortLastBatchAfterSplitOnesRunsInTheSplitsWorkspace()
    {
        Skip.If(CpuWorkers.Count < 2, "One thread: Predict never splits a batch.");
        // An evaluation in batches of 256 whose last batch has 20 samples (too few to split: one chunk).
        var net = new SessionMlp(3);
        var x = Numerics.Uniform<float>(256 * 784, 1);
        var y = new float[256 * 10];
        net.Predict(x, y);
        Assert.NotNull(ChunkWorkspaces(net));
        var shortX = x.AsSpan(0, 20 * 784).ToArray();
        var shortY = new float[20 * 10];
        long before = GC.GetAllocatedBytesForCurrentThread();
        net.Predict(shortX, shortY);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.Null(WholeWorkspace(net));
        // The first 20 samples' outputs are those of the split batch.
        Assert.True(y.AsSpan(0, 20 * 10).SequenceEqual(shortY));
    }

    /// <summary>
    /// Runs <paramref name="calls"/> at <paramref name="speeds"/> (null: equal) and asserts that neither the calling
    /// thread nor any worker allocated.
    /// </summary>
    private static void AssertNothingAllocated(string what, double[]? speeds, Action calls)
    {
        var workers = WorkerAllocations(); // runs with equal speeds
        if (speeds is not null) SetSpeeds(speeds);
        long caller = GC.GetAllocatedBytesForCurrentThread();
        calls();
        caller = GC.GetAllocatedBytesForCurrentThread() - caller;
        var after = WorkerAllocations();
        Assert.True(caller == 0, $"{what}: the calling thread allocated {caller} bytes");
        foreach (var (thread, bytes) in workers)
            if (after.TryGetValue(thread, out long now)) Assert.True(now == bytes, $"{what}: worker thread {thread} allocated {now - bytes} bytes");
    }

    /// <summary>What each worker thread has allocated so far, by managed thread id (the calling thread left out).</summary>
    private static unsafe Dictionary<int, long> WorkerAllocations()
    {
        SetSpeeds(Enumerable.Repeat(1.0, CpuWorkers.Count).ToArray());
        var result = new Dictionary<int, long>();
        var probe = new Probe { Ids = new int[CpuWorkers.Count * 4], Bytes = new long[CpuWorkers.Count * 4] };
        for (int attempt = 0; attempt < 50 && result.Count < CpuWorkers.Count - 1; attempt++)
        {
            probe.Next = 0;
            CpuWorkers.Run(ref probe, &Record, CpuWorkers.Count * 1000, 1000);
            for (int i = 0; i < probe.Next; i++)
                if (probe.Ids[i] != Environment.CurrentManagedThreadId) result[probe.Ids[i]] = probe.Bytes[i];
        }
        Assert.Equal(CpuWorkers.Count - 1, result.Count); // every worker ran a chunk
        return result;
    }

    private struct Probe
    {
        public int[] Ids;
        public long[] Bytes;
        public int Next;
    }

    private static void Record(ref Probe probe, int start, int end)
    {
        if (start >= end) return;
        System.Threading.Thread.Sleep(1); // long enough for every worker to wake and claim its own chunk
        int slot = System.Threading.Interlocked.Increment(ref probe.Next) - 1;
        probe.Ids[slot] = Environment.CurrentManagedThreadId;
        probe.Bytes[slot] = GC.GetAllocatedBytesForCurrentThread();
    }
}

/// <summary>A CNN whose activations (100 KiB a sample after the first convolution) are too large to split a batch by.</summary>
[Network]
public partial class WideConvNet
{
    readonly Conv2d conv = new(1, 32, kernel: 3, padding: 1);
    readonly Linear fc = new(32 * 14 * 14, 10);
    Tensor Forward([Shape(1, 28, 28)] Tensor x) => fc.Apply(Flatten(MaxPool2d(Relu(conv.Apply(x)), 2)));
}
