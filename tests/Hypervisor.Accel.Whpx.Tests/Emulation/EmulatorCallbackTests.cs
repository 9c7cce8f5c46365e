using Hypervisor.Accel.Whpx.Interop;
using Hypervisor.Core.Io;
using Hypervisor.Core.Memory;

namespace Hypervisor.Accel.Whpx.Tests.Emulation;

/// <summary>
/// The <c>[UnmanagedCallersOnly]</c> emulator callbacks, called through the very function pointers handed to
/// WinHvEmulation.dll, against the core's real memory map and port bus. (The emulator itself needs Windows; these
/// tests cover our side of the contract: what a callback does with a <c>WHV_EMULATOR_*_ACCESS_INFO</c>.)
/// </summary>
[TestFixture]
public sealed unsafe class EmulatorCallbackTests
{
    private IoLock _ioLock = null!;
    private MemoryMap _memory = null!;
    private PortIoBus _ports = null!;
    private RecordingDevice _device = null!;
    private WhpxEmulatorContext _context = null!;
    private WHV_EMULATOR_CALLBACKS _table;

    [SetUp]
    public void SetUp()
    {
        _ioLock = new IoLock();
        _memory = new MemoryMap(_ioLock);
        _ports = new PortIoBus(_ioLock);
        _device = new RecordingDevice();
        _memory.AddRam(GuestAddress.Zero, 0x10000, "ram");
        _memory.AddMmio(new GuestAddress(0x10000), 0x1000, _device, "mmio");
        _memory.AddRom(new GuestAddress(0xF0000), [0x90, 0x90, 0xF4, 0xEB], "rom");
        _ports.Register(0x3F8, 8, _device, "uart");
        _context = new WhpxEmulatorContext(_ports, _memory, target: null);
        _table = WhpxEmulatorCallbacks.Table;
    }

    [TearDown]
    public void TearDown()
    {
        _context.Dispose();
        _memory.Dispose();
    }

    private int Io(ref WHV_EMULATOR_IO_ACCESS_INFO info)
    {
        fixed (WHV_EMULATOR_IO_ACCESS_INFO* p = &info)
        {
            return _table.WHvEmulatorIoPortCallback((void*)_context.Handle, p);
        }
    }

    private int Mem(ref WHV_EMULATOR_MEMORY_ACCESS_INFO info)
    {
        fixed (WHV_EMULATOR_MEMORY_ACCESS_INFO* p = &info)
        {
            return _table.WHvEmulatorMemoryCallback((void*)_context.Handle, p);
        }
    }

    private static WHV_EMULATOR_MEMORY_ACCESS_INFO MemAccess(ulong gpa, bool write, ReadOnlySpan<byte> data)
    {
        var info = new WHV_EMULATOR_MEMORY_ACCESS_INFO { GpaAddress = gpa, Direction = (byte)(write ? 1 : 0), AccessSize = (byte)data.Length };
        data.CopyTo(new Span<byte>(info.Data, 8));
        return info;
    }

    private static byte[] DataOf(in WHV_EMULATOR_MEMORY_ACCESS_INFO info, int size)
    {
        fixed (byte* d = info.Data)
        {
            return new ReadOnlySpan<byte>(d, size).ToArray();
        }
    }

    [Test]
    public void OutReachesThePortDeviceAtItsOffset()
    {
        var info = new WHV_EMULATOR_IO_ACCESS_INFO { Direction = 1, Port = 0x3FB, AccessSize = 1, Data = 0x83 };

        int hr = Io(ref info);

        Assert.Multiple(() =>
        {
            Assert.That(hr, Is.Zero);
            Assert.That(_device.Log, Is.EqualTo(new[] { "port-write 3+1=83" }));
        });
    }

    [Test]
    public void InReturnsTheDevicesValueInData()
    {
        _device.ReadValue = 0x1234_5660;
        var info = new WHV_EMULATOR_IO_ACCESS_INFO { Direction = 0, Port = 0x3FD, AccessSize = 1, Data = 0xFFFF_FFFF };

        int hr = Io(ref info);

        Assert.Multiple(() =>
        {
            Assert.That(hr, Is.Zero);
            Assert.That(info.Data, Is.EqualTo(0x60), "an IN of one byte is the device's low byte, zero-extended");
            Assert.That(_device.Log, Is.EqualTo(new[] { "port-read 5+1" }));
        });
    }

    [Test]
    public void InFromAnUnclaimedPortReadsAllOnesAndIsCounted()
    {
        var info = new WHV_EMULATOR_IO_ACCESS_INFO { Direction = 0, Port = 0x80, AccessSize = 2 };

        Assert.Multiple(() =>
        {
            Assert.That(Io(ref info), Is.Zero);
            Assert.That(info.Data, Is.EqualTo(0xFFFF));
            Assert.That(_ports.UnclaimedReadCount, Is.EqualTo(1));
        });
    }

    [Test]
    public void RamIsReadAndWrittenDirectly()
    {
        _memory.Write(new GuestAddress(0x1000), [1, 2, 3, 4, 5, 6, 7, 8]);
        var read = MemAccess(0x1002, write: false, new byte[4]);
        var write = MemAccess(0x2000, write: true, [0xAA, 0xBB]);

        int hrRead = Mem(ref read);
        int hrWrite = Mem(ref write);
        var back = new byte[2];
        _memory.Read(new GuestAddress(0x2000), back);

        Assert.Multiple(() =>
        {
            Assert.That((hrRead, hrWrite), Is.EqualTo((0, 0)));
            Assert.That(DataOf(read, 4), Is.EqualTo(new byte[] { 3, 4, 5, 6 }));
            Assert.That(back, Is.EqualTo(new byte[] { 0xAA, 0xBB }));
            Assert.That(_device.Log, Is.Empty);
        });
    }

    [Test]
    public void RomIgnoresWritesAndCountsThem()
    {
        var write = MemAccess(0xF0000, write: true, [0, 0, 0, 0]);
        var read = MemAccess(0xF0000, write: false, new byte[4]);

        int hr = Mem(ref write);
        Mem(ref read);

        Assert.Multiple(() =>
        {
            Assert.That(hr, Is.Zero);
            Assert.That(DataOf(read, 4), Is.EqualTo(new byte[] { 0x90, 0x90, 0xF4, 0xEB }));
            Assert.That(_memory.UnclaimedAccessCount, Is.EqualTo(1));
        });
    }

    [Test]
    public void MmioGoesToTheDeviceWithOffsetAndSize()
    {
        _device.ReadValue = 0x1122_3344_5566_7788;
        var read = MemAccess(0x10030, write: false, new byte[4]);
        var write = MemAccess(0x10008, write: true, [0xEF, 0xBE, 0xAD, 0xDE, 0x01, 0, 0, 0]);

        Mem(ref read);
        Mem(ref write);

        Assert.Multiple(() =>
        {
            Assert.That(DataOf(read, 4), Is.EqualTo(new byte[] { 0x88, 0x77, 0x66, 0x55 }));
            Assert.That(_device.Log, Is.EqualTo(new[] { "mmio-read 30+4", "mmio-write 8+8=1DEADBEEF" }));
        });
    }

    [Test]
    public void AnAccessStraddlingRamAndMmioIsSplitByOwner()
    {
        var write = MemAccess(0xFFFE, write: true, [0x11, 0x22, 0x33, 0x44]);

        Mem(ref write);
        var ram = new byte[2];
        _memory.Read(new GuestAddress(0xFFFE), ram);

        Assert.Multiple(() =>
        {
            Assert.That(ram, Is.EqualTo(new byte[] { 0x11, 0x22 }));
            Assert.That(_device.Log, Is.EqualTo(new[] { "mmio-write 0+1=33", "mmio-write 1+1=44" }));
        });
    }

    [Test]
    public void ADeviceExceptionBecomesEFailAndIsRethrownOnTheVcpuThread()
    {
        _device.Throw = new InvalidOperationException("device broke");
        var info = new WHV_EMULATOR_IO_ACCESS_INFO { Direction = 1, Port = 0x3F8, AccessSize = 1 };

        int hr = Io(ref info);

        Assert.Multiple(() =>
        {
            Assert.That(hr, Is.EqualTo(unchecked((int)0x80004005)), "E_FAIL");
            Assert.That(() => _context.ThrowIfCallbackFailed(), Throws.InvalidOperationException.With.Message.EqualTo("device broke"));
            Assert.That(() => _context.ThrowIfCallbackFailed(), Throws.Nothing, "a failure is reported once");
        });
    }

    [Test]
    public void RegisterCallbacksWithoutAVirtualProcessorReportNotImplemented()
    {
        WHV_REGISTER_NAME name = WHV_REGISTER_NAME.WHvX64RegisterRax;
        WHV_REGISTER_VALUE value = default;

        int hr = _table.WHvEmulatorGetVirtualProcessorRegisters((void*)_context.Handle, &name, 1, &value);

        Assert.That(hr, Is.EqualTo(unchecked((int)0x80004001)), "E_NOTIMPL");
    }

    private sealed class RecordingDevice : IPortDevice, IMmioDevice
    {
        public List<string> Log { get; } = [];

        public ulong ReadValue { get; set; }

        public Exception? Throw { get; set; }

        public uint Read(ushort offset, int size)
        {
            Check();
            Log.Add($"port-read {offset:X}+{size}");
            return (uint)ReadValue;
        }

        public void Write(ushort offset, int size, uint value)
        {
            Check();
            Log.Add($"port-write {offset:X}+{size}={value:X}");
        }

        public ulong Read(ulong offset, int size)
        {
            Check();
            Log.Add($"mmio-read {offset:X}+{size}");
            return ReadValue;
        }

        public void Write(ulong offset, int size, ulong value)
        {
            Check();
            Log.Add($"mmio-write {offset:X}+{size}={value:X}");
        }

        private void Check()
        {
            if (Throw is not null)
            {
                throw Throw;
            }
        }
    }
}
