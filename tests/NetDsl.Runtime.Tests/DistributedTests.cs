using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Runtime.InteropServices;
using NetDsl.Runtime.Distributed;
using NetDsl.Testing;
using NetDsl.Runtime.Tests.Networks;
using NetDsl.Runtime.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace NetDsl.Runtime.Tests;

/// <summary>
/// Data-parallel training. In-process: the compile-time bucket plan (contiguous, complete, within the cap, in
/// backward's order) and the bucket signals of generated backward code (each once, when its gradients are final),
/// through a communicator that stands for two identical ranks. Across processes: <c>mpiexec -n 2</c> against one
/// process, and ranks that crash or stop.
/// </summary>
public sealed class DistributedTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("netdsl-mpi-").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    // ---- the plan ---------------------------------------------------------------------------------------------

    public static TheoryData<string> PlannedNetworks => new() { "SeedCnn", "Mlp", "SharedWeightsNet", "ResidualNet", "BatchNorm2dNet", "ChannelConcatNet" };

    private static NetworkDescription DescriptionOf(string name) => name switch
    {
        "SeedCnn" => new SeedCnn(1).Description,
        "Mlp" => new Mlp(1).Description,
        "SharedWeightsNet" => new SharedWeightsNet(1).Description,
        "ResidualNet" => new ResidualNet(1).Description,
        "BatchNorm2dNet" => new BatchNorm2dNet(1).Description,
        _ => new ChannelConcatNet(1).Description,
    };

    [Theory]
    [MemberData(nameof(PlannedNetworks))]
    public void BucketsAreContiguousSlicesCoveringEveryGradientOnceWithinTheCap(string name)
    {
        var d = DescriptionOf(name);
        Assert.Equal(1 << 20, d.GradientBucketBytes);
        var covered = new int[d.ParameterBufferLength];
        // A parameter's slot: its tensor and the alignment gap up to the next tensor.
        var byOffset = d.Parameters.OrderBy(p => p.Offset).ToList();
        int Slot(NetDsl.Runtime.ParameterInfo p)
        {
            int next = byOffset.IndexOf(p) + 1;
            return (next < byOffset.Count ? byOffset[next].Offset : d.ParameterBufferLength) - p.Offset;
        }
        foreach (var b in d.GradientBuckets)
        {
            Assert.True(b.Length > 0);
            for (int i = b.Offset; i < b.Offset + b.Length; i++) covered[i]++;
            // A bucket is exactly the union of its parameters' slots, which are adjacent in the flat buffer.
            var members = b.Parameters.Select(p => d.FindParameter(p)!).ToList();
            Assert.Equal(b.Length, members.Sum(Slot));
            Assert.Equal(b.Offset, members.Min(p => p.Offset));
            Assert.True(b.Length * 4L <= d.GradientBucketBytes || members.Count == 1, $"bucket over the cap with {members.Count} parameters");
        }
        Assert.All(covered, c => Assert.Equal(1, c));
        // Backward finishes them in order.
        var ready = d.GradientBuckets.Select(b => b.ReadyAfterStep).ToList();
        Assert.Equal(ready.OrderBy(r => r), ready);
    }

    [Fact]
    public void TheSeedCnnPlanFollowsBackwardFromTheOutputLayer()
    {
        var d = new SeedCnn(1).Description;
        // fc2 and fc1's bias are small and finished first; fc1.weight (4096 × 128 floats = 2 MiB) is larger than
        // the 1 MiB cap and goes alone; the convolutions finish last.
        Assert.Equal(new[] { "fc2.bias", "fc2.weight", "fc1.bias" }, d.GradientBuckets[0].Parameters);
        Assert.Equal(new[] { "fc1.weight" }, d.GradientBuckets[1].Parameters);
        Assert.Equal(new[] { "conv2.bias", "conv2.weight", "conv1.bias", "conv1.weight" }, d.GradientBuckets[2].Parameters);
    }

    // ---- the signals, with a communicator standing for two identical ranks -------------------------------------

    /// <summary>Two ranks holding the same data: an allreduce doubles the buffer. Records what it was given, when.</summary>
    private sealed class TwinRanks : Communicator
    {
        public readonly List<float[]> Sent = new();

        public override int Rank => 0;

        public override int Size => 2;

        public override string Transport => "twin ranks (test)";

        public override CollectiveRequest StartAllreduceSum<T>(Memory<T> data)
        {
            if (typeof(T) == typeof(float)) Sent.Add(MemoryMarshal.Cast<T, float>(data.Span).ToArray());
            var span = data.Span;
            for (int i = 0; i < span.Length; i++) span[i] += span[i];
            return new CollectiveRequest("allreduce", completed: true);
        }

        public override CollectiveRequest StartBroadcast<T>(Memory<T> data) => new("broadcast", completed: true);

        public override bool Test(CollectiveRequest request) => true;

        public override void Abort(int exitCode) => throw new InvalidOperationException("abort " + exitCode);
    }

    [Fact]
    public void BackwardSignalsEachBucketOnceWithItsFinalGradientsAndTheStepEqualsOneProcess()
    {
        const int batch = 6;
        var x = Numerics.Uniform<float>(batch * 3 * 32 * 32, seed: 1);
        var labels = Numerics.Labels(batch, 10, seed: 2);

        var reference = new SeedCnn(5);
        using var plain = reference.CreateTrainer(new Sgd(lr: 0.1, momentum: 0.9), Loss.CrossEntropy, batch);
        plain.ComputeGradients(x, labels);
        float[] gradients = plain.Gradients.ToArray();
        plain.ApplyUpdate();

        var twin = new TwinRanks();
        var net = new SeedCnn(5);
        using var trainer = new DistributedTrainer<float>(net, new Sgd(lr: 0.1, momentum: 0.9), Loss.CrossEntropy, batch, twin);
        var buckets = net.Description.GradientBuckets;
        trainer.Step(x, labels);

        // One allreduce per bucket (then one for the loss and batch size), in backward's order, and what each sent
        // was already final: the bucket's gradients exactly, weighted by the local batch.
        Assert.Equal(buckets.Count, twin.Sent.Count);
        for (int k = 0; k < buckets.Count; k++)
        {
            var expected = gradients.AsSpan(buckets[k].Offset, buckets[k].Length).ToArray().Select(g => g * batch).ToArray();
            Assert.Equal(expected, twin.Sent[k]);
        }
        // Two identical ranks average to the one-process gradient: the same update, up to the scaling's rounding.
        Numerics.AssertClose(reference.ParameterData.ToArray(), net.ParameterData.ToArray(), 1e-6, "parameters after one step");
        output.WriteLine(trainer.DescribePlan());
    }

    [Fact]
    public void BadInputIsRefusedBeforeAnyCommunicationAndTheNextStepWorks()
    {
        var twin = new TwinRanks();
        var net = new Mlp(1);
        using var trainer = new DistributedTrainer<float>(net, new Sgd(lr: 0.1), Loss.CrossEntropy, 4, twin);
        var e = Assert.Throws<ArgumentException>(() => trainer.Step(new float[30], new int[2]));
        Assert.Contains("multiple of 20", e.Message);
        var x = Numerics.Uniform<float>(4 * 20, seed: 1);
        x[13] = float.NaN;
        Assert.Throws<ArgumentException>(() => trainer.Step(x, new int[4]));
        Assert.Empty(twin.Sent);
        x[13] = 0;
        trainer.Step(x, new int[4]);
        Assert.Equal(net.Description.GradientBuckets.Count, twin.Sent.Count);
        Assert.Equal(1, trainer.StepCount);
    }

    [Fact]
    public void ShardsSplitAGlobalBatchIntoContiguousNearlyEqualRuns()
    {
        foreach (var (count, size) in new[] { (64, 2), (65, 2), (10, 3), (2, 4), (1000, 7) })
        {
            int next = 100;
            for (int r = 0; r < size; r++)
            {
                var (start, n) = DistributedTrainer<float>.Shard(100, count, r, size);
                Assert.Equal(next, start);
                Assert.InRange(n, count / size, count / size + 1);
                next += n;
            }
            Assert.Equal(100 + count, next);
        }
    }

    [Fact]
    public void WithoutALauncherTheCommunicatorIsOneProcess()
    {
        Skip.If(Communicator.LaunchedByMpi());
        using var world = Communicator.FromEnvironment();
        Assert.Equal((0, 1, "single process"), (world.Rank, world.Size, world.Transport));
    }

    // ---- across processes, with mpiexec -----------------------------------------------------------------------

    private static string Probe => typeof(DistributedTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "MpiProbe").Value!;

    private static string? Mpiexec()
        => (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(d => Path.Combine(d, "mpiexec")).FirstOrDefault(File.Exists);

    private ChildProcess.Result Launch(string file, string arguments, IReadOnlyDictionary<string, string>? environment = null, int timeoutSeconds = 240)
    {
        var env = new Dictionary<string, string> { ["NETDSL_NUM_THREADS"] = "1" };
        if (environment is not null) foreach (var (k, v) in environment) env[k] = v;
        return ChildProcess.Run(file, arguments, _dir, env, TimeSpan.FromSeconds(timeoutSeconds));
    }

    private static float[] Read(string path) => MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(path)).ToArray();

    [SkippableFact]
    public void TwoRanksAtBatch32EndWithTheParametersOfOneProcessAtBatch64()
    {
        string? mpiexec = Mpiexec();
        Skip.If(mpiexec is null, "mpiexec is not installed: apt-get install mpich (.ci/run does).");
        var two = Launch(mpiexec!, $"-n 2 dotnet \"{Probe}\" distributed \"{_dir}\"");
        Assert.True(two.ExitCode == 0, two.All);
        var one = Launch("dotnet", $"\"{Probe}\" single \"{_dir}\"");
        Assert.True(one.ExitCode == 0, one.All);
        output.WriteLine(two.All);

        float[] rank0 = Read(Path.Combine(_dir, "rank0.bin")), rank1 = Read(Path.Combine(_dir, "rank1.bin")), single = Read(Path.Combine(_dir, "single.bin"));
        Assert.Equal(rank0, rank1); // identical on every rank, bit for bit
        double worst = 0;
        for (int i = 0; i < single.Length; i++)
            worst = Math.Max(worst, Math.Abs(rank0[i] - single[i]) / Math.Max(1.0, Math.Abs(single[i])));
        output.WriteLine($"20 steps: largest difference from one process at batch 64: {worst:E2} (relative, floor 1)");
        Assert.True(worst <= 1e-5, $"the ranks differ from one process by {worst:E2}");
        Assert.Contains("gradient buckets", two.All);
    }

    [SkippableFact]
    public void OneProcessWithoutMpiexecRunsTheSameProgramUnchanged()
    {
        var alone = Launch("dotnet", $"\"{Probe}\" distributed \"{_dir}\"");
        Assert.True(alone.ExitCode == 0, alone.All);
        var one = Launch("dotnet", $"\"{Probe}\" single \"{_dir}\"");
        Assert.True(one.ExitCode == 0, one.All);
        Assert.Contains("over 1 process(es) by single process", alone.All);
        Assert.Equal(Read(Path.Combine(_dir, "single.bin")), Read(Path.Combine(_dir, "rank0.bin")));
    }

    [SkippableFact]
    public void ARankThatStopsMakesTheOthersFailWithAClearErrorInsteadOfHanging()
    {
        string? mpiexec = Mpiexec();
        Skip.If(mpiexec is null, "mpiexec is not installed: apt-get install mpich (.ci/run does).");
        var hang = Launch(mpiexec!, $"-n 2 dotnet \"{Probe}\" hang \"{_dir}\"", new Dictionary<string, string> { ["NETDSL_COLLECTIVE_TIMEOUT"] = "3" }, timeoutSeconds: 120);
        output.WriteLine($"stopped rank: exit {hang.ExitCode} after {hang.Elapsed.TotalSeconds:F1} s\n{hang.All}");
        Assert.NotEqual(0, hang.ExitCode);
        Assert.Contains("Rank 0 of 2: allreduce of", hang.All);
        Assert.Contains("did not complete within 3 s. Another rank has probably crashed or stopped", hang.All);

        var crash = Launch(mpiexec!, $"-n 2 dotnet \"{Probe}\" crash \"{_dir}\"", new Dictionary<string, string> { ["NETDSL_COLLECTIVE_TIMEOUT"] = "3" }, timeoutSeconds: 120);
        output.WriteLine($"crashed rank: exit {crash.ExitCode} after {crash.Elapsed.TotalSeconds:F1} s\n{crash.All}");
        Assert.NotEqual(0, crash.ExitCode);
        Assert.False(File.Exists(Path.Combine(_dir, "rank0.bin")), "rank 0 finished training without its peer");
    }
}
