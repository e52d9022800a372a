using System;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using NetDsl.Runtime;
using NetDsl.Runtime.Cpu;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace NetDsl.Benchmarks;

using Tensor = TorchSharp.torch.Tensor;

/// <summary>The workloads share this setup: 2 threads for every contender, the same weights and inputs.</summary>
[MemoryDiagnoser]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
[MedianColumn]
[Config(typeof(InProcessConfig))]
public abstract class Workload
{
    public const int Threads = 2;

    protected static void Setup() => TorchModels.UseThreads(Threads);
}

/// <summary>
/// Benchmarks run in the host process: TorchSharp's native glue is patched to load in this project's build
/// output only (see build/TorchSharpLoadFix.targets), not in projects BenchmarkDotNet would generate. Fresh
/// processes come from running the suite several times (see the README's performance section).
/// </summary>
public sealed class InProcessConfig : ManualConfig
{
    public InProcessConfig()
    {
        AddJob(Job.Default.WithToolchain(InProcessEmitToolchain.Instance).WithWarmupCount(3).WithIterationCount(15));
    }
}

/// <summary>W-gemm: SGEMM 1024×1024×1024, and the machine's FMA peak measured in the same run.</summary>
public unsafe class GemmBenchmarks : Workload
{
    public static readonly int N = int.Parse(Environment.GetEnvironmentVariable("GEMM_N") ?? "1024");
    private float[] _a = null!, _b = null!, _c = null!;
    private Tensor _ta = null!, _tb = null!, _tc = null!;

    [GlobalSetup]
    public void GlobalSetup()
    {
        Setup();
        _a = TorchModels.Random(N * N, 1);
        _b = TorchModels.Random(N * N, 2);
        _c = new float[N * N];
        _ta = torch.tensor(_a, new long[] { N, N });
        _tb = torch.tensor(_b, new long[] { N, N });
        _tc = torch.zeros(N, N);
    }

    [Benchmark(Baseline = true), BenchmarkCategory("sgemm 1024")]
    public void TorchSharp() => _tc.addmm_(_ta, _tb, beta: 0, alpha: 1);

    [Benchmark, BenchmarkCategory("sgemm 1024")]
    public void NetDsl() => Sgemm.Multiply(false, false, N, N, N, _a, _b, _c, accumulate: false);

    /// <summary>2·10⁹ FLOP of independent FMAs per worker thread, shared out as SGEMM work is: GFLOP/s = 2·Threads / seconds.</summary>
    [Benchmark, BenchmarkCategory("fma peak")]
    public void FmaPeak() => Peak.Run(Threads, PeakIterations);

    public const long PeakIterations = 1_000_000_000L / (12 * 16) / 64 * 64; // whole pieces: 2·10⁹ FLOP to 0.01 %
}

/// <summary>A register-bound FMA loop: the ceiling any SGEMM can reach on this machine.</summary>
public static unsafe class Peak
{
    private struct Job { public long Iterations; }

    /// <summary>
    /// The work is cut into <see cref="Pieces"/> pieces per thread, so that the workers' speed-proportional
    /// split (a slower core gets fewer) measures what both cores deliver together, as an SGEMM split the same
    /// way can use, rather than two equal halves waiting on the slower core.
    /// </summary>
    private const int Pieces = 64;

    public static void Run(int threads, long iterations)
    {
        var job = new Job { Iterations = iterations / Pieces };
        CpuWorkers.Run(ref job, &Body, threads * Pieces, align: 1);
    }

    private static void Body(ref Job job, int start, int end)
    {
        for (int t = start; t < end; t++) Loop(job.Iterations);
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float Loop(long iterations)
    {
        var a = Vector512.Create(1.0000001f);
        var b = Vector512.Create(0.9999999f);
        Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default,
            c6 = default, c7 = default, c8 = default, c9 = default, c10 = default, c11 = default;
        for (long i = 0; i < iterations; i++)
        {
            c0 = Vector512.FusedMultiplyAdd(a, b, c0); c1 = Vector512.FusedMultiplyAdd(a, b, c1);
            c2 = Vector512.FusedMultiplyAdd(a, b, c2); c3 = Vector512.FusedMultiplyAdd(a, b, c3);
            c4 = Vector512.FusedMultiplyAdd(a, b, c4); c5 = Vector512.FusedMultiplyAdd(a, b, c5);
            c6 = Vector512.FusedMultiplyAdd(a, b, c6); c7 = Vector512.FusedMultiplyAdd(a, b, c7);
            c8 = Vector512.FusedMultiplyAdd(a, b, c8); c9 = Vector512.FusedMultiplyAdd(a, b, c9);
            c10 = Vector512.FusedMultiplyAdd(a, b, c10); c11 = Vector512.FusedMultiplyAdd(a, b, c11);
        }
        return Vector512.Sum(c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11);
    }
}

/// <summary>The three model workloads: training step, batch-1 latency, batch-256 throughput.</summary>
public abstract class ModelBenchmarks<TNet> : Workload where TNet : CompiledNetwork<float>
{
    protected abstract int StepBatch { get; }
    protected abstract TNet CreateNet();
    protected abstract Sequential CreateTorch(TNet net);
    protected abstract Optimizer CreateOptimizer();
    protected abstract optim.Optimizer CreateTorchOptimizer(Sequential model);
    protected virtual bool Classification => true;

    private TNet _net = null!;
    private InferenceSession<float> _session = null!;
    private Trainer<float> _trainer = null!;
    private Sequential _model = null!;
    private optim.Optimizer _torchOptimizer = null!;
    private float[] _x = null!, _x1 = null!, _x256 = null!, _targets = null!, _out1 = null!, _out256 = null!;
    private int[] _labels = null!;
    private Tensor _tx = null!, _tx1 = null!, _tx256 = null!, _ty = null!;

    [GlobalSetup]
    public void GlobalSetup()
    {
        Setup();
        _net = CreateNet();
        _model = CreateTorch(_net);
        _torchOptimizer = CreateTorchOptimizer(_model);
        _trainer = _net.CreateTrainer(CreateOptimizer(), Classification ? Loss.CrossEntropy : Loss.MeanSquaredError, StepBatch);
        _session = _net.CreateInferenceSession(); // the weights as initialized: the same as TorchSharp's
        var d = _net.Description;
        long[] Shape(int batch) => [batch, .. Array.ConvertAll(d.InputShape, s => (long)s)];
        _x = TorchModels.Random(StepBatch * d.InputSize, 3);
        _x1 = TorchModels.Random(d.InputSize, 4);
        _x256 = TorchModels.Random(256 * d.InputSize, 5);
        _labels = TorchModels.Labels(StepBatch, d.OutputSize, 6);
        _targets = TorchModels.Random(StepBatch * d.OutputSize, 7);
        _out1 = new float[d.OutputSize];
        _out256 = new float[256 * d.OutputSize];
        _tx = TorchModels.Input(_x, Shape(StepBatch));
        _tx1 = TorchModels.Input(_x1, Shape(1));
        _tx256 = TorchModels.Input(_x256, Shape(256));
        _ty = Classification ? torch.tensor(Array.ConvertAll(_labels, l => (long)l)) : torch.tensor(_targets, new long[] { StepBatch, d.OutputSize });
    }

    public (Trainer<float> Trainer, float[] X, int[] Labels) Internals() => (_trainer, _x, _labels);

    [Benchmark(Baseline = true), BenchmarkCategory("train step")]
    public float TorchStep()
    {
        using var scope = NewDisposeScope();
        _torchOptimizer.zero_grad();
        var output = _model.forward(_tx);
        var loss = Classification ? F.cross_entropy(output, _ty) : F.mse_loss(output, _ty);
        loss.backward();
        _torchOptimizer.step();
        return loss.item<float>();
    }

    [Benchmark, BenchmarkCategory("train step")]
    public float NetDslStep() => Classification ? _trainer.Step(_x, _labels) : _trainer.Step(_x, _targets);

    [Benchmark(Baseline = true), BenchmarkCategory("infer b1")]
    public void TorchInfer1()
    {
        using var scope = NewDisposeScope();
        using var _ = torch.no_grad();
        _model.forward(_tx1).data<float>().CopyTo(_out1, 0);
    }

    [Benchmark, BenchmarkCategory("infer b1")]
    public void NetDslInfer1() => _net.Predict(_x1, _out1);

    [Benchmark(Baseline = true, OperationsPerInvoke = 256), BenchmarkCategory("infer b256")]
    public void TorchInfer256()
    {
        using var scope = NewDisposeScope();
        using var _ = torch.no_grad();
        _model.forward(_tx256).data<float>().CopyTo(_out256, 0);
    }

    [Benchmark(OperationsPerInvoke = 256), BenchmarkCategory("infer b256")]
    public void NetDslInfer256() => _net.Predict(_x256, _out256);

    /// <summary>The deployment path: a frozen <see cref="InferenceSession{T}"/>, whose Linear weights are packed once.</summary>
    [Benchmark(OperationsPerInvoke = 256), BenchmarkCategory("infer b256")]
    public void NetDslSessionInfer256() => _session.Predict(_x256, _out256);
}

/// <summary>W-tiny: batch-1 inference and a batch-32 MSE training step with SGD (lr 0.01, momentum 0.9).</summary>
public class TinyBenchmarks : ModelBenchmarks<TinyPolicy>
{
    protected override int StepBatch => 32;
    protected override bool Classification => false;
    protected override TinyPolicy CreateNet() => new(1);
    protected override Sequential CreateTorch(TinyPolicy net) => TorchModels.Tiny(net);
    protected override Optimizer CreateOptimizer() => new Sgd(lr: 0.01, momentum: 0.9);
    protected override optim.Optimizer CreateTorchOptimizer(Sequential model) => optim.SGD(model.parameters(), 0.01, momentum: 0.9);
}

/// <summary>W-mlp: cross-entropy, SGD (lr 0.05, momentum 0.9), training step at batch 64.</summary>
public class MlpBenchmarks : ModelBenchmarks<MnistMlp>
{
    protected override int StepBatch => 64;
    protected override MnistMlp CreateNet() => new(1);
    protected override Sequential CreateTorch(MnistMlp net) => TorchModels.Mlp(net);
    protected override Optimizer CreateOptimizer() => new Sgd(lr: 0.05, momentum: 0.9);
    protected override optim.Optimizer CreateTorchOptimizer(Sequential model) => optim.SGD(model.parameters(), 0.05, momentum: 0.9);
}

/// <summary>W-cnn: cross-entropy, SGD (lr 0.01, momentum 0.9), training step at batch 64.</summary>
public class CnnBenchmarks : ModelBenchmarks<MnistCnn>
{
    protected override int StepBatch => 64;
    protected override MnistCnn CreateNet() => new(1);
    protected override Sequential CreateTorch(MnistCnn net) => TorchModels.Cnn(net);
    protected override Optimizer CreateOptimizer() => new Sgd(lr: 0.01, momentum: 0.9);
    protected override optim.Optimizer CreateTorchOptimizer(Sequential model) => optim.SGD(model.parameters(), 0.01, momentum: 0.9);
}
