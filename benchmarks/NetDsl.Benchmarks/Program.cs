using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using BenchmarkDotNet.Running;
using NetDsl.Benchmarks;

// dotnet run -c Release --project benchmarks/NetDsl.Benchmarks                 BenchmarkDotNet, all workloads
// dotnet run -c Release --project benchmarks/NetDsl.Benchmarks -- --filter '*Mlp*'
// dotnet run -c Release --project benchmarks/NetDsl.Benchmarks -- --quick      interleaved stopwatch medians (fast)
// dotnet run -c Release --project benchmarks/NetDsl.Benchmarks -- --epoch [DIR] W-epoch on Fashion-MNIST
// ... -- --loop mlp-256 [SECONDS]                  one NetDsl workload in a loop (for perf), with its allocations
// ... -- --alternate mlp-256 mlp-256-session [S]   two NetDsl workloads alternating every ~30 ms, medians
if (args.Length > 0 && args[0] == "--quick") return Quick.Run(args.Skip(1).ToArray());
if (args.Length > 0 && args[0] == "--epoch") return Epoch.Run(args.Length > 1 ? args[1] : null);
if (args.Length > 2 && args[0] == "--alternate") return Quick.Alternate(args[1], args[2], args.Length > 3 ? double.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture) : 20);
if (args.Length > 1 && args[0] == "--loop") return Quick.Loop(args[1], args.Length > 2 ? double.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 10);
BenchmarkSwitcher.FromAssembly(typeof(Workload).Assembly).Run(args);
return 0;

/// <summary>A quick, interleaved comparison for development: medians of alternating rounds.</summary>
static class Quick
{
    /// <summary>Runs one NetDsl workload in a loop (for a profiler).</summary>
    public static int Loop(string name, double seconds)
    {
        Action action = Pick(name);
        // Warm up (tiered JIT), then count the managed bytes every thread allocates while the loop runs.
        for (int i = 0; i < 50; i++) action();
        long allocated = GC.GetTotalAllocatedBytes(precise: true);
        long start = Stopwatch.GetTimestamp(), n = 0;
        while (Stopwatch.GetElapsedTime(start).TotalSeconds < seconds) { action(); n++; }
        double micros = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
        allocated = GC.GetTotalAllocatedBytes(precise: true) - allocated;
        Console.WriteLine($"{name}: {micros / n:F2} µs per call; {allocated} managed bytes allocated by all threads in {n} calls");
        return 0;
    }

    /// <summary>
    /// Two NetDsl workloads (names as for <c>--loop</c>) in one process, alternating every ~30 ms for
    /// <paramref name="seconds"/>: the way to see a few percent on a host whose speed drifts from minute to minute.
    /// </summary>
    public static int Alternate(string first, string second, double seconds)
    {
        var actions = new[] { Pick(first), Pick(second) };
        var times = new[] { new List<double>(), new List<double>() };
        foreach (var action in actions) for (int i = 0; i < 50; i++) action();
        long start = Stopwatch.GetTimestamp();
        while (Stopwatch.GetElapsedTime(start).TotalSeconds < seconds)
            for (int v = 0; v < 2; v++)
            {
                long t0 = Stopwatch.GetTimestamp(), n = 0;
                while (Stopwatch.GetElapsedTime(t0).TotalMilliseconds < 30 || n < 2) { actions[v](); n++; }
                times[v].Add(Stopwatch.GetElapsedTime(t0).TotalMicroseconds / n);
            }
        // ALTERNATE_TRACE=path writes every window pair (first, second; µs per call): whether a slow phase hits
        // both workloads (the host) or one (the workload).
        if (Environment.GetEnvironmentVariable("ALTERNATE_TRACE") is { Length: > 0 } trace)
            System.IO.File.WriteAllLines(trace, times[0].Zip(times[1], (x, y) => FormattableString.Invariant($"{x:F2} {y:F2}")));
        for (int v = 0; v < 2; v++)
        {
            var t = times[v];
            t.Sort();
            Console.WriteLine($"{(v == 0 ? first : second),-18} median {t[t.Count / 2],10:F2} µs   p25 {t[t.Count / 4],10:F2} µs   best {t[0],10:F2} µs   ({t.Count} windows)");
        }
        return 0;
    }

    private static Action Pick(string name)
    {
        // NAME-whole: the batch runs whole on the calling thread (each kernel splitting what it splits), not split
        // over the threads by samples: the runtime's internal switch (BatchSplit.Enabled), reached through reflection.
        // NAME-unfused: convolution blocks run step by step through memory (Convolution.FuseBlocks off).
        foreach (var (suffix, type, field) in new[] { ("-unfused", "NetDsl.Runtime.Cpu.Convolution", "FuseBlocks"), ("-whole", "NetDsl.Runtime.BatchSplit", "Enabled") })
        {
            if (!name.EndsWith(suffix, StringComparison.Ordinal)) continue;
            var inner = Pick(name[..^suffix.Length]);
            var flag = typeof(NetDsl.Runtime.CompiledNetwork<float>).Assembly.GetType(type)!
                .GetField(field, System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!;
            return () =>
            {
                flag.SetValue(null, false);
                try { inner(); }
                finally { flag.SetValue(null, true); }
            };
        }
        return name switch
        {
            "tiny-infer" => Make(new TinyBenchmarks(), b => b.NetDslInfer1),
            "tiny-step" => Make(new TinyBenchmarks(), b => () => b.NetDslStep()),
            "mlp-infer" => Make(new MlpBenchmarks(), b => b.NetDslInfer1),
            "mlp-256" => Make(new MlpBenchmarks(), b => b.NetDslInfer256),
            "mlp-256-session" => Make(new MlpBenchmarks(), b => b.NetDslSessionInfer256),
            "mlp-step" => Make(new MlpBenchmarks(), b => () => b.NetDslStep()),
            "cnn-infer" => Make(new CnnBenchmarks(), b => b.NetDslInfer1),
            "cnn-256" => Make(new CnnBenchmarks(), b => b.NetDslInfer256),
            "cnn-256-session" => Make(new CnnBenchmarks(), b => b.NetDslSessionInfer256),
            "cnn-step" => Make(new CnnBenchmarks(), b => () => b.NetDslStep()),
            "sgd" => SgdOnly(),
            "pool" => PoolOnly(),
            "mlp-parts" => Parts(new MlpBenchmarks()),
            "cnn-parts" => Parts(new CnnBenchmarks()),
            "tiny-256" => Make(new TinyBenchmarks(), b => b.NetDslInfer256),
            "tiny-256-session" => Make(new TinyBenchmarks(), b => b.NetDslSessionInfer256),
            "gemm" => Make(new GemmBenchmarks(), b => b.NetDsl),
            // 1/64 of the FMA-peak benchmark (62.5 MFLOP on two threads): alternated with "gemm", the SGEMM's share
            // of the peak measured in the same phase of the host.
            "fma" => () => Peak.Run(Workload.Threads, GemmBenchmarks.PeakIterations / 64),
            _ => throw new ArgumentException($"Unknown workload '{name}'."),
        };

        static Action Parts<TNet>(ModelBenchmarks<TNet> b) where TNet : NetDsl.Runtime.CompiledNetwork<float>
        {
            b.GlobalSetup();
            var (trainer, x, labels) = b.Internals();
            double grad = 0, update = 0;
            long calls = 0;
            return () =>
            {
                long t0 = Stopwatch.GetTimestamp();
                trainer.ComputeGradients(x, labels);
                long t1 = Stopwatch.GetTimestamp();
                trainer.ApplyUpdate();
                long t2 = Stopwatch.GetTimestamp();
                grad += t1 - t0; update += t2 - t1;
                if (++calls % 200 == 0) Console.WriteLine($"forward+backward {grad / calls / Stopwatch.Frequency * 1e6:F1} µs, update {update / calls / Stopwatch.Frequency * 1e6:F1} µs");
            };
        }

        static Action PoolOnly()
        {
            var g = new NetDsl.Runtime.Cpu.Window2d(32, 28, 28, 32, 14, 14, 2, 2, 0);
            var x = TorchModels.Random(64 * g.InSize, 1);
            var y = new float[64 * g.OutSize];
            var idx = new int[64 * g.OutSize];
            return () => NetDsl.Runtime.Cpu.Pooling.MaxForward<float>(g, 64, x, y, idx);
        }

        static Action SgdOnly()
        {
            var state = new NetDsl.Runtime.Sgd(0.01, momentum: 0.9).CreateState<float>(235146);
            var p = new float[235146];
            var g = new float[235146];
            if (Environment.GetEnvironmentVariable("DENORMAL") is not null) Array.Fill(g, 1e-39f);
            return () => state.Step(p, g);
        }

        static Action Make<T>(T b, Func<T, Action> pick) where T : class
        {
            b.GetType().GetMethod("GlobalSetup")!.Invoke(b, null);
            return pick(b);
        }
    }

    public static int Run(string[] filter)
    {
        void Pair(string name, Action torch, Action ours, int ops = 1)
        {
            if (filter.Length > 0 && !filter.Any(f => name.Contains(f, StringComparison.OrdinalIgnoreCase))) return;
            for (int i = 0; i < 3; i++) { torch(); ours(); }
            double Measure(Action a)
            {
                var sw = Stopwatch.StartNew();
                int n = 0;
                while (sw.Elapsed.TotalMilliseconds < 60 || n < 3) { a(); n++; }
                return sw.Elapsed.TotalMilliseconds * 1000 / n / ops;
            }
            var t = new List<double>();
            var o = new List<double>();
            for (int r = 0; r < 9; r++) { t.Add(Measure(torch)); o.Add(Measure(ours)); }
            t.Sort(); o.Sort();
            Console.WriteLine($"{name,-16} torch {t[4],10:F2} µs   netdsl {o[4],10:F2} µs   ratio {t[4] / o[4],6:F2}x");
        }

        var g = new GemmBenchmarks(); g.GlobalSetup();
        Pair("sgemm", g.TorchSharp, g.NetDsl);
        if (filter.Length == 0 || filter.Any(f => "sgemm".Contains(f)))
        {
            var sw = Stopwatch.StartNew(); g.FmaPeak(); double peak = 2e9 * Workload.Threads / sw.Elapsed.TotalSeconds / 1e9;
            sw.Restart(); for (int i = 0; i < 10; i++) g.NetDsl(); double ours = 2.0 * 1024 * 1024 * 1024 * 10 / sw.Elapsed.TotalSeconds / 1e9;
            Console.WriteLine($"FMA peak {peak:F0} GFLOP/s; NetDsl SGEMM {ours:F0} GFLOP/s = {100 * ours / peak:F0}% of peak");
        }
        var tiny = new TinyBenchmarks(); tiny.GlobalSetup();
        Pair("tiny infer b1", tiny.TorchInfer1, tiny.NetDslInfer1);
        Pair("tiny step b32", () => tiny.TorchStep(), () => tiny.NetDslStep());
        var mlp = new MlpBenchmarks(); mlp.GlobalSetup();
        Pair("mlp infer b1", mlp.TorchInfer1, mlp.NetDslInfer1);
        Pair("mlp infer b256", mlp.TorchInfer256, mlp.NetDslInfer256, 256);
        Pair("mlp b256 session", mlp.TorchInfer256, mlp.NetDslSessionInfer256, 256);
        Pair("mlp step b64", () => mlp.TorchStep(), () => mlp.NetDslStep());
        var cnn = new CnnBenchmarks(); cnn.GlobalSetup();
        Pair("cnn infer b1", cnn.TorchInfer1, cnn.NetDslInfer1);
        Pair("cnn infer b256", cnn.TorchInfer256, cnn.NetDslInfer256, 256);
        Pair("cnn b256 session", cnn.TorchInfer256, cnn.NetDslSessionInfer256, 256);
        Pair("cnn step b64", () => cnn.TorchStep(), () => cnn.NetDslStep());
        return 0;
    }
}
