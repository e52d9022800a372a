using NetDsl;

namespace NetDsl.Runtime.Tests.Networks;

// Small networks exercising every operation. Each op sits between layers, so gradients flow into and out of
// it and its backward pass is checked through the parameters' gradients. The build also compiles this file in
// double precision (namespace ...Networks.F64) for finite-difference checks.

[Network]
public partial class LinearNet
{
    readonly Linear fc = new(5, 4);
    Tensor Forward([Shape(5)] Tensor x) => fc.Apply(x);
}

[Network]
public partial class LinearNoBiasSequenceNet
{
    readonly Linear fc = new(4, 3, bias: false);
    readonly Linear head = new(3, 2);
    Tensor Forward([Shape(3, 4)] Tensor x) => Flatten(head.Apply(Tanh(fc.Apply(x))));
}

[Network]
public partial class ConvNet
{
    readonly Conv2d conv = new(2, 3, kernel: 3, stride: 2, padding: 1);
    readonly Linear fc = new(3 * 4 * 4, 4);
    Tensor Forward([Shape(2, 7, 7)] Tensor x) => fc.Apply(Flatten(conv.Apply(x)));
}

[Network]
public partial class ConvChainNet
{
    readonly Conv2d conv1 = new(2, 3, kernel: 3, padding: 1);
    readonly Conv2d conv2 = new(3, 2, kernel: 2);
    readonly Linear fc = new(2 * 4 * 4, 3);
    Tensor Forward([Shape(2, 5, 5)] Tensor x) => fc.Apply(Flatten(conv2.Apply(Tanh(conv1.Apply(x)))));
}

[Network]
public partial class MaxPoolNet
{
    readonly Conv2d conv = new(2, 3, kernel: 3, padding: 1);
    readonly Linear fc = new(27, 4);
    Tensor Forward([Shape(2, 6, 6)] Tensor x) => fc.Apply(Flatten(MaxPool2d(conv.Apply(x), 2)));
}

[Network]
public partial class MaxPoolOverlapNet
{
    readonly Conv2d conv = new(2, 3, kernel: 3, padding: 1);
    readonly Linear fc = new(27, 4);
    Tensor Forward([Shape(2, 5, 5)] Tensor x) => fc.Apply(Flatten(MaxPool2d(conv.Apply(x), 3, stride: 2, padding: 1)));
}

[Network]
public partial class AvgPoolNet
{
    readonly Conv2d conv = new(2, 3, kernel: 3, padding: 1);
    readonly Linear fc = new(27, 4);
    Tensor Forward([Shape(2, 6, 6)] Tensor x) => fc.Apply(Flatten(AvgPool2d(conv.Apply(x), 3, stride: 2, padding: 1)));
}

[Network]
public partial class ReshapeNet
{
    readonly Linear up = new(6, 12);
    readonly Conv2d conv = new(3, 2, kernel: 1);
    readonly Linear fc = new(8, 3);
    Tensor Forward([Shape(6)] Tensor x) => fc.Apply(Flatten(conv.Apply(Reshape(up.Apply(x), 3, 2, -1))));
}

[Network]
public partial class ReluNet
{
    readonly Linear fc1 = new(5, 6);
    readonly Linear fc2 = new(6, 4);
    Tensor Forward([Shape(5)] Tensor x) => fc2.Apply(Relu(fc1.Apply(x)));
}

[Network]
public partial class LeakyReluNet
{
    readonly Linear fc1 = new(5, 6);
    readonly Linear fc2 = new(6, 4);
    Tensor Forward([Shape(5)] Tensor x) => fc2.Apply(LeakyRelu(fc1.Apply(x), 0.1f));
}

[Network]
public partial class SigmoidNet
{
    readonly Linear fc1 = new(5, 6);
    readonly Linear fc2 = new(6, 4);
    Tensor Forward([Shape(5)] Tensor x) => fc2.Apply(Sigmoid(fc1.Apply(x)));
}

[Network]
public partial class TanhNet
{
    readonly Linear fc1 = new(5, 6);
    readonly Linear fc2 = new(6, 4);
    Tensor Forward([Shape(5)] Tensor x) => fc2.Apply(Tanh(fc1.Apply(x)));
}

[Network]
public partial class GeluNet
{
    readonly Linear fc1 = new(5, 6);
    readonly Linear fc2 = new(6, 4);
    Tensor Forward([Shape(5)] Tensor x) => fc2.Apply(Gelu(fc1.Apply(x)));
}

[Network]
public partial class SoftmaxNet
{
    readonly Linear fc1 = new(5, 6);
    readonly Linear fc2 = new(6, 4);
    Tensor Forward([Shape(5)] Tensor x) => fc2.Apply(Softmax(fc1.Apply(x)));
}

[Network]
public partial class LogSoftmaxNet
{
    readonly Linear fc1 = new(5, 6);
    readonly Linear fc2 = new(6, 4);
    Tensor Forward([Shape(5)] Tensor x) => fc2.Apply(LogSoftmax(fc1.Apply(x), dim: 1));
}

[Network]
public partial class ChannelSoftmaxNet
{
    readonly Conv2d conv = new(2, 3, kernel: 1);
    readonly Linear fc = new(27, 4);
    Tensor Forward([Shape(2, 3, 3)] Tensor x) => fc.Apply(Flatten(Softmax(conv.Apply(x), dim: 1)));
}

[Network]
public partial class DropoutNet
{
    readonly Linear fc = new(6, 5);
    Tensor Forward([Shape(6)] Tensor x) => Dropout(fc.Apply(x), 0.4f);
}

[Network]
public partial class DropoutDeepNet
{
    readonly Linear fc1 = new(6, 8);
    readonly Linear fc2 = new(8, 3);
    Tensor Forward([Shape(6)] Tensor x) => fc2.Apply(Dropout(Relu(fc1.Apply(x)), 0.3f));
}

[Network]
public partial class ResidualNet
{
    readonly Linear fc1 = new(5, 5);
    readonly Linear fc2 = new(5, 3);

    Tensor Forward([Shape(5)] Tensor x)
    {
        var h = fc1.Apply(x);
        var y = Relu(h) + h;
        return fc2.Apply(y);
    }
}

[Network]
public partial class MultiplyNet
{
    readonly Linear value = new(5, 4);
    readonly Linear gate = new(5, 4);
    readonly Linear fc = new(4, 3);
    Tensor Forward([Shape(5)] Tensor x) => fc.Apply(value.Apply(x) * Sigmoid(gate.Apply(x)));
}

[Network]
public partial class ConcatNet
{
    readonly Linear a = new(5, 3);
    readonly Linear b = new(5, 2);
    readonly Linear fc = new(5, 4);
    Tensor Forward([Shape(5)] Tensor x) => fc.Apply(Concat([a.Apply(x), Tanh(b.Apply(x))], dim: 1));
}

[Network]
public partial class ChannelConcatNet
{
    readonly Conv2d a = new(2, 2, kernel: 3, padding: 1);
    readonly Conv2d b = new(2, 1, kernel: 1);
    readonly Linear fc = new(3 * 4 * 4, 3);
    Tensor Forward([Shape(2, 4, 4)] Tensor x) => fc.Apply(Flatten(Concat([a.Apply(x), Relu(b.Apply(x))], dim: 1)));
}

[Network]
public partial class SharedWeightsNet
{
    readonly Linear fc = new(4, 4);
    readonly Linear head = new(4, 2);
    Tensor Forward([Shape(4)] Tensor x) => head.Apply(fc.Apply(Tanh(fc.Apply(x))));
}

[Network]
public partial class Mlp
{
    readonly Linear fc1 = new(20, 16);
    readonly Linear fc2 = new(16, 8);
    readonly Linear fc3 = new(8, 4);
    Tensor Forward([Shape(20)] Tensor x) => fc3.Apply(Relu(fc2.Apply(Relu(fc1.Apply(x)))));
}

/// <summary>The reference article's CNN, corrected: 64x8x8 features reach fc1.</summary>
[Network]
public partial class SeedCnn
{
    readonly Conv2d conv1 = new(3, 32, kernel: 3, padding: 1);
    readonly Conv2d conv2 = new(32, 64, kernel: 3, padding: 1);
    readonly Linear fc1 = new(64 * 8 * 8, 128);
    readonly Linear fc2 = new(128, 10);

    Tensor Forward([Shape(3, 32, 32)] Tensor x)
    {
        x = MaxPool2d(Relu(conv1.Apply(x)), 2);
        x = MaxPool2d(Relu(conv2.Apply(x)), 2);
        x = Relu(fc1.Apply(Flatten(x)));
        return fc2.Apply(x);
    }
}

// ---- issue 5: normalization, embeddings, recurrent layers, decoders ------------------------------------------

[Network]
public partial class BatchNorm2dNet
{
    readonly Conv2d conv = new(2, 3, kernel: 3, padding: 1);
    readonly BatchNorm2d bn = new(3);
    readonly Linear fc = new(3 * 4 * 4, 4);
    Tensor Forward([Shape(2, 4, 4)] Tensor x) => fc.Apply(Flatten(Relu(bn.Apply(conv.Apply(x)))));
}

[Network]
public partial class BatchNorm1dNet
{
    readonly Linear fc1 = new(5, 6);
    readonly BatchNorm1d bn = new(6, momentum: 0.2f);
    readonly Linear fc2 = new(6, 4);
    Tensor Forward([Shape(5)] Tensor x) => fc2.Apply(Tanh(bn.Apply(fc1.Apply(x))));
}

[Network]
public partial class BatchNorm1dSequenceNet
{
    readonly BatchNorm1d bn = new(3, affine: false);
    readonly Linear fc = new(12, 4);
    Tensor Forward([Shape(3, 4)] Tensor x) => fc.Apply(Flatten(bn.Apply(x)));
}

[Network]
public partial class LayerNormNet
{
    readonly Linear fc1 = new(5, 6);
    readonly LayerNorm norm = new(6);
    readonly Linear fc2 = new(6, 4);
    Tensor Forward([Shape(5)] Tensor x) => fc2.Apply(Gelu(norm.Apply(fc1.Apply(x))));
}

[Network]
public partial class LayerNormSequenceNet
{
    readonly Linear fc1 = new(4, 5);
    readonly LayerNorm norm = new(5, eps: 1e-3f);
    readonly Linear fc2 = new(15, 3);
    Tensor Forward([Shape(3, 4)] Tensor x) => fc2.Apply(Flatten(norm.Apply(fc1.Apply(x))));
}

[Network]
public partial class EmbeddingNet
{
    readonly Embedding embed = new(10, 3);
    readonly Linear fc = new(12, 4);
    Tensor Forward([Shape(4)] Tensor tokens) => fc.Apply(Flatten(embed.Apply(tokens)));
}

[Network]
public partial class ConvTransposeNet
{
    readonly ConvTranspose2d up = new(2, 3, kernel: 3, stride: 2, padding: 1, outputPadding: 1);
    readonly Linear fc = new(3 * 6 * 6, 4);
    Tensor Forward([Shape(2, 3, 3)] Tensor x) => fc.Apply(Flatten(Tanh(up.Apply(x))));
}

[Network]
public partial class ConvTransposeChainNet
{
    readonly Conv2d conv = new(2, 3, kernel: 1);
    readonly ConvTranspose2d up = new(3, 2, kernel: 2, stride: 2, bias: false);
    readonly Linear fc = new(2 * 6 * 6, 3);
    Tensor Forward([Shape(2, 3, 3)] Tensor x) => fc.Apply(Flatten(up.Apply(Relu(conv.Apply(x)))));
}

[Network]
public partial class UpsampleNet
{
    readonly Conv2d conv1 = new(2, 2, kernel: 1);
    readonly Conv2d conv2 = new(2, 1, kernel: 3, padding: 1);
    readonly Linear fc = new(36, 3);
    Tensor Forward([Shape(2, 3, 3)] Tensor x) => fc.Apply(Flatten(conv2.Apply(Upsample(conv1.Apply(x), 2))));
}

[Network]
public partial class SliceSelectSubtractNet
{
    readonly Linear fc2 = new(3, 4);
    readonly Linear seq = new(4, 6);

    Tensor Forward([Shape(3, 4)] Tensor x)
    {
        var h = seq.Apply(x);                          // [B,3,6]
        var last = Select(h, dim: 1, index: -1);       // [B,6]
        var first = Select(h, dim: 1, index: 0);       // [B,6]
        var d = Slice(Tanh(last), dim: 1, start: 1, length: 3) - Slice(first, dim: 1, start: 3, length: 3);
        return fc2.Apply(d);
    }
}

[Network]
public partial class RnnNet
{
    readonly Rnn rnn = new(3, 5);
    readonly Linear fc = new(5, 3);
    Tensor Forward([Shape(4, 3)] Tensor x) => fc.Apply(Select(rnn.Apply(x), dim: 1, index: -1));
}

[Network]
public partial class GruNet
{
    readonly Gru gru = new(3, 4);
    readonly Linear fc = new(4, 3);
    Tensor Forward([Shape(4, 3)] Tensor x) => fc.Apply(Select(gru.Apply(x), dim: 1, index: -1));
}

[Network]
public partial class LstmNet
{
    readonly Lstm lstm = new(3, 4);
    readonly Linear fc = new(4, 3);
    Tensor Forward([Shape(4, 3)] Tensor x) => fc.Apply(Select(lstm.Apply(x), dim: 1, index: -1));
}

[Network]
public partial class LstmAllStatesNet
{
    readonly Lstm lstm = new(2, 3, bias: false);
    readonly Linear fc = new(9, 3);
    Tensor Forward([Shape(3, 2)] Tensor x) => fc.Apply(Flatten(lstm.Apply(x)));
}
