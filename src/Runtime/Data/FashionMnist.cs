using System;
using System.IO;

namespace NetDsl.Runtime.Data;

/// <summary>A labelled image set held in memory: images as rows of floats in [0, 1], labels as class indices.</summary>
/// <param name="Images">Row-major images, <see cref="ImageSize"/> floats each.</param>
/// <param name="Labels">One class index per image.</param>
/// <param name="ImageSize">Floats per image.</param>
public sealed record ImageSet(float[] Images, int[] Labels, int ImageSize)
{
    /// <summary>Number of images.</summary>
    public int Count => Labels.Length;
}

/// <summary>
/// Fashion-MNIST (Zalando, MIT licence): 60,000 training and 10,000 test images of 28x28 clothes in 10 classes.
/// Debian's <c>dataset-fashion-mnist</c> package installs it under <see cref="DebianPath"/>.
/// </summary>
public static class FashionMnist
{
    /// <summary>Where Debian's package puts the files.</summary>
    public const string DebianPath = "/usr/share/datasets/fashion-mnist";

    /// <summary>The class names, by label.</summary>
    public static readonly string[] ClassNames =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    /// <summary>Whether <paramref name="directory"/> holds the four IDX files.</summary>
    public static bool IsPresent(string directory)
        => File.Exists(Path.Combine(directory, "train-images-idx3-ubyte.gz")) && File.Exists(Path.Combine(directory, "train-labels-idx1-ubyte.gz"))
           && File.Exists(Path.Combine(directory, "t10k-images-idx3-ubyte.gz")) && File.Exists(Path.Combine(directory, "t10k-labels-idx1-ubyte.gz"));

    /// <summary>Loads the training and test sets from a directory holding the four gzip IDX files.</summary>
    public static (ImageSet Train, ImageSet Test) Load(string directory)
    {
        if (!IsPresent(directory))
            throw new FileNotFoundException($"{directory} does not hold Fashion-MNIST: expected train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz.");
        return (LoadSet(directory, "train"), LoadSet(directory, "t10k"));
    }

    private static ImageSet LoadSet(string directory, string prefix)
    {
        string imagesPath = Path.Combine(directory, prefix + "-images-idx3-ubyte.gz");
        float[] images = Idx.ReadImages(imagesPath, out int count, out int rows, out int cols);
        int[] labels = Idx.ReadLabels(Path.Combine(directory, prefix + "-labels-idx1-ubyte.gz"));
        if (labels.Length != count)
            throw new InvalidDataException($"{directory}: {prefix} has {count} images but {labels.Length} labels; expected one label per image.");
        return new ImageSet(images, labels, rows * cols);
    }
}
