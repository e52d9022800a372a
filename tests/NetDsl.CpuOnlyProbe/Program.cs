using System;
using System.Linq;
using NetDsl;
using NetDsl.Runtime;

// Trains and predicts on the managed CPU path, then reports whether ILGPU was loaded. Exit code 0: not loaded.
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

[Network]
public partial class ProbeNet
{
    readonly Linear fc1 = new(6, 8);
    readonly Linear fc2 = new(8, 3);
    Tensor Forward([Shape(6)] Tensor x) => fc2.Apply(Dropout(Relu(fc1.Apply(x)), 0.2f));
}
