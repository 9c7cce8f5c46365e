using System.Buffers.Binary;
using System.Text;
using Hypervisor.Core.Io;
using Hypervisor.Core.Memory;
using Hypervisor.Devices.FwCfg;
using Hypervisor.Devices.Tests.Qemu;

namespace Hypervisor.Devices.Tests.FwCfg;

// Interface per QEMU docs/specs/fw_cfg.rst; the basic items are also compared with QEMU itself.
public class FwCfgDeviceTests
{
    private MemoryMap _memory = null!;
    private PortIoBus _bus = null!;
    private FwCfgDevice _fwcfg = null!;

    [SetUp]
    public void SetUp()
    {
        var ioLock = new IoLock();
        _memory = new MemoryMap(ioLock);
        _memory.AddRam(GuestAddress.Zero, 0x10_0000, "ram");
        _bus = new PortIoBus(ioLock);
        _fwcfg = new FwCfgDevice(_memory);
        _bus.Register(FwCfgDevice.ControlPort, 2, _fwcfg.ControlPorts, "fw_cfg");
        _bus.Register(FwCfgDevice.DmaPort, 8, _fwcfg.DmaPorts, "fw_cfg-dma");
    }

    [TearDown]
    public void TearDown() => _memory.Dispose();

    private byte[] ReadItem(ushort key, int length)
    {
        _bus.Write(0x510, 2, key);
        byte[] data = new byte[length];
        for (int i = 0; i < length; i++)
        {
            data[i] = (byte)_bus.Read(0x511, 1);
        }

        return data;
    }

    [Test]
    public void SignatureIdAndDmaSignature()
    {
        Assert.That(Encoding.ASCII.GetString(ReadItem(0, 4)), Is.EqualTo("QEMU"));
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(ReadItem(1, 4)), Is.EqualTo(3u), "traditional interface and DMA");
        byte[] dma = new byte[8];
        for (int i = 0; i < 8; i++)
        {
            dma[i] = (byte)_bus.Read((ushort)(0x514 + i), 1);
        }

        Assert.That(BinaryPrimitives.ReadUInt64BigEndian(dma), Is.EqualTo(0x51454d5520434647UL), "\"QEMU CFG\" in big-endian");
    }

    [Test]
    public void ReadsPastTheEndAreZeroAndSelectingRestarts()
    {
        Assert.That(ReadItem(0, 6), Is.EqualTo("QEMU\0\0"u8.ToArray()));
        Assert.That(ReadItem(0, 2), Is.EqualTo("QE"u8.ToArray()));
        Assert.That(ReadItem(0x1234, 2), Is.EqualTo(new byte[2]), "an absent item reads as zeros");
    }

    [Test]
    public void FileDirectoryListsFilesInNameOrder()
    {
        _fwcfg.AddFile("etc/zzz", [1, 2, 3]);
        _fwcfg.AddFile("etc/aaa", [9]);
        byte[] countBytes = ReadItem(0x19, 4);
        uint count = BinaryPrimitives.ReadUInt32BigEndian(countBytes);
        Assert.That(count, Is.EqualTo(2u));
        byte[] dir = ReadItem(0x19, 4 + 64 * 2);
        var entries = new List<(uint Size, ushort Key, string Name)>();
        for (int i = 0; i < 2; i++)
        {
            ReadOnlySpan<byte> e = dir.AsSpan(4 + 64 * i, 64);
            string name = Encoding.ASCII.GetString(e[8..]).TrimEnd('\0');
            entries.Add((BinaryPrimitives.ReadUInt32BigEndian(e), BinaryPrimitives.ReadUInt16BigEndian(e[4..]), name));
        }

        Assert.That(entries, Is.EqualTo(new[] { (1u, (ushort)0x20, "etc/aaa"), (3u, (ushort)0x21, "etc/zzz") }));
        Assert.That(ReadItem(0x21, 3), Is.EqualTo(new byte[] { 1, 2, 3 }));
    }

    [Test]
    public void E820EntriesArePackedLittleEndian()
    {
        byte[] e820 = FwCfgDevice.BuildE820([(0, 0x800_0000, 1), (0x1_0000_0000, 0x4000_0000, 1)]);
        Assert.That(e820, Has.Length.EqualTo(40));
        Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(e820.AsSpan(20)), Is.EqualTo(0x1_0000_0000UL));
        Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(e820.AsSpan(28)), Is.EqualTo(0x4000_0000UL));
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(e820.AsSpan(36)), Is.EqualTo(1u));
    }

    private void WriteDescriptor(ulong at, uint control, uint length, ulong address)
    {
        byte[] d = new byte[16];
        BinaryPrimitives.WriteUInt32BigEndian(d, control);
        BinaryPrimitives.WriteUInt32BigEndian(d.AsSpan(4), length);
        BinaryPrimitives.WriteUInt64BigEndian(d.AsSpan(8), address);
        _memory.Write(new GuestAddress(at), d);
    }

    private uint ReadControl(ulong at)
    {
        byte[] c = new byte[4];
        _memory.Read(new GuestAddress(at), c);
        return BinaryPrimitives.ReadUInt32BigEndian(c);
    }

    /// <summary>Starts a transfer the way SeaBIOS does: outl(0, 0x514); outl(cpu_to_be32(addr), 0x518).</summary>
    private void Kick(uint descriptorAddress)
    {
        _bus.Write(0x514, 4, 0);
        _bus.Write(0x518, 4, BinaryPrimitives.ReverseEndianness(descriptorAddress));
    }

    [Test]
    public void DmaSelectAndRead()
    {
        _fwcfg.AddFile("etc/test", "hello, firmware"u8);
        int key = _fwcfg.GetFileKey("etc/test");
        WriteDescriptor(0x1000, ((uint)key << 16) | 0x08 | 0x02, 15, 0x2000);
        Kick(0x1000);
        byte[] got = new byte[15];
        _memory.Read(new GuestAddress(0x2000), got);
        Assert.That(Encoding.ASCII.GetString(got), Is.EqualTo("hello, firmware"));
        Assert.That(ReadControl(0x1000), Is.Zero, "done without error");
    }

    [Test]
    public void DmaSkipThenRead()
    {
        _fwcfg.AddFile("etc/test", "0123456789"u8);
        int key = _fwcfg.GetFileKey("etc/test");
        WriteDescriptor(0x1000, ((uint)key << 16) | 0x08 | 0x04, 4, 0);
        Kick(0x1000);
        WriteDescriptor(0x1000, 0x02, 3, 0x2000);
        Kick(0x1000);
        byte[] got = new byte[3];
        _memory.Read(new GuestAddress(0x2000), got);
        Assert.That(Encoding.ASCII.GetString(got), Is.EqualTo("456"));
    }

    [Test]
    public void DmaOutsideRamSetsTheErrorBit()
    {
        WriteDescriptor(0x1000, 0x08 | 0x02, 16, 0xFFF_0000);
        Kick(0x1000);
        Assert.That(ReadControl(0x1000) & 1, Is.EqualTo(1u));
        WriteDescriptor(0x1000, 0x10, 4, 0x2000); // write: refused
        Kick(0x1000);
        Assert.That(ReadControl(0x1000) & 1, Is.EqualTo(1u));
        Assert.That(_fwcfg.DmaErrorCount, Is.EqualTo(2));
        Assert.DoesNotThrow(() => Kick(0xFFFF_0000), "a descriptor outside RAM is dropped, not thrown");
    }

    /// <summary>Real-mode code that selects each key and copies the given number of data bytes to port 0xE9.</summary>
    private static byte[] DumpItemsCode(IEnumerable<(ushort Key, ushort Length)> items)
    {
        var code = new List<byte>();
        foreach ((ushort key, ushort length) in items)
        {
            code.AddRange([0xB8, (byte)key, (byte)(key >> 8)]);      // mov ax, key
            code.AddRange([0xBA, 0x10, 0x05, 0xEF]);                  // mov dx, 0x510; out dx, ax
            code.Add(0x42);                                           // inc dx
            code.AddRange([0xB9, (byte)length, (byte)(length >> 8)]); // mov cx, length
            code.AddRange([0xEC, 0xE6, 0xE9, 0xE2, 0xFB]);            // l: in al, dx; out 0xe9, al; loop l
        }

        code.AddRange([0xBA, 0x01, 0x05, 0xB0, 0x00, 0xEE, 0xF4]);    // isa-debug-exit
        return code.ToArray();
    }

    // QEMU's isapc (the machine our PC layout resembles: no PCI) at 128 MiB: the files we also provide must have the
    // same contents. The test asks QEMU for its directory first, then for the files by the keys it found there.
    [TestCase("etc/e820")]
    [TestCase("etc/boot-fail-wait")]
    public void FilesMatchQemu(string name)
    {
        if (QemuRunner.FindQemu() is null)
        {
            Assert.Ignore("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86); it is the reference here.");
        }

        const string machine = "-M isapc -m 128";
        byte[] dir = QemuRunner.RunAndCaptureDebugcon(QemuRunner.BuildFirmware(DumpItemsCode([(0x19, 4 + 64 * 32)])), machine);
        int count = (int)BinaryPrimitives.ReadUInt32BigEndian(dir);
        (ushort Key, int Size)? found = null;
        for (int i = 0; i < Math.Min(count, 32); i++)
        {
            ReadOnlySpan<byte> e = dir.AsSpan(4 + 64 * i, 64);
            if (Encoding.ASCII.GetString(e[8..]).TrimEnd('\0') == name)
            {
                found = (BinaryPrimitives.ReadUInt16BigEndian(e[4..]), (int)BinaryPrimitives.ReadUInt32BigEndian(e));
            }
        }

        Assert.That(found, Is.Not.Null, $"QEMU provides {name}");
        byte[] qemu = QemuRunner.RunAndCaptureDebugcon(
            QemuRunner.BuildFirmware(DumpItemsCode([(found!.Value.Key, (ushort)found.Value.Size)])), machine);

        using var builder = new Core.Machine.VirtualMachineBuilder(new Core.Timing.ManualClock(DateTimeOffset.UnixEpoch));
        PcDevices pc = builder.AddPcDevices(new PcOptions { MemorySizeInBytes = 128UL << 20 });
        int key = pc.FwCfg.GetFileKey(name);
        Assert.That(pc.FwCfg.GetItem((ushort)key).ToArray(), Is.EqualTo(qemu));
    }

    [Test]
    public void BasicItemsMatchQemu()
    {
        if (QemuRunner.FindQemu() is null)
        {
            Assert.Ignore("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86); it is the reference here.");
        }

        // Dump key 0 (4 bytes), key 1 (4), key 3 (8), key 5 (2) through the data port.
        var code = new List<byte>();
        foreach ((ushort key, ushort length) in new (ushort, ushort)[] { (0, 4), (1, 4), (3, 8), (5, 2) })
        {
            code.AddRange([0xB8, (byte)key, (byte)(key >> 8)]);      // mov ax, key
            code.AddRange([0xBA, 0x10, 0x05, 0xEF]);                  // mov dx, 0x510; out dx, ax
            code.Add(0x42);                                           // inc dx
            code.AddRange([0xB9, (byte)length, (byte)(length >> 8)]); // mov cx, length
            code.AddRange([0xEC, 0xE6, 0xE9, 0xE2, 0xFB]);            // l: in al, dx; out 0xe9, al; loop l
        }

        code.AddRange([0xBA, 0x01, 0x05, 0xB0, 0x00, 0xEE, 0xF4]);    // isa-debug-exit
        byte[] qemu = QemuRunner.RunAndCaptureDebugcon(QemuRunner.BuildFirmware(code.ToArray()), "-m 128 -smp 2");

        var ours = new FwCfgDevice(_memory);
        Span<byte> ram = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(ram, 128UL << 20);
        ours.SetItem(FwCfgDevice.RamSizeKey, ram);
        ours.SetItem(FwCfgDevice.CpuCountKey, [2, 0]);
        byte[] expected = [.. ours.GetItem(0), .. ours.GetItem(1), .. ours.GetItem(3), .. ours.GetItem(5)];
        Assert.That(qemu, Is.EqualTo(expected));
    }
}
