using System;
using System.Linq;
using NetDsl;
using NetDsl.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace NetDsl.Benchmarks;

/// <summary>W-tiny: a control policy, 8 → 64 → Tanh → 64 → Tanh → 4.</summary>
[Network]
public partial class TinyPolicy
{
    readonly Linear fc1 = new(8, 64);
    readonly Linear fc2 = new(64, 64);
    readonly Linear fc3 = new(64, 4);
    NetDsl.Tensor Forward([Shape(8)] NetDsl.Tensor x) => fc3.Apply(Tanh(fc2.Apply(Tanh(fc1.Apply(x)))));
}

/// <summary>W-mlp: 784 → 256 → ReLU → 128 → ReLU → 10.</summary>
[Network]
public partial class MnistMlp
{
    readonly Linear fc1 = new(784, 256);
    readonly Linear fc2 = new(256, 128);
    readonly Linear fc3 = new(128, 10);
    NetDsl.Tensor Forward([Shape(1, 28, 28)] NetDsl.Tensor x) => fc3.Apply(Relu(fc2.Apply(Relu(fc1.Apply(Flatten(x))))));
}

/// <summary>W-cnn: Conv(1,32,3,p1) → ReLU → MaxPool(2) → Conv(32,64,3,p1) → ReLU → MaxPool(2) → Flatten(3136) → Linear(128) → ReLU → Linear(10).</summary>
[Network]
public partial class MnistCnn
{
    readonly Conv2d conv1 = new(1, 32, kernel: 3, padding: 1);
    readonly Conv2d conv2 = new(32, 64, kernel: 3, padding: 1);
    readonly Linear fc1 = new(64 * 7 * 7, 128);
    readonly Linear fc2 = new(128, 10);

    NetDsl.Tensor Forward([Shape(1, 28, 28)] NetDsl.Tensor x)
    {
        x = MaxPool2d(Relu(conv1.Apply(x)), 2);
        x = MaxPool2d(Relu(conv2.Apply(x)), 2);
        x = Relu(fc1.Apply(Flatten(x)));
        return fc2.Apply(x);
    }
}

/// <summary>The same networks in TorchSharp, with NetDsl's initial weights copied in.</summary>
public static class TorchModels
{
    private static bool s_threadsSet;

    public static void UseThreads(int threads)
    {
        if (s_threadsSet) return;
        s_threadsSet = true;
        torch.set_num_threads(threads);
        torch.set_num_interop_threads(1);
        if (Environment.GetEnvironmentVariable("NETDSL_NUM_THREADS") is null) NetDsl.Runtime.Cpu.CpuWorkers.Count = threads;
    }

    public static Sequential Tiny(TinyPolicy net) => Load(nn.Sequential(
        ("fc1", nn.Linear(8, 64)), ("t1", nn.Tanh()), ("fc2", nn.Linear(64, 64)), ("t2", nn.Tanh()), ("fc3", nn.Linear(64, 4))), net);

    public static Sequential Mlp(MnistMlp net) => Load(nn.Sequential(
        ("flat", nn.Flatten()), ("fc1", nn.Linear(784, 256)), ("r1", nn.ReLU()), ("fc2", nn.Linear(256, 128)), ("r2", nn.ReLU()), ("fc3", nn.Linear(128, 10))), net);

    public static Sequential Cnn(MnistCnn net) => Load(nn.Sequential(
        ("conv1", nn.Conv2d(1, 32, 3, padding: 1)), ("r1", nn.ReLU()), ("p1", nn.MaxPool2d(2)),
        ("conv2", nn.Conv2d(32, 64, 3, padding: 1)), ("r2", nn.ReLU()), ("p2", nn.MaxPool2d(2)),
        ("flat", nn.Flatten()), ("fc1", nn.Linear(3136, 128)), ("r3", nn.ReLU()), ("fc2", nn.Linear(128, 10))), net);

    private static Sequential Load(Sequential model, CompiledNetwork<float> net)
    {
        using var _ = torch.no_grad();
        foreach (var (name, parameter) in model.named_parameters())
        {
            var values = net.Parameter(name).ToArray();
            parameter.copy_(torch.tensor(values, parameter.shape));
        }
        return model;
    }

    public static torch.Tensor Input(float[] values, params long[] shape) => torch.tensor(values, shape);

    public static float[] Random(int count, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => (float)rng.NextDouble()).ToArray();
    }

    public static int[] Labels(int count, int classes, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => rng.Next(classes)).ToArray();
    }
}
