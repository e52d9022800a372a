using System.Collections.Generic;

namespace NetDsl.Generator.Graph;

/// <summary>
/// The closed set of primitive operations. Layers lower onto these (Linear is MatMul + BiasAdd, Conv2d is
/// Conv2d + BiasAdd), and each has one shape rule (Shapes/ShapeRules), one forward rule
/// (Graph/ForwardRules) and one gradient rule (Autodiff/GradientRules).
/// </summary>
internal enum OpKind
{
    Input,
    MatMul,
    BiasAdd,
    Conv2d,
    MaxPool2d,
    AvgPool2d,
    Reshape,
    Relu,
    LeakyRelu,
    Sigmoid,
    Tanh,
    Gelu,
    Softmax,
    LogSoftmax,
    Dropout,
    Add,
    Mul,
    Concat,
    Sub,

    /// <summary>A tensor of zeros (a recurrent layer's initial state).</summary>
    Zeros,

    /// <summary><c>[outer, Start..Start+n, inner]</c> of the input along <see cref="Node.Axis"/> (Select is a Slice of one, squeezed).</summary>
    Slice,

    /// <summary>Nearest-neighbour upsampling of <c>[C, H, W]</c> by <see cref="Node.Kernel"/>.</summary>
    Upsample,

    /// <summary>Batch normalization over all but <see cref="Node.Axis"/> (the channels), with running statistics.</summary>
    BatchNorm,

    /// <summary>Layer normalization over the last dimension.</summary>
    LayerNorm,

    /// <summary>Row lookup: token ids → rows of the weight.</summary>
    Embedding,

    /// <summary>Transposed convolution: Conv2d's data gradient as a forward op.</summary>
    ConvTranspose2d,
}

/// <summary>A node of the forward graph: one primitive operation producing one tensor of a fixed per-sample shape.</summary>
internal sealed class Node
{
    public Node(int id, OpKind op, int[] inputs, int[] shape, string label, string layer, int spanId)
    {
        Id = id;
        Op = op;
        Inputs = inputs;
        Shape = shape;
        Label = label;
        Layer = layer;
        SpanId = spanId;
    }

    public int Id { get; }

    public OpKind Op { get; }

    public int[] Inputs { get; }

    /// <summary>Per-sample shape: the batch dimension is implicit.</summary>
    public int[] Shape { get; }

    /// <summary>What the user wrote, for messages and comments: <c>conv1</c>, <c>relu</c>, <c>max_pool2d(2)</c>.</summary>
    public string Label { get; }

    /// <summary>The layer this node belongs to, or empty.</summary>
    public string Layer { get; }

    public int SpanId { get; }

    /// <summary>A unique C# identifier for the node's buffers.</summary>
    public string Name { get; set; } = "";

    /// <summary>The parameter read by the op (MatMul/Conv2d weight, BiasAdd bias), or -1.</summary>
    public int Param { get; set; } = -1;

    /// <summary>The axis the op works along, per sample (BiasAdd channels, Softmax, Concat).</summary>
    public int Axis { get; set; }

    public int Kernel { get; set; }

    public int Stride { get; set; }

    public int Padding { get; set; }

    /// <summary>LeakyRelu's negative slope, Dropout's probability, or BatchNorm's momentum.</summary>
    public double Alpha { get; set; }

    /// <summary>A second parameter (a normalization's bias), or -1.</summary>
    public int Param2 { get; set; } = -1;

    /// <summary>The first of a BatchNorm's state tensors (running mean, running variance, batches tracked), or -1.</summary>
    public int State { get; set; } = -1;

    /// <summary>A normalization's epsilon.</summary>
    public double Eps { get; set; }

    /// <summary>Where a Slice starts along its axis; a ConvTranspose2d's output padding.</summary>
    public int Start { get; set; }

    public long Elements => Shapes.ShapeMath.Product(Shape);
}

/// <summary>A parameter tensor in the flat parameter buffer.</summary>
internal sealed class ParamTensor
{
    public ParamTensor(string name, string layer, int[] shape, double bound, string init = "Uniform")
    {
        Name = name;
        Layer = layer;
        Shape = shape;
        Bound = bound;
        Init = init;
    }

    /// <summary>The runtime's ParameterInit member: Uniform (±Bound), Normal (σ = Bound), Zeros or Ones.</summary>
    public string Init { get; }

    /// <summary>The state_dict name: <c>conv1.weight</c>.</summary>
    public string Name { get; }

    public string Layer { get; }

    public int[] Shape { get; }

    public double Bound { get; }

    public int Offset { get; set; }

    public int Length => (int)Shapes.ShapeMath.Product(Shape);

    /// <summary>The C# identifier: <c>conv1_weight</c>.</summary>
    public string Identifier => Name.Replace('.', '_');
}

/// <summary>
/// A non-trainable tensor a layer keeps between steps (PyTorch's buffers: BatchNorm's running statistics), in
/// the network's flat state buffer.
/// </summary>
internal sealed class StateTensor
{
    public StateTensor(string name, string layer, int[] shape, string init, bool isCount)
    {
        Name = name;
        Layer = layer;
        Shape = shape;
        Init = init;
        IsCount = isCount;
    }

    public string Name { get; }

    public string Layer { get; }

    public int[] Shape { get; }

    /// <summary>Zeros or Ones.</summary>
    public string Init { get; }

    /// <summary>A counter PyTorch stores as int64 (<c>num_batches_tracked</c>).</summary>
    public bool IsCount { get; }

    public int Offset { get; set; }

    public int Length => (int)Shapes.ShapeMath.Product(Shape);

    public string Identifier => Name.Replace('.', '_');
}

/// <summary>A layer lowered to many nodes (a recurrent layer unrolled over time), shown as one row in summaries.</summary>
internal sealed record CompositeLayer(int First, int Last, string Kind, int Input);

/// <summary>The forward graph of a network, nodes in topological (definition) order.</summary>
internal sealed class NetworkGraph
{
    public NetworkGraph(string name, string elementType, List<Node> nodes, List<ParamTensor> parameters, int input, int output)
    {
        Name = name;
        ElementType = elementType;
        Nodes = nodes;
        Params = parameters;
        Input = input;
        Output = output;
    }

    /// <summary>Non-trainable state tensors, in state_dict order.</summary>
    public List<StateTensor> States { get; set; } = new();

    /// <summary>Layers lowered to node ranges.</summary>
    public List<CompositeLayer> Composites { get; set; } = new();

    public int StateCount
    {
        get
        {
            int n = 0;
            foreach (var s in States) n += s.Length;
            return n;
        }
    }

    public string Name { get; }

    public string ElementType { get; }

    public List<Node> Nodes { get; }

    public List<ParamTensor> Params { get; }

    public int Input { get; }

    public int Output { get; }

    public Node this[int id] => Nodes[id];

    /// <summary>Parameters, as PyTorch counts them (the flat buffer also holds the alignment gaps).</summary>
    public int ParameterCount
    {
        get
        {
            int n = 0;
            foreach (var p in Params) n += p.Length;
            return n;
        }
    }
}
