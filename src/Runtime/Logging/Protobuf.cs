using System;
using System.Buffers.Binary;
using System.IO;
using System.Text;

namespace NetDsl.Runtime.Logging;

/// <summary>The few protocol-buffer encodings TensorBoard's Event and ONNX's ModelProto need.</summary>
public sealed class ProtoWriter
{
    private readonly MemoryStream _buffer = new();

    /// <summary>The encoded bytes.</summary>
    public byte[] ToArray() => _buffer.ToArray();

    /// <summary>Bytes written so far.</summary>
    public long Length => _buffer.Length;

    /// <summary>A varint.</summary>
    public void Varint(ulong value)
    {
        while (value >= 0x80)
        {
            _buffer.WriteByte((byte)(value | 0x80));
            value >>= 7;
        }
        _buffer.WriteByte((byte)value);
    }

    private void Tag(int field, int wireType) => Varint((ulong)((field << 3) | wireType));

    /// <summary>An int64/int32/enum/bool field.</summary>
    public void Int(int field, long value)
    {
        Tag(field, 0);
        Varint((ulong)value);
    }

    /// <summary>A double field (fixed64).</summary>
    public void Double(int field, double value)
    {
        Tag(field, 1);
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteDoubleLittleEndian(b, value);
        _buffer.Write(b);
    }

    /// <summary>A float field (fixed32).</summary>
    public void Float(int field, float value)
    {
        Tag(field, 5);
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteSingleLittleEndian(b, value);
        _buffer.Write(b);
    }

    /// <summary>A string field.</summary>
    public void String(int field, string value) => Bytes(field, Encoding.UTF8.GetBytes(value));

    /// <summary>A bytes field.</summary>
    public void Bytes(int field, ReadOnlySpan<byte> value)
    {
        Tag(field, 2);
        Varint((ulong)value.Length);
        _buffer.Write(value);
    }

    /// <summary>An embedded message field.</summary>
    public void Message(int field, ProtoWriter message) => Bytes(field, message.ToArray());

    /// <summary>A packed repeated double field.</summary>
    public void PackedDoubles(int field, ReadOnlySpan<double> values)
    {
        var bytes = new byte[values.Length * 8];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteDoubleLittleEndian(bytes.AsSpan(i * 8), values[i]);
        Bytes(field, bytes);
    }

    /// <summary>A packed repeated int64 field.</summary>
    public void PackedInts(int field, ReadOnlySpan<long> values)
    {
        var inner = new ProtoWriter();
        foreach (long v in values) inner.Varint((ulong)v);
        Message(field, inner);
    }
}
