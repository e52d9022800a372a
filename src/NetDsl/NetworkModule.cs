using System.ComponentModel;

namespace NetDsl;

/// <summary>
/// The base of every <c>[Network]</c> class (the generator adds it to the generated half of the partial class).
/// It puts the symbolic tensor operations in scope of <c>Forward</c>, the way <c>torch.nn.functional</c> is in
/// scope of a PyTorch module. Dimensions follow PyTorch: dimension 0 is the batch, so for a per-sample shape
/// <c>[C, H, W]</c> the channels are dimension 1 and <c>dim: -1</c> is the last one.
/// </summary>
public abstract class NetworkModule
{
    /// <summary>Creates the module. Called by generated constructors.</summary>
    [EditorBrowsable(EditorBrowsableState.Never)]
    protected NetworkModule() { }

    /// <summary><c>max(x, 0)</c> elementwise.</summary>
    protected static Tensor Relu(Tensor x) => throw Symbolic.NotExecutable();

    /// <summary><c>x</c> where positive, <c>negativeSlope * x</c> elsewhere (PyTorch's default slope 0.01).</summary>
    protected static Tensor LeakyRelu(Tensor x, float negativeSlope = 0.01f) => throw Symbolic.NotExecutable();

    /// <summary>The logistic function <c>1 / (1 + exp(-x))</c> elementwise.</summary>
    protected static Tensor Sigmoid(Tensor x) => throw Symbolic.NotExecutable();

    /// <summary>Hyperbolic tangent elementwise.</summary>
    protected static Tensor Tanh(Tensor x) => throw Symbolic.NotExecutable();

    /// <summary>The exact (erf-based) GELU, PyTorch's default <c>approximate='none'</c>.</summary>
    protected static Tensor Gelu(Tensor x) => throw Symbolic.NotExecutable();

    /// <summary>Softmax along <paramref name="dim"/> (PyTorch numbering: 0 is the batch; -1 the last dimension).</summary>
    protected static Tensor Softmax(Tensor x, int dim = -1) => throw Symbolic.NotExecutable();

    /// <summary>Log of the softmax along <paramref name="dim"/>, computed stably.</summary>
    protected static Tensor LogSoftmax(Tensor x, int dim = -1) => throw Symbolic.NotExecutable();

    /// <summary>2-D max pooling over <c>[C, H, W]</c>. The stride defaults to the kernel size, as in PyTorch.</summary>
    protected static Tensor MaxPool2d(Tensor x, int kernel, int? stride = null, int padding = 0) => throw Symbolic.NotExecutable();

    /// <summary>2-D average pooling over <c>[C, H, W]</c>; padding counts as zeros in the average (PyTorch's <c>count_include_pad=True</c>).</summary>
    protected static Tensor AvgPool2d(Tensor x, int kernel, int? stride = null, int padding = 0) => throw Symbolic.NotExecutable();

    /// <summary>Flattens every dimension but the batch: <c>[B, C, H, W]</c> becomes <c>[B, C*H*W]</c> (<c>torch.flatten(x, 1)</c>).</summary>
    protected static Tensor Flatten(Tensor x) => throw Symbolic.NotExecutable();

    /// <summary>
    /// Views the tensor with a new per-sample shape; the batch dimension is implicit and kept. At most one
    /// dimension may be -1, inferred from the others. <c>Reshape(x, 64, 8, 8)</c> is PyTorch's <c>x.view(-1, 64, 8, 8)</c>.
    /// </summary>
    protected static Tensor Reshape(Tensor x, params int[] shape) => throw Symbolic.NotExecutable();

    /// <summary>Zeroes elements with probability <paramref name="p"/> and scales the rest by <c>1/(1-p)</c> while training; the identity in inference.</summary>
    protected static Tensor Dropout(Tensor x, float p = 0.5f) => throw Symbolic.NotExecutable();

    /// <summary>Elementwise sum of two tensors of the same shape; the same as <c>a + b</c>.</summary>
    protected static Tensor Add(Tensor a, Tensor b) => throw Symbolic.NotExecutable();

    /// <summary>Elementwise product of two tensors of the same shape; the same as <c>a * b</c>.</summary>
    protected static Tensor Multiply(Tensor a, Tensor b) => throw Symbolic.NotExecutable();

    /// <summary>Elementwise difference of two tensors of the same shape; the same as <c>a - b</c>.</summary>
    protected static Tensor Subtract(Tensor a, Tensor b) => throw Symbolic.NotExecutable();

    /// <summary>Nearest-neighbour upsampling of <c>[C, H, W]</c> by an integer <paramref name="scale"/> (<c>nn.Upsample(scale_factor, mode='nearest')</c>).</summary>
    protected static Tensor Upsample(Tensor x, int scale) => throw Symbolic.NotExecutable();

    /// <summary>Elements [<paramref name="start"/>, <paramref name="start"/> + <paramref name="length"/>) along <paramref name="dim"/> (<c>torch.narrow</c>).</summary>
    protected static Tensor Slice(Tensor x, int dim, int start, int length) => throw Symbolic.NotExecutable();

    /// <summary>The slice at <paramref name="index"/> along <paramref name="dim"/>, removing that dimension (<c>torch.select</c>; -1 is the last).</summary>
    protected static Tensor Select(Tensor x, int dim, int index) => throw Symbolic.NotExecutable();

    /// <summary>Concatenates tensors along <paramref name="dim"/> (default 1: features or channels), like <c>torch.cat</c>.</summary>
    protected static Tensor Concat(Tensor[] tensors, int dim = 1) => throw Symbolic.NotExecutable();
}
