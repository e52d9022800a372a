using System;
using System.Collections.Generic;
using ILGPU;
using ILGPU.Runtime;

namespace NetDsl.Runtime.Gpu;

/// <summary>
/// The bytes a device trainer holds, arena by arena. <see cref="Plan"/> computes them from the compile-time
/// memory plan; a trainer's <see cref="DeviceTrainer.Memory"/> reports what it actually allocated.
/// </summary>
/// <param name="Parameters">The flat parameter buffer.</param>
/// <param name="Gradients">The flat gradient buffer.</param>
/// <param name="OptimizerState">Momentum or Adam moments, one allocation.</param>
/// <param name="Activations">The activation arena: the planned peak per sample times the batch capacity.</param>
/// <param name="Integers">Max-pool positions and labels.</param>
/// <param name="InputOutput">Inputs, targets, outputs, output gradients and per-sample losses.</param>
public sealed record DeviceMemory(long Parameters, long Gradients, long OptimizerState, long Activations, long Integers, long InputOutput)
{
    /// <summary>All bytes.</summary>
    public long Total => Parameters + Gradients + OptimizerState + Activations + Integers + InputOutput;

    /// <summary>What a float trainer for <paramref name="network"/> allocates at <paramref name="capacity"/> with <paramref name="optimizer"/>.</summary>
    public static DeviceMemory Plan(NetworkDescription network, int capacity, Optimizer optimizer)
    {
        const int f = sizeof(float);
        long p = Math.Max((long)network.ParameterBufferLength + network.StateCount, 1);
        long state = Math.Max((long)OptimizerKernels.StatePerParameter(optimizer) * network.ParameterBufferLength, 1);
        long activations = Math.Max((long)Math.Max(network.TrainingPlan.ActivationsPerSample, network.InferencePlan.ActivationsPerSample) * capacity, 1);
        long ints = (long)network.TrainingPlan.IndicesPerSample * capacity + capacity;
        long io = (long)capacity * (network.InputSize + 3L * network.OutputSize + 1);
        long g = Math.Max(network.ParameterBufferLength, 1);
        return new DeviceMemory(p * f, g * f, state * f, activations * f, ints * sizeof(int), io * f);
    }
}

/// <summary>
/// Trains a network on an ILGPU device. Memory is one allocation per arena (parameters, gradients, optimizer
/// state, activations, integers, inputs/outputs), sized by the compile-time plan when the trainer is created;
/// a step allocates nothing on the device. Per step the inputs and labels go in, the generated kernels run in
/// schedule order (forward, the fused loss, backward, the optimizer), and the outputs and per-sample losses
/// come out.
/// </summary>
public sealed class DeviceTrainer : Trainer<float>
{
    private readonly GpuDevice _device;
    private readonly Accelerator _accelerator;
    private readonly List<(KernelDefinition<float> Definition, Action<AcceleratorStream, Index1D, DeviceArenas<float>> Launch)> _forward = new();
    private readonly List<(KernelDefinition<float> Definition, Action<AcceleratorStream, Index1D, DeviceArenas<float>> Launch)> _backward = new();
    private readonly List<(KernelDefinition<float> Definition, Action<AcceleratorStream, Index1D, DeviceArenas<float>> Launch)> _inference = new();
    private readonly Action<AcceleratorStream, Index1D, DeviceArenas<float>> _loss;
    private readonly Action<AcceleratorStream, Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, OptimizerKernels.SgdArgs>? _sgd;
    private readonly Action<AcceleratorStream, Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, OptimizerKernels.AdamArgs>? _adam;
    private readonly DeviceBuffer<float> _parameters, _gradients, _state, _activations, _io;
    private readonly DeviceBuffer<int> _ints;
    private readonly float[] _hostOutput;
    private readonly float[] _hostRowLoss;
    private readonly float[] _hostGradients;
    private readonly ulong _seed;
    private readonly int _parameterCount;
    private DeviceArenas<float> _arenas;
    private readonly int _stateCount;
    private long _steps;
    private int _lastBatch;

    internal DeviceTrainer(GpuDevice device, CompiledNetwork<float> network, DeviceProgram<float> program, Optimizer optimizer, Loss loss, int capacity, int seed)
        : base(network, optimizer, loss, capacity)
    {
        _device = device;
        _accelerator = device.Accelerator;
        var d = network.Description;
        _parameterCount = d.ParameterBufferLength;
        _stateCount = d.StateCount;
        var plan = DeviceMemory.Plan(d, capacity, optimizer);
        var table = program.Build();

        foreach (var k in table.Kernels)
        {
            var launch = _accelerator.LoadAutoGroupedKernel(k.Kernel);
            (k.Phase switch { KernelPhase.TrainingForward => _forward, KernelPhase.Backward => _backward, _ => _inference }).Add((k, launch));
        }
        if (!table.Losses.TryGetValue(loss.Name, out var lossKernel))
            throw new NotSupportedException($"{d.Name} has no device kernel for {loss.Name}.");
        _loss = _accelerator.LoadAutoGroupedKernel(lossKernel);
        if (optimizer is Sgd) _sgd = _accelerator.LoadAutoGroupedKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, OptimizerKernels.SgdArgs>(OptimizerKernels.Sgd);
        else if (optimizer is Adam) _adam = _accelerator.LoadAutoGroupedKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, OptimizerKernels.AdamArgs>(OptimizerKernels.Adam);
        else throw new NotSupportedException($"{optimizer.GetType().Name} has no device kernel.");

        const int f = sizeof(float);
        var allocated = new List<IDisposable>();
        try
        {
            _parameters = Track(device.Allocate<float>(plan.Parameters / f), allocated);
            _gradients = Track(device.Allocate<float>(plan.Gradients / f), allocated);
            _state = Track(device.Allocate<float>(plan.OptimizerState / f), allocated);
            _activations = Track(device.Allocate<float>(plan.Activations / f), allocated);
            _ints = Track(device.Allocate<int>(plan.Integers / sizeof(int)), allocated);
            _io = Track(device.Allocate<float>(plan.InputOutput / f), allocated);
        }
        catch
        {
            foreach (var b in allocated) b.Dispose();
            throw;
        }
        _state.View.MemSetToZero();
        _gradients.View.MemSetToZero();
        _parameters.View.SubView(0, _parameterCount).CopyFromCPU(_accelerator.DefaultStream, (ReadOnlySpan<float>)network.ParameterData);
        if (_stateCount > 0) StateView.CopyFromCPU(_accelerator.DefaultStream, (ReadOnlySpan<float>)network.StateData);

        long input = (long)capacity * d.InputSize, outputs = (long)capacity * d.OutputSize;
        var io = _io.View;
        var ints = _ints.View;
        long indices = (long)d.TrainingPlan.IndicesPerSample * capacity;
        _arenas = new DeviceArenas<float>
        {
            Parameters = _parameters.View,
            State = _stateCount > 0 ? _parameters.View.SubView(_parameterCount, _stateCount) : default,
            Gradients = _gradients.View,
            Activations = _activations.View,
            Input = io.SubView(0, input),
            Targets = io.SubView(input, outputs),
            Output = io.SubView(input + outputs, outputs),
            OutputGradient = io.SubView(input + 2 * outputs, outputs),
            RowLoss = io.SubView(input + 3 * outputs, capacity),
            Indices = ints.SubView(0, Math.Max(indices, 0)),
            Labels = ints.SubView(indices, capacity),
            Capacity = capacity,
        };
        _hostOutput = new float[outputs];
        _hostRowLoss = new float[capacity];
        _hostGradients = new float[_parameterCount];
        _seed = CounterRandom.Derive((ulong)(uint)seed, 0x7472616E);
        Memory = new DeviceMemory(_parameters.Bytes, _gradients.Bytes, _state.Bytes, _activations.Bytes, _ints.Bytes, _io.Bytes);
    }

    private static DeviceBuffer<TE> Track<TE>(DeviceBuffer<TE> buffer, List<IDisposable> into) where TE : unmanaged
    {
        into.Add(buffer);
        return buffer;
    }

    /// <inheritdoc />
    public override Device Device => _device;

    /// <inheritdoc />
    public override long StepCount => _steps;

    /// <summary>What this trainer allocated on the device, arena by arena.</summary>
    public DeviceMemory Memory { get; }

    /// <summary>Kernel launches of the last training step (forward, loss, backward and, for a full step, the optimizer).</summary>
    public int LaunchesLastStep { get; private set; }

    /// <inheritdoc />
    public override ReadOnlySpan<float> Gradients
    {
        get
        {
            _gradients.View.SubView(0, _parameterCount).CopyToCPU(_accelerator.DefaultStream, _hostGradients.AsSpan());
            return _hostGradients;
        }
    }

    /// <inheritdoc />
    public override ReadOnlySpan<float> Outputs => _hostOutput.AsSpan(0, _lastBatch * Network.Description.OutputSize);

    /// <inheritdoc />
    protected override float ForwardBackward(ReadOnlySpan<float> inputs, ReadOnlySpan<int> labels, ReadOnlySpan<float> targets, bool useLabels, int batch)
    {
        var stream = _accelerator.DefaultStream;
        var d = Network.Description;
        _arenas.Input.SubView(0, inputs.Length).CopyFromCPU(stream, inputs);
        if (useLabels) _arenas.Labels.SubView(0, batch).CopyFromCPU(stream, labels);
        else _arenas.Targets.SubView(0, targets.Length).CopyFromCPU(stream, targets);
        _arenas.Batch = batch;
        _arenas.Seed = CounterRandom.Derive(_seed, (ulong)_steps);
        int launches = 0;
        foreach (var (k, launch) in _forward) { launch(stream, k.Extent(batch), _arenas); launches++; }
        _loss(stream, batch, _arenas);
        launches++;
        foreach (var (k, launch) in _backward) { launch(stream, k.Extent(batch), _arenas); launches++; }
        LaunchesLastStep = launches;

        int n = batch * d.OutputSize;
        _arenas.Output.SubView(0, n).CopyToCPU(stream, _hostOutput.AsSpan(0, n));
        _arenas.RowLoss.SubView(0, batch).CopyToCPU(stream, _hostRowLoss.AsSpan(0, batch));
        _lastBatch = batch;
        double loss = 0;
        for (int b = 0; b < batch; b++) loss += _hostRowLoss[b];
        return (float)loss;
    }

    /// <inheritdoc />
    protected override void Update()
    {
        var stream = _accelerator.DefaultStream;
        Index1D extent = _parameterCount;
        if (_sgd is not null)
        {
            var s = (Sgd)Optimizer;
            _sgd(stream, extent, _parameters.View.SubView(0, _parameterCount), _gradients.View.SubView(0, _parameterCount), _state.View, new OptimizerKernels.SgdArgs
            {
                LearningRate = (float)s.LearningRate,
                WeightDecay = (float)s.WeightDecay,
                Momentum = (float)s.Momentum,
                OneMinusDampening = 1f - (float)s.Dampening,
                First = _steps == 0 ? 1 : 0,
                HasMomentum = s.Momentum != 0 ? 1 : 0,
                Nesterov = s.Nesterov ? 1 : 0,
            });
        }
        else
        {
            var a = (Adam)Optimizer;
            long t = _steps + 1;
            double bc1 = 1 - Math.Pow(a.Beta1, t);
            double bc2Sqrt = Math.Sqrt(1 - Math.Pow(a.Beta2, t));
            _adam!(stream, extent, _parameters.View.SubView(0, _parameterCount), _gradients.View.SubView(0, _parameterCount), _state.View, new OptimizerKernels.AdamArgs
            {
                StepSize = (float)(a.LearningRate / bc1),
                InvBiasCorrection2Sqrt = (float)(1.0 / bc2Sqrt),
                Beta1 = (float)a.Beta1,
                Beta2 = (float)a.Beta2,
                OneMinusBeta1 = 1f - (float)a.Beta1,
                OneMinusBeta2 = 1f - (float)a.Beta2,
                Epsilon = (float)a.Epsilon,
                WeightDecay = (float)a.WeightDecay,
                Decay = 1f - (float)(a.LearningRate * a.WeightDecay),
                HasDecay = a.WeightDecay != 0 ? 1 : 0,
                Decoupled = a.Decoupled ? 1 : 0,
            });
        }
        LaunchesLastStep++;
        stream.Synchronize();
        _steps++;
    }

    /// <inheritdoc />
    protected override void Infer(ReadOnlySpan<float> input, Span<float> output)
    {
        var d = Network.Description;
        int batch = Network.BatchOf(input, nameof(input));
        if (batch > BatchCapacity)
            throw new ArgumentException($"The batch has {batch} samples but this trainer was created for at most {BatchCapacity}.", nameof(input));
        if (output.Length != batch * d.OutputSize)
            throw new ArgumentException($"The output span has {output.Length} elements; a batch of {batch} needs {batch * d.OutputSize}.", nameof(output));
        var stream = _accelerator.DefaultStream;
        _arenas.Input.SubView(0, input.Length).CopyFromCPU(stream, input);
        _arenas.Batch = batch;
        foreach (var (k, launch) in _inference) launch(stream, k.Extent(batch), _arenas);
        _arenas.Output.SubView(0, output.Length).CopyToCPU(stream, output);
    }

    /// <inheritdoc />
    public override void CopyParametersFromNetwork()
    {
        _parameters.View.SubView(0, _parameterCount).CopyFromCPU(_accelerator.DefaultStream, (ReadOnlySpan<float>)Network.ParameterData);
        if (_stateCount > 0) StateView.CopyFromCPU(_accelerator.DefaultStream, (ReadOnlySpan<float>)Network.StateData);
    }

    /// <inheritdoc />
    protected override void CopyStateToNetwork()
    {
        if (_stateCount > 0) StateView.CopyToCPU(_accelerator.DefaultStream, Network.StateData);
    }

    /// <inheritdoc />
    protected override void CopyStateFromNetwork()
    {
        if (_stateCount > 0) StateView.CopyFromCPU(_accelerator.DefaultStream, (ReadOnlySpan<float>)Network.StateData);
    }

    /// <summary>The network's state (running statistics) after the parameters in the parameter buffer.</summary>
    private ArrayView<float> StateView => _parameters.View.SubView(_parameterCount, _stateCount);

    /// <inheritdoc />
    public override Checkpoints.OptimizerSnapshot<float> SaveOptimizerState()
    {
        int buffers = OptimizerKernels.StatePerParameter(Optimizer);
        var names = Optimizer is Sgd ? new[] { "momentum_buffer" } : new[] { "exp_avg", "exp_avg_sq" };
        var list = new List<(string, float[])>();
        for (int b = 0; b < buffers; b++)
        {
            var values = new float[_parameterCount];
            _state.View.SubView((long)b * _parameterCount, _parameterCount).CopyToCPU(_accelerator.DefaultStream, values.AsSpan());
            list.Add((names[b], values));
        }
        return new Checkpoints.OptimizerSnapshot<float>(_steps, list);
    }

    /// <inheritdoc />
    public override void LoadOptimizerState(Checkpoints.OptimizerSnapshot<float> snapshot)
    {
        var names = Optimizer is Sgd ? new[] { "momentum_buffer" } : new[] { "exp_avg", "exp_avg_sq" };
        foreach (var (name, values) in snapshot.Buffers)
        {
            int b = Array.IndexOf(names, name);
            if (b < 0 || b >= OptimizerKernels.StatePerParameter(Optimizer))
                throw new ArgumentException($"{Optimizer.GetType().Name} on a device has no state buffer '{name}'.", nameof(snapshot));
            if (values.Length != _parameterCount)
                throw new ArgumentException($"State buffer '{name}' has {values.Length} values; expected {_parameterCount}.", nameof(snapshot));
            _state.View.SubView((long)b * _parameterCount, _parameterCount).CopyFromCPU(_accelerator.DefaultStream, (ReadOnlySpan<float>)values);
        }
        _steps = snapshot.Steps;
    }

    /// <inheritdoc />
    protected override void ScaleGradients(float factor)
    {
        var g = _hostGradients;
        _gradients.View.SubView(0, _parameterCount).CopyToCPU(_accelerator.DefaultStream, g.AsSpan());
        for (int i = 0; i < g.Length; i++) g[i] *= factor;
        _gradients.View.SubView(0, _parameterCount).CopyFromCPU(_accelerator.DefaultStream, (ReadOnlySpan<float>)g);
    }

    /// <inheritdoc />
    public override void CopyParametersToNetwork()
    {
        _parameters.View.SubView(0, _parameterCount).CopyToCPU(_accelerator.DefaultStream, Network.ParameterData);
        if (_stateCount > 0) StateView.CopyToCPU(_accelerator.DefaultStream, Network.StateData);
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (!_parameters.IsDisposed) CopyParametersToNetwork();
        _parameters.Dispose();
        _gradients.Dispose();
        _state.Dispose();
        _activations.Dispose();
        _ints.Dispose();
        _io.Dispose();
    }
}
