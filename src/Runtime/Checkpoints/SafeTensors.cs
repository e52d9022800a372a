using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Text;
using System.Text.Json;

namespace NetDsl.Runtime.Checkpoints;

/// <summary>One tensor of a safetensors file: name, dtype, shape and raw little-endian bytes.</summary>
/// <param name="Name">The tensor's name (PyTorch state_dict names for network parameters).</param>
/// <param name="DType">"F32", "F64" or "I64".</param>
/// <param name="Shape">The dimensions.</param>
/// <param name="Data">The raw bytes, little-endian, row-major.</param>
public sealed record SafeTensor(string Name, string DType, long[] Shape, byte[] Data)
{
    /// <summary>Bytes per element of a dtype, or 0 when NetDsl does not know it.</summary>
    public static int ElementSize(string dtype) => dtype switch
    {
        "F64" or "I64" or "U64" => 8,
        "F32" or "I32" or "U32" => 4,
        "F16" or "BF16" or "I16" or "U16" => 2,
        "I8" or "U8" or "BOOL" or "F8_E4M3" or "F8_E5M2" => 1,
        _ => 0,
    };

    /// <summary>The element count the shape implies.</summary>
    public long Elements
    {
        get
        {
            long n = 1;
            foreach (long d in Shape) n *= d;
            return n;
        }
    }

    /// <summary>The shape as PyTorch prints it.</summary>
    public string ShapeText => TensorShape.Text(Shape);
}

/// <summary>
/// The safetensors format (Hugging Face): an 8-byte little-endian header length, a JSON header mapping each
/// tensor name to its dtype, shape and byte range, optional <c>__metadata__</c> strings, then the data. Files
/// are written to a temporary name and renamed, so a crash never leaves a half-written file under the real
/// name; reading validates every field and names the tensor and offset of the first problem.
/// </summary>
public static class SafeTensors
{
    private const long MaxHeader = 100L * 1024 * 1024;

    /// <summary>Writes tensors and metadata to <paramref name="path"/> atomically.</summary>
    public static void Write(string path, IReadOnlyList<SafeTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
        => AtomicFile.Write(path, stream => Write(stream, tensors, metadata));

    /// <summary>Writes tensors and metadata to a stream.</summary>
    public static void Write(Stream stream, IReadOnlyList<SafeTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        using var json = new MemoryStream();
        using (var w = new Utf8JsonWriter(json))
        {
            w.WriteStartObject();
            if (metadata is not null && metadata.Count > 0)
            {
                w.WriteStartObject("__metadata__");
                foreach (var (k, v) in metadata) w.WriteString(k, v);
                w.WriteEndObject();
            }
            long offset = 0;
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var t in tensors)
            {
                if (!seen.Add(t.Name)) throw new ArgumentException($"Tensor '{t.Name}' appears twice; names in a safetensors file are unique.", nameof(tensors));
                int size = SafeTensor.ElementSize(t.DType);
                if (size == 0) throw new ArgumentException($"Tensor '{t.Name}' has the unknown dtype '{t.DType}'.", nameof(tensors));
                if (t.Elements * size != t.Data.Length)
                    throw new ArgumentException($"Tensor '{t.Name}' {t.ShapeText} of {t.DType} needs {t.Elements * size} bytes but has {t.Data.Length}.", nameof(tensors));
                w.WriteStartObject(t.Name);
                w.WriteString("dtype", t.DType);
                w.WriteStartArray("shape");
                foreach (long d in t.Shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + t.Data.Length);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += t.Data.Length;
            }
            w.WriteEndObject();
        }
        // The header is padded with spaces to a multiple of 8 bytes, as the reference writer does.
        long headerLength = (json.Length + 7) / 8 * 8;
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)headerLength);
        stream.Write(length);
        json.Position = 0;
        json.CopyTo(stream);
        for (long i = json.Length; i < headerLength; i++) stream.WriteByte((byte)' ');
        foreach (var t in tensors) stream.Write(t.Data);
    }

    /// <summary>Reads and validates a safetensors file.</summary>
    public static (List<SafeTensor> Tensors, Dictionary<string, string> Metadata) Read(string path)
    {
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (FileNotFoundException) { throw new FileNotFoundException($"The checkpoint '{path}' does not exist.", path); }
        return Read(bytes, path);
    }

    /// <summary>Parses and validates safetensors bytes; <paramref name="source"/> names them in errors.</summary>
    public static (List<SafeTensor> Tensors, Dictionary<string, string> Metadata) Read(ReadOnlySpan<byte> bytes, string source)
    {
        if (bytes.Length < 8)
            throw new InvalidDataException($"{source}: the file has {bytes.Length} bytes, fewer than the 8-byte header length at offset 0; it is truncated or not a safetensors file.");
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        if (headerLength > MaxHeader || (long)headerLength > bytes.Length - 8)
            throw new InvalidDataException($"{source}: the header length at offset 0 says {headerLength} bytes, but the file has {bytes.Length - 8} after it; the file is truncated or corrupt.");
        int dataStart = 8 + (int)headerLength;
        var data = bytes.Slice(dataStart);
        JsonDocument doc;
        try { doc = JsonDocument.Parse(bytes.Slice(8, (int)headerLength).ToArray()); }
        catch (JsonException ex) { throw new InvalidDataException($"{source}: the JSON header (offset 8, {headerLength} bytes) is corrupt: {ex.Message}", ex); }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"{source}: the header at offset 8 is not a JSON object.");
            var tensors = new List<SafeTensor>();
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var ranges = new List<(long Begin, long End, string Name)>();
            foreach (var entry in doc.RootElement.EnumerateObject())
            {
                if (entry.Name == "__metadata__")
                {
                    if (entry.Value.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{source}: __metadata__ is not an object of strings.");
                    foreach (var m in entry.Value.EnumerateObject())
                        metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()! : m.Value.GetRawText();
                    continue;
                }
                var e = entry.Value;
                if (e.ValueKind != JsonValueKind.Object
                    || !e.TryGetProperty("dtype", out var dtypeEl) || dtypeEl.ValueKind != JsonValueKind.String
                    || !e.TryGetProperty("shape", out var shapeEl) || shapeEl.ValueKind != JsonValueKind.Array
                    || !e.TryGetProperty("data_offsets", out var offEl) || offEl.ValueKind != JsonValueKind.Array || offEl.GetArrayLength() != 2)
                    throw new InvalidDataException($"{source}: the header entry of tensor '{entry.Name}' lacks a string dtype, a shape array or two data_offsets.");
                string dtype = dtypeEl.GetString()!;
                int size = SafeTensor.ElementSize(dtype);
                if (size == 0) throw new InvalidDataException($"{source}: tensor '{entry.Name}' has the unknown dtype '{dtype}'.");
                var shape = new List<long>();
                foreach (var d in shapeEl.EnumerateArray())
                {
                    if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long dim) || dim < 0)
                        throw new InvalidDataException($"{source}: tensor '{entry.Name}' has an invalid dimension '{d.GetRawText()}' in its shape.");
                    shape.Add(dim);
                }
                if (!offEl[0].TryGetInt64(out long begin) || !offEl[1].TryGetInt64(out long end) || begin < 0 || end < begin || end > data.Length)
                    throw new InvalidDataException($"{source}: tensor '{entry.Name}' claims bytes [{offEl[0].GetRawText()}, {offEl[1].GetRawText()}) of the data, which has {data.Length} bytes (starting at file offset {dataStart}); the file is truncated or corrupt.");
                var t = new SafeTensor(entry.Name, dtype, shape.ToArray(), Array.Empty<byte>());
                if (t.Elements * size != end - begin)
                    throw new InvalidDataException($"{source}: tensor '{entry.Name}' {t.ShapeText} of {dtype} needs {t.Elements * size} bytes but its data_offsets span {end - begin}.");
                ranges.Add((begin, end, entry.Name));
                tensors.Add(t with { Data = data.Slice((int)begin, (int)(end - begin)).ToArray() });
            }
            ranges.Sort((a, b) => a.Begin.CompareTo(b.Begin));
            for (int i = 1; i < ranges.Count; i++)
                if (ranges[i].Begin < ranges[i - 1].End)
                    throw new InvalidDataException($"{source}: the data of tensors '{ranges[i - 1].Name}' and '{ranges[i].Name}' overlap.");
            return (tensors, metadata);
        }
    }

    /// <summary>Float32 values as a tensor.</summary>
    public static SafeTensor FromFloats(string name, long[] shape, ReadOnlySpan<float> values)
    {
        var data = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(i * 4), values[i]);
        return new SafeTensor(name, "F32", shape, data);
    }

    /// <summary>Float64 values as a tensor.</summary>
    public static SafeTensor FromDoubles(string name, long[] shape, ReadOnlySpan<double> values)
    {
        var data = new byte[values.Length * 8];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteDoubleLittleEndian(data.AsSpan(i * 8), values[i]);
        return new SafeTensor(name, "F64", shape, data);
    }

    /// <summary>Int64 values as a tensor (PyTorch's counters, such as <c>num_batches_tracked</c>).</summary>
    public static SafeTensor FromInt64(string name, long[] shape, ReadOnlySpan<long> values)
    {
        var data = new byte[values.Length * 8];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteInt64LittleEndian(data.AsSpan(i * 8), values[i]);
        return new SafeTensor(name, "I64", shape, data);
    }

    /// <summary>An I64 tensor's values.</summary>
    public static void ToInt64(SafeTensor t, Span<long> into)
    {
        for (int i = 0; i < into.Length; i++) into[i] = BinaryPrimitives.ReadInt64LittleEndian(t.Data.AsSpan(i * 8));
    }

    /// <summary>A tensor's values as floats (F32 or F64 data).</summary>
    public static void ToFloats(SafeTensor t, Span<float> into)
    {
        if (t.DType == "F32") for (int i = 0; i < into.Length; i++) into[i] = BinaryPrimitives.ReadSingleLittleEndian(t.Data.AsSpan(i * 4));
        else for (int i = 0; i < into.Length; i++) into[i] = (float)BinaryPrimitives.ReadDoubleLittleEndian(t.Data.AsSpan(i * 8));
    }

    /// <summary>A tensor's values as doubles (F32 or F64 data).</summary>
    public static void ToDoubles(SafeTensor t, Span<double> into)
    {
        if (t.DType == "F64") for (int i = 0; i < into.Length; i++) into[i] = BinaryPrimitives.ReadDoubleLittleEndian(t.Data.AsSpan(i * 8));
        else for (int i = 0; i < into.Length; i++) into[i] = BinaryPrimitives.ReadSingleLittleEndian(t.Data.AsSpan(i * 4));
    }

    internal static string Format(long value) => value.ToString(CultureInfo.InvariantCulture);

    internal static Encoding Utf8 => Encoding.UTF8;
}
