namespace NetDsl;

/// <summary>
/// A lookup table, PyTorch's <c>nn.Embedding</c>: input <c>[B, T]</c> of token ids (integers stored in the input
/// floats; each must be in [0, numEmbeddings)), output <c>[B, T, embeddingDim]</c>. <c>weight</c> is initialized
/// from N(0, 1), as in PyTorch.
/// </summary>
public sealed class Embedding : Layer
{
    /// <summary>Declares the layer.</summary>
    public Embedding(int numEmbeddings, int embeddingDim)
    {
        NumEmbeddings = numEmbeddings;
        EmbeddingDim = embeddingDim;
    }

    /// <summary>Vocabulary size.</summary>
    public int NumEmbeddings { get; }

    /// <summary>Vector size.</summary>
    public int EmbeddingDim { get; }
}

/// <summary>
/// An Elman recurrent layer, PyTorch's <c>nn.RNN(inputSize, hiddenSize, batch_first=True)</c> with tanh:
/// <c>h_t = tanh(x_t·W_ihᵀ + b_ih + h_{t−1}·W_hhᵀ + b_hh)</c>, h₀ = 0. Input <c>[B, T, inputSize]</c>, output all
/// hidden states <c>[B, T, hiddenSize]</c> (take the last with <c>Select(y, dim: 1, index: -1)</c>). The generator
/// unrolls the fixed sequence length, so backpropagation through time is ordinary compiled code.
/// </summary>
public sealed class Rnn : Layer
{
    /// <summary>Declares the layer.</summary>
    public Rnn(int inputSize, int hiddenSize, bool bias = true)
    {
        InputSize = inputSize;
        HiddenSize = hiddenSize;
        HasBias = bias;
    }

    /// <summary>Input features.</summary>
    public int InputSize { get; }

    /// <summary>Hidden features.</summary>
    public int HiddenSize { get; }

    /// <summary>Whether the layer has biases.</summary>
    public bool HasBias { get; }
}

/// <summary>
/// A gated recurrent unit, PyTorch's <c>nn.GRU(inputSize, hiddenSize, batch_first=True)</c> (gates r, z, n in
/// PyTorch's order and formulas). Input <c>[B, T, inputSize]</c>, output all hidden states <c>[B, T, hiddenSize]</c>.
/// </summary>
public sealed class Gru : Layer
{
    /// <summary>Declares the layer.</summary>
    public Gru(int inputSize, int hiddenSize, bool bias = true)
    {
        InputSize = inputSize;
        HiddenSize = hiddenSize;
        HasBias = bias;
    }

    /// <summary>Input features.</summary>
    public int InputSize { get; }

    /// <summary>Hidden features.</summary>
    public int HiddenSize { get; }

    /// <summary>Whether the layer has biases.</summary>
    public bool HasBias { get; }
}

/// <summary>
/// A long short-term memory layer, PyTorch's <c>nn.LSTM(inputSize, hiddenSize, batch_first=True)</c> (gates i, f, g,
/// o in PyTorch's order). Input <c>[B, T, inputSize]</c>, output all hidden states <c>[B, T, hiddenSize]</c>.
/// </summary>
public sealed class Lstm : Layer
{
    /// <summary>Declares the layer.</summary>
    public Lstm(int inputSize, int hiddenSize, bool bias = true)
    {
        InputSize = inputSize;
        HiddenSize = hiddenSize;
        HasBias = bias;
    }

    /// <summary>Input features.</summary>
    public int InputSize { get; }

    /// <summary>Hidden features.</summary>
    public int HiddenSize { get; }

    /// <summary>Whether the layer has biases.</summary>
    public bool HasBias { get; }
}

/// <summary>
/// A transposed 2-D convolution, PyTorch's <c>nn.ConvTranspose2d</c> (square kernel): input <c>[B, inChannels, H, W]</c>,
/// weight <c>[inChannels, outChannels, kernel, kernel]</c>, output
/// <c>[B, outChannels, (H−1)·stride − 2·padding + kernel + outputPadding, …]</c>; the gradient of Conv2d, used to
/// upsample in decoders.
/// </summary>
public sealed class ConvTranspose2d : Layer
{
    /// <summary>Declares the layer.</summary>
    public ConvTranspose2d(int inChannels, int outChannels, int kernel, int stride = 1, int padding = 0, int outputPadding = 0, bool bias = true)
    {
        InChannels = inChannels;
        OutChannels = outChannels;
        Kernel = kernel;
        Stride = stride;
        Padding = padding;
        OutputPadding = outputPadding;
        HasBias = bias;
    }

    /// <summary>Input channels.</summary>
    public int InChannels { get; }

    /// <summary>Output channels.</summary>
    public int OutChannels { get; }

    /// <summary>Kernel size.</summary>
    public int Kernel { get; }

    /// <summary>Stride.</summary>
    public int Stride { get; }

    /// <summary>Padding removed from each side of the output.</summary>
    public int Padding { get; }

    /// <summary>Extra rows and columns added to one side of the output.</summary>
    public int OutputPadding { get; }

    /// <summary>Whether the layer adds a bias per output channel.</summary>
    public bool HasBias { get; }
}
