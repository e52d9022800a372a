using System;
using System.Collections.Generic;
using System.Numerics;

namespace NetDsl.Runtime;

/// <summary>
/// An optimizer's settings. A trainer creates the optimizer's state (momentum buffers, moment estimates)
/// over the network's flat parameter buffer, so one update is one pass over three or four flat arrays.
/// The update rules follow PyTorch's <c>torch.optim</c> exactly, including where weight decay enters.
/// </summary>
public abstract class Optimizer
{
    private double _learningRate;

    private protected Optimizer(double learningRate, double weightDecay)
    {
        LearningRate = learningRate;
        if (!(weightDecay >= 0) || double.IsInfinity(weightDecay))
            throw new ArgumentOutOfRangeException(nameof(weightDecay), weightDecay, "Weight decay must be a finite number >= 0.");
        WeightDecay = weightDecay;
    }

    /// <summary>The learning rate; schedules change it between steps.</summary>
    public double LearningRate
    {
        get => _learningRate;
        set
        {
            if (!(value >= 0) || double.IsInfinity(value))
                throw new ArgumentOutOfRangeException(nameof(LearningRate), value, "The learning rate must be a finite number >= 0.");
            _learningRate = value;
        }
    }

    /// <summary>The weight decay coefficient.</summary>
    public double WeightDecay { get; }

    /// <summary>
    /// Creates this optimizer's state for a flat parameter buffer of <paramref name="parameterCount"/> elements: for a
    /// network, <see cref="NetworkDescription.ParameterBufferLength"/> (the tensors and the alignment gaps between
    /// them), not <see cref="NetworkDescription.ParameterCount"/>.
    /// </summary>
    public abstract OptimizerState<T> CreateState<T>(int parameterCount) where T : unmanaged, IFloatingPointIeee754<T>;
}

/// <summary>The mutable state of an optimizer over one flat parameter buffer.</summary>
public abstract class OptimizerState<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Number of updates applied so far.</summary>
    public long StepCount { get; protected set; }

    /// <summary>
    /// Applies one update to <paramref name="parameters"/> from <paramref name="gradients"/>; both must be as long as
    /// the buffer the state was created for.
    /// </summary>
    public abstract void Step(Span<T> parameters, ReadOnlySpan<T> gradients);

    /// <summary>
    /// Throws unless <paramref name="parameters"/> and <paramref name="gradients"/> are both <paramref name="length"/>
    /// elements, the buffer length the state was created for (its buffers are updated through pointers up to the
    /// parameters' length).
    /// </summary>
    protected static void RequireLength(int length, int parameters, int gradients)
    {
        if (parameters != length || gradients != length)
            throw new ArgumentException(
                $"The optimizer state was created for a parameter buffer of {length} elements (a network's Description.ParameterBufferLength); " +
                $"Step got {parameters} parameters and {gradients} gradients.");
    }

    /// <summary>The named state buffers (for checkpoints), e.g. <c>exp_avg</c>.</summary>
    public abstract (string Name, T[] Values)[] Buffers { get; }

    /// <summary>Restores a saved state: the update count and each named buffer's values.</summary>
    public void Restore(long steps, IReadOnlyList<(string Name, T[] Values)> buffers)
    {
        var own = Buffers;
        foreach (var (name, values) in buffers)
        {
            int i = Array.FindIndex(own, b => b.Name == name);
            if (i < 0) throw new ArgumentException($"This optimizer has no state buffer '{name}'; its buffers are {string.Join(", ", Array.ConvertAll(own, b => b.Name))}.", nameof(buffers));
            if (own[i].Values.Length != values.Length) throw new ArgumentException($"State buffer '{name}' has {values.Length} values; expected {own[i].Values.Length}.", nameof(buffers));
            values.CopyTo(own[i].Values, 0);
        }
        StepCount = steps;
    }
}
