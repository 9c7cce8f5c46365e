using Hypervisor.Core.Io;
using Hypervisor.Core.Timing;
using Hypervisor.Devices.Bus;
using Hypervisor.Devices.Rtc;
using Hypervisor.Devices.Tests.Fakes;
using Hypervisor.Devices.Tests.Qemu;

namespace Hypervisor.Devices.Tests.Rtc;

// Register formats and interrupt rules per the MC146818A data sheet; memory-size bytes compared with QEMU itself.
public class CmosRtcTests
{
    private ManualClock _clock = null!;
    private TimerQueue _timers = null!;
    private RecordingInterruptLine _irq = null!;
    private CmosRtc _rtc = null!;
    private PortIoBus _bus = null!;

    private void Create(DateTimeOffset start)
    {
        var ioLock = new IoLock();
        _clock = new ManualClock(start);
        _timers = new TimerQueue(_clock, ioLock);
        _irq = new RecordingInterruptLine();
        _rtc = new CmosRtc(_clock, _timers, _irq);
        _bus = new PortIoBus(ioLock);
        _bus.Register(CmosRtc.BasePort, CmosRtc.PortCount, new BytePortAdapter(_rtc, 2), "rtc");
    }

    private byte Read(int index)
    {
        _bus.Write(0x70, 1, (uint)index);
        return (byte)_bus.Read(0x71, 1);
    }

    private void Write(int index, int value)
    {
        _bus.Write(0x70, 1, (uint)index);
        _bus.Write(0x71, 1, (uint)value);
    }

    private void Advance(long ns)
    {
        _clock.Advance(ns);
        _timers.RunDue();
    }

    private byte[] ReadTime() => [Read(0), Read(2), Read(4), Read(6), Read(7), Read(8), Read(9), Read(0x32)];

    [Test]
    public void PowerOnRegistersMatchQemu()
    {
        Create(DateTimeOffset.UnixEpoch);
        Assert.That(Read(0x0A) & 0x7F, Is.EqualTo(0x26));
        Assert.That(Read(0x0B), Is.EqualTo(0x02));
        Assert.That(Read(0x0C), Is.Zero);
        Assert.That(Read(0x0D), Is.EqualTo(0x80));
    }

    [Test]
    public void TimeInBcdRollsOverALeapDay()
    {
        Create(new DateTimeOffset(2024, 2, 29, 23, 59, 58, TimeSpan.Zero));
        Assert.That(ReadTime(), Is.EqualTo(new byte[] { 0x58, 0x59, 0x23, 5, 0x29, 0x02, 0x24, 0x20 }), "Thursday = 5 (Sunday = 1)");
        Advance(2_000_000_000);
        Assert.That(ReadTime(), Is.EqualTo(new byte[] { 0x00, 0x00, 0x00, 6, 0x01, 0x03, 0x24, 0x20 }));
    }

    [Test]
    public void BinaryAnd12HourModes()
    {
        Create(new DateTimeOffset(1999, 12, 31, 23, 5, 9, TimeSpan.Zero));
        Write(0x0B, 0x04); // binary, 12-hour
        Assert.That(ReadTime(), Is.EqualTo(new byte[] { 9, 5, 0x80 | 11, 6, 31, 12, 99, 19 }));
        Write(0x0B, 0x00); // BCD, 12-hour
        Assert.That(Read(4), Is.EqualTo(0x80 | 0x11));
    }

    [Test]
    public void GuestSetsTheTimeWithSet()
    {
        Create(new DateTimeOffset(2020, 1, 1, 0, 0, 0, TimeSpan.Zero));
        Write(0x0B, 0x82); // SET, 24-hour BCD
        Write(0, 0x05); Write(2, 0x04); Write(4, 0x03); Write(7, 0x02); Write(8, 0x01); Write(9, 0x30); Write(0x32, 0x20);
        Advance(5_000_000_000);
        Assert.That(Read(0), Is.EqualTo(0x05), "SET stops the clock");
        Write(0x0B, 0x02);
        Advance(1_000_000_000);
        Assert.That(ReadTime(), Is.EqualTo(new byte[] { 0x06, 0x04, 0x03, 4, 0x02, 0x01, 0x30, 0x20 }), "2030-01-02 was a Wednesday");
        Assert.That(_rtc.CurrentTime, Is.EqualTo(new DateTime(2030, 1, 2, 3, 4, 6, DateTimeKind.Utc)));
    }

    [Test]
    public void UpdateInProgressIsSetIn244MicrosecondsBeforeTheUpdate()
    {
        Create(DateTimeOffset.UnixEpoch);
        Advance(999_700_000);
        Assert.That(Read(0x0A) & 0x80, Is.Zero);
        Advance(100_000); // 999.8 ms: within 244 us of the next second
        Assert.That(Read(0x0A) & 0x80, Is.EqualTo(0x80));
        Advance(300_000);
        Assert.That(Read(0x0A) & 0x80, Is.Zero);
    }

    [Test]
    public void PeriodicInterruptAt1024Hz()
    {
        Create(DateTimeOffset.UnixEpoch);
        Write(0x0B, 0x42); // PIE
        int interrupts = 0;
        for (int step = 0; step < 10_000; step++)
        {
            Advance(100_000);
            if (_irq.Level)
            {
                byte c = Read(0x0C);
                Assert.That(c & 0xC0, Is.EqualTo(0xC0));
                interrupts++;
                Assert.That(_irq.Level, Is.False, "reading C lowers IRQ 8");
            }
        }

        Assert.That(interrupts, Is.EqualTo(1024), "RS = 6: 2^5 / 32768 s = 976.5625 us");
    }

    [TestCase(0x23, 8192)]
    [TestCase(0x2F, 2)]
    [TestCase(0x21, 256)]
    public void PeriodicRates(int registerA, int perSecond)
    {
        Create(DateTimeOffset.UnixEpoch);
        Write(0x0A, registerA);
        Write(0x0B, 0x42);
        Assert.That(_timers.NextDeadline, Is.EqualTo((long)Math.Ceiling(1e9 / perSecond)));
    }

    [Test]
    public void UpdateEndedInterruptEverySecond()
    {
        Create(DateTimeOffset.UnixEpoch.AddMilliseconds(300));
        Write(0x0B, 0x12); // UIE
        Advance(600_000_000);
        Assert.That(_irq.Level, Is.False);
        Advance(200_000_000);
        Assert.That(_irq.Level, Is.True);
        Assert.That(Read(0x0C) & 0xB0, Is.EqualTo(0x90), "IRQF and UF (PF runs on its own, independent of PIE)");
    }

    [Test]
    public void AlarmFiresAtTheProgrammedTime()
    {
        Create(new DateTimeOffset(2024, 5, 6, 7, 8, 9, TimeSpan.Zero));
        Write(1, 0x12); Write(3, 0x08); Write(5, 0x07); // 07:08:12
        Write(0x0B, 0x22); // AIE
        Advance(2_500_000_000);
        Assert.That(_irq.Level, Is.False);
        Advance(1_000_000_000);
        Assert.That(_irq.Level, Is.True);
        Assert.That(Read(0x0C) & 0xA0, Is.EqualTo(0xA0));
    }

    [Test]
    public void AlarmDontCareMatchesEverySecond()
    {
        Create(DateTimeOffset.UnixEpoch);
        Write(1, 0xC0); Write(3, 0xFF); Write(5, 0xC5);
        Write(0x0B, 0x22);
        int alarms = 0;
        for (int i = 0; i < 5; i++)
        {
            Advance(1_000_000_000);
            if ((Read(0x0C) & 0x20) != 0)
            {
                alarms++;
            }
        }

        Assert.That(alarms, Is.EqualTo(5));
    }

    [Test]
    public void NmiMaskBitAndRam()
    {
        Create(DateTimeOffset.UnixEpoch);
        _bus.Write(0x70, 1, 0x80 | 0x40);
        Assert.That(_rtc.NmiMasked, Is.True);
        _bus.Write(0x71, 1, 0xA5);
        _bus.Write(0x70, 1, 0x40);
        Assert.That(_rtc.NmiMasked, Is.False);
        Assert.That(_bus.Read(0x71, 1), Is.EqualTo(0xA5u));
    }

    [Test]
    public void MemoryAbove4GiBIn64KiBUnits()
    {
        Create(DateTimeOffset.UnixEpoch);
        _rtc.SetMemoryLayout(0xE000_0000, 0x4000_0000, 4);
        // QEMU's formulas (hw/i386/pc.c): (3.5 GiB - 16 MiB) / 64 KiB = 0xDF00; 1 GiB / 64 KiB = 0x4000; CPUs - 1.
        Assert.That(new[] { Read(0x34), Read(0x35) }, Is.EqualTo(new byte[] { 0x00, 0xDF }));
        Assert.That(new[] { Read(0x5B), Read(0x5C), Read(0x5D) }, Is.EqualTo(new byte[] { 0x00, 0x40, 0x00 }));
        Assert.That(new[] { Read(0x17), Read(0x18), Read(0x30), Read(0x31) }, Is.EqualTo(new byte[] { 0xFF, 0xFF, 0xFF, 0xFF }));
        Assert.That(Read(0x5F), Is.EqualTo(3));
    }

    // QEMU's RTC started at a given date (-rtc base=..., clock=vm so host load cannot move it) must show the same
    // registers as ours started at that date, in BCD/24-hour (power-on) and after switching to binary/12-hour.
    [TestCase("2024-02-29T23:59:58", (byte)0x02)]
    [TestCase("1999-12-31T13:05:09", (byte)0x04)]
    [TestCase("2038-01-19T03:14:07", (byte)0x00)]
    public void TimeRegistersMatchQemu(string start, byte registerB)
    {
        if (QemuRunner.FindQemu() is null)
        {
            Assert.Ignore("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86); it is the reference here.");
        }

        byte[] indices = [0x00, 0x02, 0x04, 0x06, 0x07, 0x08, 0x09, 0x32, 0x0B];
        byte[] code = QemuRunner.CmosWriteThenReadCode([(0x0B, registerB)], indices);
        byte[] qemu = QemuRunner.RunAndCaptureDebugcon(QemuRunner.BuildFirmware(code), $"-m 16 -rtc base={start},clock=vm");

        Create(new DateTimeOffset(DateTime.Parse(start, System.Globalization.CultureInfo.InvariantCulture), TimeSpan.Zero));
        Write(0x0B, registerB);
        byte[] ours = indices.Select(i => Read(i)).ToArray();
        Assert.That(ours, Is.EqualTo(qemu));
    }

    // QEMU 7.2 'pc' machine, RAM sizes below 3.5 GiB (where QEMU and our layout put all RAM below 4 GiB).
    [TestCase(128, 1)]
    [TestCase(20, 1)]
    [TestCase(1024, 2)]
    [TestCase(3000, 4)]
    public void MemoryBytesMatchQemu(int megabytes, int cpus)
    {
        if (QemuRunner.FindQemu() is null)
        {
            Assert.Ignore("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86); it is the reference here.");
        }

        byte[] qemu = QemuRunner.RunAndCaptureDebugcon(QemuRunner.BuildFirmware(QemuRunner.CmosDumpCode()), $"-m {megabytes} -smp {cpus}");
        Assert.That(qemu, Has.Length.EqualTo(128), "QEMU dumped the whole CMOS");

        Create(DateTimeOffset.UnixEpoch);
        _rtc.SetMemoryLayout((ulong)megabytes * 1024 * 1024, 0, cpus);
        int[] indices = [0x0A, 0x0B, 0x0D, 0x15, 0x16, 0x17, 0x18, 0x2E, 0x2F, 0x30, 0x31, 0x34, 0x35, 0x5B, 0x5C, 0x5D, 0x5F];
        foreach (int i in indices)
        {
            Assert.That(Read(i) & (i == 0x0A ? 0x7F : 0xFF), Is.EqualTo(qemu[i] & (i == 0x0A ? 0x7F : 0xFF)), $"CMOS byte 0x{i:X2}");
        }
    }
}
