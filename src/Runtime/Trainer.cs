using System;
using System.Numerics;
using System.Threading;

namespace NetDsl.Runtime;

/// <summary>
/// Trains a compiled network: each <see cref="Step(ReadOnlySpan{T}, ReadOnlySpan{int})"/> runs the compiled
/// forward pass, the loss and its gradient, the compiled backward pass and one optimizer update, in memory
/// allocated once when the trainer is created.
/// </summary>
public sealed class Trainer<T> : IDisposable where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly CompiledNetwork<T> _network;
    private readonly Workspace<T> _workspace;
    private readonly OptimizerState<T> _state;
    private readonly T[] _output;
    private readonly T[] _outputGradient;
    private readonly ulong _seed;
    private int _busy;
    private bool _disposed;
    private int _lastBatch;

    internal Trainer(CompiledNetwork<T> network, Optimizer optimizer, Loss loss, int batchCapacity, int seed)
    {
        _network = network ?? throw new ArgumentNullException(nameof(network));
        Optimizer = optimizer ?? throw new ArgumentNullException(nameof(optimizer));
        Loss = loss ?? throw new ArgumentNullException(nameof(loss));
        if (batchCapacity < 1)
            throw new ArgumentOutOfRangeException(nameof(batchCapacity), batchCapacity, "The batch size must be at least 1.");
        var d = network.Description;
        BatchCapacity = batchCapacity;
        _workspace = new Workspace<T>(d.TrainingPlan, batchCapacity, d.ParameterCount);
        _state = optimizer.CreateState<T>(d.ParameterCount);
        _output = new T[checked(batchCapacity * d.OutputSize)];
        _outputGradient = new T[_output.Length];
        _seed = CounterRandom.Derive((ulong)(uint)seed, 0x7472616E);
    }

    /// <summary>The network being trained.</summary>
    public CompiledNetwork<T> Network => _network;

    /// <summary>The optimizer settings (its learning rate may be changed between steps).</summary>
    public Optimizer Optimizer { get; }

    /// <summary>The loss.</summary>
    public Loss Loss { get; }

    /// <summary>The largest batch a step accepts.</summary>
    public int BatchCapacity { get; }

    /// <summary>Optimizer updates applied so far.</summary>
    public long StepCount => _state.StepCount;

    /// <summary>The optimizer's state buffers.</summary>
    public OptimizerState<T> OptimizerState => _state;

    /// <summary>Parameter gradients of the last computed batch, in the parameters' layout.</summary>
    public ReadOnlySpan<T> Gradients => _workspace.Gradients;

    /// <summary>Network outputs of the last computed batch.</summary>
    public ReadOnlySpan<T> Outputs => _output.AsSpan(0, _lastBatch * _network.Description.OutputSize);

    /// <summary>Bytes held by the trainer's workspace (activations, indices, scratch, gradients).</summary>
    public long WorkspaceBytes => _workspace.Bytes;

    /// <summary>One training step against class labels: forward, loss, backward, update. Returns the batch's mean loss.</summary>
    public T Step(ReadOnlySpan<T> inputs, ReadOnlySpan<int> labels)
    {
        T loss = ComputeGradients(inputs, labels);
        ApplyUpdate();
        return loss;
    }

    /// <summary>One training step against target values: forward, loss, backward, update. Returns the batch's mean loss.</summary>
    public T Step(ReadOnlySpan<T> inputs, ReadOnlySpan<T> targets)
    {
        T loss = ComputeGradients(inputs, targets);
        ApplyUpdate();
        return loss;
    }

    /// <summary>Forward, loss and backward without an update; the gradients are then in <see cref="Gradients"/>.</summary>
    public T ComputeGradients(ReadOnlySpan<T> inputs, ReadOnlySpan<int> labels)
    {
        Enter();
        try
        {
            int batch = Begin(inputs);
            if (labels.Length != batch)
                throw new ArgumentException($"There are {labels.Length} labels for {batch} samples; expected {batch}, one class index per sample.", nameof(labels));
            int n = batch * _network.Description.OutputSize;
            T loss = Loss.Evaluate(_output.AsSpan(0, n), labels, _outputGradient.AsSpan(0, n), batch, _network.Description.OutputSize);
            _network.Backward(inputs, _output.AsSpan(0, n), _outputGradient.AsSpan(0, n), _workspace, batch);
            return loss;
        }
        finally { Exit(); }
    }

    /// <summary>Forward, loss and backward without an update; the gradients are then in <see cref="Gradients"/>.</summary>
    public T ComputeGradients(ReadOnlySpan<T> inputs, ReadOnlySpan<T> targets)
    {
        Enter();
        try
        {
            int batch = Begin(inputs);
            int n = batch * _network.Description.OutputSize;
            if (targets.Length != n)
                throw new ArgumentException($"There are {targets.Length} targets for {batch} samples; expected {n} ({batch} × {_network.Description.OutputSize} outputs).", nameof(targets));
            T loss = Loss.Evaluate(_output.AsSpan(0, n), targets, _outputGradient.AsSpan(0, n), batch, _network.Description.OutputSize);
            _network.Backward(inputs, _output.AsSpan(0, n), _outputGradient.AsSpan(0, n), _workspace, batch);
            return loss;
        }
        finally { Exit(); }
    }

    /// <summary>Applies one optimizer update from the current gradients.</summary>
    public void ApplyUpdate()
    {
        Enter();
        try { _state.Step(_network.ParameterData, _workspace.Gradients); }
        finally { Exit(); }
    }

    /// <summary>Releases the trainer; further use throws <see cref="ObjectDisposedException"/>.</summary>
    public void Dispose() => _disposed = true;

    private int Begin(ReadOnlySpan<T> inputs)
    {
        int batch = _network.BatchOf(inputs, nameof(inputs));
        if (batch > BatchCapacity)
            throw new ArgumentException($"The batch has {batch} samples but this trainer was created for at most {BatchCapacity}.", nameof(inputs));
        _workspace.DropoutSeed = CounterRandom.Derive(_seed, (ulong)_state.StepCount);
        _lastBatch = batch;
        _network.ForwardTraining(inputs, _output.AsSpan(0, batch * _network.Description.OutputSize), _workspace, batch);
        return batch;
    }

    private void Enter()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (Interlocked.Exchange(ref _busy, 1) != 0)
            throw new InvalidOperationException("This trainer is already running a step on another thread; a trainer may be used by one thread at a time.");
    }

    private void Exit() => Volatile.Write(ref _busy, 0);
}
