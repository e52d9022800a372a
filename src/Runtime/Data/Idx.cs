using System;
using System.Buffers.Binary;
using System.IO;
using System.IO.Compression;

namespace NetDsl.Runtime.Data;

/// <summary>
/// Reads IDX files (the MNIST / Fashion-MNIST format), plain or gzip-compressed: a big-endian header
/// (magic <c>00 00 08 nd</c> for unsigned bytes, then <c>nd</c> 32-bit dimensions) followed by the data.
/// Malformed files are rejected with the offending offset.
/// </summary>
public static class Idx
{
    /// <summary>Reads images as floats scaled to [0, 1], one row of <c>rows·cols</c> per image.</summary>
    public static float[] ReadImages(string path, out int count, out int rows, out int cols)
    {
        var (dims, data) = Read(path, expectedRank: 3);
        count = dims[0];
        rows = dims[1];
        cols = dims[2];
        var images = new float[data.Length];
        for (int i = 0; i < data.Length; i++) images[i] = data[i] / 255f;
        return images;
    }

    /// <summary>Reads labels as ints.</summary>
    public static int[] ReadLabels(string path)
    {
        var (_, data) = Read(path, expectedRank: 1);
        var labels = new int[data.Length];
        for (int i = 0; i < data.Length; i++) labels[i] = data[i];
        return labels;
    }

    /// <summary>Reads an unsigned-byte IDX file of the given rank.</summary>
    public static (int[] Dimensions, byte[] Data) Read(string path, int expectedRank)
    {
        byte[] raw = File.ReadAllBytes(path);
        string source = path;
        if (raw.Length >= 2 && raw[0] == 0x1F && raw[1] == 0x8B)
        {
            source = path + " (gzip, offsets after decompression)";
            using var gz = new GZipStream(new MemoryStream(raw), CompressionMode.Decompress);
            using var plain = new MemoryStream();
            try { gz.CopyTo(plain); }
            catch (InvalidDataException ex) { throw new InvalidDataException($"{path}: the gzip stream is corrupt ({ex.Message}).", ex); }
            raw = plain.ToArray();
        }
        return Parse(raw, expectedRank, source);
    }

    /// <summary>Parses IDX bytes; <paramref name="source"/> names the data in errors.</summary>
    public static (int[] Dimensions, byte[] Data) Parse(ReadOnlySpan<byte> raw, int expectedRank, string source)
    {
        if (raw.Length < 4)
            throw new InvalidDataException($"{source}: the file has {raw.Length} bytes, fewer than the 4-byte IDX magic number at offset 0.");
        if (raw[0] != 0 || raw[1] != 0 || raw[2] != 0x08)
            throw new InvalidDataException($"{source}: bad IDX magic number at offset 0: {raw[0]:X2} {raw[1]:X2} {raw[2]:X2} {raw[3]:X2}; expected 00 00 08 0{expectedRank} (unsigned bytes, {expectedRank} dimensions).");
        int rank = raw[3];
        if (rank != expectedRank)
            throw new InvalidDataException($"{source}: the IDX header at offset 3 declares {rank} dimensions; expected {expectedRank}.");
        int header = 4 + 4 * rank;
        if (raw.Length < header)
            throw new InvalidDataException($"{source}: the file ends at offset {raw.Length}, inside the IDX header, which needs {header} bytes.");
        var dims = new int[rank];
        long total = 1;
        for (int i = 0; i < rank; i++)
        {
            int d = BinaryPrimitives.ReadInt32BigEndian(raw.Slice(4 + 4 * i));
            if (d < 0)
                throw new InvalidDataException($"{source}: dimension {i} at offset {4 + 4 * i} is {d}; expected a size of zero or more.");
            dims[i] = d;
            total *= d;
        }
        if (raw.Length - header != total)
            throw new InvalidDataException($"{source}: the header declares {total} data bytes ({string.Join("x", dims)}) but {raw.Length - header} follow it at offset {header}; the file is {(raw.Length - header < total ? "truncated" : "longer than declared")}.");
        return (dims, raw.Slice(header).ToArray());
    }
}
