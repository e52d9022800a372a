using System;

namespace NetDsl.Runtime.Training;

/// <summary>A learning-rate schedule: the rate for a step, from the optimizer's base rate.</summary>
public abstract class LearningRateSchedule
{
    /// <summary>The rate at <paramref name="step"/> (0-based, counted over the whole run) in <paramref name="epoch"/>.</summary>
    public abstract double Rate(double baseRate, int epoch, long step, int stepsPerEpoch);

    /// <summary>Multiplies the rate by <paramref name="gamma"/> every <paramref name="stepEpochs"/> epochs (<c>StepLR</c>).</summary>
    public static LearningRateSchedule StepDecay(int stepEpochs, double gamma = 0.1) => new StepSchedule(stepEpochs, gamma);

    /// <summary>Cosine annealing from the base rate to <paramref name="minRate"/> over <paramref name="epochs"/> epochs, per step (<c>CosineAnnealingLR</c>).</summary>
    public static LearningRateSchedule Cosine(int epochs, double minRate = 0) => new CosineSchedule(epochs, minRate);

    /// <summary>Linear warmup from ~0 over <paramref name="steps"/> steps, then <paramref name="then"/> (or the base rate).</summary>
    public static LearningRateSchedule Warmup(int steps, LearningRateSchedule? then = null) => new WarmupSchedule(steps, then);

    private sealed class StepSchedule(int stepEpochs, double gamma) : LearningRateSchedule
    {
        private readonly int _stepEpochs = stepEpochs >= 1 ? stepEpochs : throw new ArgumentOutOfRangeException(nameof(stepEpochs), stepEpochs, "The step is at least one epoch.");

        public override double Rate(double baseRate, int epoch, long step, int stepsPerEpoch) => baseRate * Math.Pow(gamma, epoch / _stepEpochs);
    }

    private sealed class CosineSchedule(int epochs, double minRate) : LearningRateSchedule
    {
        private readonly int _epochs = epochs >= 1 ? epochs : throw new ArgumentOutOfRangeException(nameof(epochs), epochs, "Cosine annealing needs at least one epoch.");

        public override double Rate(double baseRate, int epoch, long step, int stepsPerEpoch)
        {
            double progress = Math.Min(1.0, step / (double)((long)_epochs * Math.Max(1, stepsPerEpoch)));
            return minRate + (baseRate - minRate) * 0.5 * (1 + Math.Cos(Math.PI * progress));
        }
    }

    private sealed class WarmupSchedule(int steps, LearningRateSchedule? then) : LearningRateSchedule
    {
        private readonly int _steps = steps >= 1 ? steps : throw new ArgumentOutOfRangeException(nameof(steps), steps, "Warmup lasts at least one step.");

        public override double Rate(double baseRate, int epoch, long step, int stepsPerEpoch)
        {
            double after = then?.Rate(baseRate, epoch, step, stepsPerEpoch) ?? baseRate;
            return step < _steps ? after * (step + 1) / _steps : after;
        }
    }
}

/// <summary>Which metric early stopping and best-checkpoint selection watch.</summary>
public enum Monitor
{
    /// <summary>Validation loss (lower is better).</summary>
    ValidationLoss,

    /// <summary>Validation accuracy (higher is better).</summary>
    ValidationAccuracy,
}

/// <summary>Stops training when the monitored metric has not improved for <see cref="Patience"/> epochs.</summary>
/// <param name="Patience">Epochs without improvement before stopping.</param>
/// <param name="MinDelta">The smallest change that counts as an improvement.</param>
/// <param name="Monitor">The metric watched (it needs a validation set).</param>
/// <param name="RestoreBest">Whether to restore the best epoch's parameters when stopping or finishing.</param>
public sealed record EarlyStopping(int Patience = 3, double MinDelta = 0, Monitor Monitor = Monitor.ValidationLoss, bool RestoreBest = true);
