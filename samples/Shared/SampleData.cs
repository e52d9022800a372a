using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using NetDsl.Runtime.Data;

namespace Samples.Shared;

/// <summary>What every Fashion-MNIST sample shares: finding the data, and reading its few options.</summary>
internal static class SampleData
{
    /// <summary>
    /// Loads Fashion-MNIST from <paramref name="directory"/>, else from the Debian package's directory, else the
    /// subset shipped next to the sample (6,000 training and 1,000 test images), saying which.
    /// </summary>
    public static (ImageSet Train, ImageSet Test, bool Full) Load(string? directory)
    {
        string bundled = Path.Combine(AppContext.BaseDirectory, "data");
        string dir = directory ?? (NetDsl.Runtime.Data.FashionMnist.IsPresent(NetDsl.Runtime.Data.FashionMnist.DebianPath) ? NetDsl.Runtime.Data.FashionMnist.DebianPath : bundled);
        var (train, test) = NetDsl.Runtime.Data.FashionMnist.Load(dir);
        bool full = dir != bundled;
        Console.WriteLine(full
            ? $"Fashion-MNIST from {dir}: {train.Count:N0} training and {test.Count:N0} test images."
            : $"Full Fashion-MNIST not found at {NetDsl.Runtime.Data.FashionMnist.DebianPath} (apt-get install dataset-fashion-mnist, or pass --data DIR): using the {train.Count:N0}/{test.Count:N0}-image subset shipped with this sample. Results will be lower than on the full set.");
        return (train, test, full);
    }
}

/// <summary>Command-line options <c>--name value</c> and flags <c>--name</c>, with a usage line for mistakes.</summary>
internal sealed class SampleArgs
{
    private readonly Dictionary<string, string?> _values = new(StringComparer.Ordinal);

    private SampleArgs(string usage) => Usage = usage;

    public string Usage { get; }

    /// <summary>Parses <paramref name="args"/>; <paramref name="options"/> take a value, <paramref name="flags"/> do not.</summary>
    public static SampleArgs? Parse(string[] args, string usage, string[] options, string[] flags)
    {
        var result = new SampleArgs(usage);
        for (int i = 0; i < args.Length; i++)
        {
            if (Array.IndexOf(flags, args[i]) >= 0) result._values[args[i]] = null;
            else if (Array.IndexOf(options, args[i]) >= 0 && i + 1 < args.Length) result._values[args[i]] = args[++i];
            else
            {
                Console.Error.WriteLine($"Unknown or incomplete argument '{args[i]}'. Usage: {usage}");
                return null;
            }
        }
        return result;
    }

    public string? Text(string name) => _values.TryGetValue(name, out var v) ? v : null;

    public bool Flag(string name) => _values.ContainsKey(name);

    public int Int(string name, int fallback)
    {
        if (Text(name) is not { } v) return fallback;
        if (int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) && n >= 0) return n;
        throw new ArgumentException($"{name} takes a whole number of 0 or more; got '{v}'. Usage: {Usage}");
    }
}
