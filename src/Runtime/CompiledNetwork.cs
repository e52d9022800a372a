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

    /// <summary>Creates the network and initializes its parameters from <paramref name="seed"/>.</summary>
    [EditorBrowsable(EditorBrowsableState.Never)]
    protected CompiledNetwork(NetworkDescription description, int seed)
    {
        Description = description ?? throw new ArgumentNullException(nameof(description));
        _parameters = new AlignedArray<T>(description.ParameterCount);
        _state = new AlignedArray<T>(description.StateCount);
        InitializeParameters(seed);
    }

    /// <summary>Sizes, parameters and memory plans of this network, as computed at build time.</summary>
    public NetworkDescription Description { get; }

    /// <summary>All parameters in one flat buffer, tensor after tensor in state_dict order.</summary>
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
    /// <see cref="NetworkDescription.OutputSize"/> elements per sample. Thread-safe; no allocation once the
    /// network has seen a batch this large.
    /// </summary>
    public void Predict(ReadOnlySpan<T> input, Span<T> output)
    {
        int batch = BatchOf(input, nameof(input));
        int need = batch * Description.OutputSize;
        if (output.Length != need)
            throw new ArgumentException($"The output span has {output.Length} elements; a batch of {batch} needs {need} ({batch} × {Description.OutputSize}).", nameof(output));
        var ws = Interlocked.Exchange(ref _inferenceWorkspace, null);
        if (ws is null || ws.Capacity < batch)
            ws = new Workspace<T>(Description.InferencePlan, batch, 0);
        ForwardInference(input, output, ws, batch);
        Interlocked.CompareExchange(ref _inferenceWorkspace, ws, null);
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
