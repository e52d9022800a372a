using System;
using System.Diagnostics;
using System.IO;
using System.IO.Compression;
using System.Linq;
using Xunit;
using Xunit.Abstractions;

namespace NetDsl.Generator.Tests;

/// <summary>
/// The NetDsl package as a user meets it: packed from this repository into a local folder feed, added to a fresh
/// console project outside the solution (its own NuGet cache, no other package source), which then builds, trains
/// a few steps and predicts. Nothing may depend on the repository's project references.
/// </summary>
[Collection(nameof(DotnetProcesses))]
public sealed class PackageTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("netdsl-package-").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private static string RepoRoot() => Dotnet.RepoRoot();

    private string Run(string arguments, string workingDirectory) => Dotnet.Run(arguments, workingDirectory, Path.Combine(_dir, "nuget-cache"));

    [Fact]
    public void AFreshProjectBuildsTrainsAndPredictsWithThePackage()
    {
        var clock = Stopwatch.StartNew();
        string feed = Path.Combine(_dir, "feed");
        string version = "0.1.0-test" + DateTime.UtcNow.ToString("yyyyMMddHHmmss");
        Run($"pack \"{Path.Combine(RepoRoot(), "src", "Runtime", "NetDsl.Runtime.csproj")}\" -c Release -o \"{feed}\" -p:PackageVersion={version}", RepoRoot());
        string package = Path.Combine(feed, $"NetDsl.{version}.nupkg");
        Assert.True(File.Exists(Path.Combine(feed, $"NetDsl.{version}.snupkg")), "no symbol package");
        using (var zip = ZipFile.OpenRead(package))
        {
            var entries = zip.Entries.Select(e => e.FullName).ToList();
            foreach (var expected in new[] { "lib/net10.0/NetDsl.Runtime.dll", "lib/net10.0/NetDsl.dll", "lib/net10.0/NetDsl.Runtime.xml", "lib/net10.0/NetDsl.xml",
                         "analyzers/dotnet/cs/NetDsl.Generator.dll", "analyzers/dotnet/cs/NetDsl.CodeFixes.dll", "README.md", "LICENSE" })
                Assert.Contains(expected, entries);
            string nuspec = new StreamReader(zip.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal)).Open()).ReadToEnd();
            Assert.Contains("<license type=\"expression\">MIT</license>", nuspec);
            Assert.Contains("<repository type=\"git\"", nuspec);
            Assert.DoesNotContain("ILGPU", nuspec); // the GPU dependency lives in NetDsl.Gpu
        }
        using (var symbols = ZipFile.OpenRead(Path.Combine(feed, $"NetDsl.{version}.snupkg")))
            foreach (var expected in new[] { "lib/net10.0/NetDsl.Runtime.pdb", "lib/net10.0/NetDsl.pdb" })
                Assert.Contains(expected, symbols.Entries.Select(e => e.FullName));

        // NetDsl.Gpu: the GPU runtime alone, depending on NetDsl (same version) and ILGPU.
        Run($"pack \"{Path.Combine(RepoRoot(), "src", "Runtime.Gpu", "NetDsl.Runtime.Gpu.csproj")}\" -c Release -o \"{feed}\" -p:PackageVersion={version}", RepoRoot());
        using (var gpu = ZipFile.OpenRead(Path.Combine(feed, $"NetDsl.Gpu.{version}.nupkg")))
        {
            var entries = gpu.Entries.Select(e => e.FullName).ToList();
            Assert.Contains("lib/net10.0/NetDsl.Runtime.Gpu.dll", entries);
            Assert.DoesNotContain("lib/net10.0/NetDsl.dll", entries);
            string nuspec = new StreamReader(gpu.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal)).Open()).ReadToEnd();
            Assert.Contains($"<dependency id=\"NetDsl\" version=\"{version}\"", nuspec);
            Assert.Contains("<dependency id=\"ILGPU\" version=\"1.5.3\"", nuspec);
        }

        string app = Path.Combine(_dir, "app");
        Directory.CreateDirectory(app);
        File.WriteAllText(Path.Combine(app, "nuget.config"), $"""
            <configuration>
              <packageSources>
                <clear />
                <add key="local" value="{feed}" />
              </packageSources>
            </configuration>
            """);
        File.WriteAllText(Path.Combine(app, "App.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <Nullable>enable</Nullable>
                <TreatWarningsAsErrors>true</TreatWarningsAsErrors>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="NetDsl" Version="{version}" />
              </ItemGroup>
            </Project>
            """);
        File.WriteAllText(Path.Combine(app, "Program.cs"), """
            using System;
            using NetDsl;
            using NetDsl.Runtime;

            var net = new Xor(seed: 1);
            float[] x = { 0, 0, 0, 1, 1, 0, 1, 1 };
            int[] y = { 0, 1, 1, 0 };
            using (var trainer = net.CreateTrainer(new Adam(lr: 0.05), Loss.CrossEntropy, batchSize: 4))
                for (int step = 0; step < 300; step++) trainer.Step(x, y);
            var logits = new float[8];
            net.Predict(x, logits);
            int correct = 0;
            for (int i = 0; i < 4; i++) if ((logits[2 * i + 1] > logits[2 * i] ? 1 : 0) == y[i]) correct++;
            Console.WriteLine($"parameters {Xor.ParameterCount}, correct {correct}/4");

            [Network]
            public partial class Xor
            {
                readonly Linear hidden = new(2, 8);
                readonly Linear output = new(8, 2);
                Tensor Forward([Shape(2)] Tensor x) => output.Apply(Tanh(hidden.Apply(x)));
            }
            """);
        Run("build -c Release", app);
        string result = Run("run -c Release --no-build", app);
        output.WriteLine($"pack, restore from the folder feed, build and run: {clock.Elapsed.TotalSeconds:F0} s; the app printed: {result.Trim()}");
        Assert.Contains("parameters 42, correct 4/4", result);

        // The package's analyzer reports shape errors in the fresh project, too.
        File.WriteAllText(Path.Combine(app, "Program.cs"), File.ReadAllText(Path.Combine(app, "Program.cs")).Replace("new(8, 2)", "new(9, 2)"));
        var broken = Dotnet.Start("dotnet", "build -c Release", app, Path.Combine(_dir, "nuget-cache"));
        Assert.NotEqual(0, broken.ExitCode);
        Assert.Contains("error NDSL0101: output expects 9 input features but receives 8", broken.All);
    }
}
