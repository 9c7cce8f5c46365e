using Hypervisor.Core.Machine;
using Hypervisor.Core.Timing;
using Hypervisor.Devices.Tests.Qemu;

namespace Hypervisor.Devices.Tests.Pc;

// What a guest reads from each device right after power-on must be what it reads on QEMU's PC.
public class PowerOnStateTests
{
    // Port 0x61 bit 4 is the refresh toggle: QEMU flips it on every read, we flip it every 15.085 us of machine time
    // as the AT does; it is masked out. Port 0x402 is absent on QEMU without a debugcon there; it is not listed.
    private static readonly (ushort Port, byte Mask)[] Ports =
    [
        (0x92, 0xFF), (0x64, 0xFF), (0x21, 0xFF), (0xA1, 0xFF), (0x3F9, 0xFF), (0x3FA, 0xFF), (0x3FB, 0xFF), (0x3FC, 0xFF),
        (0x3FD, 0xFF), (0x3FE, 0xFF), (0x3FF, 0xFF), (0x61, 0xEF), (0xE9, 0xFF), (0x80, 0xFF), (0x4D0, 0xFF), (0x4D1, 0xFF),
        (0x20, 0xFF), (0xA0, 0xFF), (0x70, 0xFF), (0x60, 0xFF),
    ];

    [Test]
    public void PortsReadLikeQemuAfterPowerOn()
    {
        if (QemuRunner.FindQemu() is null)
        {
            Assert.Ignore("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86); it is the reference here.");
        }

        byte[] qemu = QemuRunner.RunAndCaptureDebugcon(
            QemuRunner.BuildFirmware(QemuRunner.PortDumpCode(Ports.Select(p => p.Port))), "-m 128", serial: "null");
        Assert.That(qemu, Has.Length.EqualTo(Ports.Length));

        using var builder = new VirtualMachineBuilder(new ManualClock(DateTimeOffset.UnixEpoch));
        builder.AddPcDevices(new PcOptions());
        for (int i = 0; i < Ports.Length; i++)
        {
            byte ours = (byte)builder.Ports.Read(Ports[i].Port, 1);
            Assert.That(ours & Ports[i].Mask, Is.EqualTo(qemu[i] & Ports[i].Mask), $"port 0x{Ports[i].Port:X}");
        }
    }
}
