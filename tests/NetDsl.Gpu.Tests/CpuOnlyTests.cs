using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Reflection;
using Xunit;

namespace NetDsl.Runtime.Tests.Gpu;

/// <summary>The managed CPU path never loads ILGPU, even in an application whose networks have device kernels.</summary>
public class CpuOnlyTests
{
    [Fact]
    public void CpuOnlyTrainingDoesNotLoadIlgpu()
    {
        string probe = typeof(CpuOnlyTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "CpuOnlyProbe").Value!;
        Assert.True(File.Exists(probe), "The probe was not built: " + probe);
        // The probe ships ILGPU (it references NetDsl.Runtime.Gpu), so "not loaded" means "never touched".
        Assert.True(File.Exists(Path.Combine(Path.GetDirectoryName(probe)!, "ILGPU.dll")));
        var start = new ProcessStartInfo("dotnet", $"\"{probe}\"") { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(start)!;
        string output = process.StandardOutput.ReadToEnd() + process.StandardError.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, output);
        Assert.Contains("ILGPU not loaded", output);
    }
}
