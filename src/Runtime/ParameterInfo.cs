using System;
using System.Collections.Generic;

namespace NetDsl.Runtime;

/// <summary>How a parameter tensor is initialized.</summary>
public enum ParameterInit
{
    /// <summary>Uniform on <c>[-Bound, Bound]</c>: PyTorch's default for Linear and Conv2d weights and biases.</summary>
    Uniform = 0,

    /// <summary>All zeros.</summary>
    Zeros = 1,

    /// <summary>All ones.</summary>
    Ones = 2,

    /// <summary>Normal with mean 0 and standard deviation <c>Bound</c>: PyTorch's default for Embedding.</summary>
    Normal = 3,
}

/// <summary>
/// One named non-trainable tensor in a network's flat state buffer: PyTorch's module buffers, such as
/// BatchNorm's <c>running_mean</c>, <c>running_var</c> and <c>num_batches_tracked</c>.
/// </summary>
/// <param name="Name">PyTorch state_dict name.</param>
/// <param name="Offset">First element in the flat state buffer.</param>
/// <param name="Shape">PyTorch shape (empty for a scalar).</param>
/// <param name="Init">Zeros or Ones.</param>
/// <param name="IsCount">A counter PyTorch stores as int64 (written so in checkpoints).</param>
public sealed record StateInfo(string Name, int Offset, int[] Shape, ParameterInit Init, bool IsCount)
{
    /// <summary>Number of elements.</summary>
    public int Length => TensorShape.Elements(Shape);

    /// <summary>The shape as PyTorch prints it.</summary>
    public string ShapeText => TensorShape.Text(Shape);
}

/// <summary>One named parameter tensor inside a network's flat parameter buffer.</summary>
/// <param name="Name">PyTorch state_dict name, e.g. <c>conv1.weight</c>.</param>
/// <param name="Offset">First element in the flat buffer: a multiple of 16 in generated networks, so each tensor
/// starts on a 64-byte cache line (the elements between two tensors are zero).</param>
/// <param name="Shape">PyTorch shape, e.g. <c>[32, 3, 3, 3]</c>.</param>
/// <param name="Init">The initializer.</param>
/// <param name="Bound">The bound for <see cref="ParameterInit.Uniform"/>.</param>
public sealed record ParameterInfo(string Name, int Offset, int[] Shape, ParameterInit Init, double Bound)
{
    /// <summary>Number of elements.</summary>
    public int Length => TensorShape.Elements(Shape);

    /// <summary>The shape as PyTorch prints it, e.g. <c>[32, 3, 3, 3]</c>.</summary>
    public string ShapeText => TensorShape.Text(Shape);
}

/// <summary>
/// What the generator knows about a network, as data: sizes, parameters and the memory plan.
/// Generated classes build one instance, once, and hand it to the runtime.
/// </summary>
public sealed class NetworkDescription
{
    /// <summary>Creates a description. Called by generated code.</summary>
    public NetworkDescription(
        string name,
        int[] inputShape,
        int[] outputShape,
        IReadOnlyList<ParameterInfo> parameters,
        MemoryPlanSizes trainingPlan,
        MemoryPlanSizes inferencePlan)
    {
        Name = name;
        InputShape = inputShape;
        OutputShape = outputShape;
        Parameters = parameters;
        TrainingPlan = trainingPlan;
        InferencePlan = inferencePlan;
        InputSize = TensorShape.Elements(inputShape);
        OutputSize = TensorShape.Elements(outputShape);
        int count = 0, length = 0;
        foreach (var p in parameters)
        {
            count += p.Length;
            length = Math.Max(length, p.Offset + p.Length);
        }
        ParameterCount = count;
        ParameterBufferLength = length;
    }

    /// <summary>The network's class name.</summary>
    public string Name { get; }

    /// <summary>Per-sample input shape (without the batch).</summary>
    public int[] InputShape { get; }

    /// <summary>Per-sample output shape (without the batch).</summary>
    public int[] OutputShape { get; }

    /// <summary>Elements per input sample.</summary>
    public int InputSize { get; }

    /// <summary>Elements per output sample.</summary>
    public int OutputSize { get; }

    /// <summary>The number of parameters, as PyTorch counts them (the sum of the tensors' lengths).</summary>
    public int ParameterCount { get; }

    /// <summary>
    /// Elements of the flat parameter buffer (<see cref="CompiledNetwork{T}.ParameterData"/>, and the gradient and
    /// optimizer-state buffers laid out like it): the tensors at their offsets, which generated networks place on
    /// multiples of 16 elements (a 64-byte cache line), and the zeros in the gaps between them.
    /// </summary>
    public int ParameterBufferLength { get; }

    /// <summary>The parameter tensors in state_dict order.</summary>
    public IReadOnlyList<ParameterInfo> Parameters { get; }

    /// <summary>Buffer sizes of the training schedule (forward + backward).</summary>
    public MemoryPlanSizes TrainingPlan { get; }

    /// <summary>Buffer sizes of the inference schedule (forward only).</summary>
    public MemoryPlanSizes InferencePlan { get; }

    /// <summary>Steps (kernels on a device) of one training forward and backward pass, after fusion.</summary>
    public int TrainingSteps { get; init; }

    /// <summary>Steps (kernels on a device) of one inference pass.</summary>
    public int InferenceSteps { get; init; }

    /// <summary>
    /// Forward FLOPs of one sample (2 per multiply-add), as the generator counts them; 0 when unknown (a description
    /// built by hand). <see cref="CompiledNetwork{T}.Predict"/> splits a batch over the threads only when the batch's
    /// work pays for waking them.
    /// </summary>
    public long FlopsPerSample { get; init; }

    /// <summary>Elements per sample the training activations would take if no two buffers shared memory.</summary>
    public long UnplannedActivationsPerSample { get; init; }

    /// <summary>The non-trainable state tensors (running statistics) in state_dict order; empty for most networks.</summary>
    public IReadOnlyList<StateInfo> States
    {
        get => _states;
        init
        {
            _states = value ?? Array.Empty<StateInfo>();
            int count = 0;
            foreach (var s in _states) count = Math.Max(count, s.Offset + s.Length);
            StateCount = count;
        }
    }

    private readonly IReadOnlyList<StateInfo> _states = Array.Empty<StateInfo>();

    /// <summary>Total number of state elements.</summary>
    public int StateCount { get; private init; }

    /// <summary>The forward graph, for exporters (ONNX); empty for descriptions made by hand.</summary>
    public IReadOnlyList<Export.GraphNode> Graph { get; init; } = Array.Empty<Export.GraphNode>();

    /// <summary>The node of <see cref="Graph"/> that is the network's output.</summary>
    public int GraphOutput { get; init; } = -1;

    /// <summary>The bucket cap the generator planned with ([Network(GradientBucketBytes = ...)], default 1 MiB).</summary>
    public int GradientBucketBytes { get; init; }

    /// <summary>
    /// The data-parallel communication plan, computed at build time: contiguous slices of the flat gradient buffer
    /// in the order backward finishes them. Generated backward code signals each one as soon as it is final.
    /// </summary>
    public IReadOnlyList<GradientBucket> GradientBuckets { get; init; } = Array.Empty<GradientBucket>();

    /// <summary>Finds a state tensor by its state_dict name.</summary>
    public StateInfo? FindState(string name)
    {
        foreach (var s in _states)
            if (s.Name == name) return s;
        return null;
    }

    /// <summary>Finds a parameter by its state_dict name.</summary>
    public ParameterInfo? FindParameter(string name)
    {
        foreach (var p in Parameters)
            if (p.Name == name) return p;
        return null;
    }

}

/// <summary>Shape arithmetic shared by parameter, state and checkpoint tensors.</summary>
internal static class TensorShape
{
    /// <summary>The number of elements (1 for a scalar's empty shape).</summary>
    public static int Elements(int[] shape)
    {
        int n = 1;
        foreach (int d in shape) n *= d;
        return n;
    }

    /// <summary>The shape as PyTorch prints it, e.g. <c>[32, 3, 3, 3]</c>.</summary>
    public static string Text<TDim>(TDim[] shape) => "[" + string.Join(", ", shape) + "]";
}

/// <summary>
/// Sizes of the buffers a schedule needs, computed by the generator's liveness-based memory plan.
/// Activation and index arenas scale with the batch capacity; scratch does not.
/// </summary>
/// <param name="ActivationsPerSample">Elements of the activation arena per sample of batch capacity.</param>
/// <param name="IndicesPerSample">Ints of the index arena (max-pool positions) per sample.</param>
/// <param name="Scratch">Elements of im2col column buffer each worker thread needs, independent of the batch.</param>
public readonly record struct MemoryPlanSizes(int ActivationsPerSample, int IndicesPerSample, int Scratch);

/// <summary>One bucket of <see cref="NetworkDescription.GradientBuckets"/>.</summary>
/// <param name="Offset">First element in the flat gradient (and parameter) buffer.</param>
/// <param name="Length">Elements.</param>
/// <param name="ReadyAfterStep">The training-schedule step (1-based, as numbered in the generated code) after which the bucket is final.</param>
/// <param name="Parameters">The parameters whose gradients it holds, in the order backward finishes them.</param>
public sealed record GradientBucket(int Offset, int Length, int ReadyAfterStep, IReadOnlyList<string> Parameters);
