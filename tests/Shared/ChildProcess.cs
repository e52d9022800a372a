using System;
using System.Collections.Generic;
using System.Diagnostics;

namespace NetDsl.Testing;

/// <summary>
/// Runs a program the way the tests need it (a probe, dotnet, mpiexec): both output streams read concurrently, so
/// neither can fill up and block the child, and a deadline after which the child's whole process tree is killed.
/// Linked into every test project from tests/Shared.
/// </summary>
internal static class ChildProcess
{
    /// <summary>What a finished child left: its exit code, its two streams and how long it ran.</summary>
    public readonly record struct Result(int ExitCode, string Output, string Error, TimeSpan Elapsed)
    {
        /// <summary>Standard output followed by standard error, for messages.</summary>
        public string All => Output + Error;
    }

    /// <summary>
    /// Runs <paramref name="fileName"/> with <paramref name="arguments"/> and waits for it. A child still running
    /// after <paramref name="timeout"/> (default 10 minutes) is killed and reported as a hang.
    /// </summary>
    public static Result Run(string fileName, string arguments, string? workingDirectory = null,
        IReadOnlyDictionary<string, string>? environment = null, TimeSpan? timeout = null)
    {
        var start = new ProcessStartInfo(fileName, arguments) { RedirectStandardOutput = true, RedirectStandardError = true };
        if (workingDirectory is not null) start.WorkingDirectory = workingDirectory;
        if (environment is not null)
            foreach (var (name, value) in environment) start.Environment[name] = value;
        var clock = Stopwatch.StartNew();
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        var limit = timeout ?? TimeSpan.FromMinutes(10);
        if (!process.WaitForExit(limit))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            throw new TimeoutException($"{fileName} {arguments} was still running after {limit.TotalSeconds:0} s: it hangs.\n{stdout.Result}{stderr.Result}");
        }
        process.WaitForExit(); // the streams are complete once this returns
        return new Result(process.ExitCode, stdout.Result, stderr.Result, clock.Elapsed);
    }
}
