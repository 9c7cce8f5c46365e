namespace Hypervisor.Accel.Whpx.Tests.Live;

/// <summary>The live tests' guest checked on QEMU (runs here), so that their expectations rest on a reference.</summary>
[TestFixture]
public sealed class TestGuestTests
{
    [Test]
    public void SumGuestPrintsTheSumAndExitsOnQemu()
    {
        var qemu = GuestHarness.RunOnQemu(TestGuests.SumAndExit());
        if (qemu is null)
        {
            Assert.Ignore("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86).");
        }

        Assert.Multiple(() =>
        {
            Assert.That(qemu!.Value.Serial, Does.EndWith($"{Enumerable.Range(1, 100).Sum()}\n"));
            Assert.That(qemu.Value.ExitStatus, Is.EqualTo((0x10 << 1) | 1));
        });
    }

    [Test]
    public void MmioGuestRunsToItsDebugExitOnQemu()
    {
        // On QEMU 0xA0000 is the VGA window rather than our test device, so only the control flow is compared.
        var qemu = GuestHarness.RunOnQemu(TestGuests.MmioRoundTrip());
        if (qemu is null)
        {
            Assert.Ignore("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86).");
        }

        Assert.That(qemu!.Value.ExitStatus, Is.EqualTo((0x11 << 1) | 1));
    }
}
