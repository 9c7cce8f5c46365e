using Hypervisor.Core.Io;

namespace Hypervisor.Core.Tests;

public class PortIoBusTests
{
    [Test]
    public void AccessesReachTheDeviceWithRelativeOffsetsAndMaskedValues()
    {
        var bus = new PortIoBus(new IoLock());
        var device = new EchoDevice();
        bus.Register(0x3F8, 8, device, "com1");
        bus.Write(0x3FB, 1, 0x1FF);
        Assert.That(device.Last, Is.EqualTo((3, 1, 0xFFu)));
        Assert.That(bus.Read(0x3FD, 1), Is.EqualTo(0xF0u + 5));
        Assert.That(bus.UnclaimedReadCount + bus.UnclaimedWriteCount, Is.Zero);
    }

    [TestCase(1, 0xFFu)]
    [TestCase(2, 0xFFFFu)]
    [TestCase(4, 0xFFFFFFFFu)]
    public void UnclaimedPortsReadAllOnesAndAreCounted(int size, uint expected)
    {
        var bus = new PortIoBus(new IoLock());
        Assert.That(bus.Read(0x1234, size), Is.EqualTo(expected));
        bus.Write(0x4321, size, 7);
        Assert.That(bus.UnclaimedReadCount, Is.EqualTo(1));
        Assert.That(bus.UnclaimedWriteCount, Is.EqualTo(1));
        Assert.That(bus.LastUnclaimedPort, Is.EqualTo(0x4321));
    }

    [Test]
    public void OverlappingRangesAreRejectedNamingBothDevices()
    {
        var bus = new PortIoBus(new IoLock());
        bus.Register(0x60, 1, new EchoDevice(), "kbd-data");
        bus.Register(0x64, 1, new EchoDevice(), "kbd-status");
        var e = Assert.Throws<HypervisorConfigurationException>(() => bus.Register(0x62, 4, new EchoDevice(), "other"));
        Assert.That(e!.Message, Does.Contain("kbd-status").And.Contain("other"));
        Assert.That(bus.Read(0x62, 1), Is.EqualTo(0xFFu), "a rejected registration must not claim any port");
    }

    [Test]
    public void RangesPastTheLastPortAreRejected()
    {
        var bus = new PortIoBus(new IoLock());
        Assert.Throws<HypervisorConfigurationException>(() => bus.Register(0xFFFF, 2, new EchoDevice(), "edge"));
        Assert.Throws<HypervisorConfigurationException>(() => bus.Register(0x10, 0, new EchoDevice(), "empty"));
    }

    private sealed class EchoDevice : IPortDevice
    {
        public (int Offset, int Size, uint Value) Last { get; private set; }

        public uint Read(ushort offset, int size) => 0xF0u + offset;

        public void Write(ushort offset, int size, uint value) => Last = (offset, size, value);
    }
}
