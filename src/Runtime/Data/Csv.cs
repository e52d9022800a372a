using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Text;

namespace NetDsl.Runtime.Data;

/// <summary>
/// Reads numeric CSV files (RFC 4180: commas, optional header, quoted fields) into datasets. Every value must
/// parse as a number (invariant culture); a bad value or a short row is an error naming the file, line and
/// column.
/// </summary>
public static class Csv
{
    /// <summary>
    /// A classification dataset: column <paramref name="labelColumn"/> (by index; -1 is the last) holds integer
    /// class labels, every other column is an input feature.
    /// </summary>
    public static Dataset ReadClassification(string path, int labelColumn = -1, bool hasHeader = true)
    {
        var (rows, columns) = ReadRows(path, hasHeader);
        int label = Column(path, labelColumn, columns);
        var inputs = new float[rows.Count * (columns - 1)];
        var labels = new int[rows.Count];
        for (int r = 0; r < rows.Count; r++)
        {
            var (line, values) = rows[r];
            double v = values[label];
            if (v != Math.Floor(v) || v < 0 || v > int.MaxValue)
                throw new InvalidDataException($"{path}:{line}: the label in column {label + 1} is {v.ToString(CultureInfo.InvariantCulture)}; expected a class index (0, 1, 2, ...).");
            labels[r] = (int)v;
            for (int c = 0, k = 0; c < columns; c++)
                if (c != label) inputs[r * (columns - 1) + k++] = (float)values[c];
        }
        return new Dataset(inputs, labels, [columns - 1]);
    }

    /// <summary>
    /// A regression dataset: the last <paramref name="targetColumns"/> columns are targets, the rest inputs.
    /// </summary>
    public static Dataset ReadRegression(string path, int targetColumns = 1, bool hasHeader = true)
    {
        var (rows, columns) = ReadRows(path, hasHeader);
        if (targetColumns < 1 || targetColumns >= columns)
            throw new ArgumentOutOfRangeException(nameof(targetColumns), targetColumns, $"{path} has {columns} columns; expected 1 to {columns - 1} target columns.");
        int features = columns - targetColumns;
        var inputs = new float[rows.Count * features];
        var targets = new float[rows.Count * targetColumns];
        for (int r = 0; r < rows.Count; r++)
            for (int c = 0; c < columns; c++)
            {
                if (c < features) inputs[r * features + c] = (float)rows[r].Values[c];
                else targets[r * targetColumns + c - features] = (float)rows[r].Values[c];
            }
        return new Dataset(inputs, targets, [features], targetColumns);
    }

    /// <summary>All rows as numbers, with their line numbers; every row must have as many fields as the first.</summary>
    public static (List<(int Line, double[] Values)> Rows, int Columns) ReadRows(string path, bool hasHeader = true)
    {
        using var reader = new StreamReader(path, Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
        var rows = new List<(int, double[])>();
        int columns = -1, lineNumber = 0;
        var fields = new List<string>();
        string? line;
        while ((line = reader.ReadLine()) is not null)
        {
            lineNumber++;
            int first = lineNumber;
            // A quoted field may span lines.
            while (!Split(line, fields))
            {
                string? next = reader.ReadLine() ?? throw new InvalidDataException($"{path}:{first}: a quoted field is not closed before the end of the file.");
                lineNumber++;
                line += "\n" + next;
            }
            if (fields.Count == 1 && fields[0].Length == 0) continue; // blank line
            if (columns < 0)
            {
                columns = fields.Count;
                if (hasHeader) continue;
            }
            if (fields.Count != columns)
                throw new InvalidDataException($"{path}:{first}: the row has {fields.Count} fields; expected {columns} like the {(hasHeader ? "header" : "first row")}.");
            var values = new double[columns];
            for (int c = 0; c < columns; c++)
                if (!double.TryParse(fields[c].Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out values[c]))
                    throw new InvalidDataException($"{path}:{first}: column {c + 1} is '{fields[c]}'; expected a number (invariant culture, e.g. 3.25).");
            rows.Add((first, values));
        }
        if (rows.Count == 0) throw new InvalidDataException($"{path}: no data rows.");
        return (rows, columns);
    }

    private static int Column(string path, int index, int columns)
    {
        int c = index < 0 ? columns + index : index;
        if (c < 0 || c >= columns || columns < 2)
            throw new ArgumentOutOfRangeException(nameof(index), index, $"{path} has {columns} columns; the label column must be one of 0..{columns - 1} (or -1..-{columns}) and leave at least one feature.");
        return c;
    }

    /// <summary>Splits one record; false when a quoted field continues on the next line.</summary>
    private static bool Split(string line, List<string> fields)
    {
        fields.Clear();
        var field = new StringBuilder();
        bool quoted = false;
        for (int i = 0; i < line.Length; i++)
        {
            char ch = line[i];
            if (quoted)
            {
                if (ch == '"' && i + 1 < line.Length && line[i + 1] == '"') { field.Append('"'); i++; }
                else if (ch == '"') quoted = false;
                else field.Append(ch);
            }
            else if (ch == '"' && field.Length == 0) quoted = true;
            else if (ch == ',') { fields.Add(field.ToString()); field.Clear(); }
            else field.Append(ch);
        }
        if (quoted) return false;
        fields.Add(field.ToString());
        return true;
    }
}
