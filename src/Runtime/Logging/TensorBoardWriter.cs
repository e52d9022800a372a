using System;
using System.Buffers.Binary;
using System.Globalization;
using System.IO;

namespace NetDsl.Runtime.Logging;

/// <summary>
/// Writes TensorBoard event files: TFRecord framing (length, masked CRC-32C of the length, the serialized
/// <c>Event</c> protobuf, masked CRC-32C of the data), starting with the <c>brain.Event:2</c> version record,
/// then scalar and histogram summaries. Every record is flushed as it is written, so a crash leaves a file
/// that TensorBoard reads up to the last complete record.
/// </summary>
public sealed class TensorBoardWriter : IDisposable
{
    private readonly FileStream _file;

    /// <summary>Creates <c>events.out.tfevents.&lt;time&gt;.&lt;host&gt;</c> in <paramref name="directory"/>.</summary>
    public TensorBoardWriter(string directory)
    {
        Directory.CreateDirectory(directory);
        long now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        // A new file per writer, never an earlier run's (two writers may start within the same second).
        for (int n = 0; ; n++)
        {
            Path = System.IO.Path.Combine(directory, $"events.out.tfevents.{now.ToString(CultureInfo.InvariantCulture)}.{Environment.MachineName}.netdsl{(n == 0 ? "" : "." + n.ToString(CultureInfo.InvariantCulture))}");
            try
            {
                _file = new FileStream(Path, FileMode.CreateNew, FileAccess.Write, FileShare.Read);
                break;
            }
            catch (IOException) when (File.Exists(Path) && n < 1000)
            {
            }
        }
        var e = new ProtoWriter();
        e.Double(1, WallTime());
        e.String(3, "brain.Event:2");
        WriteRecord(e.ToArray());
    }

    /// <summary>The event file.</summary>
    public string Path { get; }

    /// <summary>Logs a scalar (TensorBoard's Scalars tab).</summary>
    public void Scalar(string tag, double value, long step)
    {
        var v = new ProtoWriter();
        v.String(1, tag);
        v.Float(2, (float)value);
        WriteSummary(v, step);
    }

    /// <summary>Logs a histogram of <paramref name="values"/> (TensorBoard's Histograms and Distributions tabs).</summary>
    public void Histogram(string tag, ReadOnlySpan<float> values, long step, int buckets = 30)
    {
        double min = double.PositiveInfinity, max = double.NegativeInfinity, sum = 0, squares = 0;
        foreach (float f in values)
        {
            min = Math.Min(min, f);
            max = Math.Max(max, f);
            sum += f;
            squares += (double)f * f;
        }
        if (values.Length == 0) min = max = 0;
        var limits = new double[buckets];
        var counts = new double[buckets];
        double width = (max - min) / buckets;
        for (int i = 0; i < buckets; i++) limits[i] = i == buckets - 1 || width == 0 ? max : min + width * (i + 1);
        foreach (float f in values)
        {
            int i = width == 0 ? buckets - 1 : Math.Min(buckets - 1, (int)((f - min) / width));
            counts[i]++;
        }
        var h = new ProtoWriter();
        h.Double(1, min);
        h.Double(2, max);
        h.Double(3, values.Length);
        h.Double(4, sum);
        h.Double(5, squares);
        h.PackedDoubles(6, limits);
        h.PackedDoubles(7, counts);
        var v = new ProtoWriter();
        v.String(1, tag);
        v.Message(5, h);
        WriteSummary(v, step);
    }

    private void WriteSummary(ProtoWriter value, long step)
    {
        var summary = new ProtoWriter();
        summary.Message(1, value);
        var e = new ProtoWriter();
        e.Double(1, WallTime());
        e.Int(2, step);
        e.Message(5, summary);
        WriteRecord(e.ToArray());
    }

    /// <summary>The TFRecord framing of one record.</summary>
    public static byte[] Frame(ReadOnlySpan<byte> data)
    {
        var record = new byte[8 + 4 + data.Length + 4];
        BinaryPrimitives.WriteUInt64LittleEndian(record, (ulong)data.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(record.AsSpan(8), Crc32C.Mask(Crc32C.Compute(record.AsSpan(0, 8))));
        data.CopyTo(record.AsSpan(12));
        BinaryPrimitives.WriteUInt32LittleEndian(record.AsSpan(12 + data.Length), Crc32C.Mask(Crc32C.Compute(data)));
        return record;
    }

    private void WriteRecord(ReadOnlySpan<byte> data)
    {
        _file.Write(Frame(data));
        _file.Flush(flushToDisk: false);
    }

    private static double WallTime() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;

    /// <summary>Closes the file.</summary>
    public void Dispose() => _file.Dispose();
}
