using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.IO.Compression;

namespace NetDsl.Runtime.Logging;

/// <summary>
/// A small RGB raster with lines, rectangles and a 5×7 pixel font, saved as PNG (zlib-compressed scanlines,
/// CRC-32 chunks). Enough for training curves and image grids without a native graphics library.
/// </summary>
public sealed class RgbImage
{
    private readonly byte[] _pixels;

    /// <summary>Creates a white image.</summary>
    public RgbImage(int width, int height)
    {
        if (width < 1 || height < 1) throw new ArgumentOutOfRangeException(nameof(width), "An image has at least one pixel.");
        Width = width;
        Height = height;
        _pixels = new byte[width * height * 3];
        Array.Fill(_pixels, (byte)255);
    }

    /// <summary>Width in pixels.</summary>
    public int Width { get; }

    /// <summary>Height in pixels.</summary>
    public int Height { get; }

    /// <summary>Sets a pixel (ignored outside the image).</summary>
    public void Set(int x, int y, (byte R, byte G, byte B) color)
    {
        if ((uint)x >= (uint)Width || (uint)y >= (uint)Height) return;
        int i = (y * Width + x) * 3;
        _pixels[i] = color.R;
        _pixels[i + 1] = color.G;
        _pixels[i + 2] = color.B;
    }

    /// <summary>Reads a pixel.</summary>
    public (byte R, byte G, byte B) Get(int x, int y)
    {
        int i = (y * Width + x) * 3;
        return (_pixels[i], _pixels[i + 1], _pixels[i + 2]);
    }

    /// <summary>A straight line (Bresenham), <paramref name="thickness"/> pixels wide.</summary>
    public void Line(int x0, int y0, int x1, int y1, (byte, byte, byte) color, int thickness = 1)
    {
        int dx = Math.Abs(x1 - x0), dy = -Math.Abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, err = dx + dy;
        while (true)
        {
            for (int t = 0; t < thickness; t++)
                for (int u = 0; u < thickness; u++) Set(x0 + t - thickness / 2, y0 + u - thickness / 2, color);
            if (x0 == x1 && y0 == y1) break;
            int e2 = 2 * err;
            if (e2 >= dy) { err += dy; x0 += sx; }
            if (e2 <= dx) { err += dx; y0 += sy; }
        }
    }

    /// <summary>A filled rectangle.</summary>
    public void Fill(int x, int y, int w, int h, (byte, byte, byte) color)
    {
        for (int j = y; j < y + h; j++)
            for (int i = x; i < x + w; i++) Set(i, j, color);
    }

    /// <summary>Text in a 5×7 font scaled by <paramref name="scale"/>; unknown characters draw as blanks.</summary>
    public void Text(int x, int y, string text, (byte, byte, byte) color, int scale = 1)
    {
        foreach (char ch in text.ToUpperInvariant())
        {
            if (Font.TryGetValue(ch, out var rows))
                for (int r = 0; r < 7; r++)
                    for (int c = 0; c < 5; c++)
                        if ((rows[r] >> (4 - c) & 1) != 0) Fill(x + c * scale, y + r * scale, scale, scale, color);
            x += 6 * scale;
        }
    }

    /// <summary>The width of <paramref name="text"/> in pixels.</summary>
    public static int TextWidth(string text, int scale = 1) => text.Length * 6 * scale;

    /// <summary>Encodes the image as PNG.</summary>
    public byte[] ToPng()
    {
        using var png = new MemoryStream();
        png.Write([137, 80, 78, 71, 13, 10, 26, 10]);
        var header = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(header, Width);
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4), Height);
        header[8] = 8;  // bit depth
        header[9] = 2;  // RGB
        Chunk(png, "IHDR", header);
        using var raw = new MemoryStream();
        using (var z = new ZLibStream(raw, CompressionLevel.Optimal, leaveOpen: true))
        {
            for (int y = 0; y < Height; y++)
            {
                z.WriteByte(0); // filter: none
                z.Write(_pixels, y * Width * 3, Width * 3);
            }
        }
        Chunk(png, "IDAT", raw.ToArray());
        Chunk(png, "IEND", []);
        return png.ToArray();
    }

    /// <summary>Saves the image as PNG, atomically.</summary>
    public void Save(string path) => AtomicFile.Write(path, s => s.Write(ToPng()));

    private static void Chunk(Stream s, string type, byte[] data)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(b, data.Length);
        s.Write(b);
        var typeBytes = System.Text.Encoding.ASCII.GetBytes(type);
        s.Write(typeBytes);
        s.Write(data);
        uint crc = Crc32Ieee(typeBytes, data);
        BinaryPrimitives.WriteUInt32BigEndian(b, crc);
        s.Write(b);
    }

    private static readonly uint[] CrcTable = BuildCrcTable();

    private static uint[] BuildCrcTable()
    {
        var t = new uint[256];
        for (uint n = 0; n < 256; n++)
        {
            uint c = n;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            t[n] = c;
        }
        return t;
    }

    private static uint Crc32Ieee(byte[] a, byte[] b)
    {
        uint c = 0xFFFFFFFFu;
        foreach (byte x in a) c = CrcTable[(c ^ x) & 0xFF] ^ (c >> 8);
        foreach (byte x in b) c = CrcTable[(c ^ x) & 0xFF] ^ (c >> 8);
        return c ^ 0xFFFFFFFFu;
    }

    // 5×7 glyphs, one byte per row, the low five bits left to right.
    private static readonly Dictionary<char, byte[]> Font = new()
    {
        ['0'] = [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E], ['1'] = [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        ['2'] = [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F], ['3'] = [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        ['4'] = [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02], ['5'] = [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        ['6'] = [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E], ['7'] = [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        ['8'] = [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E], ['9'] = [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        ['A'] = [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11], ['B'] = [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        ['C'] = [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E], ['D'] = [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
        ['E'] = [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F], ['F'] = [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        ['G'] = [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F], ['H'] = [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        ['I'] = [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E], ['J'] = [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        ['K'] = [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11], ['L'] = [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        ['M'] = [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11], ['N'] = [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        ['O'] = [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E], ['P'] = [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        ['Q'] = [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D], ['R'] = [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        ['S'] = [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E], ['T'] = [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        ['U'] = [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E], ['V'] = [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        ['W'] = [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A], ['X'] = [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        ['Y'] = [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04], ['Z'] = [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        ['.'] = [0, 0, 0, 0, 0, 0x0C, 0x0C], ['-'] = [0, 0, 0, 0x1F, 0, 0, 0], [':'] = [0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0],
        ['%'] = [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03], ['('] = [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        [')'] = [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08], ['/'] = [0, 0x01, 0x02, 0x04, 0x08, 0x10, 0],
        ['_'] = [0, 0, 0, 0, 0, 0, 0x1F], [','] = [0, 0, 0, 0, 0x0C, 0x04, 0x08], ['='] = [0, 0, 0x1F, 0, 0x1F, 0, 0],
    };
}

/// <summary>Line charts of training curves: one panel per metric, a line per series, axes with tick labels.</summary>
public static class Charts
{
    private static readonly (byte, byte, byte)[] Palette = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)];

    /// <summary>A series: a name and its points (x, y).</summary>
    public sealed record Series(string Name, IReadOnlyList<(double X, double Y)> Points);

    /// <summary>Renders panels side by side (title, series) into one image.</summary>
    public static RgbImage Render(IReadOnlyList<(string Title, IReadOnlyList<Series> Series)> panels, int panelWidth = 420, int panelHeight = 300)
    {
        var image = new RgbImage(Math.Max(1, panels.Count) * panelWidth, panelHeight);
        for (int p = 0; p < panels.Count; p++) Panel(image, p * panelWidth, panelWidth, panelHeight, panels[p].Title, panels[p].Series);
        return image;
    }

    private static void Panel(RgbImage image, int left, int width, int height, string title, IReadOnlyList<Series> series)
    {
        var gray = ((byte)80, (byte)80, (byte)80);
        int x0 = left + 60, y0 = 30, x1 = left + width - 15, y1 = height - 40;
        image.Text(left + (width - RgbImage.TextWidth(title, 2)) / 2, 6, title, gray, 2);
        double minX = double.MaxValue, maxX = double.MinValue, minY = double.MaxValue, maxY = double.MinValue;
        foreach (var s in series)
            foreach (var (x, y) in s.Points)
            {
                if (double.IsNaN(y) || double.IsInfinity(y)) continue;
                minX = Math.Min(minX, x); maxX = Math.Max(maxX, x); minY = Math.Min(minY, y); maxY = Math.Max(maxY, y);
            }
        if (minX > maxX) { minX = 0; maxX = 1; minY = 0; maxY = 1; }
        if (maxX == minX) maxX = minX + 1;
        if (maxY == minY) { maxY += 0.5; minY -= 0.5; }
        double padY = (maxY - minY) * 0.05;
        minY -= padY; maxY += padY;
        image.Line(x0, y1, x1, y1, gray);
        image.Line(x0, y0, x0, y1, gray);
        for (int t = 0; t <= 4; t++)
        {
            double v = minY + (maxY - minY) * t / 4;
            int y = y1 - (int)((y1 - y0) * t / 4.0);
            image.Line(x0 - 3, y, x0, y, gray);
            string label = v.ToString(Math.Abs(maxY - minY) < 0.1 ? "0.000" : "0.00", System.Globalization.CultureInfo.InvariantCulture);
            image.Text(x0 - 6 - RgbImage.TextWidth(label), y - 3, label, gray);
        }
        for (int t = 0; t <= 4; t++)
        {
            double v = minX + (maxX - minX) * t / 4;
            int x = x0 + (int)((x1 - x0) * t / 4.0);
            image.Line(x, y1, x, y1 + 3, gray);
            string label = v.ToString("0.#", System.Globalization.CultureInfo.InvariantCulture);
            image.Text(x - RgbImage.TextWidth(label) / 2, y1 + 7, label, gray);
        }
        image.Text(x0 + (x1 - x0 - RgbImage.TextWidth("EPOCH")) / 2, y1 + 20, "epoch", gray);
        for (int s = 0; s < series.Count; s++)
        {
            var color = Palette[s % Palette.Length];
            (int, int)? last = null;
            foreach (var (x, y) in series[s].Points)
            {
                if (double.IsNaN(y) || double.IsInfinity(y)) { last = null; continue; }
                int px = x0 + (int)Math.Round((x - minX) / (maxX - minX) * (x1 - x0));
                int py = y1 - (int)Math.Round((y - minY) / (maxY - minY) * (y1 - y0));
                if (last is { } l) image.Line(l.Item1, l.Item2, px, py, color, 2);
                image.Fill(px - 2, py - 2, 5, 5, color);
                last = (px, py);
            }
            image.Fill(x1 - 110, y0 + 4 + s * 12, 10, 8, color);
            image.Text(x1 - 96, y0 + 4 + s * 12, series[s].Name, gray);
        }
    }
}
