using System.Diagnostics;
using Hypervisor.Guests;

namespace Hypervisor.Tests;

// Runs the real hv executable as a user would, checking its streams and exit status.
public class CliTests
{
    private static string HvDll => Path.Combine(AppContext.BaseDirectory, "hv.dll");

    private static (int Code, string Stdout, string Stderr) Hv(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        psi.ArgumentList.Add(HvDll);
        foreach (string a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using Process p = Process.Start(psi)!;
        p.StandardInput.Close();
        Task<string> stdout = p.StandardOutput.ReadToEndAsync();
        Task<string> stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromSeconds(120)))
        {
            p.Kill(true);
            Assert.Fail("hv did not finish within 120 s");
        }

        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    [Test]
    public void ProbeListsEveryAcceleratorAndSaysTcgIsAvailable()
    {
        (int code, string stdout, _) = Hv("probe");
        Assert.That(code, Is.Zero);
        string[] lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines.Single(l => l.StartsWith("tcg", StringComparison.Ordinal)), Does.Contain("yes"));
        Assert.That(lines.Count(l => l.StartsWith("kvm", StringComparison.Ordinal)), Is.EqualTo(1));
        Assert.That(lines.Count(l => l.StartsWith("whpx", StringComparison.Ordinal)), Is.EqualTo(1));
        if (!File.Exists("/dev/kvm"))
        {
            Assert.That(lines.Single(l => l.StartsWith("kvm", StringComparison.Ordinal)), Does.Contain("no").And.Contain("/dev/kvm"));
        }

        if (!OperatingSystem.IsWindows())
        {
            Assert.That(lines.Single(l => l.StartsWith("whpx", StringComparison.Ordinal)), Does.Contain("no").And.Contain("Windows"));
        }
    }

    [Test]
    public void RunWithoutAnImageRunsTheDemoWithOnlyGuestOutputOnStdout()
    {
        (int code, string stdout, string stderr) = Hv("run", "--accel", "auto", "--timeout", "60");
        Assert.That(code, Is.EqualTo((DemoGuest.DebugExitValue << 1) | 1), stderr);
        Assert.That(stdout, Does.StartWith("Hypervisor demo guest: real mode\r\n"));
        Assert.That(stdout, Does.EndWith("exiting through isa-debug-exit\r\n"));
        Assert.That(stderr, Does.Contain("hv: using"));
        Assert.That(stderr, Does.Contain("exit status 1"));
    }

    [TestCase("--accel", "bogus", 64, "Unknown accelerator 'bogus'")]
    [TestCase("--memory", "12X", 64, "Invalid memory size")]
    [TestCase("--bios", "/nonexistent/bios.bin", 66, "cannot read firmware image")]
    [TestCase("--timeout", "-1", 64, "--timeout")]
    public void UserErrorsPrintOneClearLineAndExitNonZero(string option, string value, int expectedCode, string expectedText)
    {
        (int code, string stdout, string stderr) = Hv("run", option, value);
        Assert.That(code, Is.EqualTo(expectedCode));
        Assert.That(stdout, Is.Empty);
        Assert.That(stderr, Does.Contain(expectedText));
        Assert.That(stderr, Does.Not.Contain("   at "), "no stack trace");
    }

    [Test]
    public void AMalformedImageIsRejectedWithItsSize()
    {
        string path = Path.Combine(Path.GetTempPath(), $"hv-bad-{Guid.NewGuid():N}.bin");
        File.WriteAllBytes(path, new byte[1000]);
        try
        {
            (int code, _, string stderr) = Hv("run", "--bios", path);
            Assert.That(code, Is.EqualTo(66));
            Assert.That(stderr, Does.Contain("1000 bytes"));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Test]
    public void RequiringAnUnavailableAcceleratorListsEveryReason()
    {
        if (File.Exists("/dev/kvm") || OperatingSystem.IsWindows())
        {
            Assert.Ignore("this host has kvm or whpx; the test needs both to be unavailable");
        }

        (int code, _, string stderr) = Hv("run", "--accel", "kvm:whpx");
        Assert.That(code, Is.EqualTo(68));
        Assert.That(stderr, Does.Contain("kvm:").And.Contain("whpx:"));
    }
}
