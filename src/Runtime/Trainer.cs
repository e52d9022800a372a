using System;
using System.Numerics;
using System.Threading;

namespace NetDsl.Runtime;

/// <summary>
/// Trains a compiled network on a device: each <see cref="Step(ReadOnlySpan{T}, ReadOnlySpan{int})"/> runs the
/// compiled forward pass, the loss and its gradient, the compiled backward pass and one optimizer update, in
/// memory allocated once when the trainer is created. Per step only the inputs and targets go in and the
/// outputs and the loss come out. A trainer may be used by one thread at a time.
/// </summary>
public abstract class Trainer<T> : IDisposable where T : unmanaged, IFloatingPointIeee754<T>
{
    private int _busy;
    private bool _disposed;

    /// <summary>Validates the settings; called by devices.</summary>
    protected Trainer(CompiledNetwork<T> network, Optimizer optimizer, Loss loss, int batchCapacity)
    {
        Network = network ?? throw new ArgumentNullException(nameof(network));
        Optimizer = optimizer ?? throw new ArgumentNullException(nameof(optimizer));
        Loss = loss ?? throw new ArgumentNullException(nameof(loss));
        if (batchCapacity < 1)
            throw new ArgumentOutOfRangeException(nameof(batchCapacity), batchCapacity, "The batch size must be at least 1.");
        BatchCapacity = batchCapacity;
    }

    /// <summary>The network being trained.</summary>
    public CompiledNetwork<T> Network { get; }

    /// <summary>The optimizer settings (its learning rate may be changed between steps).</summary>
    public Optimizer Optimizer { get; }

    /// <summary>The loss.</summary>
    public Loss Loss { get; }

    /// <summary>The largest batch a step accepts.</summary>
    public int BatchCapacity { get; }

    /// <summary>The device the trainer's memory lives on.</summary>
    public abstract Device Device { get; }

    /// <summary>Optimizer updates applied so far.</summary>
    public abstract long StepCount { get; }

    /// <summary>Parameter gradients of the last computed batch, in the parameters' layout (copied from the device if needed).</summary>
    public abstract ReadOnlySpan<T> Gradients { get; }

    /// <summary>Network outputs of the last computed batch.</summary>
    public abstract ReadOnlySpan<T> Outputs { get; }

    /// <summary>
    /// Whether each step checks that its inputs (and targets) are finite, and that the loss and the gradients are,
    /// before updating (on by default). A check that fails throws before anything changes: a NaN or infinite
    /// input is an <see cref="ArgumentException"/> naming the element; a diverged step is a
    /// <see cref="TrainingDivergedException"/> naming the step and the parameter whose gradient went non-finite
    /// first, and the parameters and running statistics stay as the last good step left them. Turn it off to
    /// save the scan (a few microseconds per step for a million parameters).
    /// </summary>
    public bool CheckFinite { get; set; } = true;

    /// <summary>One training step against class labels: forward, loss, backward, update. Returns the batch's mean loss.</summary>
    public T Step(ReadOnlySpan<T> inputs, ReadOnlySpan<int> labels) => Run(inputs, labels, default, useLabels: true, update: true);

    /// <summary>One training step against target values: forward, loss, backward, update. Returns the batch's mean loss.</summary>
    public T Step(ReadOnlySpan<T> inputs, ReadOnlySpan<T> targets) => Run(inputs, default, targets, useLabels: false, update: true);

    /// <summary>Forward, loss and backward without an update; the gradients are then in <see cref="Gradients"/>.</summary>
    public T ComputeGradients(ReadOnlySpan<T> inputs, ReadOnlySpan<int> labels) => Run(inputs, labels, default, useLabels: true, update: false);

    /// <summary>Forward, loss and backward without an update; the gradients are then in <see cref="Gradients"/>.</summary>
    public T ComputeGradients(ReadOnlySpan<T> inputs, ReadOnlySpan<T> targets) => Run(inputs, default, targets, useLabels: false, update: false);

    /// <summary>Applies one optimizer update from the current gradients.</summary>
    public void ApplyUpdate()
    {
        Enter();
        uint mode = Cpu.DenormalMode.Enter();
        try { Update(); }
        finally
        {
            Cpu.DenormalMode.Exit(mode);
            Exit();
        }
    }

    /// <summary>Inference (dropout off) on this trainer's device with its current parameters.</summary>
    public void Predict(ReadOnlySpan<T> input, Span<T> output)
    {
        Enter();
        uint mode = Cpu.DenormalMode.Enter();
        try { Infer(input, output); }
        finally
        {
            Cpu.DenormalMode.Exit(mode);
            Exit();
        }
    }

    /// <summary>Copies the trainer's parameters into <see cref="Network"/> (a no-op where they are the same memory).</summary>
    public virtual void CopyParametersToNetwork() { }

    /// <summary>Copies <see cref="Network"/>'s parameters into the trainer (after loading a checkpoint; a no-op where they are the same memory).</summary>
    public virtual void CopyParametersFromNetwork() { }

    /// <summary>A copy of the optimizer's state: updates applied and its named buffers.</summary>
    public abstract Checkpoints.OptimizerSnapshot<T> SaveOptimizerState();

    /// <summary>Restores the optimizer's state from a snapshot (resuming training).</summary>
    public abstract void LoadOptimizerState(Checkpoints.OptimizerSnapshot<T> snapshot);

    /// <summary>
    /// Scales the current gradients so that their global L2 norm is at most <paramref name="maxNorm"/>
    /// (<c>torch.nn.utils.clip_grad_norm_</c>); returns the norm before clipping. Call between
    /// <see cref="ComputeGradients(ReadOnlySpan{T}, ReadOnlySpan{int})"/> and <see cref="ApplyUpdate"/>.
    /// </summary>
    public double ClipGradientNorm(double maxNorm)
    {
        if (!(maxNorm > 0)) throw new ArgumentOutOfRangeException(nameof(maxNorm), maxNorm, "The maximum gradient norm must be positive.");
        Enter();
        try
        {
            double sum = 0;
            foreach (var g in Gradients)
            {
                double v = double.CreateTruncating(g);
                sum += v * v;
            }
            double norm = Math.Sqrt(sum);
            // PyTorch: clip_coef = max_norm / (total_norm + 1e-6), applied when below 1.
            double coefficient = maxNorm / (norm + 1e-6);
            if (coefficient < 1) ScaleGradients(T.CreateTruncating(coefficient));
            return norm;
        }
        finally { Exit(); }
    }

    /// <summary>Multiplies every gradient by <paramref name="factor"/>.</summary>
    protected abstract void ScaleGradients(T factor);

    /// <summary>Releases the trainer's memory, copying its parameters back to the network first; further use throws.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        Dispose(true);
        _disposed = true;
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases resources.</summary>
    protected virtual void Dispose(bool disposing) { }

    /// <summary>Runs forward, loss and backward for a validated batch; returns the mean loss.</summary>
    protected abstract T ForwardBackward(ReadOnlySpan<T> inputs, ReadOnlySpan<int> labels, ReadOnlySpan<T> targets, bool useLabels, int batch);

    /// <summary>Applies one optimizer update.</summary>
    protected abstract void Update();

    /// <summary>Runs inference for a validated batch.</summary>
    protected abstract void Infer(ReadOnlySpan<T> input, Span<T> output);

    private T Run(ReadOnlySpan<T> inputs, ReadOnlySpan<int> labels, ReadOnlySpan<T> targets, bool useLabels, bool update)
    {
        Enter();
        uint mode = Cpu.DenormalMode.Enter();
        try
        {
            var d = Network.Description;
            int batch = Network.BatchOf(inputs, nameof(inputs));
            if (batch > BatchCapacity)
                throw new ArgumentException($"The batch has {batch} samples but this trainer was created for at most {BatchCapacity}.", nameof(inputs));
            if (useLabels)
            {
                if (!Loss.TakesClassLabels)
                    throw new ArgumentException($"{Loss.Name} takes float targets (one per output element), not integer class labels.", nameof(labels));
                if (labels.Length != batch)
                    throw new ArgumentException($"There are {labels.Length} labels for {batch} samples; expected {batch}, one class index per sample.", nameof(labels));
                for (int b = 0; b < batch; b++)
                    if ((uint)labels[b] >= (uint)d.OutputSize)
                        throw new ArgumentOutOfRangeException(nameof(labels), labels[b],
                            $"Label {labels[b]} at index {b} is outside the class range: expected 0 to {d.OutputSize - 1} for {d.OutputSize} outputs.");
            }
            else
            {
                if (Loss.TakesClassLabels)
                    throw new ArgumentException($"{Loss.Name} takes integer class labels (one per sample), not float targets.", nameof(targets));
                int n = batch * d.OutputSize;
                if (targets.Length != n)
                    throw new ArgumentException($"There are {targets.Length} targets for {batch} samples; expected {n} ({batch} × {d.OutputSize} outputs).", nameof(targets));
            }
            if (CheckFinite)
            {
                RequireFinite(inputs, "input", nameof(inputs), d.InputSize);
                if (!useLabels) RequireFinite(targets, "target", nameof(targets), d.OutputSize);
                Backup();
            }
            T loss = ForwardBackward(inputs, labels, targets, useLabels, batch);
            if (CheckFinite) CheckStep(loss);
            if (update) Update();
            return loss;
        }
        finally
        {
            Cpu.DenormalMode.Exit(mode);
            Exit();
        }
    }

    private T[]? _stateBackup;

    /// <summary>Keeps the running statistics the forward pass is about to update, in case the step diverges.</summary>
    private void Backup()
    {
        var state = Network.StateData;
        if (state.IsEmpty) return;
        _stateBackup ??= new T[state.Length];
        CopyStateToNetwork();
        state.CopyTo(_stateBackup);
    }

    /// <summary>Brings the device's copy of the running statistics to the network (a no-op where they are the same memory).</summary>
    protected virtual void CopyStateToNetwork() { }

    /// <summary>Puts the network's running statistics back on the device (a no-op where they are the same memory).</summary>
    protected virtual void CopyStateFromNetwork() { }

    private void CheckStep(T loss)
    {
        bool lossFinite = T.IsFinite(loss);
        // Gradients come from the device only when the loss already says something is wrong.
        if (lossFinite && !ReferenceEquals(Device, Device.Cpu)) return;
        var gradients = Gradients;
        if (lossFinite && AllFinite(gradients)) return;

        // The first parameter the backward pass reached with a non-finite gradient: the one nearest the output.
        string? parameter = null;
        var ps = Network.Description.Parameters;
        for (int i = ps.Count - 1; i >= 0 && parameter is null; i--)
            if (!AllFinite(gradients.Slice(ps[i].Offset, ps[i].Length))) parameter = ps[i].Name;
        if (_stateBackup is not null)
        {
            _stateBackup.CopyTo(Network.StateData);
            CopyStateFromNetwork();
        }
        long step = StepCount + 1;
        throw new TrainingDivergedException(step, double.CreateTruncating(loss), parameter,
            $"Training diverged at step {step}: the loss is {double.CreateTruncating(loss)}"
            + (parameter is null ? " (every gradient is still finite)" : $" and the gradient of {parameter} (the first layer the backward pass reached from the loss with a non-finite gradient) is not finite")
            + ". The update was not applied: the parameters are those of the last good step. Lower the learning rate, clip gradients (FitOptions.ClipGradientNorm), or check the data; set CheckFinite = false to train on regardless.");
    }

    private static void RequireFinite(ReadOnlySpan<T> values, string what, string paramName, int perSample)
    {
        if (AllFinite(values)) return;
        for (int i = 0; i < values.Length; i++)
            if (!T.IsFinite(values[i]))
                throw new ArgumentException($"The {what} element {i} (sample {i / perSample}, position {i % perSample}) is {values[i]}; every {what} must be a finite number.", paramName);
    }

    /// <summary>
    /// Whether every value is finite. Buffers from <see cref="ParallelFiniteCheck"/> elements up (a network's gradients,
    /// checked after every step) are split over the worker threads, each checking a slice.
    /// </summary>
    internal static bool AllFinite(ReadOnlySpan<T> values)
    {
        if (values.Length < ParallelFiniteCheck || Cpu.CpuWorkers.Count < 2) return AllFiniteSerial(values);
        var job = new FiniteJob { Values = values };
        unsafe { Cpu.CpuWorkers.Run(ref job, &CheckSlice, values.Length, align: 1024); }
        return Volatile.Read(ref job.NonFinite) == 0;
    }

    /// <summary>Elements from which <see cref="AllFinite"/> splits the check over the threads.</summary>
    internal const int ParallelFiniteCheck = 1 << 16;

    private ref struct FiniteJob
    {
        public ReadOnlySpan<T> Values;
        public int NonFinite;
    }

    private static void CheckSlice(ref FiniteJob job, int start, int end)
    {
        if (!AllFiniteSerial(job.Values.Slice(start, end - start))) Volatile.Write(ref job.NonFinite, 1);
    }

    /// <summary>Whether every value is finite: x − x is 0 for finite x and NaN otherwise, summed a register at a time.</summary>
    private static bool AllFiniteSerial(ReadOnlySpan<T> values)
    {
        // x − x is 0 for every finite x and NaN otherwise; four independent sums keep the adder busy.
        int i = 0;
        T tail = T.Zero;
        if (Vector.IsHardwareAccelerated)
        {
            int n = Vector<T>.Count;
            Vector<T> a0 = Vector<T>.Zero, a1 = Vector<T>.Zero, a2 = Vector<T>.Zero, a3 = Vector<T>.Zero;
            for (; i <= values.Length - 4 * n; i += 4 * n)
            {
                Vector<T> v0 = new(values.Slice(i)), v1 = new(values.Slice(i + n)), v2 = new(values.Slice(i + 2 * n)), v3 = new(values.Slice(i + 3 * n));
                a0 += v0 - v0; a1 += v1 - v1; a2 += v2 - v2; a3 += v3 - v3;
            }
            for (; i <= values.Length - n; i += n)
            {
                var v = new Vector<T>(values.Slice(i));
                a0 += v - v;
            }
            tail = Vector.Dot((a0 + a1) + (a2 + a3), Vector<T>.One);
        }
        for (; i < values.Length; i++) tail += values[i] - values[i];
        return tail == T.Zero;
    }

    private void Enter()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (Interlocked.Exchange(ref _busy, 1) != 0)
            throw new InvalidOperationException("This trainer is already running a step on another thread; a trainer may be used by one thread at a time.");
    }

    private void Exit() => Volatile.Write(ref _busy, 0);
}

/// <summary>The managed CPU trainer: runs the generated C# schedules in a <see cref="Workspace{T}"/>.</summary>
internal sealed class CpuTrainer<T> : Trainer<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly Workspace<T> _workspace;
    private readonly OptimizerState<T> _state;
    private readonly T[] _output;
    private readonly T[] _outputGradient;
    private readonly ulong _seed;
    private int _lastBatch;

    public CpuTrainer(CompiledNetwork<T> network, Optimizer optimizer, Loss loss, int batchCapacity, int seed)
        : base(network, optimizer, loss, batchCapacity)
    {
        var d = network.Description;
        _workspace = new Workspace<T>(d.TrainingPlan, batchCapacity, d.ParameterBufferLength);
        _state = optimizer.CreateState<T>(d.ParameterBufferLength);
        _output = new T[checked(batchCapacity * d.OutputSize)];
        _outputGradient = new T[_output.Length];
        _seed = CounterRandom.Derive((ulong)(uint)seed, 0x7472616E);
    }

    public override Device Device => Device.Cpu;

    public override long StepCount => _state.StepCount;

    public override ReadOnlySpan<T> Gradients => _workspace.Gradients;

    /// <summary>The workspace backward runs in (the distributed trainer listens to its bucket signals).</summary>
    internal Workspace<T> Workspace => _workspace;

    public override ReadOnlySpan<T> Outputs => _output.AsSpan(0, _lastBatch * Network.Description.OutputSize);

    protected override T ForwardBackward(ReadOnlySpan<T> inputs, ReadOnlySpan<int> labels, ReadOnlySpan<T> targets, bool useLabels, int batch)
    {
        int size = Network.Description.OutputSize, n = batch * size;
        _workspace.DropoutSeed = CounterRandom.Derive(_seed, (ulong)_state.StepCount);
        _lastBatch = batch;
        var output = _output.AsSpan(0, n);
        var gradient = _outputGradient.AsSpan(0, n);
        Network.ForwardTraining(inputs, output, _workspace, batch);
        T loss = useLabels
            ? Loss.Evaluate<T>(output, labels, gradient, batch, size)
            : Loss.Evaluate<T>(output, targets, gradient, batch, size);
        Network.Backward(inputs, output, gradient, _workspace, batch);
        return loss;
    }

    protected override void Update() => _state.Step(Network.ParameterData, _workspace.Gradients);

    public override Checkpoints.OptimizerSnapshot<T> SaveOptimizerState()
        => new(_state.StepCount, Array.ConvertAll(_state.Buffers, b => (b.Name, (T[])b.Values.Clone())));

    public override void LoadOptimizerState(Checkpoints.OptimizerSnapshot<T> snapshot) => _state.Restore(snapshot.Steps, snapshot.Buffers);

    protected override void ScaleGradients(T factor)
    {
        var g = _workspace.Gradients;
        for (int i = 0; i < g.Length; i++) g[i] *= factor;
    }

    protected override void Infer(ReadOnlySpan<T> input, Span<T> output) => Network.Predict(input, output);
}

/// <summary>A training step whose loss or gradients became NaN or infinite; nothing was updated.</summary>
public sealed class TrainingDivergedException : ArithmeticException
{
    /// <summary>Creates the exception.</summary>
    public TrainingDivergedException(long step, double loss, string? parameter, string message) : base(message)
    {
        Step = step;
        Loss = loss;
        Parameter = parameter;
    }

    /// <summary>The step that diverged (counting from 1).</summary>
    public long Step { get; }

    /// <summary>The step's loss.</summary>
    public double Loss { get; }

    /// <summary>The parameter nearest the output whose gradient is not finite, or null if all are.</summary>
    public string? Parameter { get; }
}
