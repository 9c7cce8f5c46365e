using System.Text;
using Hypervisor.Core.Machine;
using Hypervisor.Devices;
using Hypervisor.Hosting;
using Hypervisor.Tests.Guests;
using Microsoft.Extensions.DependencyInjection;

namespace Hypervisor.Tests;

/// <summary>
/// The local APIC and I/O APIC on the tcg CPU with a 64-bit guest (timer periodic and one-shot, CR8 against a self-IPI,
/// the PIT through the I/O APIC with the 8259 masked), compared with QEMU's <c>pc</c>, which has both.
/// </summary>
public class ApicGuestTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Test]
    public void ApicGuestPrintsWhatTheSdmSays()
    {
        (string serial, MachineRunResult result) = Run(ApicGuests.Build());
        Assert.That(serial, Is.EqualTo(ApicGuests.ExpectedOutput), result.Detail);
        Assert.That(result.Reason, Is.EqualTo(MachineStopReason.DebugExit));
        Assert.That(result.ExitStatus, Is.EqualTo((ApicGuests.ExitValue << 1) | 1));

        // 20 periodic ticks of 1 ms, 3 one-shots of 1 ms and 20 PIT periods of ~1 ms cannot take less than ~40 ms.
        Assert.That(result.Elapsed.TotalMilliseconds, Is.GreaterThanOrEqualTo(40));
    }

    [Test]
    public void ApicGuestPrintsWhatQemuPrints()
    {
        byte[] image = ApicGuests.Build();
        (byte[] qemuSerial, int qemuExit) = Qemu.RunFirmware(image, Timeout);
        (string serial, MachineRunResult result) = Run(image);
        Assert.That(serial, Is.EqualTo(Encoding.Latin1.GetString(qemuSerial)), result.Detail);
        Assert.That(result.ExitStatus, Is.EqualTo(qemuExit));
    }

    [Test]
    public void PicTimerGuestStillWorksWithTheApicPresent()
    {
        // A guest that never touches the APIC: the 8259 reaches the CPU through LINT0 in virtual-wire mode.
        byte[] image = DeviceGuests.Timer(GuestMode.Long, 20, DeviceGuests.OneKilohertzDivisor);
        (string withApic, MachineRunResult r1) = Run(image, apic: true);
        (string withoutApic, MachineRunResult r2) = Run(image, apic: false);
        Assert.That(withApic, Is.EqualTo(DeviceGuests.TimerLine(GuestMode.Long, 20)), r1.Detail);
        Assert.That(withoutApic, Is.EqualTo(withApic), r2.Detail);
        Assert.That(r1.ExitStatus, Is.EqualTo(r2.ExitStatus));
    }

    [Test]
    public void WithoutTheApicTheGuestSeesNone()
    {
        // PcOptions.Apic = false: CPUID.1:EDX[9] is clear, so the guest's first line differs from the expected one.
        (string serial, _) = Run(ApicGuests.Build(), apic: false, timeout: TimeSpan.FromSeconds(3));
        Assert.That(serial, Does.StartWith("APIC version 255 max LVT 255 IOAPIC version 255 max entry 255 id 255 cpuid 0 0"));
    }

    [Test]
    public void BootstrapProcessorStartsTheSecondVcpuWithInitAndStartupIpis()
    {
        byte[] image = ApicGuests.BuildStartup();
        (string serial, MachineRunResult result) = Run(image, vcpus: 2);
        Assert.That(serial, Is.EqualTo(ApicGuests.StartupExpectedOutput), result.Detail);
        Assert.That(result.ExitStatus, Is.EqualTo((ApicGuests.StartupExitValue << 1) | 1));
    }

    [Test]
    public void StartupGuestPrintsWhatQemuPrints()
    {
        byte[] image = ApicGuests.BuildStartup();
        (byte[] qemuSerial, int qemuExit) = Qemu.RunFirmware(image, Timeout, null,
            ["-M", "pc", "-smp", "2", "-display", "none", "-serial", "stdio", "-monitor", "none", "-m", "128"]);
        (string serial, MachineRunResult result) = Run(image, vcpus: 2);
        Assert.That(serial, Is.EqualTo(Encoding.Latin1.GetString(qemuSerial)), result.Detail);
        Assert.That(result.ExitStatus, Is.EqualTo(qemuExit));
    }

    private static (string Serial, MachineRunResult Result) Run(byte[] image, bool apic = true, TimeSpan? timeout = null, int vcpus = 1) =>
        FirmwareRun.RunPc(new PcOptions { Firmware = image, Apic = apic, VcpuCount = vcpus }, timeout ?? Timeout);
}
