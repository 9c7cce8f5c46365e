using Hypervisor.Core.Machine;
using Hypervisor.Core.Memory;

namespace Hypervisor.Accel.Whpx.Tests.Live;

/// <summary>
/// The live tests' guests checked where they can run here, on QEMU and on tcg, so that the live tests'
/// expectations rest on references rather than on the guests being right by inspection.
/// </summary>
[TestFixture]
public sealed class TestGuestTests
{
    private static (string Serial, int ExitStatus) Qemu(byte[] image)
    {
        var qemu = GuestHarness.RunOnQemu(image);
        if (qemu is null)
        {
            Assert.Ignore("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86).");
        }

        return qemu!.Value;
    }

    [Test]
    public void SumGuestPrintsTheSumAndExitsOnQemu()
    {
        var (serial, exitStatus) = Qemu(TestGuests.SumAndExit());

        Assert.Multiple(() =>
        {
            Assert.That(serial, Does.EndWith($"{Enumerable.Range(1, 100).Sum()}\n"));
            Assert.That(exitStatus, Is.EqualTo((0x10 << 1) | 1));
        });
    }

    [Test]
    public void SumGuestOnTcgMatchesQemu()
    {
        byte[] image = TestGuests.SumAndExit();
        var (serial, exitStatus) = Qemu(image);

        GuestHarness.Outcome tcg = GuestHarness.RunOnTcg(image);

        Assert.Multiple(() =>
        {
            Assert.That(tcg.Serial, Is.EqualTo(serial));
            Assert.That(tcg.Result.ExitStatus, Is.EqualTo(exitStatus));
        });
    }

    [Test]
    public void MmioGuestRunsToItsDebugExitOnQemu()
    {
        // On QEMU 0xA0000 is the VGA window rather than our test device, so only the control flow is compared.
        Assert.That(Qemu(TestGuests.MmioRoundTrip()).ExitStatus, Is.EqualTo((0x11 << 1) | 1));
    }

    [Test]
    public void MmioGuestOnTcgWritesAndReadsTheDevice()
    {
        var device = new RecordingMmio(readValue: 0x5A5A);

        GuestHarness.Outcome tcg = GuestHarness.RunOnTcg(TestGuests.MmioRoundTrip(),
            b => b.Memory.AddMmio(new GuestAddress(0xA0000), 0x1000, device, "test-mmio"));

        Assert.Multiple(() =>
        {
            Assert.That(tcg.Result.Reason, Is.EqualTo(MachineStopReason.DebugExit), tcg.Result.Detail);
            Assert.That(device.Writes, Is.EqualTo(new[] { (0x10UL, 2, 0xBEEFUL) }));
            Assert.That(tcg.Serial, Is.EqualTo("Z"));
        });
    }

    [Test]
    public void InterruptGuestOnTcgTakesTheInterruptFromHlt()
    {
        using var source = new OneShotInterrupt(TestGuests.TestVector);

        GuestHarness.Outcome tcg = GuestHarness.RunOnTcg(TestGuests.InterruptThenExit(), b =>
        {
            b.InterruptSource = source;
            source.RaiseAfter(TimeSpan.FromMilliseconds(100), b.Control);
        });

        Assert.Multiple(() =>
        {
            Assert.That(tcg.Result.Reason, Is.EqualTo(MachineStopReason.DebugExit), tcg.Result.Detail);
            Assert.That(tcg.Serial, Is.EqualTo("ID"));
            Assert.That(source.Acknowledged, Is.EqualTo(1));
        });
    }

    [Test]
    public void HaltGuestOnTcgStopsAsHalted()
    {
        GuestHarness.Outcome tcg = GuestHarness.RunOnTcg(TestGuests.HaltWithInterruptsOff());

        Assert.That(tcg.Result.Reason, Is.EqualTo(MachineStopReason.Halted), tcg.Result.Detail);
    }
}
