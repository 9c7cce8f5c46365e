using Hypervisor.Core.Io;
using Hypervisor.Core.Timing;
using Hypervisor.Devices.Hpet;
using Hypervisor.Devices.Tests.Fakes;

namespace Hypervisor.Devices.Tests.Hpet;

// Behaviour per the IA-PC HPET specification 1.0a: register layout (2.3), the counter against the machine clock,
// non-periodic and periodic comparators (2.3.9.2), 32-bit mode and its wrap interrupt, level and edge interrupts with the
// status register, routing by Tn_INT_ROUTE_CNF within the capability mask, and legacy replacement (2.3.7 and the
// chipset data sheets' "Legacy Replacement Routing" table: timer 0 on IRQ 0 / I/O APIC 2, timer 1 on IRQ 8, 8254 and
// RTC blocked). Numbers (femtosecond period, frequencies) are recomputed here from the spec's units, not copied.
public class HpetTimerBlockTests
{
    private const int Gcap = 0x000, Conf = 0x010, Status = 0x020, Counter = 0x0F0;
    private const ulong Enable = 1, Legacy = 2;
    private const ulong Level = 1 << 1, IntEnable = 1 << 2, Periodic = 1 << 3, ValSet = 1 << 6, Mode32 = 1 << 8;
    private const ulong Route2 = 2 << 9;

    private ManualClock _clock = null!;
    private TimerQueue _timers = null!;
    private RecordingInterruptLine _irq0 = null!;
    private RecordingInterruptLine _irq8 = null!;
    private RecordingInterruptLine _pin2 = null!;
    private HpetTimerBlock _hpet = null!;

    [SetUp]
    public void SetUp()
    {
        _clock = new ManualClock(DateTimeOffset.UnixEpoch);
        _timers = new TimerQueue(_clock, new IoLock());
        _irq0 = new RecordingInterruptLine();
        _irq8 = new RecordingInterruptLine();
        _pin2 = new RecordingInterruptLine();
        _hpet = new HpetTimerBlock(_clock, _timers, _irq0, _irq8, pin => pin == 2 ? _pin2 : null);
    }

    private static int TimerConfig(int n) => 0x100 + (0x20 * n);

    private static int Comparator(int n) => 0x108 + (0x20 * n);

    private ulong Read(int offset, int size = 8) => _hpet.Read((ulong)offset, size);

    private void Write(int offset, ulong value, int size = 8) => _hpet.Write((ulong)offset, size, value);

    /// <summary>Counter ticks in <paramref name="ns"/> nanoseconds at the frequency GCAP_ID's period gives.</summary>
    private ulong TicksIn(long ns) => (ulong)(ns * 1_000_000 / (long)(Read(Gcap) >> 32));

    private void AdvanceTo(long ns)
    {
        _clock.Advance(ns - _clock.NowNanoseconds);
        _timers.RunDue();
    }

    [Test]
    public void CapabilitiesDescribeThreeSixtyFourBitTimersAtOneHundredMegahertz()
    {
        ulong gcap = Read(Gcap);
        Assert.Multiple(() =>
        {
            Assert.That(gcap & 0xFF, Is.Not.Zero, "REV_ID must not be 0 (2.3.4)");
            Assert.That((gcap >> 8) & 0x1F, Is.EqualTo(2UL), "NUM_TIM_CAP is the last timer's number: three timers");
            Assert.That((gcap >> 13) & 1, Is.EqualTo(1UL), "COUNT_SIZE_CAP: a 64-bit counter");
            Assert.That((gcap >> 15) & 1, Is.EqualTo(1UL), "LEG_RT_CAP");
            Assert.That((gcap >> 16) & 0xFFFF, Is.EqualTo(0x8086UL), "VENDOR_ID");
            Assert.That(1e15 / (gcap >> 32), Is.EqualTo(100e6), "COUNTER_CLK_PERIOD in fs: 100 MHz");
            Assert.That((gcap >> 32) <= 0x05F5E100, Is.True, "the period must not exceed 100 ns (2.3.4)");
            Assert.That(Read(Gcap, 4) | (Read(Gcap + 4, 4) << 32), Is.EqualTo(gcap), "two 32-bit reads give the 64-bit register");
            for (int n = 0; n < 3; n++)
            {
                ulong cfg = Read(TimerConfig(n));
                Assert.That(cfg & (1 << 5), Is.Not.Zero, $"T{n} Tn_SIZE_CAP");
                Assert.That(cfg & (1 << 4), Is.Not.Zero, $"T{n} Tn_PER_INT_CAP");
                Assert.That(cfg & (1 << 15), Is.Zero, $"T{n} FSB delivery not supported");
                Assert.That(cfg >> 32, Is.EqualTo((ulong)HpetTimerBlock.DefaultRouteCapability), $"T{n} Tn_INT_ROUTE_CAP");
            }
        });
        Write(Gcap, ulong.MaxValue);
        Assert.That(Read(Gcap), Is.EqualTo(gcap), "GCAP_ID is read-only");
    }

    [Test]
    public void CounterIsHaltedUntilEnabledThenCountsTheClockAndHaltsAgain()
    {
        _clock.Advance(5_000);
        Assert.That(Read(Counter), Is.Zero, "halted after reset");
        Write(Conf, Enable);
        _clock.Advance(1_234_560);
        Assert.That(Read(Counter), Is.EqualTo(TicksIn(1_234_560)));
        Write(Conf, 0);
        ulong halted = Read(Counter);
        _clock.Advance(1_000_000);
        Assert.That(Read(Counter), Is.EqualTo(halted), "ENABLE_CNF clear halts the counter");
        Write(Counter, 0xFFFF_FFFF_0000_0000);
        Write(Conf, Enable);
        _clock.Advance(100);
        Assert.That(Read(Counter), Is.EqualTo(0xFFFF_FFFF_0000_0000 + TicksIn(100)), "resumes from the written value");
        Assert.That(Read(Counter + 4, 4), Is.EqualTo(0xFFFF_FFFFUL), "the high half on its own");
        Assert.That(Read(Counter, 4), Is.EqualTo(TicksIn(100)), "the low half on its own");
    }

    [Test]
    public void OneShotEdgeInterruptFiresOnceAtTheMatch()
    {
        Write(TimerConfig(2), IntEnable | Route2);
        Write(Comparator(2), 1000); // 10 us at 100 MHz
        Write(Conf, Enable);
        AdvanceTo(9_990);
        Assert.That(_pin2.RisingEdges, Is.Zero);
        AdvanceTo(10_000);
        Assert.That(_pin2.RisingEdges, Is.EqualTo(1));
        Assert.That(_pin2.Level, Is.False, "edge-triggered: a pulse");
        AdvanceTo(1_000_000_000);
        Assert.That(_pin2.RisingEdges, Is.EqualTo(1), "non-periodic: the comparator does not move");
        Assert.That(Read(Comparator(2)), Is.EqualTo(1000UL));
        Assert.That(Read(Status), Is.Zero, "edge-triggered timers leave their status bit alone");
    }

    [Test]
    public void AMatchAlreadyPassedWhenTheTimerRunsIsStillDelivered()
    {
        Write(Conf, Enable);
        Write(TimerConfig(2), IntEnable | Route2);
        Write(Comparator(2), Read(Counter) + 10);
        _clock.Advance(1_000_000); // the host was slow: far past the deadline before the timer queue runs
        _timers.RunDue();
        Assert.That(_pin2.RisingEdges, Is.EqualTo(1));
    }

    [Test]
    public void AnAccessSeesAMatchBeforeTheTimerQueueRuns()
    {
        Write(Conf, Enable);
        Write(TimerConfig(2), Level | Route2); // level, interrupt disabled: only the status bit shows the match
        Write(Comparator(2), 100);
        _clock.Advance(2_000);
        Assert.That(Read(Status), Is.EqualTo(4UL));
        Assert.That(_pin2.Level, Is.False, "Tn_INT_ENB_CNF clear: status, but no interrupt (2.3.8)");
    }

    [Test]
    public void PeriodicTimerInterruptsEveryPeriodAndItsComparatorShowsTheNextMatch()
    {
        const ulong period = 100_000; // 1 ms
        Write(TimerConfig(2), IntEnable | Periodic | ValSet | Route2);
        Write(Comparator(2), period);
        Assert.That(Read(TimerConfig(2)) & ValSet, Is.Zero, "Tn_VAL_SET_CNF clears itself after the write");
        Write(Conf, Enable);
        for (int ms = 1; ms <= 10; ms++)
        {
            AdvanceTo(ms * 1_000_000L);
            Assert.That(_pin2.RisingEdges, Is.EqualTo(ms));
        }

        Assert.That(Read(Comparator(2)), Is.EqualTo(11 * period));

        // A slow host: 5.5 periods pass at once. One interrupt, and the comparator skips to the next match ahead.
        AdvanceTo(15_500_000);
        Assert.That(_pin2.RisingEdges, Is.EqualTo(11));
        Assert.That(Read(Comparator(2)), Is.EqualTo(16 * period));
    }

    [Test]
    public void PeriodicComparatorWriteWithoutValSetOnlyChangesThePeriod()
    {
        // Linux's sequence: VAL_SET and the first deadline, then the period alone.
        Write(Conf, Enable);
        Write(TimerConfig(2), IntEnable | Periodic | ValSet | Route2);
        Write(Comparator(2), 500);
        Write(Comparator(2), 200);
        Assert.That(Read(Comparator(2)), Is.EqualTo(500UL), "the accumulator keeps the VAL_SET value");
        AdvanceTo(5_000);
        Assert.That(Read(Comparator(2)), Is.EqualTo(700UL), "after the match it grew by the last value written");
        AdvanceTo(7_000);
        Assert.That(Read(Comparator(2)), Is.EqualTo(900UL));
        Assert.That(_pin2.RisingEdges, Is.EqualTo(2));
    }

    [Test]
    public void ThirtyTwoBitModeComparesTheLowHalfAndInterruptsAtTheWrap()
    {
        Write(Counter, 0x1_FFFF_FF00);
        Write(TimerConfig(2), IntEnable | Mode32 | Route2);
        Write(Comparator(2), 0xAAAA_AAAA_0000_0100);
        Assert.That(Read(Comparator(2)), Is.EqualTo(0x100UL), "the upper half of a 32-bit comparator is not written");
        Write(Conf, Enable);
        AdvanceTo(TicksToNs(0xFF));
        Assert.That(_pin2.RisingEdges, Is.Zero);
        AdvanceTo(TicksToNs(0x100));
        Assert.That(_pin2.RisingEdges, Is.EqualTo(1), "non-periodic 32-bit mode: the low half wrapping to 0 interrupts");
        AdvanceTo(TicksToNs(0x1FF));
        Assert.That(_pin2.RisingEdges, Is.EqualTo(1));
        AdvanceTo(TicksToNs(0x200));
        Assert.That(_pin2.RisingEdges, Is.EqualTo(2), "then the low half matches 0x100");
        Assert.That(Read(Counter), Is.EqualTo(0x2_0000_0100UL), "the counter itself stays 64-bit");
    }

    [Test]
    public void SixtyFourBitModeComparesAllSixtyFourBits()
    {
        Write(Counter, 0x1_FFFF_FF00);
        Write(TimerConfig(2), IntEnable | Route2);
        Write(Comparator(2), 0x100); // in 64 bits this lies behind the counter: no match for 2^64 ticks
        Write(Conf, Enable);
        AdvanceTo(TicksToNs(0x1000));
        Assert.That(_pin2.RisingEdges, Is.Zero);
        Write(Comparator(2), 0x2_0000_1100);
        Write(Comparator(2) + 4, 0x2, 4);
        Assert.That(Read(Comparator(2)), Is.EqualTo(0x2_0000_1100UL), "a 32-bit write to each half");
        AdvanceTo(TicksToNs(0x2000));
        Assert.That(_pin2.RisingEdges, Is.EqualTo(1));
    }

    [Test]
    public void EnteringThirtyTwoBitModeTruncatesComparatorAndPeriod()
    {
        Write(TimerConfig(2), Periodic | ValSet);
        Write(Comparator(2), 0x1234_5678_9ABC_DEF0);
        Write(TimerConfig(2), Periodic | Mode32);
        Assert.That(Read(Comparator(2)), Is.EqualTo(0x9ABC_DEF0UL));
    }

    [Test]
    public void LevelInterruptHoldsTheLineUntilItsStatusBitIsWrittenWithOne()
    {
        Write(Conf, Enable);
        Write(TimerConfig(2), Level | IntEnable | Route2);
        Write(Comparator(2), 100);
        AdvanceTo(1_000);
        Assert.Multiple(() =>
        {
            Assert.That(Read(Status), Is.EqualTo(4UL));
            Assert.That(_pin2.Level, Is.True);
        });
        Write(Status, 0);
        Assert.That(Read(Status), Is.EqualTo(4UL), "writing 0 leaves the bit set");
        Write(Status, 3);
        Assert.That(Read(Status), Is.EqualTo(4UL), "writing 1 to other bits leaves it set");
        Assert.That(_pin2.Level, Is.True);
        Write(Status, 4);
        Assert.Multiple(() =>
        {
            Assert.That(Read(Status), Is.Zero);
            Assert.That(_pin2.Level, Is.False);
            Assert.That(_pin2.RisingEdges, Is.EqualTo(1));
        });
    }

    [Test]
    public void InterruptEnableGatesALevelInterruptButNotItsStatus()
    {
        Write(Conf, Enable);
        Write(TimerConfig(2), Level | Route2);
        Write(Comparator(2), 100);
        AdvanceTo(1_000);
        Assert.That(_pin2.Level, Is.False);
        Write(TimerConfig(2), Level | IntEnable | Route2);
        Assert.That(_pin2.Level, Is.True, "enabling the interrupt with the status set asserts the line");
        Write(Conf, 0);
        Assert.That(_pin2.Level, Is.False, "ENABLE_CNF clear: no timer interrupts at all");
    }

    [Test]
    public void RouteOutsideTheCapabilityIsNotTaken()
    {
        Write(TimerConfig(2), 5 << 9);
        Assert.That((Read(TimerConfig(2)) >> 9) & 0x1F, Is.Zero, "input 5 is not in Tn_INT_ROUTE_CAP: reads back unchanged");
        Write(TimerConfig(2), Route2);
        Assert.That((Read(TimerConfig(2)) >> 9) & 0x1F, Is.EqualTo(2UL));
        Write(TimerConfig(2), ulong.MaxValue);
        ulong cfg = Read(TimerConfig(2));
        Assert.That(cfg & 0xFFFF, Is.EqualTo(Level | IntEnable | Periodic | (1 << 4) | (1 << 5) | ValSet | Mode32 | Route2),
            "only the writable bits change; FSB enable stays 0; the invalid route 31 is not taken");
    }

    [Test]
    public void LegacyReplacementRoutesTimersZeroAndOneAndBlocksThePitAndRtc()
    {
        IInterruptLine pit = _hpet.PitOutput, rtc = _hpet.RtcOutput;
        pit.SetLevel(true);
        rtc.SetLevel(true);
        Assert.That(_irq0.Level && _irq8.Level, Is.True, "without LEG_RT_CNF the 8254 and the RTC reach IRQ 0 and 8");
        pit.SetLevel(false);

        Write(TimerConfig(0), IntEnable);
        Write(Comparator(0), 100);
        Write(TimerConfig(1), IntEnable | Level);
        Write(Comparator(1), 200);
        Write(Conf, Enable | Legacy);
        Assert.That(_irq8.Level, Is.False, "the RTC's asserted output is blocked");
        int irq0Edges = _irq0.RisingEdges;
        pit.SetLevel(true);
        Assert.That(_irq0.RisingEdges, Is.EqualTo(irq0Edges), "the 8254's output is blocked");

        AdvanceTo(1_500);
        Assert.That(_irq0.RisingEdges, Is.EqualTo(irq0Edges + 1), "timer 0 on IRQ 0, whatever its route field says");
        Assert.That(_irq8.Level, Is.False);
        AdvanceTo(2_500);
        Assert.That(_irq8.Level, Is.True, "timer 1 (level) on IRQ 8");
        Assert.That(_pin2.RisingEdges, Is.Zero, "nothing on the timers' own route");

        Write(Conf, Enable);
        Assert.That(_irq0.Level, Is.True, "LEG_RT_CNF clear: IRQ 0 shows the 8254's output again");
        Assert.That(_irq8.Level, Is.True, "and IRQ 8 the RTC's");
        rtc.SetLevel(false);
        Assert.That(_irq8.Level, Is.False);
    }

    [Test]
    public void TwoLevelTimersOnOneRouteShareTheLine()
    {
        Write(Conf, Enable);
        Write(TimerConfig(0), Level | IntEnable | Route2);
        Write(TimerConfig(1), Level | IntEnable | Route2);
        Write(Comparator(0), 100);
        Write(Comparator(1), 100);
        AdvanceTo(2_000);
        Assert.That(Read(Status), Is.EqualTo(3UL));
        Write(Status, 1);
        Assert.That(_pin2.Level, Is.True, "timer 1 still holds the line");
        Write(Status, 2);
        Assert.That(_pin2.Level, Is.False);
    }

    [Test]
    public void TimerQueueDeadlineIsTheMatch()
    {
        Write(Conf, Enable);
        Write(TimerConfig(2), IntEnable | Route2);
        Write(Comparator(2), 12_345);
        Assert.That(_timers.NextDeadline, Is.EqualTo(123_450L));
        Write(TimerConfig(2), Route2);
        Assert.That(_timers.NextDeadline, Is.Null, "a timer that cannot interrupt does not wake the host");
    }

    [Test]
    public void RandomAccessesNeverThrowAndKeepTheCounterMonotonicWhileRunning()
    {
        // A guest can write anything anywhere in the window; the device must stay consistent and the host quiet.
        var random = new Random(20261128);
        int[] sizes = [1, 2, 4, 8];
        for (int i = 0; i < 20_000; i++)
        {
            ulong offset = (ulong)random.Next(0x1000);
            int size = sizes[random.Next(4)];
            if (random.Next(2) == 0)
            {
                _hpet.Write(offset, size, (ulong)random.NextInt64());
            }
            else
            {
                _hpet.Read(offset, size);
            }

            _clock.Advance(random.Next(2_000));
            Assert.That(_timers.RunDue(), Is.LessThan(10_000), "a timer callback kept rescheduling into the past");
        }

        Write(Counter, 0);
        Write(Conf, Enable);
        ulong last = 0;
        for (int i = 0; i < 100; i++)
        {
            _clock.Advance(random.Next(1_000));
            ulong now = Read(Counter);
            Assert.That(now, Is.GreaterThanOrEqualTo(last));
            last = now;
        }
    }

    private static long TicksToNs(ulong ticks) => (long)ticks * 10;
}
