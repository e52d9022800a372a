using System;
using System.Collections.Generic;
using System.Linq;

namespace NetDsl.Generator.Graph;

// The kernel-level IR: a schedule is a list of steps over buffers. The forward rules and the reverse-mode pass
// produce it, fusion merges its elementwise steps, the memory planner places its buffers, and each emitter
// (managed CPU now, ILGPU next) writes one piece of code per step.

internal enum BufferKind
{
    /// <summary>Forward's input, a span the caller passes.</summary>
    Input,

    /// <summary>The network's output, a span the caller passes.</summary>
    Output,

    /// <summary>d(loss)/d(output), a span the caller passes to the backward pass.</summary>
    OutputGrad,

    /// <summary>An intermediate tensor in the activation arena, placed by the memory plan.</summary>
    Activation,

    /// <summary>Ints (max-pool positions) in the index arena, placed by the memory plan.</summary>
    Index,

    /// <summary>A parameter tensor in the flat parameter buffer.</summary>
    Param,

    /// <summary>A parameter's gradient, at the parameter's offset in the flat gradient buffer.</summary>
    ParamGrad,

    /// <summary>A non-trainable state tensor (running statistics) in the network's flat state buffer; <see cref="ScheduleBuffer.Param"/> is its index.</summary>
    State,
}

/// <summary>A logical buffer. Batch-scaled kinds hold <see cref="PerSample"/> elements per sample.</summary>
internal sealed class ScheduleBuffer
{
    public ScheduleBuffer(int id, BufferKind kind, string name, int perSample, int param, string comment)
    {
        Id = id;
        Kind = kind;
        Name = name;
        PerSample = perSample;
        Param = param;
        Comment = comment;
    }

    public int Id { get; }

    public BufferKind Kind { get; }

    /// <summary>A C# identifier fragment, unique among the schedule's buffers.</summary>
    public string Name { get; }

    public int PerSample { get; }

    public int Param { get; }

    /// <summary>What the buffer holds, e.g. <c>conv1 [B,32,32,32]</c>.</summary>
    public string Comment { get; }

    /// <summary>The node whose per-sample size this buffer has (its <c>Sizes</c> constant), or empty.</summary>
    public string SizeOf { get; set; } = "";

    /// <summary>Offset in the arena, in elements per sample of capacity; set by the memory plan.</summary>
    public int Offset { get; set; } = -1;

    public bool IsPlanned => Kind == BufferKind.Activation || Kind == BufferKind.Index;
}

/// <summary>A size that is a constant, or a constant times the runtime batch.</summary>
internal readonly struct Extent
{
    public Extent(int value, bool perBatch)
    {
        Value = value;
        PerBatch = perBatch;
    }

    public int Value { get; }

    public bool PerBatch { get; }

    public static Extent Batch(int perSample) => new(perSample, true);

    public static Extent Fixed(int value) => new(value, false);
}

internal abstract class Step
{
    /// <summary>One line saying what the step computes, with shapes: <c>fc1: [B,784]·[784,256]ᵀ → [B,256]</c>.</summary>
    public string Comment { get; set; } = "";

    /// <summary>The graph nodes this step computes (or differentiates), for comments and summaries.</summary>
    public List<int> Nodes { get; } = new();

    public abstract IEnumerable<int> Reads { get; }

    public abstract IEnumerable<int> Writes { get; }

    /// <summary>Whether each output element depends only on the same element of its inputs, so an output may reuse an input's memory.</summary>
    public virtual bool IsPointwise => false;
}

/// <summary>
/// A dense step that may carry fused work: an elementwise epilogue applied to each result element before it is
/// stored (bias, activation, residual, an elementwise gradient), and a bias gradient computed from the same
/// upstream gradient.
/// </summary>
internal abstract class DenseStep : Step
{
    /// <summary>The output buffer the dense result (the accumulator) belongs to.</summary>
    public abstract int Output { get; }

    /// <summary>Whether the dense result overwrites (false) or adds to (true) its output.</summary>
    public abstract bool AccumulatesOutput { get; }

    /// <summary>
    /// The fused elementwise program over the result: <see cref="EOp.Accumulator"/> is the dense result of the
    /// element; the program's loads and stores are its other inputs and outputs. Null when nothing is fused.
    /// </summary>
    public List<EInstr>? Epilogue { get; set; }

    /// <summary>Whether the dense result itself is still stored into <see cref="Output"/> (a later step reads it).</summary>
    public bool StoreAccumulator { get; set; } = true;

    /// <summary>A fused bias gradient <c>db[c] (+)= Σ dY[…, c, …]</c> over this step's upstream gradient, or -1.</summary>
    public int BiasGrad { get; set; } = -1;

    public bool BiasGradAccumulate { get; set; }

    /// <summary>The buffer that receives the dense result: the output, or, when it is not kept, the epilogue's first store.</summary>
    public int AccumulatorTarget => StoreAccumulator || Epilogue is null ? Output : Epilogue.First(i => i.Op == EOp.Store).Buffer;

    protected IEnumerable<int> Fused(IEnumerable<int> reads)
    {
        var all = new List<int>(reads);
        if (Epilogue is not null) all.AddRange(Epilogue.Where(i => i.Op == EOp.Load || i.Op == EOp.LoadChannel).Select(i => i.Buffer));
        if (BiasGrad >= 0 && BiasGradAccumulate) all.Add(BiasGrad);
        return all.Distinct();
    }

    protected IEnumerable<int> FusedWrites()
    {
        var all = new List<int>();
        if (StoreAccumulator || Epilogue is null) all.Add(Output);
        if (Epilogue is not null) all.AddRange(Epilogue.Where(i => i.Op == EOp.Store).Select(i => i.Buffer));
        if (BiasGrad >= 0) all.Add(BiasGrad);
        return all.Distinct();
    }
}

/// <summary><c>C[M,N] (+)= op(A)·op(B)</c> on row-major buffers.</summary>
internal sealed class GemmStep : DenseStep
{
    public bool TransA { get; set; }

    public bool TransB { get; set; }

    public Extent M { get; set; }

    public Extent N { get; set; }

    public Extent K { get; set; }

    public int A { get; set; }

    public int B { get; set; }

    public int C { get; set; }

    public bool Accumulate { get; set; }

    public override int Output => C;

    public override bool AccumulatesOutput => Accumulate;

    public override IEnumerable<int> Reads => Fused(Accumulate ? new[] { A, B, C } : new[] { A, B });

    public override IEnumerable<int> Writes => FusedWrites();
}

internal enum ConvPass
{
    Forward,
    BackwardData,
    BackwardWeight,
}

/// <summary>
/// A 2-D convolution pass. Forward: <c>Y = conv(X, W)</c>. BackwardData: <c>dX (+)= convᵀ(dY, W)</c>.
/// BackwardWeight: <c>dW (+)= corr(X, dY)</c>.
/// </summary>
internal sealed class ConvStep : DenseStep
{
    public ConvPass Pass { get; set; }

    public WindowGeometry Geometry { get; set; } = null!;

    /// <summary>Forward: X, BackwardData: dY, BackwardWeight: X.</summary>
    public int In { get; set; }

    /// <summary>Forward and BackwardData: W, BackwardWeight: dY.</summary>
    public int In2 { get; set; }

    public int Out { get; set; }

    public bool Accumulate { get; set; }

    public override int Output => Out;

    public override bool AccumulatesOutput => Accumulate;

    public override IEnumerable<int> Reads => Fused(Accumulate ? new[] { In, In2, Out } : new[] { In, In2 });

    public override IEnumerable<int> Writes => FusedWrites();
}

/// <summary>Pooling forward (<c>Y = pool(X)</c>, recording max positions into Index) or backward (<c>dX (+)= …</c>).</summary>
internal sealed class PoolStep : Step
{
    public bool Max { get; set; }

    public bool Backward { get; set; }

    public WindowGeometry Geometry { get; set; } = null!;

    public int In { get; set; }

    public int Out { get; set; }

    /// <summary>The max positions, or -1.</summary>
    public int Index { get; set; } = -1;

    public bool Accumulate { get; set; }

    /// <summary>
    /// Max pooling's backward only: the pooled output, or -1. When set, a window passes its gradient only where its
    /// maximum is positive, which is the gradient of a <c>x &gt; 0</c> mask (a ReLU) on the pooling's input,
    /// fused: the winning input equals the maximum.
    /// </summary>
    public int Gate { get; set; } = -1;

    public override IEnumerable<int> Reads
    {
        get
        {
            yield return In;
            if (Backward && Index >= 0) yield return Index;
            if (Gate >= 0) yield return Gate;
            if (Accumulate) yield return Out;
        }
    }

    public override IEnumerable<int> Writes => !Backward && Index >= 0 ? new[] { Out, Index } : new[] { Out };
}

/// <summary>Softmax or log-softmax along an axis of <c>[outer, n, inner]</c>, forward or backward.</summary>
internal sealed class SoftmaxStep : Step
{
    public bool Log { get; set; }

    public bool Backward { get; set; }

    public int Outer { get; set; }

    public int N { get; set; }

    public int Inner { get; set; }

    /// <summary>Forward: X. Backward: Y (the saved output).</summary>
    public int In { get; set; }

    /// <summary>Backward: dY; -1 in forward.</summary>
    public int InGrad { get; set; } = -1;

    public int Out { get; set; }

    public bool Accumulate { get; set; }

    public override IEnumerable<int> Reads
    {
        get
        {
            yield return In;
            if (InGrad >= 0) yield return InGrad;
            if (Accumulate) yield return Out;
        }
    }

    public override IEnumerable<int> Writes => new[] { Out };
}

/// <summary>A bias gradient: <c>db[c] (+)= Σ dY[o, c, i]</c>.</summary>
internal sealed class BiasGradStep : Step
{
    public int Outer { get; set; }

    public int Channels { get; set; }

    public int Inner { get; set; }

    public int In { get; set; }

    public int Out { get; set; }

    public bool Accumulate { get; set; }

    public override IEnumerable<int> Reads => Accumulate ? new[] { In, Out } : new[] { In };

    public override IEnumerable<int> Writes => new[] { Out };
}

/// <summary>
/// Copies a part into its slice of a whole (<see cref="Backward"/> false: Concat's forward, Slice's gradient,
/// adding when <see cref="Accumulate"/>), or a slice of the whole into the part (<see cref="Backward"/> true:
/// Slice's forward, Concat's gradient). Per sample the whole is <c>[outer, wholeN, inner]</c> and the part
/// <c>[outer, partN, inner]</c>.
/// </summary>
internal sealed class SliceCopyStep : Step
{
    public bool Backward { get; set; }

    public int Outer { get; set; }

    public int PartN { get; set; }

    public int WholeN { get; set; }

    public int Offset { get; set; }

    public int Inner { get; set; }

    public int Part { get; set; }

    public int Whole { get; set; }

    public bool Accumulate { get; set; }

    public override IEnumerable<int> Reads => Backward ? (Accumulate ? new[] { Whole, Part } : new[] { Whole }) : (Accumulate ? new[] { Part, Whole } : new[] { Part });

    public override IEnumerable<int> Writes => Backward ? new[] { Part } : new[] { Whole };
}

/// <summary>
/// Batch normalization of <c>[B, C, inner]</c> per channel. Training forward: batch statistics into
/// <see cref="Mean"/>/<see cref="InvStd"/> (first C elements), running statistics updated in place. Inference
/// forward: the running statistics. Backward: <c>dX</c>, <c>dγ</c> and <c>dβ</c> from the saved input and statistics.
/// </summary>
internal sealed class BatchNormStep : NormStep
{
    public NormPass Pass { get; set; }

    public int Channels { get; set; }

    public int Inner { get; set; }

    public double Momentum { get; set; }

    /// <summary>Running mean, running variance and batches tracked (state buffers).</summary>
    public int RunningMean { get; set; } = -1;

    public int RunningVar { get; set; } = -1;

    public int Count { get; set; } = -1;

    protected override bool IsBackward => Pass == NormPass.Backward;

    public override IEnumerable<int> Reads
    {
        get
        {
            var r = CommonReads();
            if (Pass == NormPass.Inference) r.AddRange(new[] { RunningMean, RunningVar });
            if (Pass == NormPass.Training) r.AddRange(new[] { RunningMean, RunningVar, Count });
            return r;
        }
    }

    public override IEnumerable<int> Writes
        => CommonWrites(Pass == NormPass.Training ? new[] { Mean, InvStd, RunningMean, RunningVar, Count } : Array.Empty<int>());
}

internal enum NormPass
{
    Training,
    Inference,
    Backward,
}

/// <summary>
/// Layer normalization of rows of <see cref="N"/> elements (<see cref="Rows"/> per sample). Forward saves each
/// row's mean and 1/σ (training); backward gives <c>dX</c>, <c>dγ</c>, <c>dβ</c>.
/// </summary>
internal sealed class LayerNormStep : NormStep
{
    public bool Backward { get; set; }

    public int Rows { get; set; }

    public int N { get; set; }

    protected override bool IsBackward => Backward;

    public override IEnumerable<int> Reads => CommonReads();

    public override IEnumerable<int> Writes => CommonWrites(!Backward && Mean >= 0 ? new[] { Mean, InvStd } : Array.Empty<int>());
}

/// <summary>
/// What batch and layer normalization share: the input, the affine parameters γ and β with their gradients, the
/// saved statistics, and which buffers a pass reads and writes because of them.
/// </summary>
internal abstract class NormStep : Step
{
    public double Eps { get; set; }

    /// <summary>The input X (all passes).</summary>
    public int In { get; set; }

    /// <summary>Backward: dY.</summary>
    public int InGrad { get; set; } = -1;

    /// <summary>Forward: Y. Backward: dX or -1.</summary>
    public int Out { get; set; } = -1;

    public int Weight { get; set; } = -1;

    public int Bias { get; set; } = -1;

    /// <summary>Backward: dγ, dβ or -1.</summary>
    public int WeightGrad { get; set; } = -1;

    public int BiasGrad { get; set; } = -1;

    public bool AccumulateInput { get; set; }

    public bool AccumulateWeight { get; set; }

    public bool AccumulateBias { get; set; }

    /// <summary>The saved mean and 1/σ (-1 where a pass has none).</summary>
    public int Mean { get; set; } = -1;

    public int InvStd { get; set; } = -1;

    protected abstract bool IsBackward { get; }

    /// <summary>X and γ always; β forward; dY, the statistics and the accumulated gradients backward.</summary>
    protected List<int> CommonReads()
    {
        var r = new List<int> { In };
        if (Weight >= 0) r.Add(Weight);
        if (!IsBackward && Bias >= 0) r.Add(Bias);
        if (IsBackward)
        {
            r.AddRange(new[] { InGrad, Mean, InvStd });
            if (AccumulateInput && Out >= 0) r.Add(Out);
            if (AccumulateWeight && WeightGrad >= 0) r.Add(WeightGrad);
            if (AccumulateBias && BiasGrad >= 0) r.Add(BiasGrad);
        }
        return r;
    }

    /// <summary>Y or dX, then <paramref name="statistics"/>, then dγ and dβ.</summary>
    protected List<int> CommonWrites(int[] statistics)
    {
        var w = new List<int>();
        if (Out >= 0) w.Add(Out);
        w.AddRange(statistics);
        if (WeightGrad >= 0) w.Add(WeightGrad);
        if (BiasGrad >= 0) w.Add(BiasGrad);
        return w;
    }
}

/// <summary>
/// Embedding lookup: forward <c>Y[t] = W[ids[t]]</c> for <see cref="Tokens"/> ids per sample; backward
/// <c>dW (+)= Σ_t onehot(ids[t]) ⊗ dY[t]</c>.
/// </summary>
internal sealed class EmbeddingStep : Step
{
    public bool Backward { get; set; }

    public int Tokens { get; set; }

    public int Vocabulary { get; set; }

    public int Dim { get; set; }

    /// <summary>The ids.</summary>
    public int Ids { get; set; }

    /// <summary>Forward: W. Backward: dY.</summary>
    public int In { get; set; }

    /// <summary>Forward: Y. Backward: dW.</summary>
    public int Out { get; set; }

    public bool Accumulate { get; set; }

    public override IEnumerable<int> Reads => Accumulate ? new[] { Ids, In, Out } : new[] { Ids, In };

    public override IEnumerable<int> Writes => new[] { Out };
}

/// <summary>Nearest upsampling of <c>[C, H, W]</c> by <see cref="Scale"/> (forward), or its gradient (sums of s×s blocks).</summary>
internal sealed class UpsampleStep : Step
{
    public bool Backward { get; set; }

    public int Channels { get; set; }

    /// <summary>The small (input) height and width.</summary>
    public int Height { get; set; }

    public int Width { get; set; }

    public int Scale { get; set; }

    public int In { get; set; }

    public int Out { get; set; }

    public bool Accumulate { get; set; }

    public override IEnumerable<int> Reads => Accumulate ? new[] { In, Out } : new[] { In };

    public override IEnumerable<int> Writes => new[] { Out };
}

internal sealed class WindowGeometry
{
    public WindowGeometry(int inChannels, int inHeight, int inWidth, int outChannels, int outHeight, int outWidth, int kernel, int stride, int padding)
    {
        InChannels = inChannels;
        InHeight = inHeight;
        InWidth = inWidth;
        OutChannels = outChannels;
        OutHeight = outHeight;
        OutWidth = outWidth;
        Kernel = kernel;
        Stride = stride;
        Padding = padding;
    }

    public int InChannels { get; }

    public int InHeight { get; }

    public int InWidth { get; }

    public int OutChannels { get; }

    public int OutHeight { get; }

    public int OutWidth { get; }

    public int Kernel { get; }

    public int Stride { get; }

    public int Padding { get; }

    public int InSize => InChannels * InHeight * InWidth;

    public int OutSize => OutChannels * OutHeight * OutWidth;

    /// <summary>im2col scratch elements: <c>C·k²·OH·OW</c>.</summary>
    public long ColumnSize => (long)InChannels * Kernel * Kernel * OutHeight * OutWidth;
}

internal enum EOp
{
    /// <summary>Load element i of a buffer.</summary>
    Load,

    /// <summary>Load the channel's element of a per-channel buffer (a bias): index <c>(i / Inner) % Channels</c>.</summary>
    LoadChannel,

    Const,
    Add,
    Mul,

    /// <summary><c>a − b</c>.</summary>
    Sub,
    Relu,
    LeakyRelu,
    Sigmoid,
    Tanh,
    Gelu,

    /// <summary><c>GELU'(a)</c>.</summary>
    GeluGrad,

    /// <summary><c>a &gt; 0 ? b : 0</c>.</summary>
    PositiveMask,

    /// <summary><c>a &gt; 0 ? b : Value·b</c> (LeakyRelu's gradient through its input or, for a positive slope, its output).</summary>
    LeakyMask,

    /// <summary><c>a·(1 − a)</c>: the sigmoid's derivative from its output.</summary>
    SigmoidGrad,

    /// <summary><c>1 − a²</c>: tanh's derivative from its output.</summary>
    TanhGrad,

    /// <summary>Dropout's factor for element i: <c>1/(1−p)</c> when kept, else 0; Value = p, Seed = the node.</summary>
    DropoutScale,

    /// <summary>Store register A into element i of a buffer.</summary>
    Store,

    /// <summary>In a fused epilogue: the dense step's result for element i.</summary>
    Accumulator,
}

/// <summary>One instruction of an elementwise program; its result is the register with its own index.</summary>
internal sealed class EInstr
{
    public EInstr(EOp op, int a = -1, int b = -1, int buffer = -1, double value = 0)
    {
        Op = op;
        A = a;
        B = b;
        Buffer = buffer;
        Value = value;
    }

    public EOp Op { get; }

    public int A { get; set; }

    public int B { get; set; }

    public int Buffer { get; }

    public double Value { get; }

    /// <summary>For LoadChannel: channels and the elements per channel.</summary>
    public int Channels { get; set; }

    public int Inner { get; set; }

    /// <summary>For DropoutScale: the node whose mask this is.</summary>
    public int Seed { get; set; }
}

/// <summary>
/// A pointwise loop over <c>B·PerSample</c> elements running a small register program: what fused
/// bias + activation, residual add + activation, dropout and the elementwise gradients become.
/// </summary>
internal sealed class ElementwiseStep : Step
{
    public int PerSample { get; set; }

    public List<EInstr> Program { get; } = new();

    public override bool IsPointwise => true;

    public override IEnumerable<int> Reads => Program.Where(i => i.Op == EOp.Load || i.Op == EOp.LoadChannel).Select(i => i.Buffer).Distinct();

    public override IEnumerable<int> Writes => Program.Where(i => i.Op == EOp.Store).Select(i => i.Buffer).Distinct();

    public int Emit(EInstr instr)
    {
        Program.Add(instr);
        return Program.Count - 1;
    }
}

/// <summary>A schedule: the steps in order and the buffers they use.</summary>
internal sealed class Schedule
{
    public Schedule(List<ScheduleBuffer> buffers, List<Step> steps, int forwardSteps)
    {
        Buffers = buffers;
        Steps = steps;
        ForwardSteps = forwardSteps;
    }

    public List<ScheduleBuffer> Buffers { get; }

    public List<Step> Steps { get; }

    /// <summary>How many of the steps belong to the forward pass (the rest is backward).</summary>
    public int ForwardSteps { get; set; }
}
