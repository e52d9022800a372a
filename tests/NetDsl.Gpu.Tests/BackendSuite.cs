using System;
using System.Linq;
using System.Collections.Generic;
using NetDsl.Runtime.Gpu;
using NetDsl.Runtime.Tests.Networks;
using NetDsl.Runtime.Tests.Support;
using Xunit;

namespace NetDsl.Runtime.Tests.Gpu;

/// <summary>
/// The device backends against the managed CPU path: with the same weights, inputs and dropout seeds, the same
/// outputs, loss, gradients and parameters after 3 optimizer steps, within 1e-4 (relative, with a floor at the
/// tensor's scale; see <see cref="Numerics.AssertClose{T}"/>), for every op, loss and optimizer, the MLP and the
/// CNN; plus the memory plan, disposal and launch counts. One subclass per backend runs it all.
/// </summary>
public abstract class BackendSuite
{
    private const double Tolerance = 1e-4;

    /// <summary>The device under test (shared by the subclass's tests).</summary>
    protected abstract GpuDevice Device { get; }

    /// <summary>Skips when the backend's hardware is absent.</summary>
    protected virtual void RequireDevice() { }

    private static readonly Dictionary<string, Func<CompiledNetwork<float>>> Networks = new()
    {
        ["LinearNet"] = () => new LinearNet(3),
        ["LinearNoBiasSequenceNet"] = () => new LinearNoBiasSequenceNet(3),
        ["ConvNet"] = () => new ConvNet(3),
        ["ConvChainNet"] = () => new ConvChainNet(3),
        ["MaxPoolNet"] = () => new MaxPoolNet(3),
        ["MaxPoolOverlapNet"] = () => new MaxPoolOverlapNet(3),
        ["AvgPoolNet"] = () => new AvgPoolNet(3),
        ["ReshapeNet"] = () => new ReshapeNet(3),
        ["ReluNet"] = () => new ReluNet(3),
        ["LeakyReluNet"] = () => new LeakyReluNet(3),
        ["SigmoidNet"] = () => new SigmoidNet(3),
        ["TanhNet"] = () => new TanhNet(3),
        ["GeluNet"] = () => new GeluNet(3),
        ["SoftmaxNet"] = () => new SoftmaxNet(3),
        ["LogSoftmaxNet"] = () => new LogSoftmaxNet(3),
        ["ChannelSoftmaxNet"] = () => new ChannelSoftmaxNet(3),
        ["DropoutNet"] = () => new DropoutNet(3),
        ["DropoutDeepNet"] = () => new DropoutDeepNet(3),
        ["ResidualNet"] = () => new ResidualNet(3),
        ["MultiplyNet"] = () => new MultiplyNet(3),
        ["ConcatNet"] = () => new ConcatNet(3),
        ["ChannelConcatNet"] = () => new ChannelConcatNet(3),
        ["SharedWeightsNet"] = () => new SharedWeightsNet(3),
        ["Mlp"] = () => new Mlp(3),
        ["SeedCnn"] = () => new SeedCnn(3),
        ["BatchNorm2dNet"] = () => new BatchNorm2dNet(3),
        ["BatchNorm1dNet"] = () => new BatchNorm1dNet(3),
        ["BatchNorm1dSequenceNet"] = () => new BatchNorm1dSequenceNet(3),
        ["LayerNormNet"] = () => new LayerNormNet(3),
        ["LayerNormSequenceNet"] = () => new LayerNormSequenceNet(3),
        ["EmbeddingNet"] = () => new EmbeddingNet(3),
        ["ConvTransposeNet"] = () => new ConvTransposeNet(3),
        ["ConvTransposeChainNet"] = () => new ConvTransposeChainNet(3),
        ["UpsampleNet"] = () => new UpsampleNet(3),
        ["SliceSelectSubtractNet"] = () => new SliceSelectSubtractNet(3),
        ["RnnNet"] = () => new RnnNet(3),
        ["GruNet"] = () => new GruNet(3),
        ["LstmNet"] = () => new LstmNet(3),
        ["LstmAllStatesNet"] = () => new LstmAllStatesNet(3),
    };

    public static TheoryData<string> NetworkNames() => new(Networks.Keys);

    [SkippableTheory]
    [MemberData(nameof(NetworkNames))]
    public void OperationsMatchTheManagedCpuPath(string name)
    {
        RequireDevice();
        bool classes = name != "DropoutNet";
        Compare(Networks[name], classes ? Loss.CrossEntropy : Loss.MeanSquaredError, () => new Sgd(lr: 0.05, momentum: 0.9), batch: name == "SeedCnn" ? 2 : 5);
    }

    public static TheoryData<string> LossNames() => new() { "CrossEntropyLoss", "MSELoss", "BCEWithLogitsLoss" };

    [SkippableTheory]
    [MemberData(nameof(LossNames))]
    public void LossesMatchTheManagedCpuPath(string loss)
    {
        RequireDevice();
        var l = loss switch { "CrossEntropyLoss" => Loss.CrossEntropy, "MSELoss" => Loss.MeanSquaredError, _ => Loss.BinaryCrossEntropyWithLogits };
        Compare(Networks["Mlp"], l, () => new Sgd(lr: 0.1), batch: 6);
    }

    public static TheoryData<string> OptimizerNames() => new() { "Sgd", "SgdMomentum", "SgdNesterov", "SgdWeightDecay", "Adam", "AdamWeightDecay", "AdamW" };

    [SkippableTheory]
    [MemberData(nameof(OptimizerNames))]
    public void OptimizersMatchTheManagedCpuPath(string optimizer)
    {
        RequireDevice();
        Func<Optimizer> make = optimizer switch
        {
            "Sgd" => () => new Sgd(lr: 0.1),
            "SgdMomentum" => () => new Sgd(lr: 0.05, momentum: 0.9),
            "SgdNesterov" => () => new Sgd(lr: 0.05, momentum: 0.9, nesterov: true),
            "SgdWeightDecay" => () => new Sgd(lr: 0.05, momentum: 0.5, dampening: 0.1, weightDecay: 0.01),
            "Adam" => () => new Adam(lr: 1e-3),
            "AdamWeightDecay" => () => new Adam(lr: 2e-3, beta1: 0.8, beta2: 0.99, eps: 1e-7, weightDecay: 0.05),
            _ => () => new AdamW(lr: 1e-3, weightDecay: 0.1),
        };
        Compare(Networks["Mlp"], Loss.CrossEntropy, make, batch: 6);
    }

    private void Compare(Func<CompiledNetwork<float>> create, Loss loss, Func<Optimizer> optimizer, int batch)
    {
        var cpuNet = create();
        var devNet = create();
        var d = cpuNet.Description;
        var x = d.Parameters.Count > 0 && d.Parameters[0].Name == "embed.weight"
            ? Numerics.Labels(batch * d.InputSize, d.Parameters[0].Shape[0], seed: 100).Select(v => (float)v).ToArray()
            : Numerics.Uniform<float>(batch * d.InputSize, seed: 100);
        var labels = Numerics.Labels(batch, d.OutputSize, seed: 101);
        var targets = Numerics.Uniform<float>(batch * d.OutputSize, seed: 102, lo: 0, hi: 1);
        using var cpu = cpuNet.CreateTrainer(optimizer(), loss, batch, seed: 9);
        using var dev = devNet.CreateTrainer(optimizer(), loss, batch, seed: 9, device: Device);
        Assert.Same(Device, dev.Device);

        float Step(Trainer<float> t, bool update) => loss.TakesClassLabels
            ? (update ? t.Step(x, labels) : t.ComputeGradients(x, labels))
            : (update ? t.Step(x, targets) : t.ComputeGradients(x, targets));

        float cpuLoss = Step(cpu, update: false), devLoss = Step(dev, update: false);
        Numerics.AssertClose<float>(cpu.Outputs, dev.Outputs, Tolerance, "output");
        Numerics.AssertClose<float>(new[] { cpuLoss }, new[] { devLoss }, Tolerance, "loss");
        Numerics.AssertClose<float>(cpu.Gradients, dev.Gradients, Tolerance, "gradients");
        cpu.ApplyUpdate();
        dev.ApplyUpdate();
        for (int s = 0; s < 2; s++)
        {
            Step(cpu, update: true);
            Step(dev, update: true);
        }
        dev.CopyParametersToNetwork();
        foreach (var p in d.Parameters)
            Numerics.AssertClose<float>(cpuNet.Parameter(p.Name), devNet.Parameter(p.Name), Tolerance, p.Name + " after 3 steps");
        foreach (var st in d.States)
            Numerics.AssertClose<float>(cpuNet.State(st.Name), devNet.State(st.Name), Tolerance, st.Name + " after 3 steps");

        // Inference on the device with the trained parameters.
        var expected = new float[batch * d.OutputSize];
        var actual = new float[expected.Length];
        cpuNet.Predict(x, expected);
        dev.Predict(x, actual);
        Numerics.AssertClose<float>(expected, actual, Tolerance, "inference after training");
    }

    [SkippableFact]
    public void TheMemoryPlanIsBelowTheSumOfBuffersAndIsWhatTheDeviceAllocates()
    {
        RequireDevice();
        const int capacity = 8;
        var net = new SeedCnn(1);
        Assert.True(SeedCnn.TrainingBytesPerSample < SeedCnn.UnplannedTrainingBytesPerSample,
            $"planned {SeedCnn.TrainingBytesPerSample} bytes per sample, unplanned {SeedCnn.UnplannedTrainingBytesPerSample}");
        var optimizer = new Adam();
        var plan = DeviceMemory.Plan(net.Description, capacity, optimizer);
        long before = Device.AllocatedBytes;
        using var trainer = (DeviceTrainer)net.CreateTrainer(optimizer, Loss.CrossEntropy, capacity, device: Device);
        Assert.Equal(plan, trainer.Memory);
        Assert.Equal(plan.Total, Device.AllocatedBytes - before);
        // The activation arena is the compile-time plan: the planned peak per sample times the capacity
        // (the inference plan of this network is smaller, so training sizes it).
        Assert.Equal((SeedCnn.TrainingBytesPerSample - net.Description.TrainingPlan.IndicesPerSample * 4L) * capacity, plan.Activations);
        // The parameter arenas hold the flat buffer: the tensors (ParameterBytes) and the alignment gaps between them.
        long buffer = net.Description.ParameterBufferLength * 4L;
        Assert.InRange(buffer - SeedCnn.ParameterBytes, 0, 4L * 15 * net.Description.Parameters.Count);
        Assert.Equal(buffer + net.Description.StateCount * 4L, plan.Parameters);
        Assert.Equal(buffer, plan.Gradients);
        Assert.Equal(2 * buffer, plan.OptimizerState);
    }

    [SkippableFact]
    public void DisposeReleasesAllDeviceMemory()
    {
        RequireDevice();
        long before = Device.AllocatedBytes;
        var trainer = new Mlp(1).CreateTrainer(new Sgd(lr: 0.1, momentum: 0.9), Loss.CrossEntropy, 16, device: Device);
        Assert.True(Device.AllocatedBytes > before);
        trainer.Dispose();
        Assert.Equal(before, Device.AllocatedBytes);
        Assert.Throws<ObjectDisposedException>(() => trainer.Step(new float[20], new int[1]));
    }

    /// <summary>Many trainers created and disposed leave no device memory behind (the soak on a device).</summary>
    [SkippableFact]
    public void AHundredTrainersCreatedAndDisposedLeaveDeviceMemoryFlat()
    {
        RequireDevice();
        long before = Device.AllocatedBytes;
        var net = new BatchNorm1dNet(1);
        var x = Numerics.Uniform<float>(8 * 5, seed: 1);
        var labels = Numerics.Labels(8, 4, seed: 2);
        for (int i = 0; i < 100; i++)
        {
            using var trainer = net.CreateTrainer(new Adam(), Loss.CrossEntropy, 8, device: Device);
            trainer.Step(x, labels);
            Assert.True(Device.AllocatedBytes > before);
        }
        Assert.Equal(before, Device.AllocatedBytes);
        using (var trainer = net.CreateTrainer(new Adam(), Loss.CrossEntropy, 8, device: Device))
            for (int i = 0; i < 500; i++) trainer.Step(x, labels);
        Assert.Equal(before, Device.AllocatedBytes);
    }

    [SkippableFact]
    public void TheMlpTrainingStepNeedsAtMostThreeLaunchesPerLayerPlusTheOptimizer()
    {
        RequireDevice();
        var net = new Mlp(1);
        using var trainer = (DeviceTrainer)net.CreateTrainer(new Sgd(lr: 0.1), Loss.CrossEntropy, 4, device: Device);
        trainer.Step(Numerics.Uniform<float>(4 * 20, 1), new[] { 0, 1, 2, 3 });
        Assert.Equal(Mlp.KernelLaunchesPerTrainingStep, trainer.LaunchesLastStep);
        Assert.True(trainer.LaunchesLastStep <= 3 * 3 + 1, $"{trainer.LaunchesLastStep} launches for 3 layers");
        Assert.Equal(net.Description.TrainingSteps + 2, trainer.LaunchesLastStep);
    }

    [SkippableFact]
    public void Float64NetworksAreRefusedWithAClearMessage()
    {
        RequireDevice();
        var ex = Assert.Throws<NotSupportedException>(() => new Networks.F64Mlp(1).CreateTrainer(new Sgd(lr: 0.1), Loss.CrossEntropy, 4, device: Device));
        Assert.Contains("device training supports Float32 networks", ex.Message);
    }
}
