using System.Buffers.Binary;
using Hypervisor.Core;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Memory;
using Hypervisor.Core.Timing;

namespace Hypervisor.Devices.Tests.Pc;

// The wiring is checked against guest-contract.md's table of ports and IRQs, through the port bus as a guest sees it.
public class PcLayoutTests
{
    private VirtualMachineBuilder _builder = null!;
    private ManualClock _clock = null!;
    private MemoryStream _serial = null!;
    private PcDevices _pc = null!;

    [SetUp]
    public void SetUp()
    {
        _clock = new ManualClock(new DateTimeOffset(2025, 6, 7, 8, 9, 10, TimeSpan.Zero));
        _builder = new VirtualMachineBuilder(_clock);
        _serial = new MemoryStream();
        _pc = _builder.AddPcDevices(new PcOptions { SerialOutput = _serial, VcpuCount = 2 });
    }

    [TearDown]
    public void TearDown() => _builder.Dispose();

    private void Out(ushort port, int value) => _builder.Ports.Write(port, 1, (uint)value);

    private byte In(ushort port) => (byte)_builder.Ports.Read(port, 1);

    private void InitPic()
    {
        Out(0x20, 0x11); Out(0x21, 0x08); Out(0x21, 0x04); Out(0x21, 0x01);
        Out(0xA0, 0x11); Out(0xA1, 0x70); Out(0xA1, 0x02); Out(0xA1, 0x01);
    }

    [Test]
    public void PortsOfTheGuestContract()
    {
        var ranges = _builder.Ports.Ranges.Select(r => (r.First, r.Count)).ToHashSet();
        (ushort, int)[] expected =
        [
            (0x3F8, 8), (0x501, 2), (0x402, 1), (0xE9, 1), (0x80, 1), (0x20, 2), (0xA0, 2), (0x40, 4), (0x61, 1),
            (0x70, 2), (0x60, 1), (0x64, 1), (0x92, 1), (0x4D0, 2), (0x510, 2), (0x514, 8),
        ];
        Assert.That(ranges, Is.SupersetOf(expected));
        Assert.That(_builder.InterruptSource, Is.SameAs(_pc.Pic));
        Assert.That(_builder.VcpuCount, Is.EqualTo(2));
        Assert.That(_builder.Devices, Does.Contain(_pc.Com1));
    }

    [Test]
    public void UnclaimedPortsReadAllOnesAndAreCounted()
    {
        Assert.That(_builder.Ports.Read(0x3F0, 1), Is.EqualTo(0xFFu));
        Assert.That(_builder.Ports.UnclaimedReadCount, Is.EqualTo(1));
    }

    [Test]
    public void Com1OutputAndIrq4()
    {
        InitPic();
        foreach (char c in "OK\n")
        {
            Out(0x3F8, c);
        }

        Assert.That(_serial.ToArray(), Is.EqualTo("OK\n"u8.ToArray()));
        Out(0x3F9, 0x02); // THRE interrupt
        Assert.That(_pc.Pic.AcknowledgeInterrupt(), Is.EqualTo(0x08 + 4));
    }

    [Test]
    public void PitOnIrq0()
    {
        InitPic();
        Out(0x43, 0x34);
        Out(0x40, 0xA9);
        Out(0x40, 0x04);
        Assert.That(_pc.Pic.HasPendingInterrupt, Is.False, "OUT was already high (power-on mode 3): no edge yet");
        _clock.Advance(1_000_000);
        _builder.Timers.RunDue();
        Assert.That(_pc.Pic.AcknowledgeInterrupt(), Is.EqualTo(0x08));
    }

    [Test]
    public void RtcOnIrq8AndMemoryBytes()
    {
        InitPic();
        Out(0x21, 0x01); // mask the PIT, which runs from power-on
        Out(0x70, 0x0B);
        Out(0x71, 0x12); // UIE
        _clock.Advance(1_000_000_000);
        _builder.Timers.RunDue();
        Assert.That(_pc.Pic.AcknowledgeInterrupt(), Is.EqualTo(0x70));
        Out(0x70, 0x34);
        byte lo = In(0x71);
        Out(0x70, 0x35);
        byte hi = In(0x71);
        Assert.That(lo | (hi << 8), Is.EqualTo((128 - 16) * 16), "64 KiB units above 16 MiB");
        Out(0x70, 0x5F);
        Assert.That(In(0x71), Is.EqualTo(1), "two CPUs");
    }

    [Test]
    public void DebugExitDebugConAndPost()
    {
        Out(0x402, 'A');
        Out(0xE9, 'B');
        Assert.That(_pc.DebugCon.GetBufferedText(), Is.EqualTo("AB"));
        Out(0x80, 0x42);
        Assert.That(_pc.Post.LastCode, Is.EqualTo(0x42));
        Out(0x501, 0x10);
        Assert.That(_pc.DebugExit.LastExitStatus, Is.EqualTo(0x21));
    }

    [Test]
    public void FwCfgDescribesTheMachine()
    {
        _builder.Ports.Write(0x510, 2, 0x03);
        ulong ram = 0;
        for (int i = 0; i < 8; i++)
        {
            ram |= (ulong)In(0x511) << (8 * i);
        }

        Assert.That(ram, Is.EqualTo(128UL << 20));
        int key = _pc.FwCfg.GetFileKey("etc/e820");
        Assert.That(key, Is.GreaterThanOrEqualTo(0x20));
        _builder.Ports.Write(0x510, 2, (uint)key);
        byte[] e820 = new byte[20];
        for (int i = 0; i < 20; i++)
        {
            e820[i] = In(0x511);
        }

        Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(e820), Is.Zero);
        Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(e820.AsSpan(8)), Is.EqualTo(128UL << 20));
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(e820.AsSpan(16)), Is.EqualTo(1u));
    }

    [Test]
    public void FirmwareIsMappedBelow4GiBAndItsTailBelow1MiB()
    {
        using var builder = new VirtualMachineBuilder(_clock);
        byte[] image = new byte[256 * 1024];
        image[^16] = 0xEA; // the reset vector's first byte
        builder.AddPcDevices(new PcOptions { Firmware = image, MemorySizeInBytes = 16 << 20 });
        byte[] b = new byte[1];
        builder.Memory.Read(new GuestAddress(0xFFFF_FFF0), b);
        Assert.That(b[0], Is.EqualTo(0xEA));
        builder.Memory.Read(new GuestAddress(0xFFFF0), b);
        Assert.That(b[0], Is.EqualTo(0xEA));
        Assert.DoesNotThrow(() => builder.Memory.Write(new GuestAddress(0xE0000), [1]), "the low copy is writable (SeaBIOS keeps data there)");
        Assert.That(() => builder.Memory.Write(new GuestAddress(0xFFFE0000), [1]), Throws.InstanceOf<MemoryMapException>(), "the top copy is ROM");
    }

    [Test]
    public void ReadOnlyLowFirmwareOnRequest()
    {
        using var builder = new VirtualMachineBuilder(_clock);
        builder.AddPcDevices(new PcOptions { Firmware = new byte[64 * 1024], WritableLowFirmware = false });
        Assert.That(() => builder.Memory.Write(new GuestAddress(0xF0000), [1]), Throws.InstanceOf<MemoryMapException>());
    }

    [Test]
    public void FirmwareFilesAsQemuProvidesThem()
    {
        Assert.That(_pc.FwCfg.FileNames, Is.EquivalentTo(new[] { "etc/boot-fail-wait", "etc/e820", "etc/sercon-port" }));
        Assert.That(_pc.FwCfg.GetItem((ushort)_pc.FwCfg.GetFileKey("etc/sercon-port")).ToArray(), Is.EqualTo(new byte[] { 0xF8, 0x03 }));
        Assert.That(_pc.FwCfg.GetItem((ushort)_pc.FwCfg.GetFileKey("etc/boot-fail-wait")).ToArray(), Is.EqualTo(new byte[] { 0xFF, 0xFF, 0xFF, 0xFF }));
    }

    [Test]
    public void BadOptionsAreRejectedClearly()
    {
        using var builder = new VirtualMachineBuilder(_clock);
        Assert.That(() => builder.AddPcDevices(new PcOptions { Firmware = new byte[1000] }), Throws.TypeOf<GuestImageException>());
        Assert.That(() => builder.AddPcDevices(new PcOptions { VcpuCount = 0 }), Throws.TypeOf<HypervisorConfigurationException>());
        Assert.That(builder.Memory.Regions, Is.Empty, "nothing half-built");
    }

    [Test]
    public void ANullByteArrayMeansNoFirmware()
    {
        using var builder = new VirtualMachineBuilder(_clock);
        byte[]? none = null;
        builder.AddPcDevices(new PcOptions { Firmware = none });
        Assert.That(builder.Memory.Regions.Select(r => r.Name), Has.None.StartsWith("firmware"));
    }

    [Test]
    public void MoreSerialPortsCanBeAdded()
    {
        var com2Out = new MemoryStream();
        var com2 = _builder.AddSerialPort(_pc.Pic, 0x2F8, 3, com2Out);
        Out(0x2F8, 'x');
        Assert.That(com2Out.ToArray(), Is.EqualTo("x"u8.ToArray()));
        Assert.That(_builder.Devices, Does.Contain(com2));
    }
}
