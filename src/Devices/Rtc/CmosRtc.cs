// Motorola MC146818 real-time clock and CMOS RAM, as on the PC/AT (ports 0x70-0x71, IRQ 8).
//
// Register map (port 0x70 write: b6-0 index, b7 NMI disable; port 0x71: the indexed byte):
//   0x00 seconds  0x01 seconds alarm  0x02 minutes  0x03 minutes alarm  0x04 hours (b7 PM in 12-hour mode)
//   0x05 hours alarm  0x06 day of week (1 = Sunday)  0x07 day of month  0x08 month  0x09 year (two digits)
//   0x0A register A: b7 UIP (read-only), b6-4 divider (010 = 32.768 kHz), b3-0 periodic rate select
//   0x0B register B: b7 SET, b6 PIE, b5 AIE, b4 UIE, b3 SQWE, b2 DM (1 = binary), b1 24/12, b0 DSE
//   0x0C register C (read-only, cleared by reading): b7 IRQF, b6 PF, b5 AF, b4 UF
//   0x0D register D (read-only): b7 VRT (valid RAM and time) = 1
//   0x0E-0x7F battery-backed RAM; 0x32 century (as QEMU's RTC keeps it; also mirrored at 0x37 by QEMU)
//
// Specification: Motorola MC146818A data sheet: time and alarm formats, periodic rates for a 32.768 kHz time base
// (RS 1-2: 3.90625 and 7.8125 ms, RS 3-15: 2^(RS-1)/32768 s), update cycle with UIP high for 244 us before it,
// alarm "don't care" codes (0xC0-0xFF), interrupt flags and IRQF. Time comes from the machine clock
// (IMachineClock.StartTime + NowNanoseconds), so a manual clock gives reproducible time. The memory-size bytes follow
// QEMU's pc_cmos_init (hw/i386/pc.c): 0x15/0x16 base memory in KiB (640), 0x17/0x18 and 0x30/0x31 KiB of RAM above
// 1 MiB below 4 GiB capped at 65535, 0x34/0x35 64 KiB units of RAM above 16 MiB below 4 GiB capped at 65535,
// 0x5B-0x5D 64 KiB units of RAM above 4 GiB, and 0x5F the number of CPUs minus one. QEMU does not keep a checksum at
// 0x2E/0x2F (it reads as zero there), so neither do we.
using Hypervisor.Core.Io;
using Hypervisor.Core.Timing;
using Hypervisor.Devices.Bus;

namespace Hypervisor.Devices.Rtc;

/// <summary>The MC146818 RTC and CMOS RAM on IRQ 8.</summary>
/// <remarks>Call with the machine's I/O lock held; the timer callback runs with it held.</remarks>
public sealed class CmosRtc : IByteRegisterDevice
{
    /// <summary>The index port; the data port follows it.</summary>
    public const ushort BasePort = 0x70;

    /// <summary>The number of ports it spans.</summary>
    public const int PortCount = 2;

    /// <summary>The CMOS byte holding the century (QEMU's choice; the ACPI FADT points there).</summary>
    public const int CenturyIndex = 0x32;

    private const byte RegA = 0x0A, RegB = 0x0B, RegC = 0x0C, RegD = 0x0D;
    private const byte BSet = 0x80, BPie = 0x40, BAie = 0x20, BUie = 0x10, BBinary = 0x04, B24Hour = 0x02;
    private const byte CIrqf = 0x80, CPf = 0x40, CAf = 0x20, CUf = 0x10;
    private const long UipNanoseconds = 244_000;

    private readonly IMachineClock _clock;
    private readonly IInterruptLine? _irq;
    private readonly DeviceTimer? _timer;
    private readonly byte[] _ram = new byte[128];
    private int _index;
    private DateTime _baseTime;
    private long _baseNanoseconds;
    private long _lastSecond;
    private long _lastPeriodic;
    private bool _irqLevel;

    /// <summary>Creates the RTC, showing the clock's <see cref="IMachineClock.StartTime"/> (as UTC) at time zero.</summary>
    /// <param name="clock">The machine clock.</param>
    /// <param name="timers">The machine's timers, for periodic, alarm and update interrupts; null for none.</param>
    /// <param name="irq8">The IRQ 8 line; null for none.</param>
    public CmosRtc(IMachineClock clock, TimerQueue? timers = null, IInterruptLine? irq8 = null)
    {
        _clock = clock ?? throw new ArgumentNullException(nameof(clock));
        _irq = irq8;
        if (timers is not null && irq8 is not null)
        {
            _timer = timers.CreateTimer("rtc", OnTimer);
        }

        _baseTime = clock.StartTime.UtcDateTime;
        _baseNanoseconds = 0;
        // Power-on values as QEMU sets them: 32.768 kHz divider with a 1024 Hz rate, 24-hour BCD mode, valid RAM.
        _ram[RegA] = 0x26;
        _ram[RegB] = B24Hour;
        _ram[RegD] = 0x80;
        long now = clock.NowNanoseconds;
        _lastSecond = SecondIndex(now);
        _lastPeriodic = PeriodicIndex(now);
    }

    /// <summary>True when the guest set the NMI-disable bit (bit 7 of the last write to port 0x70).</summary>
    public bool NmiMasked { get; private set; }

    /// <summary>The date and time the RTC shows now (while SET is on, the time the guest is writing).</summary>
    public DateTime CurrentTime => (_ram[RegB] & BSet) != 0 ? ParseTime() ?? TimeAt(_clock.NowNanoseconds) : TimeAt(_clock.NowNanoseconds);

    /// <summary>Reads a CMOS byte as the host (no side effects: register C is not cleared, time is not rendered).</summary>
    public byte GetCmosByte(int index) => _ram[index & 0x7F];

    /// <summary>Writes a CMOS RAM byte as the host (for configuration bytes such as the memory size).</summary>
    public void SetCmosByte(int index, byte value) => _ram[index & 0x7F] = value;

    /// <summary>
    /// Writes the memory-size and CPU-count bytes as QEMU's <c>pc_cmos_init</c> does (see the file header).
    /// </summary>
    /// <param name="ramBelow4GiBInBytes">RAM below 4 GiB, including the first MiB.</param>
    /// <param name="ramAbove4GiBInBytes">RAM from 4 GiB up.</param>
    /// <param name="cpuCount">The number of vCPUs.</param>
    public void SetMemoryLayout(ulong ramBelow4GiBInBytes, ulong ramAbove4GiBInBytes, int cpuCount)
    {
        const ulong KiB = 1024, MiB = 1024 * 1024;
        ulong baseKiB = Math.Min(ramBelow4GiBInBytes / KiB, 640);
        SetWord(0x15, baseKiB);
        ulong extendedKiB = ramBelow4GiBInBytes > MiB ? Math.Min((ramBelow4GiBInBytes - MiB) / KiB, 65535) : 0;
        SetWord(0x17, extendedKiB);
        SetWord(0x30, extendedKiB);
        ulong above16M = ramBelow4GiBInBytes > 16 * MiB ? Math.Min((ramBelow4GiBInBytes - 16 * MiB) / (64 * KiB), 65535) : 0;
        SetWord(0x34, above16M);
        ulong above4G = ramAbove4GiBInBytes / (64 * KiB);
        _ram[0x5B] = (byte)above4G;
        _ram[0x5C] = (byte)(above4G >> 8);
        _ram[0x5D] = (byte)(above4G >> 16);
        _ram[0x5F] = (byte)Math.Max(cpuCount - 1, 0);

        void SetWord(int index, ulong value)
        {
            _ram[index] = (byte)value;
            _ram[index + 1] = (byte)(value >> 8);
        }
    }

    /// <inheritdoc />
    public byte ReadRegister(int offset)
    {
        if (offset == 0)
        {
            return 0xFF; // the index register is write-only
        }

        long now = _clock.NowNanoseconds;
        switch (_index)
        {
            case <= 9:
                if ((_ram[RegB] & BSet) == 0 && _index is not (1 or 3 or 5))
                {
                    RenderTime(TimeAt(now));
                }

                return _ram[_index];
            case CenturyIndex:
                if ((_ram[RegB] & BSet) == 0)
                {
                    RenderTime(TimeAt(now));
                }

                return _ram[_index];
            case RegA:
                {
                    byte a = (byte)(_ram[RegA] & 0x7F);
                    if (UpdateInProgress(now))
                    {
                        a |= 0x80;
                    }

                    return a;
                }

            case RegC:
                {
                    Evaluate(now);
                    byte c = _ram[RegC];
                    _ram[RegC] = 0;
                    UpdateIrq();
                    return c;
                }

            default:
                return _ram[_index];
        }
    }

    /// <inheritdoc />
    public void WriteRegister(int offset, byte value)
    {
        if (offset == 0)
        {
            _index = value & 0x7F;
            NmiMasked = (value & 0x80) != 0;
            return;
        }

        long now = _clock.NowNanoseconds;
        switch (_index)
        {
            case 1 or 3 or 5:
                _ram[_index] = value;
                break;
            case <= 9 or CenturyIndex:
                if ((_ram[RegB] & BSet) != 0)
                {
                    _ram[_index] = value;
                }
                else
                {
                    Evaluate(now);
                    RenderTime(TimeAt(now));
                    _ram[_index] = value;
                    Rebase(now, keepFraction: true);
                }

                break;
            case RegA:
                Evaluate(now);
                _ram[RegA] = (byte)(value & 0x7F);
                _lastPeriodic = PeriodicIndex(now);
                break;
            case RegB:
                {
                    Evaluate(now);
                    byte old = _ram[RegB];
                    if ((value & BSet) != 0)
                    {
                        // SET stops updates and clears UIE (MC146818A, register B).
                        value &= unchecked((byte)~BUie);
                        if ((old & BSet) == 0)
                        {
                            RenderTime(TimeAt(now));
                        }
                    }

                    _ram[RegB] = value;
                    if ((old & BSet) != 0 && (value & BSet) == 0)
                    {
                        Rebase(now, keepFraction: false);
                    }

                    UpdateIrq();
                    break;
                }

            case RegC or RegD:
                break; // read-only
            default:
                _ram[_index] = value;
                break;
        }

        Schedule(now);
    }

    private bool DividerRunning => (_ram[RegA] & 0x70) == 0x20;

    /// <summary>The RTC's time at clock time <paramref name="now"/>, held at the ends of DateTime's range (year 9999 cannot roll over).</summary>
    private DateTime TimeAt(long now)
    {
        long ticks = _baseTime.Ticks + (now - _baseNanoseconds) / 100;
        return new DateTime(Math.Clamp(ticks, 0, DateTime.MaxValue.Ticks), DateTimeKind.Utc);
    }

    private long SecondIndex(long now) => TimeAt(now).Ticks / TimeSpan.TicksPerSecond;

    private int PeriodicShift
    {
        get
        {
            int rs = _ram[RegA] & 0x0F;
            return rs switch { 0 => -1, 1 => 7, 2 => 8, _ => rs - 1 };
        }
    }

    /// <summary>The number of 32.768 kHz time-base ticks since the machine started.</summary>
    private static long TimeBaseTicks(long now) => now <= 0 ? 0 : (long)((Int128)now * 32768 / 1_000_000_000);

    private long PeriodicIndex(long now) => PeriodicShift < 0 ? 0 : TimeBaseTicks(now) >> PeriodicShift;

    private bool UpdateInProgress(long now)
    {
        if ((_ram[RegB] & BSet) != 0 || !DividerRunning)
        {
            return false;
        }

        long fraction = TimeAt(now).Ticks % TimeSpan.TicksPerSecond * 100;
        return fraction >= 1_000_000_000 - UipNanoseconds;
    }

    /// <summary>Sets the interrupt flags for every periodic, update and alarm event since the last evaluation.</summary>
    private void Evaluate(long now)
    {
        if (PeriodicShift >= 0 && DividerRunning)
        {
            long p = PeriodicIndex(now);
            if (p != _lastPeriodic)
            {
                _ram[RegC] |= CPf;
            }

            _lastPeriodic = p;
        }

        if ((_ram[RegB] & BSet) == 0 && DividerRunning)
        {
            long s = SecondIndex(now);
            if (s > _lastSecond)
            {
                _ram[RegC] |= CUf;
                // The alarm is compared once per update; look at (at most a day of) the seconds that passed.
                for (long sec = Math.Max(_lastSecond + 1, s - 86_400); sec <= s; sec++)
                {
                    if (AlarmMatches(new DateTime(sec * TimeSpan.TicksPerSecond, DateTimeKind.Utc)))
                    {
                        _ram[RegC] |= CAf;
                        break;
                    }
                }
            }

            _lastSecond = s;
        }

        UpdateIrq();
    }

    private bool AlarmMatches(DateTime t)
    {
        return Matches(_ram[1], Encode(t.Second)) && Matches(_ram[3], Encode(t.Minute)) && Matches(_ram[5], EncodeHour(t.Hour));

        static bool Matches(byte alarm, byte value) => (alarm & 0xC0) == 0xC0 || alarm == value;
    }

    private void UpdateIrq()
    {
        byte c = (byte)(_ram[RegC] & 0x70);
        if ((c & _ram[RegB] & 0x70) != 0)
        {
            c |= CIrqf;
        }

        _ram[RegC] = c;
        bool level = (c & CIrqf) != 0;
        if (_irq is not null && level != _irqLevel)
        {
            _irqLevel = level;
            _irq.SetLevel(level);
        }
    }

    private void OnTimer()
    {
        long now = _clock.NowNanoseconds;
        Evaluate(now);
        Schedule(now);
    }

    private void Schedule(long now)
    {
        if (_timer is null)
        {
            return;
        }

        long? next = null;
        byte b = _ram[RegB];
        if ((b & BPie) != 0 && PeriodicShift >= 0 && DividerRunning)
        {
            long tick = (PeriodicIndex(now) + 1) << PeriodicShift;
            next = (long)(((Int128)tick * 1_000_000_000 + 32767) / 32768);
        }

        if ((b & (BUie | BAie)) != 0 && (b & BSet) == 0 && DividerRunning)
        {
            long nextSecondTicks = (SecondIndex(now) + 1) * TimeSpan.TicksPerSecond;
            long t = _baseNanoseconds + (nextSecondTicks - _baseTime.Ticks) * 100;
            next = next is null ? t : Math.Min(next.Value, t);
        }

        if (next is { } deadline)
        {
            _timer.Schedule(Math.Max(deadline, now + 1));
        }
        else
        {
            _timer.Cancel();
        }
    }

    private void Rebase(long now, bool keepFraction)
    {
        DateTime? parsed = ParseTime();
        if (parsed is { } t)
        {
            long fraction = keepFraction ? TimeAt(now).Ticks % TimeSpan.TicksPerSecond : 0;
            _baseTime = t.AddTicks(fraction);
            _baseNanoseconds = now;
        }

        _lastSecond = SecondIndex(now);
    }

    private bool Binary => (_ram[RegB] & BBinary) != 0;

    private byte Encode(int value) => Binary ? (byte)value : (byte)(value / 10 << 4 | value % 10);

    private int Decode(byte value) => Binary ? value : (value >> 4) * 10 + (value & 0x0F);

    private byte EncodeHour(int hour)
    {
        if ((_ram[RegB] & B24Hour) != 0)
        {
            return Encode(hour);
        }

        int h12 = hour % 12 == 0 ? 12 : hour % 12;
        return (byte)(Encode(h12) | (hour >= 12 ? 0x80 : 0));
    }

    private void RenderTime(DateTime t)
    {
        _ram[0] = Encode(t.Second);
        _ram[2] = Encode(t.Minute);
        _ram[4] = EncodeHour(t.Hour);
        _ram[6] = (byte)((int)t.DayOfWeek + 1);
        _ram[7] = Encode(t.Day);
        _ram[8] = Encode(t.Month);
        _ram[9] = Encode(t.Year % 100);
        _ram[CenturyIndex] = Encode(t.Year / 100);
    }

    /// <summary>The date and time in the time registers, or null when they do not form one.</summary>
    private DateTime? ParseTime()
    {
        int second = Decode(_ram[0]);
        int minute = Decode(_ram[2]);
        int hour;
        if ((_ram[RegB] & B24Hour) != 0)
        {
            hour = Decode(_ram[4]);
        }
        else
        {
            hour = Decode((byte)(_ram[4] & 0x7F)) % 12 + ((_ram[4] & 0x80) != 0 ? 12 : 0);
        }

        int day = Decode(_ram[7]);
        int month = Decode(_ram[8]);
        int year = Decode(_ram[CenturyIndex]) * 100 + Decode(_ram[9]);
        if (second > 59 || minute > 59 || hour > 23 || month is < 1 or > 12 || year is < 1 or > 9999 || day < 1)
        {
            return null;
        }

        day = Math.Min(day, DateTime.DaysInMonth(year, month));
        return new DateTime(year, month, day, hour, minute, second, DateTimeKind.Utc);
    }
}
