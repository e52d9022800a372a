using System.Globalization;

namespace NetDsl.Generator;

/// <summary>Culture-independent formatting: generated code and messages must not depend on the build machine's locale.</summary>
internal static class Invariant
{
    public static string Format(int value) => value.ToString(CultureInfo.InvariantCulture);

    public static string Format(long value) => value.ToString(CultureInfo.InvariantCulture);

    public static string Format(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>Thousands separated by commas, for summaries: 1,234,567.</summary>
    public static string Grouped(long value) => value.ToString("#,0", CultureInfo.InvariantCulture);

    /// <summary>A C# literal of the network's element type.</summary>
    public static string Literal(double value, string elementType)
    {
        if (double.IsPositiveInfinity(value)) return elementType + ".PositiveInfinity";
        if (double.IsNegativeInfinity(value)) return elementType + ".NegativeInfinity";
        string text = elementType == "float"
            ? ((float)value).ToString("R", CultureInfo.InvariantCulture)
            : value.ToString("R", CultureInfo.InvariantCulture);
        if (text.IndexOf('.') < 0 && text.IndexOf('E') < 0) text += ".0";
        return text + (elementType == "float" ? "f" : "");
    }
}
