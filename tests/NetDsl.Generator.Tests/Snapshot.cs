using System;
using System.IO;
using System.Runtime.CompilerServices;
using System.Text;
using Xunit.Sdk;

namespace NetDsl.Generator.Tests;

/// <summary>
/// Whole-file snapshots in Verify's conventions: the accepted text is <c>{Class}.{Test}.verified.{ext}</c>
/// beside the test's source file; on a mismatch the new text goes to <c>.received.{ext}</c> and the test
/// fails with a line diff. Accept a change by renaming received to verified. A missing verified file fails
/// too (after writing received), so a new snapshot is always reviewed.
/// </summary>
public static class Snapshot
{
    public static void Verify(string actual, string name, string extension = "cs", [CallerFilePath] string testFile = "", [CallerMemberName] string test = "")
    {
        string directory = Path.GetDirectoryName(testFile)!;
        string stem = Path.Combine(directory, $"{Path.GetFileNameWithoutExtension(testFile)}.{test}{(name.Length > 0 ? "_" + name : "")}");
        string verified = stem + ".verified." + extension;
        string received = stem + ".received." + extension;
        actual = Normalize(actual);
        if (File.Exists(verified) && Normalize(File.ReadAllText(verified)) == actual)
        {
            if (File.Exists(received)) File.Delete(received);
            return;
        }
        File.WriteAllText(received, actual, new UTF8Encoding(false));
        if (!File.Exists(verified))
            throw new XunitException($"No verified snapshot yet. Review {received} and rename it to {Path.GetFileName(verified)}.");
        throw new XunitException($"The output differs from {Path.GetFileName(verified)} (new output in {Path.GetFileName(received)}):\n{Diff(Normalize(File.ReadAllText(verified)), actual)}");
    }

    private static string Normalize(string text) => text.Replace("\r\n", "\n").TrimStart('\uFEFF');

    /// <summary>The first differing lines with a little context.</summary>
    private static string Diff(string expected, string actual)
    {
        var e = expected.Split('\n');
        var a = actual.Split('\n');
        var sb = new StringBuilder();
        int shown = 0;
        for (int i = 0; i < Math.Max(e.Length, a.Length) && shown < 20; i++)
        {
            string? le = i < e.Length ? e[i] : null, la = i < a.Length ? a[i] : null;
            if (le == la) continue;
            sb.Append("line ").Append(i + 1).Append('\n');
            if (le is not null) sb.Append("- ").Append(le).Append('\n');
            if (la is not null) sb.Append("+ ").Append(la).Append('\n');
            shown++;
        }
        return sb.ToString();
    }
}
