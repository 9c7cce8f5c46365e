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
        Core.Accelerators.AcceleratorProbeResult kvm = new Accel.Kvm.KvmAccelerator().Probe();
        Assert.That(lines.Single(l => l.StartsWith("kvm", StringComparison.Ordinal)),
            Does.Contain(kvm.IsAvailable ? "yes" : "no").And.Contain(kvm.IsAvailable ? "" : kvm.Reason));

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

    [Test]
    public void TheDemoRunsTheSameWithTwoVcpus()
    {
        // The second vCPU waits for a start-up IPI that the demo never sends; the output is the one-vCPU run's.
        (int one, string oneOut, string oneErr) = Hv("run", "--accel", "tcg", "--timeout", "60");
        (int two, string twoOut, string twoErr) = Hv("run", "--accel", "tcg", "--smp", "2", "--timeout", "60");
        Assert.That(one, Is.EqualTo((DemoGuest.DebugExitValue << 1) | 1), oneErr);
        Assert.That(two, Is.EqualTo(one), twoErr);
        Assert.That(twoOut, Is.EqualTo(oneOut));
    }

    [TestCase("--accel", "bogus", 64, "Unknown accelerator 'bogus'")]
    [TestCase("--memory", "12X", 64, "Invalid memory size")]
    [TestCase("--bios", "/nonexistent/bios.bin", 66, "cannot read firmware image")]
    [TestCase("--timeout", "-1", 64, "--timeout")]
    [TestCase("--smp", "0", 64, "Vcpus must be at least 1")]
    [TestCase("--smp", "256", 64, "1 to 255 vCPUs")]
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
        if (new Accel.Kvm.KvmAccelerator().Probe().IsAvailable || new Accel.Whpx.WhpxAccelerator().Probe().IsAvailable)
        {
            Assert.Ignore("kvm or whpx can run on this host; the test needs both to be unavailable");
        }

        (int code, _, string stderr) = Hv("run", "--accel", "kvm:whpx");
        Assert.That(code, Is.EqualTo(68));
        Assert.That(stderr, Does.Contain("kvm:").And.Contain("whpx:"));
    }
}
