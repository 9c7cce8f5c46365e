using System.Runtime.InteropServices;
using Hypervisor.Accel.Whpx.Interop;
using Hypervisor.Core;
using Hypervisor.Core.Accelerators;
using Hypervisor.Core.Io;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Memory;
using Microsoft.Extensions.Logging.Abstractions;

namespace Hypervisor.Accel.Whpx.Tests;

/// <summary>The probe and the failure paths, exercised for real on this (non-Windows) host.</summary>
[TestFixture]
public sealed class ProbeTests
{
    private static void RequireNotWindows()
    {
        if (OperatingSystem.IsWindows())
        {
            Assert.Ignore("This test checks the non-Windows path; on Windows the live tests cover the probe.");
        }
    }

    [Test]
    public void OffWindowsTheProbeSaysWhatIsNeeded()
    {
        RequireNotWindows();

        AcceleratorProbeResult probe = new WhpxAccelerator().Probe();

        Assert.Multiple(() =>
        {
            Assert.That(probe.IsAvailable, Is.False);
            Assert.That(probe.Reason, Does.StartWith("whpx requires Windows 10 1803+ with the Windows Hypervisor Platform feature"));
            Assert.That(probe.Reason, Does.Contain(RuntimeInformation.OSDescription));
            Assert.That(probe.Capabilities, Is.EqualTo(AcceleratorCapabilities.None));
        });
    }

    [Test]
    public void AMissingWinHvPlatformDllExplainsHowToEnableTheFeature()
    {
        RequireNotWindows(); // here the DLL is genuinely absent

        string? reason = WhvLibrary.EnsureLoaded();

        Assert.That(reason, Does.StartWith("Windows Hypervisor Platform feature not enabled")
            .And.Contain("Enable-WindowsOptionalFeature -Online -FeatureName HypervisorPlatform"));
    }

    [Test]
    public void MissingExportsAreFoundWithTheRealLoader()
    {
        RequireNotWindows();
        Assert.That(NativeLibrary.TryLoad("libc.so.6", out nint libc), Is.True, "libc.so.6 should be loadable on Linux");

        IReadOnlyList<string> missing = WhvLibrary.MissingExports(libc, ["malloc", "WHvGetCapability", "free"]);

        Assert.That(missing, Is.EqualTo(new[] { "WHvGetCapability" }));
    }

    [TestCase(0, 1, null)]
    [TestCase(0, 0, "The Windows hypervisor is not present")]
    [TestCase(unchecked((int)0x80370300), 0, "failed with HRESULT 0x80370300")]
    public void HypervisorPresenceVerdicts(int hresult, int present, string? expectedReason)
    {
        AcceleratorProbeResult? verdict = WhpxProbe.EvaluatePresence(hresult, present);

        if (expectedReason is null)
        {
            Assert.That(verdict, Is.Null);
        }
        else
        {
            Assert.Multiple(() =>
            {
                Assert.That(verdict!.IsAvailable, Is.False);
                Assert.That(verdict.Reason, Does.Contain(expectedReason));
            });
        }
    }

    [Test]
    public void CreateVmOffWindowsThrowsWithTheProbeReason()
    {
        RequireNotWindows();
        using var memory = new MemoryMap(new IoLock());
        var context = new VmCreationContext(memory, new PortIoBus(new IoLock()), null, AcceleratorOptions.Empty, NullLoggerFactory.Instance);

        Assert.That(() => new WhpxAccelerator().CreateVm(context),
            Throws.InstanceOf<AcceleratorException>().With.Message.Contains("requires Windows 10 1803+"));
    }

    [Test]
    public void UnknownOptionsAreConfigurationErrors()
    {
        using var memory = new MemoryMap(new IoLock());
        var options = new AcceleratorOptions([new KeyValuePair<string, string>("jit", "off")]);
        var context = new VmCreationContext(memory, new PortIoBus(new IoLock()), null, options, NullLoggerFactory.Instance);

        Assert.That(() => new WhpxAccelerator().CreateVm(context),
            Throws.TypeOf<HypervisorConfigurationException>().With.Message.Contains("'jit'"));
    }

    [Test]
    public void SelectingWhpxHereFailsWithEveryReason()
    {
        RequireNotWindows();
        using var builder = new VirtualMachineBuilder();
        GuestMemoryLayout.AddRam(builder.Memory, 4 * 1024 * 1024);
        var selector = new AcceleratorSelector([new WhpxAccelerator()]);

        var error = Assert.Throws<AcceleratorUnavailableException>(() => builder.Build(selector, selector.Parse("whpx")));

        Assert.That(error!.Attempts.Single().Reason, Does.Contain("requires Windows 10 1803+"));
    }
}
