using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace NetDsl.Runtime.Tests.Support;

using Tensor = TorchSharp.torch.Tensor;

/// <summary>
/// The same networks written in PyTorch's functional style (LibTorch through TorchSharp), over parameters copied
/// from a NetDsl network by their state_dict names.
/// </summary>
public static class TorchReference
{
    /// <summary>A PyTorch forward function over named parameters.</summary>
    public delegate Tensor Forward(Tensor x, IReadOnlyDictionary<string, Tensor> p);

    /// <summary>Copies a network's parameters into new leaf tensors that require gradients, keyed by name.</summary>
    public static Dictionary<string, TorchSharp.Modules.Parameter> Parameters(CompiledNetwork<float> net)
    {
        var result = new Dictionary<string, TorchSharp.Modules.Parameter>();
        foreach (var info in net.Description.Parameters)
        {
            var values = net.Parameter(info.Name).ToArray();
            result[info.Name] = new TorchSharp.Modules.Parameter(tensor(values, info.Shape.Select(d => (long)d).ToArray()), requires_grad: true);
        }
        return result;
    }

    public static Tensor Input(float[] values, int batch, int[] shape)
        => tensor(values, new long[] { batch }.Concat(shape.Select(d => (long)d)).ToArray());

    public static float[] Data(Tensor t) => t.detach().contiguous().data<float>().ToArray();

    private static Tensor Lin(Tensor x, IReadOnlyDictionary<string, Tensor> p, string layer)
        => F.linear(x, p[layer + ".weight"], p.TryGetValue(layer + ".bias", out var b) ? b : null);

    private static Tensor Conv(Tensor x, IReadOnlyDictionary<string, Tensor> p, string layer, long stride = 1, long padding = 0)
        => F.conv2d(x, p[layer + ".weight"], p[layer + ".bias"], strides: new[] { stride, stride }, padding: new[] { padding, padding });

    private static Tensor Flat(Tensor x) => x.flatten(1);

    /// <summary>The PyTorch definition of each test network, by class name.</summary>
    public static readonly Dictionary<string, Forward> Networks = new()
    {
        ["LinearNet"] = (x, p) => Lin(x, p, "fc"),
        ["LinearNoBiasSequenceNet"] = (x, p) => Flat(Lin(tanh(Lin(x, p, "fc")), p, "head")),
        ["ConvNet"] = (x, p) => Lin(Flat(Conv(x, p, "conv", stride: 2, padding: 1)), p, "fc"),
        ["ConvChainNet"] = (x, p) => Lin(Flat(Conv(tanh(Conv(x, p, "conv1", padding: 1)), p, "conv2")), p, "fc"),
        ["MaxPoolNet"] = (x, p) => Lin(Flat(F.max_pool2d(Conv(x, p, "conv", padding: 1), 2)), p, "fc"),
        ["MaxPoolOverlapNet"] = (x, p) => Lin(Flat(F.max_pool2d(Conv(x, p, "conv", padding: 1), new long[] { 3, 3 }, new long[] { 2, 2 }, new long[] { 1, 1 })), p, "fc"),
        ["AvgPoolNet"] = (x, p) => Lin(Flat(F.avg_pool2d(Conv(x, p, "conv", padding: 1), new long[] { 3, 3 }, new long[] { 2, 2 }, new long[] { 1, 1 }, count_include_pad: true)), p, "fc"),
        ["ReshapeNet"] = (x, p) => Lin(Flat(Conv(Lin(x, p, "up").reshape(-1, 3, 2, 2), p, "conv")), p, "fc"),
        ["ReluNet"] = (x, p) => Lin(F.relu(Lin(x, p, "fc1")), p, "fc2"),
        ["LeakyReluNet"] = (x, p) => Lin(F.leaky_relu(Lin(x, p, "fc1"), 0.1f), p, "fc2"),
        ["SigmoidNet"] = (x, p) => Lin(sigmoid(Lin(x, p, "fc1")), p, "fc2"),
        ["TanhNet"] = (x, p) => Lin(tanh(Lin(x, p, "fc1")), p, "fc2"),
        ["GeluNet"] = (x, p) => Lin(F.gelu(Lin(x, p, "fc1")), p, "fc2"),
        ["SoftmaxNet"] = (x, p) => Lin(F.softmax(Lin(x, p, "fc1"), -1), p, "fc2"),
        ["LogSoftmaxNet"] = (x, p) => Lin(F.log_softmax(Lin(x, p, "fc1"), 1), p, "fc2"),
        ["ChannelSoftmaxNet"] = (x, p) => Lin(Flat(F.softmax(Conv(x, p, "conv"), 1)), p, "fc"),
        ["ResidualNet"] = (x, p) =>
        {
            var h = Lin(x, p, "fc1");
            return Lin(F.relu(h) + h, p, "fc2");
        },
        ["MultiplyNet"] = (x, p) => Lin(Lin(x, p, "value") * sigmoid(Lin(x, p, "gate")), p, "fc"),
        ["ConcatNet"] = (x, p) => Lin(cat(new[] { Lin(x, p, "a"), tanh(Lin(x, p, "b")) }, 1), p, "fc"),
        ["ChannelConcatNet"] = (x, p) => Lin(Flat(cat(new[] { Conv(x, p, "a", padding: 1), F.relu(Conv(x, p, "b")) }, 1)), p, "fc"),
        ["SharedWeightsNet"] = (x, p) => Lin(Lin(tanh(Lin(x, p, "fc")), p, "fc"), p, "head"),
        ["Mlp"] = (x, p) => Lin(F.relu(Lin(F.relu(Lin(x, p, "fc1")), p, "fc2")), p, "fc3"),
        ["SeedCnn"] = (x, p) =>
        {
            x = F.max_pool2d(F.relu(Conv(x, p, "conv1", padding: 1)), 2);
            x = F.max_pool2d(F.relu(Conv(x, p, "conv2", padding: 1)), 2);
            x = F.relu(Lin(Flat(x), p, "fc1"));
            return Lin(x, p, "fc2");
        },
    };

    public static IReadOnlyDictionary<string, Tensor> AsTensors(Dictionary<string, TorchSharp.Modules.Parameter> p) => p.ToDictionary(kv => kv.Key, kv => (Tensor)kv.Value);
}
