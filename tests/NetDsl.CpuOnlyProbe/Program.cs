using System;
using System.Linq;
using NetDsl;
using NetDsl.Runtime;

// Trains and predicts on the managed CPU path, then reports whether ILGPU was loaded. Exit code 0: not loaded.
// With --numbers: trains a CNN and an MLP large enough to take the packed GEMM and convolution paths, and prints
// their outputs and parameters, so a test can compare runs with SIMD switched off (DOTNET_EnableAVX512=0, ...).
if (args.Length > 0 && args[0] == "--numbers")
{
    Console.WriteLine($"isa {(System.Runtime.Intrinsics.X86.Avx512F.IsSupported ? 1 : 0)} {(System.Runtime.Intrinsics.X86.Avx2.IsSupported ? 1 : 0)} {System.Numerics.Vector<float>.Count} {(System.Numerics.Vector.IsHardwareAccelerated ? 1 : 0)}");
    PrintNumbers(new ProbeCnn(1), 16);
    PrintNumbers(new ProbeMlp(1), 32);
    return 0;
}

// With --save-loop PATH: saves checkpoints to PATH forever (a test kills it mid-write).
if (args.Length > 1 && args[0] == "--save-loop")
{
    var big = new ProbeBig(1);
    for (long n = 1; ; n++)
    {
        big.ParameterData.Fill(n);
        NetDsl.Runtime.Checkpoints.Checkpoint.Save(args[1], big);
        Console.WriteLine($"saved {n}");
    }
}

// With --epoch-hash: one epoch of a CNN with batch norm and dropout over 2,048 shuffled samples, then a SHA-256
// of the parameters and running statistics (NETDSL_NUM_THREADS sets the thread count).
if (args.Length > 0 && args[0] == "--epoch-hash")
{
    var cnn = new ProbeCnn(7);
    var inputs = new float[2048 * 3 * 12 * 12];
    for (int i = 0; i < inputs.Length; i++) inputs[i] = (float)NetDsl.Runtime.CounterRandom.Uniform(99, (ulong)i) - 0.5f;
    var targets = Enumerable.Range(0, 2048).Select(i => (int)(NetDsl.Runtime.CounterRandom.Hash(5, (ulong)i) % 10)).ToArray();
    using var loader = new NetDsl.Runtime.Data.DataLoader(new NetDsl.Runtime.Data.Dataset(inputs, targets, [3, 12, 12]), 32, shuffle: true, seed: 3);
    using (var trainer = cnn.CreateTrainer(new Adam(lr: 1e-3), Loss.CrossEntropy, 32, seed: 11))
        foreach (var batch in loader.GetEpoch(0)) trainer.Step(batch.Inputs, batch.Labels);
    var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(cnn.ParameterData).ToArray()
        .Concat(System.Runtime.InteropServices.MemoryMarshal.AsBytes(cnn.StateData).ToArray()).ToArray();
    Console.WriteLine($"threads {NetDsl.Runtime.Cpu.CpuWorkers.Count} sha256 {Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(bytes))}");
    return 0;
}

var net = new ProbeNet(1);
using (var trainer = net.CreateTrainer(new Adam(lr: 1e-2), Loss.CrossEntropy, batchSize: 8))
{
    var x = new float[8 * 6];
    var labels = new int[8];
    for (int i = 0; i < x.Length; i++) x[i] = (i % 7) / 7f;
    for (int i = 0; i < labels.Length; i++) labels[i] = i % 3;
    for (int step = 0; step < 5; step++) trainer.Step(x, labels);
    var output = new float[3];
    net.Predict(x.AsSpan(0, 6), output);
}
var ilgpu = AppDomain.CurrentDomain.GetAssemblies().Where(a => a.GetName().Name!.StartsWith("ILGPU", StringComparison.Ordinal)).Select(a => a.GetName().Name).ToList();
Console.WriteLine(ilgpu.Count == 0 ? "ILGPU not loaded" : "ILGPU loaded: " + string.Join(", ", ilgpu));
return ilgpu.Count == 0 ? 0 : 1;

static void PrintNumbers(CompiledNetwork<float> net, int batch)
{
    var d = net.Description;
    var x = new float[batch * d.InputSize];
    for (int i = 0; i < x.Length; i++) x[i] = ((i * 7919) % 1000) / 1000f - 0.5f;
    var labels = Enumerable.Range(0, batch).Select(i => i % d.OutputSize).ToArray();
    using (var trainer = net.CreateTrainer(new Sgd(lr: 0.05, momentum: 0.9), Loss.CrossEntropy, batch))
        for (int step = 0; step < 3; step++) trainer.Step(x, labels);
    var output = new float[batch * d.OutputSize];
    net.Predict(x, output);
    Console.WriteLine(d.Name + " " + string.Join(" ", output.Concat(net.ParameterData.ToArray()).Select(v => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture))));
}

[Network]
public partial class ProbeNet
{
    readonly Linear fc1 = new(6, 8);
    readonly Linear fc2 = new(8, 3);
    Tensor Forward([Shape(6)] Tensor x) => fc2.Apply(Dropout(Relu(fc1.Apply(x)), 0.2f));
}

[Network]
public partial class ProbeCnn
{
    readonly Conv2d conv1 = new(3, 16, kernel: 3, padding: 1);
    readonly BatchNorm2d bn = new(16);
    readonly Conv2d conv2 = new(16, 32, kernel: 3, stride: 2, padding: 1);
    readonly Linear fc = new(32 * 6 * 6, 10);
    Tensor Forward([Shape(3, 12, 12)] Tensor x) => fc.Apply(Dropout(Flatten(Tanh(conv2.Apply(MaxPool2d(Relu(bn.Apply(conv1.Apply(x))), 1)))), 0.2f));
}

[Network]
public partial class ProbeMlp
{
    readonly Linear fc1 = new(100, 96);
    readonly Linear fc2 = new(96, 40);
    readonly Linear fc3 = new(40, 10);
    Tensor Forward([Shape(100)] Tensor x) => fc3.Apply(Sigmoid(fc2.Apply(Gelu(fc1.Apply(x)))));
}

[Network]
public partial class ProbeBig
{
    readonly Linear fc = new(1000, 1000);
    Tensor Forward([Shape(1000)] Tensor x) => fc.Apply(x);
}
