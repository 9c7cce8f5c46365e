// Intel 8254 programmable interval timer, as wired on a PC: a 1.193182 MHz input clock on all three counters;
// counter 0's output is IRQ 0; counter 1 (DRAM refresh) has no visible effect; counter 2 is gated by port 0x61 bit 0
// and drives the speaker, with its output readable at port 0x61 bit 5 (see SystemControlPortB.cs).
//
// Register map (4 ports):
//   0-2  counter 0-2 data: count writes (LSB, MSB or LSB then MSB, as programmed), count or status reads
//   3    control word (write): b7-6 SC (11 = read-back), b5-4 RW (00 = counter latch), b3-1 mode, b0 BCD
//        read-back: b5 = 0 latches the count, b4 = 0 latches the status, b3-1 select counters 2-0
//   status byte: b7 OUT, b6 null count, b5-4 RW, b3-1 mode, b0 BCD
//
// Specification: Intel 8254 data sheet (order number 231164): modes 0-5 (6 and 7 alias 2 and 3), gate behaviour,
// counter latch and read-back. Counting is computed from the machine clock rather than ticked: the counter's elapsed
// input pulses are (now - start) * 1193182 Hz, and a new count takes effect at once (also in modes 2 and 3, where the
// chip would wait for the end of the current period), as QEMU's i8254 does. IRQ 0 is driven from a DeviceTimer at each
// rising edge of counter 0's output (and each falling edge in mode 3), so that an edge-triggered PIC input latches
// every period even when the timer runs late. At power-on every counter runs in mode 3 with count 65536, as QEMU's.
using Hypervisor.Core.Io;
using Hypervisor.Core.Timing;
using Hypervisor.Devices.Bus;

namespace Hypervisor.Devices.Pit;

/// <summary>The 8254 PIT: three counters clocked at <see cref="FrequencyHz"/>, counter 0 on IRQ 0.</summary>
/// <remarks>Call with the machine's I/O lock held; the timer callback runs with it held.</remarks>
public sealed class Pit8254 : IByteRegisterDevice
{
    /// <summary>The input clock of every counter on a PC: 1.193182 MHz (a third of the 3.579545 MHz NTSC crystal).</summary>
    public const long FrequencyHz = 1_193_182;

    /// <summary>The PIT's base port.</summary>
    public const ushort BasePort = 0x40;

    /// <summary>The number of ports it spans.</summary>
    public const int PortCount = 4;

    private readonly IMachineClock _clock;
    private readonly Channel[] _channels;
    private readonly IInterruptLine? _irq0;
    private readonly DeviceTimer? _timer;
    private bool _irqLevel;
    private long _lastIrqTicks;

    /// <summary>Creates the PIT on <paramref name="clock"/>.</summary>
    /// <param name="clock">The machine clock the counters run on.</param>
    /// <param name="timers">The machine's timers, used to raise IRQ 0 on time; null for a PIT without interrupts.</param>
    /// <param name="irq0">The IRQ 0 line; null for none.</param>
    public Pit8254(IMachineClock clock, TimerQueue? timers = null, IInterruptLine? irq0 = null)
    {
        _clock = clock ?? throw new ArgumentNullException(nameof(clock));
        _irq0 = irq0;
        _channels = [new Channel(0, gate: true), new Channel(1, gate: true), new Channel(2, gate: false)];
        if (timers is not null && irq0 is not null)
        {
            _timer = timers.CreateTimer("pit-counter0", OnTimer);
        }

        SpeakerPort = new SystemControlPortB(this, clock);
        long now = clock.NowNanoseconds;
        foreach (Channel ch in _channels)
        {
            ch.PowerOn(now);
        }

        // OUT0 starts high without an edge the PIC would latch (after a QEMU reset IRR is clear too).
        _irqLevel = _channels[0].Output(now);
        _lastIrqTicks = _channels[0].Elapsed(now);
        Schedule(now);
    }

    /// <summary>Port 0x61 (counter 2 gate, speaker data, counter 2 output, refresh toggle).</summary>
    public SystemControlPortB SpeakerPort { get; }

    /// <summary>The programmed mode (0-5) of a counter.</summary>
    public int GetMode(int channel) => _channels[channel].Mode;

    /// <summary>The count loaded into a counter (1-65536 binary, 1-10000 BCD); 0 before one is written.</summary>
    public int GetReload(int channel) => _channels[channel].Loaded ? _channels[channel].Reload : 0;

    /// <summary>The output (OUT) of a counter now.</summary>
    public bool GetOutput(int channel) => _channels[channel].Output(_clock.NowNanoseconds);

    /// <summary>The gate input of a counter (counters 0 and 1 are tied high on a PC).</summary>
    public bool GetGate(int channel) => _channels[channel].Gate;

    /// <summary>Drives the gate of a counter (port 0x61 drives counter 2's).</summary>
    public void SetGate(int channel, bool high)
    {
        long now = _clock.NowNanoseconds;
        _channels[channel].SetGate(high, now);
        if (channel == 0)
        {
            Reprogrammed(now);
        }
    }

    /// <inheritdoc />
    public byte ReadRegister(int offset) => offset < 3 ? _channels[offset].Read(_clock.NowNanoseconds) : (byte)0xFF;

    /// <inheritdoc />
    public void WriteRegister(int offset, byte value)
    {
        long now = _clock.NowNanoseconds;
        if (offset < 3)
        {
            _channels[offset].WriteCount(value, now);
            if (offset == 0)
            {
                Reprogrammed(now);
            }

            return;
        }

        int select = value >> 6;
        if (select == 3)
        {
            for (int c = 0; c < 3; c++)
            {
                if ((value & (2 << c)) != 0)
                {
                    if ((value & 0x20) == 0)
                    {
                        _channels[c].LatchCount(now);
                    }

                    if ((value & 0x10) == 0)
                    {
                        _channels[c].LatchStatus(now);
                    }
                }
            }

            return;
        }

        Channel ch = _channels[select];
        if ((value & 0x30) == 0)
        {
            ch.LatchCount(now);
            return;
        }

        ch.Program(value);
        if (select == 0)
        {
            Reprogrammed(now);
        }
    }

    internal static long TicksAt(long nanoseconds) => nanoseconds <= 0 ? 0 : (long)((Int128)nanoseconds * FrequencyHz / 1_000_000_000);

    internal static long NanosecondsFor(long ticks) => (long)(((Int128)ticks * 1_000_000_000 + FrequencyHz - 1) / FrequencyHz);

    /// <summary>
    /// Counter 0 was reprogrammed at <paramref name="when"/>: drive IRQ 0 to its output then and schedule the next edge.
    /// </summary>
    /// <remarks>
    /// Everything is computed at the time of the write, not at a fresh reading of the clock: the writing thread can
    /// be preempted between the two, and a short one-shot (mode 0 or 4) can expire in between. Sampling later would
    /// record the edge as already seen and never raise it; from the write time the deadline is merely in the past and
    /// the timer raises the edge at once.
    /// </remarks>
    private void Reprogrammed(long when)
    {
        _lastIrqTicks = _channels[0].Elapsed(when);
        SetIrq(_channels[0].Output(when));
        Schedule(when);
    }

    private void OnTimer()
    {
        long now = _clock.NowNanoseconds;
        Channel ch = _channels[0];
        long d = ch.Elapsed(now);
        bool output = ch.Output(now);
        if (ch.RisingEdgesBetween(_lastIrqTicks, d) > 0)
        {
            // An edge happened since the last look: make sure the PIC sees it even if the output has moved on.
            SetIrq(false);
            SetIrq(true);
        }

        SetIrq(output);
        _lastIrqTicks = d;
        Schedule(now);
    }

    private void Schedule(long now)
    {
        if (_timer is null)
        {
            return;
        }

        long? deadline = _channels[0].NextEdgeDeadline(now);
        if (deadline is { } t)
        {
            _timer.Schedule(Math.Max(t, now + 1));
        }
        else
        {
            _timer.Cancel();
        }
    }

    private void SetIrq(bool level)
    {
        if (_irq0 is not null && level != _irqLevel)
        {
            _irqLevel = level;
            _irq0.SetLevel(level);
        }
    }

    /// <summary>One counter.</summary>
    private sealed class Channel(int index, bool gate)
    {
        private int _rwMode = 3;
        private bool _bcd;
        private bool _nullCount = true;
        private bool _triggered;
        private bool _counting;
        private long _countingSince;
        private long _ticksBefore;
        private byte _lsb;
        private bool _writeHigh;
        private bool _readHigh;
        private int? _latchedCount;
        private bool _latchedReadHigh;
        private byte? _latchedStatus;

        public int Index { get; } = index;

        public int Mode { get; private set; }

        public int Reload { get; private set; } = 65536;

        public bool Loaded { get; private set; }

        public bool Gate { get; private set; } = gate;

        private int Modulus => _bcd ? 10000 : 65536;

        private bool HardwareTriggered => Mode is 1 or 5;

        /// <summary>
        /// The state QEMU's i8254 resets to (the 8254 itself leaves it undefined): mode 3, LSB then MSB, count 65536,
        /// counting from now where the gate is high; counter 0 thus runs at 18.2 Hz from power-on.
        /// </summary>
        public void PowerOn(long now)
        {
            Program(0x36);
            Reload = 65536;
            Loaded = true;
            _nullCount = false;
            _countingSince = now;
            _counting = Gate;
        }

        public void Program(byte control)
        {
            _rwMode = (control >> 4) & 3;
            int mode = (control >> 1) & 7;
            Mode = mode > 5 ? mode - 4 : mode;
            _bcd = (control & 1) != 0;
            Loaded = false;
            _nullCount = true;
            _triggered = false;
            _counting = false;
            _ticksBefore = 0;
            _writeHigh = false;
            _readHigh = false;
            _latchedCount = null;
            _latchedStatus = null;
        }

        public void WriteCount(byte value, long now)
        {
            int raw;
            switch (_rwMode)
            {
                case 1:
                    raw = value;
                    break;
                case 2:
                    raw = value << 8;
                    break;
                default:
                    if (!_writeHigh)
                    {
                        _lsb = value;
                        _writeHigh = true;
                        return;
                    }

                    _writeHigh = false;
                    raw = _lsb | (value << 8);
                    break;
            }

            int count = _bcd ? FromBcd(raw) : raw;
            Reload = count == 0 ? Modulus : count;
            Loaded = true;
            _nullCount = false;
            _ticksBefore = 0;
            _countingSince = now;
            _counting = HardwareTriggered ? _triggered : Gate;
        }

        public void SetGate(bool high, long now)
        {
            if (high == Gate)
            {
                return;
            }

            long d = Elapsed(now);
            Gate = high;
            if (HardwareTriggered)
            {
                if (high)
                {
                    // A rising gate (re)triggers the one-shot with the current count.
                    _triggered = true;
                    _counting = Loaded;
                    _ticksBefore = 0;
                    _countingSince = now;
                }

                return;
            }

            if (!high)
            {
                _ticksBefore = d;
                _counting = false;
                return;
            }

            // Modes 0 and 4 resume where they were; modes 2 and 3 restart the period.
            _ticksBefore = Mode is 0 or 4 ? d : 0;
            _countingSince = now;
            _counting = Loaded;
        }

        /// <summary>Input pulses counted since the count was loaded (or the counter triggered).</summary>
        public long Elapsed(long now) => _ticksBefore + (_counting ? TicksAt(now - _countingSince) : 0);

        public bool Output(long now)
        {
            if (!Loaded)
            {
                return Mode != 0;
            }

            long d = Elapsed(now);
            long n = Reload;
            switch (Mode)
            {
                case 0:
                    return d >= n;
                case 1:
                    return !_triggered || d >= n;
                case 2:
                    return !_counting || n < 2 || d % n != n - 1;
                case 3:
                    return !_counting || d % n < (n + 1) / 2;
                case 4:
                    return d != n;
                default:
                    return !_triggered || d != n;
            }
        }

        public int Count(long now)
        {
            if (!Loaded)
            {
                return 0;
            }

            long d = Elapsed(now);
            long n = Reload;
            long m = Modulus;
            long value;
            switch (Mode)
            {
                case 2:
                    value = n - d % n;
                    break;
                case 3:
                    {
                        long p = d % n;
                        long high = (n + 1) / 2;
                        value = p < high ? (n & ~1L) - 2 * p : (n & ~1L) - 2 * (p - high);
                        if (value <= 0)
                        {
                            value += n & ~1L;
                        }

                        break;
                    }

                default:
                    value = ((n - d) % m + m) % m;
                    break;
            }

            return (int)(value % m);
        }

        public long RisingEdgesBetween(long fromExclusive, long toInclusive)
        {
            if (!Loaded || toInclusive <= fromExclusive)
            {
                return 0;
            }

            long n = Reload;
            return Mode switch
            {
                0 or 1 => fromExclusive < n && n <= toInclusive ? 1 : 0,
                2 or 3 => toInclusive / n - fromExclusive / n,
                _ => fromExclusive < n + 1 && n + 1 <= toInclusive ? 1 : 0,
            };
        }

        /// <summary>The clock time of the next output edge worth an interrupt, or null if none will come.</summary>
        public long? NextEdgeDeadline(long now)
        {
            if (!Loaded || !_counting)
            {
                return null;
            }

            long d = Elapsed(now);
            long n = Reload;
            long next;
            switch (Mode)
            {
                case 0:
                case 1:
                    if (d >= n)
                    {
                        return null;
                    }

                    next = n;
                    break;
                case 2:
                    next = (d / n + 1) * n;
                    break;
                case 3:
                    {
                        long half = (n + 1) / 2;
                        long periodStart = d / n * n;
                        next = d < periodStart + half ? periodStart + half : periodStart + n;
                        break;
                    }

                default:
                    if (d >= n + 1)
                    {
                        return null;
                    }

                    next = d < n ? n : n + 1;
                    break;
            }

            return _countingSince + NanosecondsFor(next - _ticksBefore);
        }

        public void LatchCount(long now)
        {
            if (_latchedCount is null)
            {
                _latchedCount = Count(now);
                _latchedReadHigh = false;
            }
        }

        public void LatchStatus(long now)
        {
            if (_latchedStatus is null)
            {
                int status = (Output(now) ? 0x80 : 0) | (_nullCount ? 0x40 : 0) | (_rwMode << 4) | (Mode << 1) | (_bcd ? 1 : 0);
                _latchedStatus = (byte)status;
            }
        }

        public byte Read(long now)
        {
            if (_latchedStatus is { } status)
            {
                _latchedStatus = null;
                return status;
            }

            if (_latchedCount is { } latched)
            {
                int value = _bcd ? ToBcd(latched) : latched;
                switch (_rwMode)
                {
                    case 1:
                        _latchedCount = null;
                        return (byte)value;
                    case 2:
                        _latchedCount = null;
                        return (byte)(value >> 8);
                    default:
                        if (!_latchedReadHigh)
                        {
                            _latchedReadHigh = true;
                            return (byte)value;
                        }

                        _latchedCount = null;
                        return (byte)(value >> 8);
                }
            }

            int count = Count(now);
            if (_bcd)
            {
                count = ToBcd(count);
            }

            switch (_rwMode)
            {
                case 1:
                    return (byte)count;
                case 2:
                    return (byte)(count >> 8);
                default:
                    _readHigh = !_readHigh;
                    return _readHigh ? (byte)count : (byte)(count >> 8);
            }
        }

        private static int FromBcd(int raw) =>
            (raw & 0xF) % 10 + ((raw >> 4) & 0xF) % 10 * 10 + ((raw >> 8) & 0xF) % 10 * 100 + ((raw >> 12) & 0xF) % 10 * 1000;

        private static int ToBcd(int value)
        {
            value %= 10000;
            return value % 10 | (value / 10 % 10) << 4 | (value / 100 % 10) << 8 | (value / 1000 % 10) << 12;
        }
    }
}
