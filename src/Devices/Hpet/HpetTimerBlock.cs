// The High Precision Event Timer (IA-PC HPET specification 1.0a): one 64-bit up-counter and three comparators, as on
// QEMU's pc machine: 100 MHz (period 10,000,000 fs), vendor 0x8086, revision 1, 64-bit counter, legacy-replacement
// capable; every timer 64-bit and periodic-capable, with FSB delivery unsupported.
//
// Register map (1 KiB block at 0xFED00000; 64-bit registers, read and written as 32- or 64-bit accesses):
//   0x000 GCAP_ID   (RO)  7:0 REV_ID, 12:8 NUM_TIM_CAP (timers - 1), 13 COUNT_SIZE_CAP, 15 LEG_RT_CAP,
//                         31:16 VENDOR_ID, 63:32 COUNTER_CLK_PERIOD (femtoseconds)
//   0x010 GEN_CONF  (RW)  0 ENABLE_CNF (the counter runs and timers may interrupt), 1 LEG_RT_CNF
//   0x020 GINTR_STA (RWC) bit n: Tn_INT_STS, level-triggered timers only; writing 1 clears it
//   0x0F0 MAIN_CNT  (RW)  the main counter (software writes it while halted)
//   0x100 + 0x20n Tn_CONF_CAP: 1 Tn_INT_TYPE_CNF (1 level), 2 Tn_INT_ENB_CNF, 3 Tn_TYPE_CNF (1 periodic),
//                         4 Tn_PER_INT_CAP (RO), 5 Tn_SIZE_CAP (RO, 64-bit), 6 Tn_VAL_SET_CNF, 8 Tn_32MODE_CNF,
//                         13:9 Tn_INT_ROUTE_CNF, 14 Tn_FSB_EN_CNF (RO 0), 15 Tn_FSB_INT_DEL_CAP (RO 0),
//                         63:32 Tn_INT_ROUTE_CAP (RO: the I/O APIC inputs the timer may be routed to)
//   0x108 + 0x20n Tn_COMPARATOR    0x110 + 0x20n Tn_FSB_INT_ROUTE (FSB unsupported: reads 0, writes ignored)
//
// Semantics (spec 2.3.9): a timer matches when the counter's low bits (all 64, or 32 in Tn_32MODE_CNF) equal the
// comparator; in non-periodic 32-bit mode it also fires when the counter's low 32 bits wrap to zero. A periodic timer's
// comparator then grows by the last value written to it (the period); a comparator write sets the period, and with
// Tn_VAL_SET_CNF also the comparator itself (the bit clears after the write). Edge-triggered timers pulse their line;
// level-triggered ones set their status bit and hold the line while it is set and Tn_INT_ENB_CNF is on. With
// LEG_RT_CNF, timer 0 drives ISA IRQ 0 (I/O APIC pin 2) and timer 1 IRQ 8 in place of the 8254 and the RTC, whose
// outputs are then blocked (Intel chipset data sheets, "Legacy Replacement Routing"); the other timers, and all of them
// without LEG_RT_CNF, use Tn_INT_ROUTE_CNF. A route the capability mask does not allow is not taken (the field reads
// back unchanged, as the spec says a guest detects an unsupported route).
//
// A 64-bit access acts at once on the whole register, as the spec allows. (QEMU 7.2 behaves as if it split it into two
// 32-bit accesses: a single 64-bit comparator write after one Tn_VAL_SET left its periodic accumulator's high half
// unset in HpetGuests' first version. Software that writes the halves separately, each after Tn_VAL_SET, as Intel's
// data sheets describe, sees the same on both.)
//
// The counter is computed from the machine clock (counter = offset + nanoseconds / 10), not ticked. Matches are found
// by catching up, on every register access and in the timer callback, over the counter values elapsed since the last
// look; several periods missed by a late timer become one interrupt (as a level or edge line would show them anyway).
using Hypervisor.Core.Io;
using Hypervisor.Core.Memory;
using Hypervisor.Core.Timing;

namespace Hypervisor.Devices.Hpet;

/// <summary>The HPET's event timer block: a 100 MHz main counter and three comparators with interrupts, as on QEMU's <c>pc</c>.</summary>
/// <remarks>Call with the machine's I/O lock held (MMIO and interrupt lines always are); the timer callbacks run with it held.</remarks>
public sealed class HpetTimerBlock : IMmioDevice
{
    /// <summary>The base address of the register block on a PC (and in QEMU).</summary>
    public const ulong DefaultBase = 0xFED0_0000;

    /// <summary>The size of the register block (the spec's 1 KiB).</summary>
    public const ulong RegisterBlockSize = 0x400;

    /// <summary>The size of the MMIO window the machine maps: one page (the block, then reserved space).</summary>
    public const ulong WindowSize = 0x1000;

    /// <summary>The number of comparators (timers).</summary>
    public const int TimerCount = 3;

    /// <summary>The main counter's frequency: 100 MHz.</summary>
    public const long FrequencyHz = 100_000_000;

    /// <summary>COUNTER_CLK_PERIOD: the counter's period in femtoseconds (10 ns).</summary>
    public const uint PeriodFemtoseconds = 10_000_000;

    /// <summary>VENDOR_ID: Intel, as QEMU reports.</summary>
    public const ushort VendorId = 0x8086;

    /// <summary>REV_ID (must not be 0, spec 2.3.4).</summary>
    public const byte RevisionId = 1;

    /// <summary>
    /// Tn_INT_ROUTE_CAP of every timer on QEMU's <c>pc</c> (i440FX) machine: I/O APIC input 2 only.
    /// </summary>
    public const uint DefaultRouteCapability = 1u << 2;

    /// <summary>Offset of GCAP_ID.</summary>
    public const int CapabilitiesOffset = 0x000;

    /// <summary>Offset of GEN_CONF.</summary>
    public const int ConfigurationOffset = 0x010;

    /// <summary>Offset of GINTR_STA.</summary>
    public const int InterruptStatusOffset = 0x020;

    /// <summary>Offset of MAIN_CNT.</summary>
    public const int MainCounterOffset = 0x0F0;

    /// <summary>GEN_CONF.ENABLE_CNF.</summary>
    public const ulong EnableCnf = 1 << 0;

    /// <summary>GEN_CONF.LEG_RT_CNF.</summary>
    public const ulong LegacyRouteCnf = 1 << 1;

    /// <summary>Tn_INT_TYPE_CNF: level-triggered.</summary>
    public const ulong TimerLevelTriggered = 1 << 1;

    /// <summary>Tn_INT_ENB_CNF.</summary>
    public const ulong TimerInterruptEnable = 1 << 2;

    /// <summary>Tn_TYPE_CNF: periodic.</summary>
    public const ulong TimerPeriodic = 1 << 3;

    /// <summary>Tn_PER_INT_CAP.</summary>
    public const ulong TimerPeriodicCapable = 1 << 4;

    /// <summary>Tn_SIZE_CAP: a 64-bit comparator.</summary>
    public const ulong TimerSize64 = 1 << 5;

    /// <summary>Tn_VAL_SET_CNF.</summary>
    public const ulong TimerValueSet = 1 << 6;

    /// <summary>Tn_32MODE_CNF.</summary>
    public const ulong Timer32BitMode = 1 << 8;

    private const int RouteShift = 9;
    private const ulong RouteMask = 0x1FUL << RouteShift;
    private const ulong WritableTimerBits = TimerLevelTriggered | TimerInterruptEnable | TimerPeriodic | TimerValueSet | Timer32BitMode | RouteMask;
    private const int TimerBlock = 0x100;
    private const int TimerStride = 0x20;
    private const long NanosecondsPerTick = 1_000_000_000 / FrequencyHz;

    // Output targets: I/O APIC inputs 0-31 by number, and the two legacy-replacement lines.
    private const int LegacyIrq0Target = 32;
    private const int LegacyIrq8Target = 33;
    private const int TargetCount = 34;

    private readonly IMachineClock _clock;
    private readonly Timer[] _timers = new Timer[TimerCount];
    private readonly IInterruptLine?[] _lines = new IInterruptLine?[TargetCount];
    private readonly bool[] _driven = new bool[TargetCount];
    private readonly LegacyInput _pitInput;
    private readonly LegacyInput _rtcInput;
    private ulong _config;
    private ulong _status;
    private ulong _haltedCounter;
    private ulong _counterOffset;

    /// <summary>Creates the HPET on <paramref name="clock"/>, halted with its counter at zero, as after reset.</summary>
    /// <param name="clock">The machine clock the main counter runs on.</param>
    /// <param name="timers">The machine's timers, used to interrupt on time; null for an HPET that only interrupts when accessed.</param>
    /// <param name="legacyIrq0">ISA IRQ 0 as the board wires it (8259 input 0 and I/O APIC pin 2): the 8254's output
    /// (<see cref="PitOutput"/>) normally, timer 0 with LEG_RT_CNF; null for none.</param>
    /// <param name="legacyIrq8">ISA IRQ 8 likewise: the RTC's output (<see cref="RtcOutput"/>) or timer 1.</param>
    /// <param name="ioApicInput">The I/O APIC input of a Tn_INT_ROUTE_CNF value the capability allows; null for none.</param>
    /// <param name="routeCapability">Tn_INT_ROUTE_CAP of every timer (bit n: I/O APIC input n).</param>
    public HpetTimerBlock(IMachineClock clock, TimerQueue? timers = null, IInterruptLine? legacyIrq0 = null, IInterruptLine? legacyIrq8 = null,
        Func<int, IInterruptLine?>? ioApicInput = null, uint routeCapability = DefaultRouteCapability)
    {
        _clock = clock ?? throw new ArgumentNullException(nameof(clock));
        RouteCapability = routeCapability;
        _lines[LegacyIrq0Target] = legacyIrq0;
        _lines[LegacyIrq8Target] = legacyIrq8;
        for (int pin = 0; pin < 32; pin++)
        {
            if ((routeCapability & (1u << pin)) != 0)
            {
                _lines[pin] = ioApicInput?.Invoke(pin);
            }
        }

        _pitInput = new LegacyInput(this);
        _rtcInput = new LegacyInput(this);
        for (int i = 0; i < TimerCount; i++)
        {
            Timer t = new(i)
            {
                Config = TimerPeriodicCapable | TimerSize64 | ((ulong)routeCapability << 32),
                Comparator = ulong.MaxValue,
                Period = ulong.MaxValue,
            };
            if (timers is not null)
            {
                t.Deadline = timers.CreateTimer($"hpet-timer{i}", OnTimer);
            }

            _timers[i] = t;
        }
    }

    /// <summary>Tn_INT_ROUTE_CAP: the I/O APIC inputs a timer may be routed to (bit n: input n).</summary>
    public uint RouteCapability { get; }

    /// <summary>The line the 8254's counter 0 output drives: it reaches ISA IRQ 0 unless LEG_RT_CNF is set.</summary>
    public IInterruptLine PitOutput => _pitInput;

    /// <summary>The line the RTC's interrupt output drives: it reaches ISA IRQ 8 unless LEG_RT_CNF is set.</summary>
    public IInterruptLine RtcOutput => _rtcInput;

    /// <summary>GCAP_ID as the guest reads it.</summary>
    public static ulong Capabilities =>
        RevisionId | ((ulong)(TimerCount - 1) << 8) | (1UL << 13) | (1UL << 15) | ((ulong)VendorId << 16) | ((ulong)PeriodFemtoseconds << 32);

    /// <summary>True while GEN_CONF.ENABLE_CNF is set: the counter runs.</summary>
    public bool Enabled => (_config & EnableCnf) != 0;

    /// <summary>True while GEN_CONF.LEG_RT_CNF is set: timers 0 and 1 replace the 8254's and the RTC's interrupts.</summary>
    public bool LegacyReplacement => (_config & LegacyRouteCnf) != 0;

    /// <summary>The main counter now.</summary>
    public ulong MainCounter => CounterAt(_clock.NowNanoseconds);

    /// <inheritdoc />
    public ulong Read(ulong offset, int size)
    {
        if (offset >= RegisterBlockSize || size is not (1 or 2 or 4 or 8))
        {
            return 0;
        }

        long now = _clock.NowNanoseconds;
        CatchUp(now);
        ulong register = ReadRegister((int)(offset & ~7UL), now);
        int shift = 8 * (int)(offset & 7);
        ulong value = register >> shift;
        return size == 8 ? value : value & ((1UL << (8 * size)) - 1);
    }

    /// <inheritdoc />
    public void Write(ulong offset, int size, ulong value)
    {
        if (offset >= RegisterBlockSize || size is not (1 or 2 or 4 or 8) || (int)(offset & 7) + size > 8)
        {
            return;
        }

        // One clock reading per guest write: everything below (catching up, the new state, the next deadlines) is
        // computed for the same instant, so that a short one-shot cannot slip between two readings (see Pit8254).
        long now = _clock.NowNanoseconds;
        CatchUp(now);
        int shift = 8 * (int)(offset & 7);
        ulong mask = (size == 8 ? ulong.MaxValue : (1UL << (8 * size)) - 1) << shift;
        WriteRegister((int)(offset & ~7UL), mask, (value << shift) & mask, now);
        UpdateLines(0);
        Schedule(now);
    }

    private ulong ReadRegister(int register, long now)
    {
        switch (register)
        {
            case CapabilitiesOffset:
                return Capabilities;
            case ConfigurationOffset:
                return _config;
            case InterruptStatusOffset:
                return _status;
            case MainCounterOffset:
                return CounterAt(now);
            case >= TimerBlock and < TimerBlock + (TimerCount * TimerStride):
                Timer t = _timers[(register - TimerBlock) / TimerStride];
                return ((register - TimerBlock) % TimerStride) switch
                {
                    0x00 => t.Config,
                    0x08 => t.Comparator,
                    _ => 0,
                };
            default:
                return 0;
        }
    }

    private void WriteRegister(int register, ulong mask, ulong bits, long now)
    {
        switch (register)
        {
            case ConfigurationOffset:
                {
                    ulong updated = Merge(_config, mask, bits) & (EnableCnf | LegacyRouteCnf);
                    ulong ticks = TicksAt(now);
                    if ((updated & EnableCnf) != 0 && !Enabled)
                    {
                        _counterOffset = _haltedCounter - ticks; // resumes from where it halted
                    }
                    else if ((updated & EnableCnf) == 0 && Enabled)
                    {
                        _haltedCounter = _counterOffset + ticks;
                    }

                    _config = updated;
                    break;
                }

            case InterruptStatusOffset:
                _status &= ~(bits & mask);
                break;
            case MainCounterOffset:
                {
                    // The spec has software write the counter only while halted; a write while running restarts the
                    // count from the written value, and the timers look for matches from there.
                    ulong counter = Merge(CounterAt(now), mask, bits);
                    _haltedCounter = counter;
                    _counterOffset = counter - TicksAt(now);
                    foreach (Timer t in _timers)
                    {
                        t.Seen = counter;
                    }

                    break;
                }

            case >= TimerBlock and < TimerBlock + (TimerCount * TimerStride):
                Timer timer = _timers[(register - TimerBlock) / TimerStride];
                switch ((register - TimerBlock) % TimerStride)
                {
                    case 0x00:
                        WriteTimerConfig(timer, mask, bits);
                        break;
                    case 0x08:
                        WriteComparator(timer, mask, bits);
                        break;
                    default:
                        break; // Tn_FSB_INT_ROUTE: FSB delivery is not supported
                }

                break;
            default:
                break; // GCAP_ID is read-only; the rest is reserved
        }
    }

    private void WriteTimerConfig(Timer t, ulong mask, ulong bits)
    {
        ulong writable = WritableTimerBits & mask;
        if ((t.Config & TimerPeriodicCapable) == 0)
        {
            writable &= ~TimerPeriodic;
        }

        ulong updated = (t.Config & ~writable) | (bits & writable);
        int route = (int)((updated & RouteMask) >> RouteShift);
        if ((RouteCapability & (1u << route)) == 0)
        {
            updated = (updated & ~RouteMask) | (t.Config & RouteMask); // not a route this timer has: not taken
        }

        if ((updated & TimerLevelTriggered) == 0)
        {
            _status &= ~(1UL << t.Index); // the status bit belongs to level-triggered interrupts
        }

        if ((updated & Timer32BitMode) != 0)
        {
            // A 64-bit timer forced to 32 bits compares, and counts its period, in the low 32 bits only.
            t.Comparator = (uint)t.Comparator;
            t.Period = (uint)t.Period;
        }

        t.Config = updated;
    }

    private static void WriteComparator(Timer t, ulong mask, ulong bits)
    {
        if (t.Is32Bit)
        {
            mask &= uint.MaxValue; // the upper half of a 32-bit comparator is not writable
        }

        if (t.IsPeriodic)
        {
            t.Period = Merge(t.Period, mask, bits);
            if ((t.Config & TimerValueSet) != 0)
            {
                t.Comparator = Merge(t.Comparator, mask, bits);
            }
        }
        else
        {
            t.Comparator = Merge(t.Comparator, mask, bits);
        }

        t.Config &= ~TimerValueSet; // Tn_VAL_SET_CNF clears itself after the write it applies to
    }

    private void OnTimer()
    {
        long now = _clock.NowNanoseconds;
        CatchUp(now);
        Schedule(now);
    }

    /// <summary>
    /// Processes every match between the counter value each timer last saw and the counter at <paramref name="now"/>:
    /// status bits, periodic reloads and interrupts.
    /// </summary>
    private void CatchUp(long now)
    {
        if (!Enabled)
        {
            return;
        }

        ulong counter = CounterAt(now);
        int pulses = 0;
        foreach (Timer t in _timers)
        {
            ulong elapsed = counter - t.Seen;
            if (elapsed != 0 && t.NextEventDistance() is { } d && d <= elapsed)
            {
                if (t.IsPeriodic && t.Period != 0)
                {
                    // The comparator grew by the period at every match up to now: skip to the first one still ahead.
                    ulong sinceMatch = elapsed - d;
                    ulong steps = (sinceMatch / t.Period) + 1;
                    t.Comparator += steps * t.Period;
                    if (t.Is32Bit)
                    {
                        t.Comparator = (uint)t.Comparator;
                    }
                }

                if ((t.Config & TimerLevelTriggered) != 0)
                {
                    _status |= 1UL << t.Index;
                }
                else if ((t.Config & TimerInterruptEnable) != 0)
                {
                    pulses |= 1 << t.Index;
                }
            }

            t.Seen = counter;
        }

        UpdateLines(pulses);
    }

    /// <summary>Arms each timer's deadline for its next event, if it can interrupt at all.</summary>
    private void Schedule(long now)
    {
        ulong ticks = TicksAt(now);
        foreach (Timer t in _timers)
        {
            if (t.Deadline is null)
            {
                continue;
            }

            // Only an enabled timer needs the host to wake up: the comparator and status bits of a silent one are
            // brought up to date when the guest reads them.
            if (!Enabled || (t.Config & TimerInterruptEnable) == 0 || t.NextEventDistance() is not { } d)
            {
                t.Deadline.Cancel();
                continue;
            }

            Int128 deadline = ((Int128)ticks + d) * NanosecondsPerTick;
            if (deadline > long.MaxValue)
            {
                t.Deadline.Cancel();
            }
            else
            {
                t.Deadline.Schedule(Math.Max((long)deadline, now + 1));
            }
        }
    }

    /// <summary>Drives every output to what the timers (and, without legacy replacement, the 8254 and RTC) say.</summary>
    /// <param name="pulses">Bit n: timer n fired edge-triggered and pulses its line.</param>
    private void UpdateLines(int pulses)
    {
        Span<bool> level = stackalloc bool[TargetCount];
        Span<bool> pulse = stackalloc bool[TargetCount];
        bool legacy = LegacyReplacement;
        if (!legacy)
        {
            level[LegacyIrq0Target] = _pitInput.Level;
            level[LegacyIrq8Target] = _rtcInput.Level;
        }

        if (Enabled)
        {
            foreach (Timer t in _timers)
            {
                int target = legacy && t.Index < 2 ? LegacyIrq0Target + t.Index : (int)((t.Config & RouteMask) >> RouteShift);
                if ((t.Config & TimerInterruptEnable) != 0 && (_status & (1UL << t.Index)) != 0)
                {
                    level[target] = true;
                }

                if ((pulses & (1 << t.Index)) != 0)
                {
                    pulse[target] = true;
                }
            }
        }

        for (int target = 0; target < TargetCount; target++)
        {
            if (_lines[target] is not { } line)
            {
                continue;
            }

            if (pulse[target] && !level[target])
            {
                // An edge: up and down again, unless something else holds the line up (then there is no edge to give).
                if (!_driven[target])
                {
                    line.SetLevel(true);
                }

                line.SetLevel(false);
                _driven[target] = false;
            }
            else if (level[target] != _driven[target])
            {
                line.SetLevel(level[target]);
                _driven[target] = level[target];
            }
        }
    }

    private ulong CounterAt(long now) => Enabled ? _counterOffset + TicksAt(now) : _haltedCounter;

    private static ulong TicksAt(long nanoseconds) => nanoseconds <= 0 ? 0 : (ulong)(nanoseconds / NanosecondsPerTick);

    private static ulong Merge(ulong old, ulong mask, ulong bits) => (old & ~mask) | (bits & mask);

    /// <summary>A device output (8254 counter 0, RTC) that reaches its ISA IRQ through the HPET's legacy switch.</summary>
    private sealed class LegacyInput(HpetTimerBlock hpet) : IInterruptLine
    {
        public bool Level { get; private set; }

        public void SetLevel(bool high)
        {
            Level = high;
            hpet.UpdateLines(0);
        }
    }

    /// <summary>One comparator.</summary>
    private sealed class Timer(int index)
    {
        public int Index { get; } = index;

        public ulong Config { get; set; }

        public ulong Comparator { get; set; }

        /// <summary>The last value written to the comparator in periodic mode: what each match adds.</summary>
        public ulong Period { get; set; }

        /// <summary>The counter value up to which matches have been processed.</summary>
        public ulong Seen { get; set; }

        public DeviceTimer? Deadline { get; set; }

        public bool Is32Bit => (Config & Timer32BitMode) != 0;

        public bool IsPeriodic => (Config & TimerPeriodic) != 0;

        /// <summary>
        /// Counter ticks from <see cref="Seen"/> to this timer's next event (a match, or in non-periodic 32-bit mode the
        /// low 32 bits wrapping to zero), at least 1; null if that is 2^64 ticks away.
        /// </summary>
        public ulong? NextEventDistance()
        {
            if (Is32Bit)
            {
                ulong match = (uint)((uint)Comparator - (uint)Seen);
                match = match == 0 ? 1UL << 32 : match;
                if (!IsPeriodic)
                {
                    ulong wrap = (uint)(0u - (uint)Seen);
                    wrap = wrap == 0 ? 1UL << 32 : wrap;
                    match = Math.Min(match, wrap);
                }

                return match;
            }

            ulong distance = Comparator - Seen;
            return distance == 0 ? null : distance;
        }
    }
}
