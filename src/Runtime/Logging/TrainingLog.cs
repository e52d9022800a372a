using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Numerics;
using NetDsl.Runtime.Training;

namespace NetDsl.Runtime.Logging;

/// <summary>
/// Everything a training run leaves behind, in <c>runs/&lt;name&gt;</c>: TensorBoard event files (scalars per
/// epoch and per step, weight histograms per epoch), <c>metrics.csv</c> with the same scalars (a row per epoch,
/// flushed as written) and, when the run completes, <c>curves.png</c> with the loss and accuracy curves.
/// </summary>
public sealed class TrainingLog : IDisposable
{
    private readonly TensorBoardWriter _tensorBoard;
    private readonly StreamWriter _csv;
    private readonly List<EpochMetrics> _history = new();

    /// <summary>
    /// Creates <paramref name="root"/>/<paramref name="name"/> and opens its files. A new run (the default)
    /// replaces an earlier run's logs there; with <paramref name="resume"/> the run continues them: the CSV
    /// and the curves keep the earlier epochs, and TensorBoard reads the old and new event files together.
    /// </summary>
    public TrainingLog(string name, string root = "runs", bool resume = false)
    {
        Directory = Path.Combine(root, name);
        System.IO.Directory.CreateDirectory(Directory);
        string csv = Path.Combine(Directory, "metrics.csv");
        if (!resume)
        {
            foreach (var old in System.IO.Directory.GetFiles(Directory, "events.out.tfevents.*")) File.Delete(old);
            File.Delete(csv);
            File.Delete(Path.Combine(Directory, "curves.png"));
        }
        else if (File.Exists(csv)) _history.AddRange(ReadCsv(csv));
        _tensorBoard = new TensorBoardWriter(Directory);
        bool exists = File.Exists(csv) && new FileInfo(csv).Length > 0;
        _csv = new StreamWriter(new FileStream(csv, FileMode.Append, FileAccess.Write, FileShare.Read));
        if (!exists) WriteCsv("epoch,loss,accuracy,val_loss,val_accuracy,learning_rate,seconds,samples_per_second");
    }

    /// <summary>The run's directory.</summary>
    public string Directory { get; }

    /// <summary>The TensorBoard event file.</summary>
    public string EventFile => _tensorBoard.Path;

    /// <summary>Logs the loss of one step (TensorBoard only).</summary>
    public void Step(long step, double loss, double learningRate)
    {
        _tensorBoard.Scalar("step/loss", loss, step);
        _tensorBoard.Scalar("step/learning_rate", learningRate, step);
    }

    /// <summary>Logs an epoch's metrics and a histogram of every parameter tensor.</summary>
    public void Epoch<T>(EpochMetrics m, CompiledNetwork<T> network) where T : unmanaged, IFloatingPointIeee754<T>
    {
        _history.Add(m);
        _tensorBoard.Scalar("epoch/loss", m.Loss, m.Epoch);
        if (m.Accuracy is { } a) _tensorBoard.Scalar("epoch/accuracy", a, m.Epoch);
        if (m.ValidationLoss is { } vl) _tensorBoard.Scalar("epoch/val_loss", vl, m.Epoch);
        if (m.ValidationAccuracy is { } va) _tensorBoard.Scalar("epoch/val_accuracy", va, m.Epoch);
        _tensorBoard.Scalar("epoch/learning_rate", m.LearningRate, m.Epoch);
        foreach (var p in network.Description.Parameters)
        {
            var values = network.Parameter(p.Name);
            var floats = new float[values.Length];
            for (int i = 0; i < floats.Length; i++) floats[i] = float.CreateTruncating(values[i]);
            _tensorBoard.Histogram(p.Name, floats, m.Epoch);
        }
        string F(double? v) => v is { } x ? x.ToString("R", CultureInfo.InvariantCulture) : "";
        WriteCsv(string.Join(",", m.Epoch.ToString(CultureInfo.InvariantCulture), F(m.Loss), F(m.Accuracy), F(m.ValidationLoss), F(m.ValidationAccuracy),
            F(m.LearningRate), F(m.Seconds), F(m.SamplesPerSecond)));
    }

    /// <summary>Draws <c>curves.png</c> from the epochs logged so far.</summary>
    public string WriteCurves()
    {
        var panels = new List<(string, IReadOnlyList<Charts.Series>)>
        {
            ("loss", Series(m => m.Loss, "train").Concat(Series(m => m.ValidationLoss, "validation")).ToList()),
        };
        if (_history.Any(m => m.Accuracy is not null || m.ValidationAccuracy is not null))
            panels.Add(("accuracy", Series(m => m.Accuracy, "train").Concat(Series(m => m.ValidationAccuracy, "validation")).ToList()));
        string path = Path.Combine(Directory, "curves.png");
        Charts.Render(panels).Save(path);
        return path;
    }

    private IEnumerable<Charts.Series> Series(Func<EpochMetrics, double?> pick, string name)
    {
        var points = _history.Where(m => pick(m) is not null).Select(m => ((double)m.Epoch, pick(m)!.Value)).ToList();
        if (points.Count > 0) yield return new Charts.Series(name, points);
    }

    /// <summary>The epochs a metrics.csv holds (rows that do not parse are skipped).</summary>
    private static IEnumerable<EpochMetrics> ReadCsv(string path)
    {
        foreach (var line in File.ReadLines(path).Skip(1))
        {
            var f = line.Split(',');
            if (f.Length < 8 || !int.TryParse(f[0], NumberStyles.Integer, CultureInfo.InvariantCulture, out int epoch)) continue;
            double? D(string v) => double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out double x) ? x : null;
            yield return new EpochMetrics(epoch, D(f[1]) ?? double.NaN, D(f[2]), D(f[3]), D(f[4]), D(f[5]) ?? 0, D(f[6]) ?? 0, D(f[7]) ?? 0);
        }
    }

    private void WriteCsv(string line)
    {
        _csv.WriteLine(line);
        _csv.Flush();
    }

    /// <summary>Closes the files.</summary>
    public void Dispose()
    {
        _tensorBoard.Dispose();
        _csv.Dispose();
    }
}
