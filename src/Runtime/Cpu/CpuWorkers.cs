using System;
using System.Runtime.CompilerServices;
using System.Diagnostics;
using System.Runtime.ExceptionServices;
using System.Threading;

namespace NetDsl.Runtime.Cpu;

/// <summary>
/// The worker threads kernels split their work over: the calling thread plus <see cref="Count"/> − 1 persistent
/// background threads. A parallel region costs no allocation: the job stays on the caller's stack and workers
/// receive a pointer to it. Idle workers spin briefly (a training step launches regions back to back) and then
/// sleep. One region runs at a time; a caller that finds the workers busy (another trainer, or a nested region)
/// runs its whole range itself. Each thread's share of a region follows its speed over recent regions, so a
/// core that runs slower for a while (a busy hyperthread sibling on a shared host) does not keep the others
/// waiting.
/// </summary>
public static unsafe class CpuWorkers
{
    /// <summary>How long an idle worker spins before it sleeps: long enough to bridge the gaps between a step's kernels.</summary>
    private static readonly long SpinTicks = Stopwatch.Frequency / 20000; // 50 µs

    private static readonly object Gate = new();
    private static Worker[]? s_workers;
    private static int s_count = DefaultCount();
    private static int s_busy;

    // The current region, published by the caller before it bumps the generation.
    private static void* s_job;
    private static delegate*<void*, int, int, void> s_body;
    private static int s_pending;
    private static int[] s_claims = [];
    private static int s_total;
    private static int s_align;
    private static int[] s_bounds = [];   // the calling thread's split of the current region: chunk i is [s_bounds[i], s_bounds[i + 1])
    private static long[] s_ticks = [];   // how long each thread took over its own chunk (0: not measured)
    private static bool s_timed;          // whether this region's chunks are timed (one region in four, at random)
    private static uint s_random = 2463534242;
    private static double[] s_speeds = [];
    private static bool s_flush;
    private static long s_generation;
    private static Exception? s_error;    // the first exception a worker's chunk threw in the current region

    /// <summary>
    /// How many threads (including the caller) parallel kernels use: the NETDSL_NUM_THREADS environment
    /// variable, else the processor count. Set it before the first parallel region.
    /// </summary>
    public static int Count
    {
        get => s_count;
        set
        {
            if (value < 1) throw new ArgumentOutOfRangeException(nameof(value), value, "At least one thread is needed.");
            lock (Gate)
            {
                if (s_workers is not null && value != s_count)
                    throw new InvalidOperationException("The worker threads are already running; set CpuWorkers.Count before the first parallel kernel.");
                s_count = value;
            }
        }
    }

    private static int DefaultCount()
    {
        var text = Environment.GetEnvironmentVariable("NETDSL_NUM_THREADS");
        return int.TryParse(text, out int n) && n > 0 ? n : Math.Max(1, Environment.ProcessorCount);
    }

    /// <summary>
    /// Runs a fused elementwise loop over [0, <paramref name="total"/>) on the workers, in chunks aligned to
    /// <paramref name="period"/> (the loop's channel period, so every chunk starts at a channel boundary).
    /// Small loops run on the calling thread.
    /// </summary>
    public static void ForEach<TWork>(ref TWork work, int total, int period) where TWork : IElementwise, allows ref struct
    {
        int align = Math.Max(period, (MinParallelElements / 4 / Math.Max(period, 1)) * period);
        if (total < MinParallelElements) work.Run(0, total);
        else Run(ref work, &RunElementwise<TWork>, total, align);
    }

    /// <summary>Below this many elements an elementwise loop is not worth a second thread.</summary>
    private const int MinParallelElements = 1 << 15;

    private static void RunElementwise<TWork>(ref TWork work, int start, int end) where TWork : IElementwise, allows ref struct
        => work.Run(start, end);

    /// <summary>
    /// Runs <paramref name="body"/> over [0, <paramref name="total"/>) split into one contiguous chunk per thread,
    /// chunk boundaries aligned to <paramref name="align"/> and chunk sizes following the threads' measured speeds
    /// (see <see cref="Learn"/>); returns when every chunk is done. The body's result must not depend on where
    /// the boundaries fall. The job stays on the caller's stack (it may be a ref struct of spans); workers reach it
    /// through a pointer while the caller waits. An exception from any chunk is rethrown here once every chunk
    /// has finished.
    /// </summary>
    public static void Run<TJob>(ref TJob job, delegate*<ref TJob, int, int, void> body, int total, int align = 32) where TJob : allows ref struct
    {
        int count = s_count;
        if (count <= 1 || total <= align || Interlocked.CompareExchange(ref s_busy, 1, 0) != 0)
        {
            body(ref job, 0, total);
            return;
        }
        try
        {
            var workers = s_workers ?? Start();
            {
                // The job as every thread runs it: a pointer to this stack and the body taking it.
                void* shared = s_job = Unsafe.AsPointer(ref job);
                var run = s_body = (delegate*<void*, int, int, void>)body;
                s_total = total;
                s_align = align;
                s_flush = DenormalMode.CurrentThreadFlushes;
                // Each worker computes the same split from the same speeds (changed only under s_busy, between
                // regions): a shared array of boundaries would cost every worker a cache miss per region.
                var bounds = s_bounds;
                Split(bounds, s_speeds, total, align);
                bool timed = s_timed = TimeThisRegion();
                if (timed) Array.Clear(s_ticks);
                // Pending first, then open the claims: a worker still finishing an earlier region that claims a
                // chunk of this one decrements this region's count. Each claim is reset by exactly one store of its
                // own: such a worker may claim a chunk while they are being reset, and Array.Clear may write a
                // short array's bytes twice (overlapping stores), the second undoing the claim in between; the
                // chunk then ran twice and the count went below zero, and this thread waited forever.
                var claims = s_claims;
                Volatile.Write(ref s_pending, workers.Length);
                for (int i = 0; i < claims.Length; i++) Volatile.Write(ref claims[i], 0);
                Interlocked.Increment(ref s_generation);
                foreach (var w in workers) w.Wake();
                long t0 = timed ? Stopwatch.GetTimestamp() : 0;
                // A chunk that throws must not end the region early: the workers still hold a pointer to the job
                // on this stack. The first exception is rethrown once every chunk has finished.
                Exception? error = Guarded(run, shared, bounds[0], bounds[1]);
                if (timed) s_ticks[0] = Stopwatch.GetTimestamp() - t0;
                // Chunks no worker has picked up yet (asleep, descheduled) are run here: progress never waits on
                // a thread that is not running. Chunk boundaries do not depend on who runs them.
                for (int i = 1; i < count; i++)
                {
                    if (Interlocked.CompareExchange(ref claims[i], 1, 0) != 0) continue;
                    if (bounds[i] < bounds[i + 1])
                    {
                        var thrown = Guarded(run, shared, bounds[i], bounds[i + 1]);
                        error ??= thrown;
                    }
                    Interlocked.Decrement(ref s_pending);
                }
                var spin = new SpinWait();
                while (Volatile.Read(ref s_pending) != 0) spin.SpinOnce(sleep1Threshold: -1); // only chunks already running remain
                var workerError = Interlocked.Exchange(ref s_error, null); // cleared whatever happened here
                error ??= workerError;
                if (error is not null) ExceptionDispatchInfo.Throw(error);
                if (timed) Learn(bounds, s_ticks, s_speeds, MinMeasuredTicks, FullStepTicks);
            }
        }
        finally
        {
            Volatile.Write(ref s_busy, 0);
        }
    }

    /// <summary>
    /// Runs one chunk and returns what it threw, if anything: a method of its own, so that the loops of Run and of
    /// the workers have no handler.
    /// </summary>
    private static Exception? Guarded(delegate*<void*, int, int, void> body, void* job, int start, int end)
    {
        try
        {
            body(job, start, end);
            return null;
        }
        catch (Exception e)
        {
            return e;
        }
    }

    /// <summary>
    /// Splits [0, <paramref name="total"/>) into one chunk per thread (chunk i is [bounds[i], bounds[i + 1])),
    /// boundaries on multiples of <paramref name="align"/>, each thread's share in proportion to its speed. Every
    /// kernel's result is independent of where the boundaries fall (that is what lets the thread count vary), so
    /// the shares may move from call to call.
    /// </summary>
    internal static void Split(int[] bounds, double[] speeds, int total, int align)
    {
        int count = speeds.Length, blocks = (total + align - 1) / align;
        double sum = 0, run = 0, low = double.MaxValue, high = 0;
        foreach (double v in speeds)
        {
            sum += v;
            low = Math.Min(low, v);
            high = Math.Max(high, v);
        }
        // Speeds within 10 % of each other split equally: measurement jitter must not move boundaries back and
        // forth, or each move hands a block of data (a batch-1 layer's weights, kept in one core's L2 from call
        // to call) to the other core's cold cache.
        bool equal = high - low <= 0.1 * sum / count;
        bounds[0] = 0;
        for (int i = 1; i < count; i++)
        {
            run += equal ? sum / count : speeds[i - 1];
            long block = (long)Math.Round(blocks * run / sum);
            bounds[i] = (int)Math.Max(bounds[i - 1], Math.Min(total, block * align));
        }
        bounds[count] = total;
    }

    /// <summary>
    /// Whether to time the next region: one in four, drawn at random (xorshift) so that no region of a repeating
    /// sequence (a network's layers) is always or never the one timed. Reading the clock twice a chunk costs ~2 %
    /// of a batch-1 layer.
    /// </summary>
    private static bool TimeThisRegion()
    {
        uint x = s_random;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        s_random = x;
        return (x & 3) == 0;
    }

    /// <summary>Chunks shorter than this do not update the speeds: the clock's resolution and cost would dominate them.</summary>
    private static readonly long MinMeasuredTicks = Stopwatch.Frequency / 500000; // 2 µs

    /// <summary>
    /// Chunks from this long move the speeds a full step; shorter ones in proportion. Short chunks are biased, not
    /// just noisy: a worker's chunk starts by fetching what the calling thread has just written (a layer's input,
    /// after its epilogue ran on the caller), a fixed cost of about a µs. Giving the worker less of a batch-1 layer
    /// for it is right (the caller otherwise waits), but it must not outweigh what long regions say about the cores.
    /// </summary>
    private static readonly long FullStepTicks = Stopwatch.Frequency / 20000; // 50 µs

    /// <summary>
    /// Updates each thread's speed from the region just finished: elements per tick of its own chunk, relative to
    /// the others. A core slowed for seconds (another tenant on its hyperthread sibling, a throttled clock) then
    /// gets a smaller share and the threads finish together instead of the fast ones waiting. Only regions where
    /// every thread ran its own non-empty chunk for at least <paramref name="minTicks"/> count (returns whether it
    /// did). Speeds move a fifth of the way when the shortest chunk took <paramref name="fullTicks"/> or more, less
    /// for shorter ones, and stay within [0.25, 4] of an equal share.
    /// </summary>
    internal static bool Learn(int[] bounds, long[] ticks, double[] speeds, long minTicks, long fullTicks)
    {
        int count = speeds.Length;
        double mean = 0;
        long shortest = long.MaxValue;
        for (int i = 0; i < count; i++)
        {
            if (bounds[i + 1] <= bounds[i] || ticks[i] < minTicks) return false;
            mean += (bounds[i + 1] - bounds[i]) / (double)ticks[i];
            shortest = Math.Min(shortest, ticks[i]);
        }
        mean /= count;
        double step = 0.2 * Math.Min(1.0, shortest / (double)fullTicks);
        for (int i = 0; i < count; i++)
        {
            double rate = (bounds[i + 1] - bounds[i]) / (double)ticks[i] / mean;
            speeds[i] = Math.Clamp((1 - step) * speeds[i] + step * rate, 0.25, 4.0);
        }
        return true;
    }

    /// <summary>Sets the threads' relative speeds (tests skew the split with it, through reflection); learning goes on from them.</summary>
    internal static void SetSpeeds(double[] speeds)
    {
        Start();
        var spin = new SpinWait();
        while (Interlocked.CompareExchange(ref s_busy, 1, 0) != 0) spin.SpinOnce(); // not while a region runs
        speeds.CopyTo(s_speeds);
        Volatile.Write(ref s_busy, 0);
    }

    private static Worker[] Start()
    {
        lock (Gate)
        {
            if (s_workers is null)
            {
                var workers = new Worker[s_count - 1];
                s_claims = new int[s_count];
                s_bounds = new int[s_count + 1];
                s_ticks = new long[s_count];
                s_speeds = new double[s_count];
                Array.Fill(s_speeds, 1.0);
                for (int i = 0; i < workers.Length; i++) workers[i] = new Worker(i + 1);
                s_workers = workers;
            }
            return s_workers;
        }
    }

    private sealed class Worker
    {
        private readonly SemaphoreSlim _signal = new(0);
        private readonly int[] _bounds = new int[s_count + 1];
        private readonly int _index;
        private readonly long _startGeneration;
        private int _sleeping;

        public Worker(int index)
        {
            _index = index;
            // Read before the thread exists: a region published before the thread first runs must not be missed.
            _startGeneration = Volatile.Read(ref s_generation);
            var thread = new Thread(Loop) { IsBackground = true, Name = "NetDsl worker " + index };
            thread.Start();
        }

        public void Wake()
        {
            if (Interlocked.Exchange(ref _sleeping, 0) == 1) _signal.Release();
        }

        private void Loop()
        {
            long seen = _startGeneration;
            bool flushing = false;
            while (true)
            {
                long generation = WaitForWork(seen);
                seen = generation;
                // Compute in the same floating-point mode as the caller's share of the region.
                if (s_flush != flushing)
                {
                    DenormalMode.Set(s_flush);
                    flushing = s_flush;
                }
                if (Interlocked.CompareExchange(ref s_claims[_index], 1, 0) != 0) continue; // the caller ran it
                Split(_bounds, s_speeds, s_total, s_align);
                int start = _bounds[_index], end = _bounds[_index + 1];
                bool timed = s_timed;
                long t0 = timed ? Stopwatch.GetTimestamp() : 0;
                // What a chunk throws goes to the caller, which rethrows it (left to end this thread, it would end the process).
                var thrown = start < end ? Guarded(s_body, s_job, start, end) : null;
                if (thrown is not null) Interlocked.CompareExchange(ref s_error, thrown, null);
                if (timed) s_ticks[_index] = Stopwatch.GetTimestamp() - t0;
                Interlocked.Decrement(ref s_pending);
            }
        }

        private long WaitForWork(long seen)
        {
            while (true)
            {
                long until = Stopwatch.GetTimestamp() + SpinTicks;
                do
                {
                    long g = Volatile.Read(ref s_generation);
                    if (g != seen) return g;
                    Thread.SpinWait(4);
                }
                while (Stopwatch.GetTimestamp() < until);
                // A full fence between announcing sleep and the last look at the generation (a plain store could
                // be passed by the load, and a caller's Wake then miss this thread for a region).
                Interlocked.Exchange(ref _sleeping, 1);
                long again = Volatile.Read(ref s_generation);
                if (again != seen)
                {
                    Volatile.Write(ref _sleeping, 0);
                    return again;
                }
                _signal.Wait();
            }
        }
    }
}
