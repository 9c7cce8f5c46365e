using Hypervisor.Core.Io;
using Hypervisor.Core.Machine;
using Hypervisor.Devices.DebugExit;
using Hypervisor.Devices.Tests.Fakes;

namespace Hypervisor.Devices.Tests.DebugExit;

public class DebugExitDeviceTests
{
    // QEMU's isa-debug-exit computes exit((val << 1) | 1) from the value written (guest-contract.md).
    [TestCase(0u, 1, 1)]
    [TestCase(0x10u, 1, 0x21)]
    [TestCase(0x31u, 1, 0x63)]
    [TestCase(0x1234u, 2, 0x2469)]
    [TestCase(0x1FFu, 1, 0x1FF)] // an 8-bit OUT carries only 0xFF
    public void WriteStopsTheMachineWithQemuStatus(uint value, int size, int expected)
    {
        var control = new RecordingMachineControl();
        var bus = new PortIoBus(new IoLock());
        var device = new DebugExitDevice(control);
        bus.Register(DebugExitDevice.DefaultPort, DebugExitDevice.PortCount, device, "isa-debug-exit");

        bus.Write(DebugExitDevice.DefaultPort, size, value);

        Assert.That(control.Stops, Has.Count.EqualTo(1));
        Assert.That(control.Stops[0].Reason, Is.EqualTo(MachineStopReason.DebugExit));
        Assert.That(control.Stops[0].Status, Is.EqualTo(expected));
        Assert.That(device.LastExitStatus, Is.EqualTo(expected));
    }

    [Test]
    public void SecondPortAlsoExitsAndReadsAreAllOnes()
    {
        var control = new RecordingMachineControl();
        var device = new DebugExitDevice(control);
        Assert.That(device.Read(0, 1), Is.EqualTo(0xFFu));
        Assert.That(control.Stops, Is.Empty);
        device.Write(1, 1, 3);
        Assert.That(control.Stops.Single().Status, Is.EqualTo(7));
    }
}
