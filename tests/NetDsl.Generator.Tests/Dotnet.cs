using System;
using System.Collections.Generic;
using System.IO;
using NetDsl.Testing;
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

    /// <summary>Runs <paramref name="fileName"/> as a user's shell would (no telemetry, no logo), with its own NuGet cache when given.</summary>
    public static ChildProcess.Result Start(string fileName, string arguments, string workingDirectory, string? nugetPackages = null)
    {
        var environment = new Dictionary<string, string> { ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1", ["DOTNET_NOLOGO"] = "1" };
        if (nugetPackages is not null) environment["NUGET_PACKAGES"] = nugetPackages;
        return ChildProcess.Run(fileName, arguments, workingDirectory, environment);
    }

    /// <summary>Runs <c>dotnet arguments</c> and fails the test, with the output, unless it succeeds.</summary>
    public static string Run(string arguments, string workingDirectory, string? nugetPackages = null)
    {
        var result = Start("dotnet", arguments, workingDirectory, nugetPackages);
        Assert.True(result.ExitCode == 0, $"dotnet {arguments} failed:\n{result.All}");
        return result.All;
    }
}
