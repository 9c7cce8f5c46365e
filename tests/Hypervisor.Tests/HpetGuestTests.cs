using System.Text;
using Hypervisor.Core.Machine;
using Hypervisor.Devices;
using Hypervisor.Hosting;
using Hypervisor.Tests.Guests;
using Microsoft.Extensions.DependencyInjection;

namespace Hypervisor.Tests;

/// <summary>
/// The HPET on the tcg CPU with a 64-bit guest (capabilities, halt and run, legacy-replacement periodic and one-shot
/// interrupts with the 8254 blocked, a level-triggered 32-bit one-shot with its status bit), compared with QEMU's
/// <c>pc</c>, which has an HPET at the same address.
/// </summary>
public class HpetGuestTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Test]
    public void HpetGuestPrintsWhatTheSpecificationSays()
    {
        (string serial, MachineRunResult result) = Run(HpetGuests.Build());
        Assert.That(serial, Is.EqualTo(HpetGuests.ExpectedOutput), result.Detail);
        Assert.That(result.Reason, Is.EqualTo(MachineStopReason.DebugExit));
        Assert.That(result.ExitStatus, Is.EqualTo((HpetGuests.ExitValue << 1) | 1));

        // 20 periods of 1 ms, then a 0.5 ms one-shot and three more: not less than 21 ms of machine time.
        Assert.That(result.Elapsed.TotalMilliseconds, Is.GreaterThanOrEqualTo(21));
    }

    [Test]
    public void HpetGuestPrintsWhatQemuPrints()
    {
        byte[] image = HpetGuests.Build();
        (byte[] qemuSerial, int qemuExit) = Qemu.RunFirmware(image, Timeout);
        (string serial, MachineRunResult result) = Run(image);
        Assert.That(serial, Is.EqualTo(Encoding.Latin1.GetString(qemuSerial)), result.Detail);
        Assert.That(result.ExitStatus, Is.EqualTo(qemuExit));
    }

    [Test]
    public void WithoutAnHpetTheBlockIsNotThere()
    {
        // PcOptions.Hpet = false: nothing answers at 0xFED00000, so GCAP_ID does not read as the HPET's.
        (string serial, _) = Run(HpetGuests.Build(), hpet: false, timeout: TimeSpan.FromSeconds(3));
        Assert.That(serial, Does.Not.StartWith("HPET vendor 128 134"));
    }

    private static (string Serial, MachineRunResult Result) Run(byte[] image, bool hpet = true, TimeSpan? timeout = null) =>
        FirmwareRun.RunPc(new PcOptions { Firmware = image, Hpet = hpet }, timeout ?? Timeout);
}
