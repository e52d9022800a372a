using System;
using System.Diagnostics;
using System.IO;
using Xunit;

namespace NetDsl.Generator.Tests;

/// <summary>
/// Tests that run the dotnet CLI on this repository (pack, publish). They build src/Runtime in Release, so they run
/// one at a time, never beside each other.
/// </summary>
[CollectionDefinition(nameof(DotnetProcesses), DisableParallelization = true)]
public sealed class DotnetProcesses;

/// <summary>Runs <c>dotnet</c> as a user would, and finds the repository.</summary>
internal static class Dotnet
{
    public static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "NetDsl.sln"))) return dir.FullName;
        throw new InvalidOperationException("The repository root (NetDsl.sln) is not above " + AppContext.BaseDirectory);
    }

    /// <summary>Runs <paramref name="fileName"/> with <paramref name="arguments"/>; returns stdout and stderr, and the exit code.</summary>
    public static (int ExitCode, string Output, string Error) Start(string fileName, string arguments, string workingDirectory, string? nugetPackages = null)
    {
        var start = new ProcessStartInfo(fileName, arguments) { WorkingDirectory = workingDirectory, RedirectStandardOutput = true, RedirectStandardError = true };
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        if (nugetPackages is not null) start.Environment["NUGET_PACKAGES"] = nugetPackages;
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        return (process.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>Runs <c>dotnet arguments</c> and fails the test, with the output, unless it succeeds.</summary>
    public static string Run(string arguments, string workingDirectory, string? nugetPackages = null)
    {
        var (exit, stdout, stderr) = Start("dotnet", arguments, workingDirectory, nugetPackages);
        Assert.True(exit == 0, $"dotnet {arguments} failed:\n{stdout}{stderr}");
        return stdout + stderr;
    }
}
