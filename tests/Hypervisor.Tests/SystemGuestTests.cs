using System.Text;
using Hypervisor.Core.Machine;
using Hypervisor.Hosting;
using Hypervisor.Tests.Guests;
using Microsoft.Extensions.DependencyInjection;

namespace Hypervisor.Tests;

/// <summary>
/// Task switching, virtual-8086 mode and debug registers on tcg (issue 3), each guest run on tcg and on
/// <c>qemu-system-x86_64 -accel tcg</c> in the same test: the serial output and the exit status must agree.
/// </summary>
public class SystemGuestTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    // jit-threshold=0 translates every block the first time it runs, so the JIT (not only the interpreter) meets
    // the task switches, the virtual-8086 code and the breakpoints.
    private static readonly string[] Accelerators = ["tcg", "tcg,jit=on,jit-threshold=0"];

    [TestCaseSource(nameof(Accelerators))]
    public void TaskSwitchingGuestPrintsWhatQemuPrints(string accelerator) => CompareWithQemu(SystemGuests.TaskSwitching(), accelerator);

    [TestCaseSource(nameof(Accelerators))]
    public void DoubleFaultThroughATaskGatePrintsWhatQemuPrints(string accelerator) => CompareWithQemu(SystemGuests.DoubleFaultTask(), accelerator);

    [TestCaseSource(nameof(Accelerators))]
    public void Virtual8086GuestPrintsWhatQemuPrints(string accelerator) => CompareWithQemu(SystemGuests.Virtual8086(), accelerator);

    [TestCaseSource(nameof(Accelerators))]
    public void DebugRegisterGuestPrintsWhatQemuPrints(string accelerator) => CompareWithQemu(SystemGuests.DebugRegisters(), accelerator);

    private static void CompareWithQemu(byte[] image, string accelerator)
    {
        if (Environment.GetEnvironmentVariable("HV_DUMP_IMAGE") is string dump)
        {
            File.WriteAllBytes(dump, image);
        }

        (string serial, MachineRunResult result) = Run(image, accelerator);
        TestContext.Out.WriteLine("tcg: " + serial[..Math.Min(serial.Length, 3000)]);
        (byte[] qemuSerial, int qemuExit) = Qemu.RunFirmware(image, Timeout);
        string qemu = Encoding.Latin1.GetString(qemuSerial);
        TestContext.Out.WriteLine("qemu: " + qemu[..Math.Min(qemu.Length, 3000)]);
        Assert.That(result.Reason, Is.EqualTo(MachineStopReason.DebugExit), result.Detail);
        Assert.That(serial, Is.EqualTo(qemu));
        Assert.That(result.ExitStatus, Is.EqualTo(qemuExit));
        Assert.That(qemuExit, Is.EqualTo((SystemGuests.ExitValue << 1) | 1));
    }

    private static (string Serial, MachineRunResult Result) Run(byte[] image, string accelerator) =>
        FirmwareRun.Run(image, accelerator, Timeout);
}
