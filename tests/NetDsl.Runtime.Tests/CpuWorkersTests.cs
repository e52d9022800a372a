using System;
using System.Runtime.CompilerServices;
using NetDsl.Runtime.Cpu;
using NetDsl.Runtime.Tests.Support;
using Xunit;

namespace NetDsl.Runtime.Tests;

/// <summary>How parallel regions split their work between threads of different speeds.</summary>
public class CpuWorkersTests
{
    // Internal to the runtime (the generated networks in this assembly must not see its internals).
    private static readonly Action<int[], double[], int, int> Split = Internal<Action<int[], double[], int, int>>("Split");
    private static readonly Func<int[], long[], double[], long, long, bool> Learn = Internal<Func<int[], long[], double[], long, long, bool>>("Learn");
    private static readonly Action<double[]> SetSpeeds = Internal<Action<double[]>>("SetSpeeds");

    private static T Internal<T>(string name) where T : Delegate
        => typeof(CpuWorkers).GetMethod(name, System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!.CreateDelegate<T>();

    [Theory]
    [InlineData(new[] { 1.0, 1.0 }, 1000, 32, new[] { 0, 512, 1000 })]
    [InlineData(new[] { 3.0, 1.0 }, 1000, 32, new[] { 0, 768, 1000 })]    // 32 blocks of 32: 24 and 8
    [InlineData(new[] { 1.0, 3.0 }, 1000, 32, new[] { 0, 256, 1000 })]
    [InlineData(new[] { 1.04, 0.96 }, 1000, 32, new[] { 0, 512, 1000 })]  // within 10 %: equal shares
    [InlineData(new[] { 1.06, 0.94 }, 1000, 32, new[] { 0, 544, 1000 })]  // beyond: 17 of 32 blocks
    [InlineData(new[] { 1.0, 1.0, 1.0 }, 10, 4, new[] { 0, 4, 8, 10 })]   // 3 blocks, the last one short
    [InlineData(new[] { 0.25, 4.0 }, 64, 1, new[] { 0, 4, 64 })]
    [InlineData(new[] { 4.0, 0.25 }, 3, 8, new[] { 0, 3, 3 })]           // one block: the slow thread gets nothing
    public void SplitFollowsTheSpeedsOnAlignedBoundaries(double[] speeds, int total, int align, int[] expected)
    {
        var bounds = new int[speeds.Length + 1];
        Split(bounds, speeds, total, align);
        Assert.Equal(expected, bounds);
    }

    [Fact]
    public void SplitBoundariesAreAlignedOrderedAndCoverTheRange()
    {
        var random = new Random(7);
        for (int trial = 0; trial < 2000; trial++)
        {
            int count = random.Next(1, 6), total = random.Next(0, 5000), align = random.Next(1, 65);
            var speeds = new double[count];
            for (int i = 0; i < count; i++) speeds[i] = 0.25 + 3.75 * random.NextDouble();
            var bounds = new int[count + 1];
            Split(bounds, speeds, total, align);
            Assert.Equal(0, bounds[0]);
            Assert.Equal(total, bounds[count]);
            for (int i = 1; i < count; i++)
            {
                Assert.InRange(bounds[i], bounds[i - 1], total);
                Assert.True(bounds[i] % align == 0 || bounds[i] == total, $"boundary {bounds[i]} is not a multiple of {align}");
            }
        }
    }

    /// <summary>
    /// A thread that takes twice as long per element ends up with a third of the work, and both then take the
    /// same time; short chunks teach nothing; a thread that stalls keeps a quarter of an equal share.
    /// </summary>
    [Fact]
    public void LearningGivesASlowThreadASmallerShareUntilTimesAreEqual()
    {
        double[] speeds = [1, 1];
        var bounds = new int[3];
        var ticks = new long[2];
        double[] cost = [1000, 2000];   // ticks per element
        for (int call = 0; call < 40; call++)
        {
            Split(bounds, speeds, 1024, 8);
            for (int i = 0; i < 2; i++) ticks[i] = (long)((bounds[i + 1] - bounds[i]) * cost[i]);
            Assert.True(Learn(bounds, ticks, speeds, 1000, 1000));
        }
        Assert.InRange(speeds[0] / speeds[1], 1.9, 2.1);
        Assert.InRange(bounds[1], 672, 696);                      // two thirds of 1024, to a block of 8
        Assert.InRange(ticks[0] / (double)ticks[1], 0.95, 1.05);

        double[] before = [.. speeds];
        ticks[0] = 999;
        Assert.False(Learn(bounds, ticks, speeds, 1000, 1000));
        Assert.Equal(before, speeds);
        Assert.False(Learn([0, 0, 1024], [5000, 5000], speeds, 1000, 1000)); // an empty chunk
        Assert.Equal(before, speeds);

        // Chunks shorter than a full step's length move the speeds in proportion: a tenth as long, a tenth as far.
        double[] full = [1, 1], partial = [1, 1];
        Assert.True(Learn([0, 512, 1024], [512_000, 1_024_000], full, 1000, 512_000));
        Assert.True(Learn([0, 512, 1024], [51_200, 102_400], partial, 1000, 512_000));
        Assert.Equal(0.2 * (4.0 / 3 - 1), full[0] - 1, 9);
        Assert.Equal(0.02 * (4.0 / 3 - 1), partial[0] - 1, 9);

        cost[1] = 1e6;
        for (int call = 0; call < 40; call++)
        {
            Split(bounds, speeds, 1024, 8);
            for (int i = 0; i < 2; i++) ticks[i] = (long)((bounds[i + 1] - bounds[i]) * cost[i]);
            Learn(bounds, ticks, speeds, 1000, 1000);
        }
        Assert.Equal(0.25, speeds[1], 6);
        Assert.True(bounds[2] - bounds[1] > 0, "the slow thread keeps a share");
    }

    /// <summary>
    /// Products split over the workers come out bit for bit the same whatever shares the threads get: the
    /// packed path by columns, the dot-product path, the direct path's narrow transposed product, and the
    /// split by rows with its epilogue, which must also match the product computed without an epilogue, unsplit
    /// by rows.
    /// </summary>
    [Theory]
    [InlineData(false, false, 300, 1000, 200)]
    [InlineData(true, true, 157, 700, 300)]
    [InlineData(false, true, 3, 1000, 300)]
    [InlineData(false, true, 1, 256, 784)]
    [InlineData(false, true, 2000, 10, 300)]
    [InlineData(false, true, 256, 256, 784)]
    [InlineData(true, false, 2100, 2070, 37)] // by rows over two column blocks and a part panel
    [InlineData(false, true, 250, 100, 96)]   // rows not a whole number of 16-row chunks
    public void ProductsDoNotDependOnTheThreadsShares(bool ta, bool tb, int m, int n, int k)
    {
        var a = Numerics.Uniform<float>(m * k, 1);
        var b = Numerics.Uniform<float>(k * n, 2);
        var bias = Numerics.Uniform<float>(n, 3);
        double[][] shares = [[1, 1], [4, 1], [1, 4], [1, 2.5], [0.25, 1]];
        // The product without an epilogue (never split by rows), then the bias: what every split must give.
        var reference = new float[m * n];
        Gemm.Multiply<float>(ta, tb, m, n, k, a, b, reference, accumulate: false);
        for (int i = 0; i < reference.Length; i++) reference[i] += bias[i % n];
        try
        {
            foreach (var share in shares)
            {
                var c = new float[m * n];
                var speeds = new double[CpuWorkers.Count];
                for (int i = 0; i < speeds.Length; i++) speeds[i] = share[i % share.Length];
                SetSpeeds(speeds);
                var epilogue = new AddBias { C = c, Bias = bias, N = n };
                Gemm.Multiply<float, AddBias>(ta, tb, m, n, k, a, b, c, accumulate: false, ref epilogue, period: n);
                for (int i = 0; i < c.Length; i++)
                    Assert.True(BitConverter.SingleToInt32Bits(reference[i]) == BitConverter.SingleToInt32Bits(c[i]),
                        $"shares {string.Join(":", share)}: element {i} is {c[i]:R}, the product unsplit by rows gives {reference[i]:R}");
            }
        }
        finally
        {
            var equal = new double[CpuWorkers.Count];
            Array.Fill(equal, 1.0);
            SetSpeeds(equal);
        }
    }

    /// <summary>
    /// Regions of almost no work, back to back, are where a worker still leaving one region claims a chunk of the
    /// next while the caller reopens the claims. Resetting them with Array.Clear (which may write a short array
    /// twice) let a claim be undone: the chunk ran twice and the caller waited forever, within about half a
    /// million regions here. Every element must be counted exactly once, and the loop must finish.
    /// </summary>
    [Fact]
    public void BackToBackShortRegionsRunEveryChunkOnceAndReturn()
    {
        const int total = 1 << 15;
        long counted = 0, regions = 0;
        var loop = new System.Threading.Thread(() =>
        {
            var count = new CountElements { Counted = new StrongBox<long>(0) };
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (clock.ElapsedMilliseconds < 3000 && regions < 4_000_000)
            {
                CpuWorkers.ForEach(ref count, total, 1);
                regions++;
            }
            counted = count.Counted.Value;
        }) { IsBackground = true };
        loop.Start();
        Assert.True(loop.Join(TimeSpan.FromSeconds(30)), $"The regions stopped returning after about {regions} of them (a lost or doubled chunk).");
        Assert.Equal(regions * total, counted);
    }

    /// <summary>
    /// A chunk that throws, on the calling thread or a worker, reaches the caller as the exception it threw, and
    /// only once every other chunk has finished (they hold a pointer to the caller's stack); the workers go on
    /// serving regions afterwards.
    /// </summary>
    [Theory]
    [InlineData(true, false)]
    [InlineData(false, false)]
    [InlineData(false, true)] // every chunk throws: one exception reaches the caller, none is left for the next region
    public void AnExceptionInAChunkReachesTheCallerAfterEveryChunk(bool first, bool all)
    {
        const int total = 1 << 15;
        var failing = new CountThenThrow { Counted = new StrongBox<long>(0), ThrowInFirst = first, Both = all, Total = total };
        var e = Assert.Throws<InvalidOperationException>(() => CpuWorkers.ForEach(ref failing, total, 1));
        Assert.Equal("chunk failed", e.Message);
        Assert.Equal(total, failing.Counted.Value); // every chunk, the slow ones too, had finished

        var count = new CountElements { Counted = new StrongBox<long>(0) };
        for (int i = 0; i < 100; i++) CpuWorkers.ForEach(ref count, total, 1);
        Assert.Equal(100L * total, count.Counted.Value);
    }

    /// <summary>Counts its elements; the first (or last) chunk then throws, and every other chunk sleeps first.</summary>
    private struct CountThenThrow : IElementwise
    {
        public StrongBox<long> Counted;
        public bool ThrowInFirst, Both;
        public int Total;

        public void Run(int start, int end)
        {
            bool throws = ThrowInFirst ? start == 0 : end == Total || Both;
            if (!throws) System.Threading.Thread.Sleep(100);
            System.Threading.Interlocked.Add(ref Counted.Value, end - start);
            if (throws) throw new InvalidOperationException("chunk failed");
        }
    }

    private struct CountElements : IElementwise
    {
        public StrongBox<long> Counted;

        public void Run(int start, int end) => System.Threading.Interlocked.Add(ref Counted.Value, end - start);
    }

    private ref struct AddBias : IElementwise
    {
        public Span<float> C;
        public ReadOnlySpan<float> Bias;
        public int N;

        public void Run(int start, int end)
        {
            for (int i = start; i < end; i++) C[i] += Bias[i % N];
        }
    }
}
