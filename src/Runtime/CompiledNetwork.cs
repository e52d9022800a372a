using System;
using System.ComponentModel;
using System.Numerics;
using System.Threading;

namespace NetDsl.Runtime;

/// <summary>
/// The runtime half of every <c>[Network]</c> class: the generator derives the class from this type and
/// overrides the three compiled schedules (training forward, backward, inference forward). This base owns the
/// flat parameter buffer (state_dict order), initialization, <see cref="Predict"/> and trainers.
/// </summary>
/// <typeparam name="T">The element type: <see cref="float"/> or <see cref="double"/>.</typeparam>
public abstract class CompiledNetwork<T> : NetworkModule where T : unmanaged, IFloatingPointIeee754<T>
{
    // Not readonly: an inference session's private clone gets copies of its own (CreateInferenceSession).
    private AlignedArray<T> _parameters;
    private AlignedArray<T> _state;
    private Workspace<T>? _inferenceWorkspace;
    private Workspace<T>?[]? _chunkWorkspaces;   // one per thread of a batch split over the threads (see Infer)

    /// <summary>
    /// The memory an inference session's clone has frozen (its parameters; null elsewhere): every thread running a
    /// share of its inference enters it, so each GEMM whose weights lie there packs them once.
    /// </summary>
    internal Cpu.ConstantOperands? Constants { get; set; }

    /// <summary>Creates the network and initializes its parameters from <paramref name="seed"/>.</summary>
    [EditorBrowsable(EditorBrowsableState.Never)]
    protected CompiledNetwork(NetworkDescription description, int seed)
    {
        Description = description ?? throw new ArgumentNullException(nameof(description));
        _parameters = new AlignedArray<T>(description.ParameterBufferLength);
        _state = new AlignedArray<T>(description.StateCount);
        InitializeParameters(seed);
    }

    /// <summary>Sizes, parameters and memory plans of this network, as computed at build time.</summary>
    public NetworkDescription Description { get; }

    /// <summary>
    /// All parameters in one flat buffer, tensor after tensor in state_dict order, each at its
    /// <see cref="ParameterInfo.Offset"/> (<see cref="Parameter(string)"/> gives one tensor). Generated networks
    /// start every tensor on a 64-byte cache line, so the buffer is <see cref="NetworkDescription.ParameterBufferLength"/>
    /// long. The elements between tensors take no part in any computation: initialization sets them to zero and
    /// training keeps them so (their gradients are zero), unless something writes them through this span.
    /// </summary>
    public Span<T> ParameterData => _parameters.Span;

    /// <summary>
    /// The non-trainable state (BatchNorm's running statistics) in one flat buffer, tensor after tensor in
    /// state_dict order; empty for networks without such layers. Training steps update it; inference reads it.
    /// </summary>
    public Span<T> StateData => _state.Span;

    /// <summary>The elements of one state tensor by its state_dict name (<c>bn1.running_mean</c>).</summary>
    public Span<T> State(string name)
    {
        var info = Description.FindState(name)
            ?? throw new ArgumentException($"{Description.Name} has no state tensor named '{name}'. Its state tensors are: {(Description.States.Count == 0 ? "(none)" : string.Join(", ", System.Linq.Enumerable.Select(Description.States, s => s.Name)))}.", nameof(name));
        return _state.Span.Slice(info.Offset, info.Length);
    }

    /// <summary>The elements of one parameter tensor by its state_dict name (<c>fc1.weight</c>).</summary>
    public Span<T> Parameter(string name)
    {
        var info = Description.FindParameter(name)
            ?? throw new ArgumentException($"{Description.Name} has no parameter named '{name}'. Its parameters are: {string.Join(", ", ParameterNames())}.", nameof(name));
        return _parameters.Span.Slice(info.Offset, info.Length);
    }

    /// <summary>
    /// Re-initializes every parameter the way PyTorch initializes the same layers (uniform on
    /// <c>±1/√fan_in</c> for Linear and Conv2d, ones and zeros for normalization, N(0, 1) for Embedding), from a
    /// counter-based stream per tensor, so the result depends only on the seed; resets the running statistics.
    /// </summary>
    public void InitializeParameters(int seed)
    {
        _parameters.Span.Clear(); // the alignment gaps between tensors too
        var ps = Description.Parameters;
        for (int t = 0; t < ps.Count; t++)
        {
            var p = ps[t];
            Span<T> dst = _parameters.Span.Slice(p.Offset, p.Length);
            switch (p.Init)
            {
                case ParameterInit.Zeros: dst.Clear(); break;
                case ParameterInit.Ones: dst.Fill(T.One); break;
                case ParameterInit.Normal:
                    {
                        ulong stream = CounterRandom.Derive((ulong)(uint)seed, (ulong)t);
                        for (int i = 0; i < dst.Length; i++)
                            dst[i] = T.CreateTruncating(CounterRandom.Normal(stream, (ulong)i) * p.Bound);
                        break;
                    }
                default:
                    ulong key = CounterRandom.Derive((ulong)(uint)seed, (ulong)t);
                    for (int i = 0; i < dst.Length; i++)
                        dst[i] = T.CreateTruncating((2 * CounterRandom.Uniform(key, (ulong)i) - 1) * p.Bound);
                    break;
            }
        }
        foreach (var st in Description.States)
            _state.Span.Slice(st.Offset, st.Length).Fill(st.Init == ParameterInit.Ones ? T.One : T.Zero);
    }

    /// <summary>
    /// Runs inference (dropout off) on a batch: <paramref name="input"/> holds whole samples of
    /// <see cref="NetworkDescription.InputSize"/> elements, <paramref name="output"/> receives
    /// <see cref="NetworkDescription.OutputSize"/> elements per sample. Thread-safe. Large batches of networks with
    /// small activations are split over the threads by samples (bit for bit the same outputs). Allocates nothing once
    /// warm: the workspaces a call allocates serve later batches no larger that run the same way (split, or whole), and
    /// a whole batch also runs in the first thread's workspace of a split when it fits (a short last batch).
    /// </summary>
    public void Predict(ReadOnlySpan<T> input, Span<T> output)
    {
        int batch = BatchOf(input, nameof(input));
        int need = batch * Description.OutputSize;
        if (output.Length != need)
            throw new ArgumentException($"The output span has {output.Length} elements; a batch of {batch} needs {need} ({batch} × {Description.OutputSize}).", nameof(output));
        using var scope = Cpu.ConstantOperands.Enter(Constants);
        Infer(input, output, batch);
    }

    /// <summary>
    /// Inference never mixes samples (no operation reaches across the batch dimension), so a large batch of a network
    /// with small activations is split over the threads, each running the whole network single-threaded on its share
    /// (at least <see cref="BatchSplit.ChunkSamples"/> samples), in pieces whose activations fit in its core's L2
    /// (<see cref="BatchSplit.PieceBytes"/>), in a workspace of its own. Each layer's output then stays in the core that reads
    /// it next, no layer waits for a fork and join, and layers too small to split alone (a classifier's last one)
    /// run on every thread. A network whose activations would not fit (a CNN on images) and a small batch run whole,
    /// each kernel splitting what is worth splitting: the threads sharing a layer's work beats each streaming its
    /// share of the batch through L3.
    /// </summary>
    private unsafe void Infer(ReadOnlySpan<T> input, Span<T> output, int batch)
    {
        int chunks = batch / BatchSplit.ChunkSamples, threads = Cpu.CpuWorkers.Count;
        var plan = Description.InferencePlan;
        long sampleBytes = (long)plan.ActivationsPerSample * sizeof(T) + (long)plan.IndicesPerSample * sizeof(int);
        if (BatchSplit.Enabled && threads > 1 && chunks >= 2 && Description.FlopsPerSample * (double)batch >= BatchSplit.MinFlops
            && 2 * BatchSplit.ChunkSamples * sampleBytes <= BatchSplit.PieceBytes)
        {
            var slots = Interlocked.Exchange(ref _chunkWorkspaces, null);
            if (slots is null || slots.Length != threads) slots = new Workspace<T>?[threads];
            // A thread's share follows the threads' measured speeds, so it may exceed an equal one: a quarter more
            // is allocated, capped at a piece. Larger shares run in pieces, none shorter than ChunkSamples samples
            // (pieces as equal as possible, of at most a capacity of at least 2 · ChunkSamples).
            const int chunk = BatchSplit.ChunkSamples;
            int share = RoundUp((int)Math.Min(batch, (batch * 5L + 4 * threads - 1) / (4 * threads)), chunk);
            int piece = (int)Math.Min(int.MaxValue, BatchSplit.PieceBytes / Math.Max(1, sampleBytes)) / chunk * chunk;
            int capacity = Math.Max(2 * chunk, Math.Min(share, piece));
            // A workspace for each share there can be (one per thread, at most one per chunk), up front: a share that
            // is empty now (a slow thread's) may not be later.
            for (int i = 0; i < Math.Min(threads, chunks); i++)
                if (slots[i] is not { } slot || slot.Capacity < capacity) slots[i] = new Workspace<T>(plan, capacity, 0);
            var job = new ChunkJob(this, input, output, slots, batch, chunks, capacity);
            Cpu.CpuWorkers.Run(ref job, &InferChunks, chunks, align: 1);
            Interlocked.CompareExchange(ref _chunkWorkspaces, slots, null);
            return;
        }
        var ws = Interlocked.Exchange(ref _inferenceWorkspace, null);
        if (ws is null || ws.Capacity < batch)
        {
            // A batch too small to split after split ones (an evaluation's last, short batch): the first thread's
            // workspace of the split serves it when large enough.
            var slots = Interlocked.Exchange(ref _chunkWorkspaces, null);
            if (slots is not null && slots[0] is { } first && first.Capacity >= batch)
            {
                ForwardInference(input, output, first, batch);
                Interlocked.CompareExchange(ref _chunkWorkspaces, slots, null);
                if (ws is not null) Interlocked.CompareExchange(ref _inferenceWorkspace, ws, null);
                return;
            }
            if (slots is not null) Interlocked.CompareExchange(ref _chunkWorkspaces, slots, null);
            ws = new Workspace<T>(plan, batch, 0);
        }
        ForwardInference(input, output, ws, batch);
        Interlocked.CompareExchange(ref _inferenceWorkspace, ws, null);
    }

    private static int RoundUp(int value, int multiple) => (value + multiple - 1) / multiple * multiple;

    /// <summary>A batch split over the threads: chunk i holds samples [16·i, 16·(i + 1)), the last one the rest.</summary>
    private ref struct ChunkJob(CompiledNetwork<T> network, ReadOnlySpan<T> input, Span<T> output, Workspace<T>?[] slots, int batch, int chunks, int capacity)
    {
        public readonly CompiledNetwork<T> Network = network;
        public readonly ReadOnlySpan<T> Input = input;
        public readonly Span<T> Output = output;
        public readonly Workspace<T>?[] Slots = slots;
        public readonly int Batch = batch, Chunks = chunks, Capacity = capacity;
        public int NextSlot;
    }

    /// <summary>One thread's share of a split batch: chunks [c0, c1), in pieces of at most the slots' capacity.</summary>
    private static void InferChunks(ref ChunkJob job, int c0, int c1)
    {
        if (c0 >= c1) return;
        int r0 = c0 * BatchSplit.ChunkSamples, r1 = c1 == job.Chunks ? job.Batch : c1 * BatchSplit.ChunkSamples;
        // At most one non-empty share per thread and per chunk, so the slots filled suffice; the fallback only
        // guards that invariant.
        int slot = Interlocked.Increment(ref job.NextSlot) - 1;
        var ws = slot < job.Slots.Length ? job.Slots[slot] : null;
        ws ??= new Workspace<T>(job.Network.Description.InferencePlan, job.Capacity, 0);
        using var scope = Cpu.ConstantOperands.Enter(job.Network.Constants); // thread-local: a worker enters the session's weights too
        int inSize = job.Network.Description.InputSize, outSize = job.Network.Description.OutputSize;
        int rows = r1 - r0, pieces = (rows + job.Capacity - 1) / job.Capacity;
        for (int p = 0; p < pieces; p++)
        {
            int a = r0 + (int)((long)rows * p / pieces), b = r0 + (int)((long)rows * (p + 1) / pieces);
            job.Network.ForwardInference(job.Input.Slice(a * inSize, (b - a) * inSize), job.Output.Slice(a * outSize, (b - a) * outSize), ws, b - a);
        }
    }

    /// <summary>
    /// Freezes the network for inference: the session holds a private copy of the parameters and state as they are
    /// now (later training, loading or writes to <see cref="ParameterData"/> do not reach it), and, for float
    /// networks, packs each Linear layer's weights into the GEMM kernel's panel layout once, on first use, instead of
    /// on every call as <see cref="Predict"/> must (its weights may change between calls). Outputs are
    /// bit-identical to <see cref="Predict"/> on the same parameters. Thread-safe, as <see cref="Predict"/>.
    /// Memory: a second copy of the parameters, plus the packed weights of the layers that use them.
    /// </summary>
    public InferenceSession<T> CreateInferenceSession()
    {
        var clone = (CompiledNetwork<T>)MemberwiseClone();
        clone._parameters = new AlignedArray<T>(_parameters.Length);
        _parameters.Span.CopyTo(clone._parameters.Span);
        clone._state = new AlignedArray<T>(_state.Length);
        _state.Span.CopyTo(clone._state.Span);
        clone._inferenceWorkspace = null;
        clone._chunkWorkspaces = null;
        clone.Constants = null;
        return new InferenceSession<T>(clone);
    }

    /// <summary>
    /// Creates a trainer that runs forward, loss, backward and the optimizer update for batches of up to
    /// <paramref name="batchSize"/> samples (a shorter last batch is fine). All its memory is allocated here.
    /// </summary>
    /// <param name="optimizer">The optimizer settings.</param>
    /// <param name="loss">The loss.</param>
    /// <param name="batchSize">The largest batch a step will take.</param>
    /// <param name="seed">Seeds the dropout masks.</param>
    /// <param name="device">Where to train: <see cref="Device.Cpu"/> (the default) or a GPU device.</param>
    public Trainer<T> CreateTrainer(Optimizer optimizer, Loss loss, int batchSize, int seed = 0, Device? device = null)
        => (device ?? Device.Cpu).CreateTrainer(this, optimizer, loss, batchSize, seed);

    /// <summary>
    /// The generated ILGPU kernels of this network, when it was compiled in a project that references
    /// NetDsl.Runtime.Gpu; otherwise null. Only GPU devices call this, so CPU-only code never loads ILGPU.
    /// </summary>
    protected internal virtual object? CreateDeviceProgram() => null;

    /// <summary>The number of whole samples in <paramref name="input"/>, or an exception naming the expected size.</summary>
    internal int BatchOf(ReadOnlySpan<T> input, string paramName)
    {
        int size = Description.InputSize;
        if (input.Length == 0 || input.Length % size != 0)
            throw new ArgumentException(
                $"The input has {input.Length} elements; expected a positive multiple of {size} (one sample is [{string.Join(", ", Description.InputShape)}]).",
                paramName);
        return input.Length / size;
    }

    private string[] ParameterNames()
    {
        var names = new string[Description.Parameters.Count];
        for (int i = 0; i < names.Length; i++) names[i] = Description.Parameters[i].Name;
        return names;
    }

    /// <summary>The compiled training forward pass: keeps what the backward pass needs in the workspace.</summary>
    protected internal abstract void ForwardTraining(ReadOnlySpan<T> input, Span<T> output, Workspace<T> workspace, int batch);

    /// <summary>The compiled backward pass: writes parameter gradients into <see cref="Workspace{T}.Gradients"/>.</summary>
    protected internal abstract void Backward(ReadOnlySpan<T> input, ReadOnlySpan<T> output, ReadOnlySpan<T> outputGradient, Workspace<T> workspace, int batch);

    /// <summary>The compiled inference forward pass (dropout off, nothing kept).</summary>
    protected internal abstract void ForwardInference(ReadOnlySpan<T> input, Span<T> output, Workspace<T> workspace, int batch);
}

/// <summary>When <see cref="CompiledNetwork{T}.Predict"/> splits a batch over the threads by samples.</summary>
internal static class BatchSplit
{
    /// <summary>
    /// The fewest samples a thread's share (or piece) of a split batch holds. Every kernel computes a sample's
    /// outputs the same way in any batch of at least this many (the GEMM's dot-product path, whose sums run in another
    /// order, takes only products of fewer rows), so a split never changes a result.
    /// </summary>
    internal const int ChunkSamples = 16;

    /// <summary>Whether batches may be split at all (tests compare both ways; the benchmarks' <c>-whole</c> workloads).</summary>
    internal static bool Enabled = true;

    /// <summary>Batches with fewer forward FLOPs than this run whole on the calling thread (the kernels may still split them).</summary>
    internal static long MinFlops = 1L << 22;

    /// <summary>
    /// The most activation memory a thread's piece of a split batch may take: about half a core's L2, so that each
    /// layer's output is still in that core's cache when the next layer reads it.
    /// </summary>
    internal static long PieceBytes = 1L << 20;
}

/// <summary>Used by the stand-in the generator emits for a network with NetDsl errors.</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public static class NetworkStandIn
{
    /// <summary>Throws <see cref="Error"/>; typed so a constructor can call it where a description is expected.</summary>
    public static NetworkDescription Fail(string network) => throw Error(network);

    /// <summary>The exception a stand-in throws.</summary>
    public static InvalidOperationException Error(string network) => new(
        $"{network} has NetDsl errors (NDSL diagnostics), so it was not compiled and cannot run. Fix the errors and rebuild.");
}
