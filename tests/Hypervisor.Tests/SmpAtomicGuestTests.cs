using System.Text;
using Hypervisor.Core.Machine;
using Hypervisor.Hosting;
using Hypervisor.Tests.Guests;
using Microsoft.Extensions.DependencyInjection;

namespace Hypervisor.Tests;

/// <summary>
/// Locked instructions on two tcg vCPUs running at the same time on two host threads (<see cref="SmpAtomicGuests"/>):
/// no update is lost and no spin lock stays shut, on the interpreter and on the JIT, and the counters equal both the
/// SDM's arithmetic and QEMU's <c>-smp 2</c>.
/// </summary>
public class SmpAtomicGuestTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    // jit-threshold=0 translates every block at its first execution: the locked instructions then run from regions.
    private static readonly string[] Accelerators = ["tcg,jit=off", "tcg,jit=on,jit-threshold=0"];

    [TestCaseSource(nameof(Accelerators))]
    public void LockedInstructionsOfTwoVcpusLoseNoUpdate(string accelerator)
    {
        (string serial, MachineRunResult result) = Run(SmpAtomicGuests.Build(), accelerator);
        Assert.That(result.Reason, Is.EqualTo(MachineStopReason.DebugExit), result.Detail);
        Assert.That(serial, Is.EqualTo(SmpAtomicGuests.ExpectedOutput()));
        Assert.That(result.ExitStatus, Is.EqualTo((SmpAtomicGuests.ExitValue << 1) | 1));
    }

    [Test]
    public void TheRunEndsAsHaltedOnlyWhenEveryVcpuIsHalted()
    {
        // The AP halts with interrupts off when its work is done and is parked while the BSP prints (the test above);
        // here the BSP halts so too, and only then does the machine stop.
        (string serial, MachineRunResult result) = Run(SmpAtomicGuests.Build(haltAtEnd: true), "tcg");
        Assert.That(result.Reason, Is.EqualTo(MachineStopReason.Halted), result.Detail);
        Assert.That(result.Detail, Does.StartWith("all 2 vCPUs executed HLT with interrupts disabled"));
        Assert.That(serial, Is.Empty);
    }

    [Test]
    public void CountersEqualQemus()
    {
        byte[] image = SmpAtomicGuests.Build();
        (byte[] qemuSerial, int qemuExit) = Qemu.RunFirmware(image, Timeout, null,
            ["-M", "pc", "-smp", "2", "-display", "none", "-serial", "stdio", "-monitor", "none", "-m", "128"]);
        (string serial, MachineRunResult result) = Run(image, "tcg");
        Assert.That(serial, Is.EqualTo(Encoding.Latin1.GetString(qemuSerial)), result.Detail);
        Assert.That(result.ExitStatus, Is.EqualTo(qemuExit));
    }

    private static (string Serial, MachineRunResult Result) Run(byte[] image, string accelerator) =>
        FirmwareRun.Run(image, accelerator, Timeout, vcpus: 2);
}
