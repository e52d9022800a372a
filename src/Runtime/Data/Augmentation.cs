using System;

namespace NetDsl.Runtime.Data;

/// <summary>
/// An augmentation applied by a <see cref="DataLoader"/> to a whole batch in place, after the batch is
/// gathered; the key passed to <see cref="Apply"/> seeds it (per epoch and batch), so runs repeat exactly.
/// </summary>
public interface IBatchTransform
{
    /// <summary>Transforms <paramref name="count"/> samples of shape <paramref name="shape"/> stored one after another.</summary>
    void Apply(Span<float> batch, int count, int[] shape, ulong key);
}

/// <summary>Image geometry of a sample shape: [C, H, W] or [H, W].</summary>
internal static class ImageShape
{
    public static (int C, int H, int W) Of(int[] shape, string transform) => shape.Length switch
    {
        3 => (shape[0], shape[1], shape[2]),
        2 => (1, shape[0], shape[1]),
        _ => throw new ArgumentException($"{transform} works on images of shape [C, H, W] or [H, W]; the samples are [{string.Join(", ", shape)}]."),
    };
}

/// <summary>Mirrors each image left-right with probability <see cref="Probability"/> (torchvision's RandomHorizontalFlip).</summary>
public sealed class RandomHorizontalFlip(double probability = 0.5) : IBatchTransform
{
    /// <summary>The chance that an image is flipped.</summary>
    public double Probability { get; } = probability is >= 0 and <= 1 ? probability : throw new ArgumentOutOfRangeException(nameof(probability), probability, "A probability is in [0, 1].");

    /// <inheritdoc />
    public void Apply(Span<float> batch, int count, int[] shape, ulong key)
    {
        var (c, h, w) = ImageShape.Of(shape, nameof(RandomHorizontalFlip));
        int size = c * h * w;
        for (int b = 0; b < count; b++)
        {
            if (CounterRandom.Uniform(key, (ulong)b) >= Probability) continue;
            for (int row = 0; row < c * h; row++) batch.Slice(b * size + row * w, w).Reverse();
        }
    }
}

/// <summary>
/// Pads each image with <see cref="Padding"/> zeros on every side and crops it back to its size at a random
/// position (torchvision's <c>RandomCrop(size, padding)</c>): a random shift of up to ±padding pixels.
/// </summary>
public sealed class RandomCrop(int padding) : IBatchTransform
{
    private float[] _sample = [];

    /// <summary>The padding on each side.</summary>
    public int Padding { get; } = padding >= 0 ? padding : throw new ArgumentOutOfRangeException(nameof(padding), padding, "Padding is zero or more.");

    /// <inheritdoc />
    public void Apply(Span<float> batch, int count, int[] shape, ulong key)
    {
        var (c, h, w) = ImageShape.Of(shape, nameof(RandomCrop));
        int size = c * h * w, span = 2 * Padding + 1;
        if (_sample.Length < size) _sample = new float[size];
        var copy = _sample.AsSpan(0, size);
        for (int b = 0; b < count; b++)
        {
            ulong r = CounterRandom.Hash(key, (ulong)b);
            int dy = (int)(r % (ulong)span) - Padding, dx = (int)((r >> 32) % (ulong)span) - Padding;
            if (dy == 0 && dx == 0) continue;
            var image = batch.Slice(b * size, size);
            image.CopyTo(copy);
            // Output pixel (y, x) reads input (y + dy, x + dx), zero outside.
            for (int ch = 0; ch < c; ch++)
                for (int y = 0; y < h; y++)
                {
                    var dst = image.Slice((ch * h + y) * w, w);
                    int sy = y + dy;
                    if ((uint)sy >= (uint)h) { dst.Clear(); continue; }
                    var src = copy.Slice((ch * h + sy) * w, w);
                    int lo = Math.Max(0, -dx), hi = Math.Min(w, w - dx);
                    dst.Slice(0, lo).Clear();
                    if (hi > lo) src.Slice(lo + dx, hi - lo).CopyTo(dst.Slice(lo, hi - lo));
                    dst.Slice(Math.Max(hi, lo)).Clear();
                }
        }
    }
}

/// <summary>Adds Gaussian noise of standard deviation <see cref="StandardDeviation"/> to every value.</summary>
public sealed class GaussianNoise(double standardDeviation) : IBatchTransform
{
    /// <summary>The noise's standard deviation.</summary>
    public double StandardDeviation { get; } = standardDeviation >= 0 ? standardDeviation : throw new ArgumentOutOfRangeException(nameof(standardDeviation), standardDeviation, "A standard deviation is zero or more.");

    /// <inheritdoc />
    public void Apply(Span<float> batch, int count, int[] shape, ulong key)
    {
        // Box-Muller on counter-based uniforms: two normals per pair of elements.
        for (int i = 0; i < batch.Length; i += 2)
        {
            double u1 = 1.0 - CounterRandom.Uniform(key, (ulong)i), u2 = CounterRandom.Uniform(key, (ulong)i + 1);
            double radius = Math.Sqrt(-2.0 * Math.Log(u1)) * StandardDeviation, angle = 2 * Math.PI * u2;
            batch[i] += (float)(radius * Math.Cos(angle));
            if (i + 1 < batch.Length) batch[i + 1] += (float)(radius * Math.Sin(angle));
        }
    }
}
