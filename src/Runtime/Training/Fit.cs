using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using NetDsl.Runtime.Checkpoints;
using NetDsl.Runtime.Data;
using NetDsl.Runtime.Logging;

namespace NetDsl.Runtime.Training;

/// <summary>One epoch's results.</summary>
/// <param name="Epoch">The epoch, counting from 1.</param>
/// <param name="Loss">Mean training loss over the epoch's samples.</param>
/// <param name="Accuracy">Training accuracy (classification), measured on the batches as they trained.</param>
/// <param name="ValidationLoss">Mean validation loss (inference mode), if there is a validation set.</param>
/// <param name="ValidationAccuracy">Validation accuracy (classification).</param>
/// <param name="LearningRate">The learning rate at the end of the epoch.</param>
/// <param name="Seconds">Wall time of the epoch's training (not validation).</param>
/// <param name="SamplesPerSecond">Training throughput.</param>
public sealed record EpochMetrics(int Epoch, double Loss, double? Accuracy, double? ValidationLoss, double? ValidationAccuracy, double LearningRate, double Seconds, double SamplesPerSecond);

/// <summary>How <see cref="Fitting.Fit"/> trains.</summary>
public sealed class FitOptions
{
    /// <summary>The epoch to train up to (epochs already done when resuming count).</summary>
    public int Epochs { get; init; } = 1;

    /// <summary>Epochs already completed (from a checkpoint when resuming); training continues with the next.</summary>
    public int StartEpoch { get; init; }

    /// <summary>Evaluated after every epoch, in inference mode.</summary>
    public DataLoader? Validation { get; init; }

    /// <summary>Sets the learning rate before every step, from the optimizer's rate at the start.</summary>
    public LearningRateSchedule? Schedule { get; init; }

    /// <summary>Clips the global gradient norm to this value before every update.</summary>
    public double? ClipGradientNorm { get; init; }

    /// <summary>Stops when the validation metric stops improving.</summary>
    public EarlyStopping? EarlyStopping { get; init; }

    /// <summary>
    /// Where progress goes: a live bar with rate and ETA on an interactive console, one line per epoch
    /// otherwise (CI logs); null for silence.
    /// </summary>
    public TextWriter? Output { get; init; } = Console.Out;

    /// <summary>TensorBoard, CSV and curve logging.</summary>
    public TrainingLog? Log { get; init; }

    /// <summary>Saves a checkpoint (parameters, optimizer state, epoch) here after every epoch.</summary>
    public string? CheckpointPath { get; init; }
}

/// <summary>The outcome of <see cref="Fitting.Fit"/>.</summary>
/// <param name="History">Every epoch trained in this call.</param>
/// <param name="StoppedEarly">Whether early stopping ended training.</param>
/// <param name="BestEpoch">The epoch with the best monitored metric (with early stopping), else the last.</param>
public sealed record FitResult(IReadOnlyList<EpochMetrics> History, bool StoppedEarly, int BestEpoch);

/// <summary>The Keras-style training loop on top of a trainer's Step.</summary>
public static class Fitting
{
    /// <summary>
    /// Trains for <see cref="FitOptions.Epochs"/> epochs over <paramref name="train"/>, with validation,
    /// metrics, learning-rate schedule, gradient clipping, early stopping, progress, logs and checkpoints as the
    /// options say. The low-level <see cref="Trainer{T}.Step(ReadOnlySpan{T}, ReadOnlySpan{int})"/> stays
    /// available for custom loops.
    /// </summary>
    public static FitResult Fit(this Trainer<float> trainer, DataLoader train, FitOptions options)
    {
        ArgumentNullException.ThrowIfNull(trainer);
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(options);
        Check(trainer, train, "training");
        if (options.Validation is { } v) Check(trainer, v, "validation");
        if (options.EarlyStopping is not null && options.Validation is null)
            throw new ArgumentException("Early stopping watches a validation metric; set FitOptions.Validation.", nameof(options));

        var network = trainer.Network;
        var d = network.Description;
        bool classify = trainer.Loss.TakesClassLabels;
        double baseRate = trainer.Optimizer.LearningRate;
        long step = trainer.StepCount;
        int stepsPerEpoch = train.BatchCount;
        var progress = new Progress(options.Output);
        var history = new List<EpochMetrics>();
        double best = double.NaN;
        int bestEpoch = options.StartEpoch, waited = 0;
        float[]? bestParameters = null;
        float[]? bestState = null;
        bool stopped = false;

        for (int epoch = options.StartEpoch; epoch < options.Epochs; epoch++)
        {
            progress.BeginEpoch(epoch + 1, options.Epochs, stepsPerEpoch);
            var clock = Stopwatch.StartNew();
            double lossSum = 0, lr = baseRate;
            long samples = 0, correct = 0;
            foreach (var batch in train.GetEpoch(epoch))
            {
                if (options.Schedule is { } schedule) trainer.Optimizer.LearningRate = lr = schedule.Rate(baseRate, epoch, step, stepsPerEpoch);
                float loss;
                if (options.ClipGradientNorm is { } maxNorm)
                {
                    loss = classify ? trainer.ComputeGradients(batch.Inputs, batch.Labels) : trainer.ComputeGradients(batch.Inputs, batch.Targets);
                    trainer.ClipGradientNorm(maxNorm);
                    trainer.ApplyUpdate();
                }
                else
                {
                    loss = classify ? trainer.Step(batch.Inputs, batch.Labels) : trainer.Step(batch.Inputs, batch.Targets);
                }
                step++;
                lossSum += (double)loss * batch.Count;
                samples += batch.Count;
                if (classify) correct += Correct(trainer.Outputs, batch.Labels, d.OutputSize);
                options.Log?.Step(step, loss, lr);
                progress.Update(batch.Index + 1, samples, lossSum / samples, classify ? (double)correct / samples : null, clock.Elapsed);
            }
            double seconds = clock.Elapsed.TotalSeconds;
            double? valLoss = null, valAccuracy = null;
            if (options.Validation is { } validation) (valLoss, valAccuracy) = trainer.Evaluate(validation);
            var metrics = new EpochMetrics(epoch + 1, lossSum / Math.Max(1, samples), classify ? (double)correct / Math.Max(1, samples) : null,
                valLoss, valAccuracy, lr, seconds, samples / Math.Max(seconds, 1e-9));
            history.Add(metrics);
            progress.EndEpoch(metrics, options.Epochs);
            options.Log?.Epoch(metrics, network);
            if (options.CheckpointPath is { } path) Checkpoint.Save(path, network, trainer, epoch + 1);

            if (options.EarlyStopping is { } es)
            {
                double value = es.Monitor == Monitor.ValidationLoss ? valLoss!.Value : -(valAccuracy ?? double.NaN);
                if (double.IsNaN(best) || value < best - es.MinDelta)
                {
                    best = value;
                    bestEpoch = epoch + 1;
                    waited = 0;
                    if (es.RestoreBest)
                    {
                        trainer.CopyParametersToNetwork();
                        bestParameters = network.ParameterData.ToArray();
                        bestState = network.StateData.ToArray();
                    }
                }
                else if (++waited >= es.Patience)
                {
                    stopped = true;
                    options.Output?.WriteLine($"early stopping: no improvement of {(es.Monitor == Monitor.ValidationLoss ? "validation loss" : "validation accuracy")} for {es.Patience} epochs; best was epoch {bestEpoch}");
                    break;
                }
            }
            else bestEpoch = epoch + 1;
        }
        if (bestParameters is not null)
        {
            bestParameters.CopyTo(network.ParameterData);
            bestState?.CopyTo(network.StateData);
            trainer.CopyParametersFromNetwork();
        }
        trainer.Optimizer.LearningRate = options.Schedule is null ? trainer.Optimizer.LearningRate : baseRate;
        options.Log?.WriteCurves();
        return new FitResult(history, stopped, bestEpoch);
    }

    /// <summary>Mean loss and (for classification) accuracy over a dataset, in inference mode.</summary>
    public static (double Loss, double? Accuracy) Evaluate(this Trainer<float> trainer, DataLoader data)
    {
        Check(trainer, data, "evaluation");
        var d = trainer.Network.Description;
        bool classify = trainer.Loss.TakesClassLabels;
        var output = new float[data.BatchSize * d.OutputSize];
        var gradient = new float[output.Length];
        double lossSum = 0;
        long samples = 0, correct = 0;
        foreach (var batch in data.GetEpoch(0))
        {
            var o = output.AsSpan(0, batch.Count * d.OutputSize);
            // Batches larger than the trainer's capacity run in capacity-sized pieces.
            for (int at = 0; at < batch.Count; at += trainer.BatchCapacity)
            {
                int n = Math.Min(trainer.BatchCapacity, batch.Count - at);
                trainer.Predict(batch.Inputs.Slice(at * d.InputSize, n * d.InputSize), o.Slice(at * d.OutputSize, n * d.OutputSize));
            }
            float loss = classify
                ? trainer.Loss.Evaluate<float>(o, batch.Labels, gradient.AsSpan(0, o.Length), batch.Count, d.OutputSize)
                : trainer.Loss.Evaluate<float>(o, batch.Targets, gradient.AsSpan(0, o.Length), batch.Count, d.OutputSize);
            lossSum += (double)loss * batch.Count;
            samples += batch.Count;
            if (classify) correct += Correct(o, batch.Labels, d.OutputSize);
        }
        return (lossSum / Math.Max(1, samples), classify ? (double)correct / Math.Max(1, samples) : null);
    }

    /// <summary>How many rows' largest output is the label.</summary>
    public static int Correct(ReadOnlySpan<float> outputs, ReadOnlySpan<int> labels, int classes)
    {
        int correct = 0;
        for (int b = 0; b < labels.Length; b++)
        {
            var row = outputs.Slice(b * classes, classes);
            int best = 0;
            for (int c = 1; c < classes; c++) if (row[c] > row[best]) best = c;
            if (best == labels[b]) correct++;
        }
        return correct;
    }

    private static void Check(Trainer<float> trainer, DataLoader data, string what)
    {
        var d = trainer.Network.Description;
        if (data.Data.SampleSize != d.InputSize)
            throw new ArgumentException($"The {what} samples have {data.Data.SampleSize} values ([{string.Join(", ", data.Data.SampleShape)}]); {d.Name} takes {d.InputSize} ([{string.Join(", ", d.InputShape)}]).");
        if (trainer.Loss.TakesClassLabels && data.Data.Labels is null)
            throw new ArgumentException($"{trainer.Loss.Name} needs class labels, but the {what} data has float targets.");
        if (!trainer.Loss.TakesClassLabels && data.Data.Targets is null)
            throw new ArgumentException($"{trainer.Loss.Name} needs float targets, but the {what} data has class labels.");
        if (!trainer.Loss.TakesClassLabels && data.Data.TargetSize != d.OutputSize)
            throw new ArgumentException($"The {what} targets have {data.Data.TargetSize} values per sample; {d.Name} outputs {d.OutputSize}.");
        if (what == "training" && data.BatchSize > trainer.BatchCapacity)
            throw new ArgumentException($"The {what} loader's batches of {data.BatchSize} exceed the trainer's capacity of {trainer.BatchCapacity}; create the trainer with batchSize: {data.BatchSize} or more.");
    }

    /// <summary>Console progress: a live bar where a person watches, a line per epoch where a log file does.</summary>
    private sealed class Progress(TextWriter? output)
    {
        private readonly bool _interactive = output is not null && ReferenceEquals(output, Console.Out) && !Console.IsOutputRedirected;
        private int _epoch, _epochs, _batches;
        private long _lastDraw;

        public void BeginEpoch(int epoch, int epochs, int batches)
        {
            _epoch = epoch;
            _epochs = epochs;
            _batches = batches;
            _lastDraw = 0;
        }

        public void Update(int done, long samples, double loss, double? accuracy, TimeSpan elapsed)
        {
            if (!_interactive) return;
            long now = Stopwatch.GetTimestamp();
            if (done < _batches && now - _lastDraw < Stopwatch.Frequency / 10) return;
            _lastDraw = now;
            const int width = 28;
            int filled = (int)((long)width * done / Math.Max(1, _batches));
            string bar = new string('=', Math.Max(0, filled - 1)) + (filled > 0 ? ">" : "") + new string(' ', width - filled);
            double rate = samples / Math.Max(elapsed.TotalSeconds, 1e-9);
            double eta = elapsed.TotalSeconds / Math.Max(1, done) * (_batches - done);
            string acc = accuracy is { } a ? $"  acc {100 * a:F1}%" : "";
            output!.Write(string.Create(CultureInfo.InvariantCulture,
                $"\repoch {_epoch}/{_epochs} [{bar}] {done}/{_batches}  loss {loss:F4}{acc}  {rate:F0} samples/s  ETA {TimeSpan.FromSeconds(Math.Round(eta)):m\\:ss}   "));
        }

        public void EndEpoch(EpochMetrics m, int epochs)
        {
            if (output is null) return;
            if (_interactive) output.Write("\r" + new string(' ', 110) + "\r");
            string acc = m.Accuracy is { } a ? $", accuracy {100 * a:F2}%" : "";
            string val = m.ValidationLoss is { } vl ? $" | validation loss {vl:F4}" + (m.ValidationAccuracy is { } va ? $", accuracy {100 * va:F2}%" : "") : "";
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"epoch {m.Epoch}/{epochs}: loss {m.Loss:F4}{acc}{val} | {m.Seconds:F1} s, {m.SamplesPerSecond:F0} samples/s, lr {m.LearningRate:G3}"));
        }
    }
}
