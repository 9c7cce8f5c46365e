using Hypervisor.Core.Machine;
using Hypervisor.Core.Memory;

namespace Hypervisor.Accel.Whpx.Tests.Live;

/// <summary>
/// Real guests on the Windows Hypervisor Platform. They run wherever whpx probes as available and are skipped with
/// the probe's reason everywhere else (every machine this project has been built on so far).
/// </summary>
[TestFixture]
[Category("Whpx")]
public sealed class LiveWhpxTests
{
    [SetUp]
    public void RequireWhpx()
    {
        var probe = new WhpxAccelerator().Probe();
        if (!probe.IsAvailable)
        {
            Assert.Ignore($"whpx is unavailable here: {probe.Reason}");
        }
    }

    [Test]
    public void SumGuestPrintsWhatTcgAndQemuPrint()
    {
        byte[] image = TestGuests.SumAndExit();
        GuestHarness.Outcome tcg = GuestHarness.RunOnTcg(image);
        var qemu = GuestHarness.RunOnQemu(image);

        GuestHarness.Outcome run = GuestHarness.RunOnWhpx(image);

        Assert.Multiple(() =>
        {
            Assert.That(run.Result.Reason, Is.EqualTo(MachineStopReason.DebugExit), run.Result.Detail);
            Assert.That(run.Serial, Is.EqualTo(tcg.Serial));
            Assert.That(run.Result.ExitStatus, Is.EqualTo(tcg.Result.ExitStatus));
            Assert.That(run.Serial, Is.EqualTo($"{Enumerable.Range(1, 100).Sum()}\n"));
            if (qemu is { } q)
            {
                Assert.That(run.Serial, Is.EqualTo(q.Serial));
                Assert.That(run.Result.ExitStatus, Is.EqualTo(q.ExitStatus));
            }
        });
    }

    [Test]
    public void MmioWritesAndReadsReachTheDevice()
    {
        var device = new RecordingMmio(readValue: 0x5A5A);

        GuestHarness.Outcome run = GuestHarness.RunOnWhpx(TestGuests.MmioRoundTrip(),
            b => b.Memory.AddMmio(new GuestAddress(0xA0000), 0x1000, device, "test-mmio"));

        Assert.Multiple(() =>
        {
            Assert.That(run.Result.Reason, Is.EqualTo(MachineStopReason.DebugExit), run.Result.Detail);
            Assert.That(run.Result.ExitStatus, Is.EqualTo((0x11 << 1) | 1));
            Assert.That(device.Writes, Is.EqualTo(new[] { (0x10UL, 2, 0xBEEFUL) }));
            Assert.That(run.Serial, Is.EqualTo("Z"));
        });
    }

    [Test]
    public void HltWithInterruptsOffStopsTheMachineAsHalted()
    {
        GuestHarness.Outcome run = GuestHarness.RunOnWhpx(TestGuests.HaltWithInterruptsOff());

        Assert.That(run.Result.Reason, Is.EqualTo(MachineStopReason.Halted), run.Result.Detail);
    }

    [Test]
    public void ASpinningGuestIsStoppedByTheTimeBudget()
    {
        GuestHarness.Outcome run = GuestHarness.RunOnWhpx(TestGuests.SpinForever(), timeout: TimeSpan.FromMilliseconds(500));

        Assert.Multiple(() =>
        {
            Assert.That(run.Result.Reason, Is.EqualTo(MachineStopReason.Timeout), run.Result.Detail);
            Assert.That(run.Result.Elapsed, Is.LessThan(TimeSpan.FromSeconds(5)));
        });
    }

    [Test]
    public void AnInterruptWakesHltAndReachesTheIvtHandler()
    {
        using var source = new OneShotInterrupt(TestGuests.TestVector);

        GuestHarness.Outcome run = GuestHarness.RunOnWhpx(TestGuests.InterruptThenExit(), b =>
        {
            b.InterruptSource = source;
            source.RaiseAfter(TimeSpan.FromMilliseconds(100), b.Control);
        });

        Assert.Multiple(() =>
        {
            Assert.That(run.Result.Reason, Is.EqualTo(MachineStopReason.DebugExit), run.Result.Detail);
            Assert.That(run.Serial, Is.EqualTo("ID"));
            Assert.That(run.Result.ExitStatus, Is.EqualTo((0x12 << 1) | 1));
            Assert.That(source.Acknowledged, Is.EqualTo(1));
        });
    }
}
