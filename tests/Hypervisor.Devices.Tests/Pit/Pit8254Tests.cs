using Hypervisor.Core.Io;
using Hypervisor.Core.Timing;
using Hypervisor.Devices.Bus;
using Hypervisor.Devices.Pit;
using Hypervisor.Devices.Tests.Fakes;

namespace Hypervisor.Devices.Tests.Pit;

// Behaviour per the Intel 8254 data sheet (231164): mode waveforms, latch and read-back commands; the PC's 1.193182 MHz
// input clock and port 0x61 layout per the IBM PC/AT Technical Reference.
public class Pit8254Tests
{
    private const double TicksPerSecond = 1_193_182.0;

    private ManualClock _clock = null!;
    private TimerQueue _timers = null!;
    private RecordingInterruptLine _irq = null!;
    private Pit8254 _pit = null!;
    private PortIoBus _bus = null!;

    [SetUp]
    public void SetUp()
    {
        var ioLock = new IoLock();
        _clock = new ManualClock(DateTimeOffset.UnixEpoch);
        _timers = new TimerQueue(_clock, ioLock);
        _irq = new RecordingInterruptLine();
        _pit = new Pit8254(_clock, _timers, _irq);
        _bus = new PortIoBus(ioLock);
        _bus.Register(Pit8254.BasePort, Pit8254.PortCount, new BytePortAdapter(_pit, 4), "pit");
        _bus.Register(SystemControlPortB.Port, 1, new BytePortAdapter(_pit.SpeakerPort, 1), "port61");
    }

    private void Out(ushort port, int value) => _bus.Write(port, 1, (uint)value);

    private byte In(ushort port) => (byte)_bus.Read(port, 1);

    /// <summary>The first clock time (ns) at which at least <paramref name="ticks"/> input pulses have occurred.</summary>
    private static long NsForTicks(long ticks) => (long)Math.Ceiling(ticks * 1e9 / TicksPerSecond);

    private void AdvanceTo(long ns)
    {
        _clock.Advance(ns - _clock.NowNanoseconds);
        _timers.RunDue();
    }

    [Test]
    public void RateGeneratorInterruptsOncePerPeriod()
    {
        const int n = 11932; // the classic 100 Hz divisor
        Out(0x43, 0x34); // counter 0, LSB then MSB, mode 2, binary
        Out(0x40, n & 0xFF);
        Out(0x40, n >> 8);
        Assert.That(_pit.GetOutput(0), Is.True, "mode 2 output is high while counting");
        int initial = _irq.RisingEdges; // programming mode 2 drives OUT high, which the PIC sees as an edge too
        for (int ms = 1; ms <= 1000; ms++)
        {
            AdvanceTo(ms * 1_000_000L);
        }

        // One rising edge at the end of every N-pulse period: floor(1193182 / 11932) = 99 whole periods in a second.
        Assert.That(_irq.RisingEdges - initial, Is.EqualTo((int)(TicksPerSecond / n)));
    }

    [Test]
    public void TheNextTimerDeadlineIsTheEndOfThePeriod()
    {
        Out(0x43, 0x34);
        Out(0x40, 0xA9);
        Out(0x40, 0x04); // 1193 pulses
        Assert.That(_timers.NextDeadline, Is.EqualTo(NsForTicks(1193)));
    }

    [Test]
    public void ALateTimerStillDeliversAnEdge()
    {
        Out(0x43, 0x34);
        Out(0x40, 100);
        Out(0x40, 0);
        int initial = _irq.RisingEdges;
        AdvanceTo(NsForTicks(1050)); // ten periods late
        Assert.That(_irq.RisingEdges - initial, Is.EqualTo(1), "the PIC can latch only one edge; it must see it");
        Assert.That(_timers.NextDeadline, Is.EqualTo(NsForTicks(1100)));
    }

    [Test]
    public void Mode0InterruptsOnceOnTerminalCount()
    {
        Out(0x43, 0x30); // counter 0, mode 0
        Out(0x40, 100);
        Out(0x40, 0);
        Assert.That(_irq.Level, Is.False, "mode 0 output is low while counting");
        int initial = _irq.RisingEdges;
        AdvanceTo(NsForTicks(99));
        Assert.That(_irq.Level, Is.False);
        AdvanceTo(NsForTicks(100));
        Assert.That(_irq.Level, Is.True);
        AdvanceTo(NsForTicks(100_000));
        Assert.That(_irq.RisingEdges - initial, Is.EqualTo(1));
        Assert.That(_timers.NextDeadline, Is.Null);
    }

    [Test]
    public void CounterLatchFreezesTheReadValue()
    {
        Out(0x61, 0x01); // gate counter 2
        Out(0x43, 0xB0); // counter 2, mode 0
        Out(0x42, 0xFF);
        Out(0x42, 0xFF);
        AdvanceTo(NsForTicks(1000));
        Out(0x43, 0x80); // latch counter 2
        AdvanceTo(NsForTicks(5000));
        int latched = In(0x42) | (In(0x42) << 8);
        Assert.That(latched, Is.EqualTo(0xFFFF - 1000));
        int live = In(0x42) | (In(0x42) << 8);
        Assert.That(live, Is.EqualTo(0xFFFF - 5000));
    }

    [Test]
    public void ReadBackStatusAndCount()
    {
        Out(0x43, 0x34);
        Out(0x43, 0xE2); // read-back: status of counter 0
        Assert.That(In(0x40), Is.EqualTo(0x80 | 0x40 | 0x34), "OUT high, null count, RW=3, mode 2");
        Out(0x40, 0x00);
        Out(0x40, 0x10); // 0x1000
        AdvanceTo(NsForTicks(0x10));
        Out(0x43, 0xC2); // read-back: count and status of counter 0
        Assert.That(In(0x40), Is.EqualTo(0x80 | 0x34), "status first, count loaded");
        Assert.That(In(0x40) | (In(0x40) << 8), Is.EqualTo(0x1000 - 0x10));
    }

    [Test]
    public void BcdCounting()
    {
        Out(0x61, 0x01);
        Out(0x43, 0xB1); // counter 2, mode 0, BCD
        Out(0x42, 0x00);
        Out(0x42, 0x10); // BCD 1000
        AdvanceTo(NsForTicks(1));
        Assert.That(In(0x42) | (In(0x42) << 8), Is.EqualTo(0x0999));
        AdvanceTo(NsForTicks(1001));
        Assert.That(In(0x42) | (In(0x42) << 8), Is.EqualTo(0x9999), "BCD wraps from 0 to 9999");
    }

    [Test]
    public void Port61ShowsCounter2OutputForCalibration()
    {
        // Linux's PIT calibration: gate on, speaker off, counter 2 in mode 0, poll bit 5 of port 0x61.
        Out(0x61, (In(0x61) & ~0x02) | 0x01);
        Out(0x43, 0xB0);
        Out(0x42, 1193 & 0xFF);
        Out(0x42, 1193 >> 8);
        AdvanceTo(NsForTicks(1192));
        Assert.That(In(0x61) & 0x20, Is.Zero);
        AdvanceTo(NsForTicks(1193));
        Assert.That(In(0x61) & 0x20, Is.EqualTo(0x20));
        Assert.That(In(0x61) & 0x03, Is.EqualTo(0x01));
    }

    [Test]
    public void GateLowPausesMode0()
    {
        Out(0x61, 0x01);
        Out(0x43, 0xB0);
        Out(0x42, 0xFF);
        Out(0x42, 0xFF);
        AdvanceTo(NsForTicks(100));
        Out(0x61, 0x00);
        AdvanceTo(NsForTicks(500));
        Out(0x61, 0x01);
        AdvanceTo(NsForTicks(500) + (NsForTicks(600) - NsForTicks(500)));
        int count = In(0x42) | (In(0x42) << 8);
        Assert.That(count, Is.InRange(0xFFFF - 201, 0xFFFF - 199), "counted about 100 + 100 pulses with the gate high");
    }

    [Test]
    public void RefreshToggleFlipsEvery15Microseconds()
    {
        int a = In(0x61) & 0x10;
        AdvanceTo(15_085);
        int b = In(0x61) & 0x10;
        AdvanceTo(30_170);
        int c = In(0x61) & 0x10;
        Assert.That(new[] { a, b, c }, Is.EqualTo(new[] { 0, 0x10, 0 }));
    }

    [Test]
    public void PowerOnStateIsMode3WithCount65536()
    {
        // QEMU's reset state: every counter in mode 3, count 0 (65536), LSB then MSB; counter 0 runs at 18.2 Hz.
        Out(0x43, 0xE2);
        Assert.That(In(0x40), Is.EqualTo(0x80 | 0x36));
        int initial = _irq.RisingEdges;
        for (long t = 0; t <= NsForTicks(65536 * 10); t += 5_000_000)
        {
            AdvanceTo(t);
        }

        AdvanceTo(NsForTicks(65536 * 10));
        Assert.That(_irq.RisingEdges - initial, Is.EqualTo(10));
    }

    [Test]
    public void SquareWaveMode3()
    {
        Out(0x43, 0x36); // counter 0, mode 3
        Out(0x40, 4);
        Out(0x40, 0);
        var outputs = new List<bool>();
        var counts = new List<int>();
        for (int t = 0; t < 8; t++)
        {
            AdvanceTo(NsForTicks(t));
            outputs.Add(_pit.GetOutput(0));
            Out(0x43, 0x00);
            counts.Add(In(0x40) | (In(0x40) << 8));
        }

        // N = 4: high for 2 pulses, low for 2; the count goes down by two each pulse and reloads every half period.
        Assert.That(outputs, Is.EqualTo(new[] { true, true, false, false, true, true, false, false }));
        Assert.That(counts, Is.EqualTo(new[] { 4, 2, 4, 2, 4, 2, 4, 2 }));
        Assert.That(_irq.RisingEdges, Is.EqualTo(1), "the rising edge at pulse 4 (OUT was already high from power-on)");
    }

    [Test]
    public void SoftwareStrobeMode4()
    {
        Out(0x43, 0x38); // counter 0, mode 4
        Out(0x40, 10);
        Out(0x40, 0);
        AdvanceTo(NsForTicks(10));
        Assert.That(_pit.GetOutput(0), Is.False, "one pulse low at terminal count");
        AdvanceTo(NsForTicks(11));
        Assert.That(_pit.GetOutput(0), Is.True);
        Assert.That(_irq.RisingEdges, Is.EqualTo(1), "the end of the strobe");
    }

    [Test]
    public void HardwareRetriggerableOneShotMode1()
    {
        Out(0x43, 0xB2); // counter 2, mode 1
        Out(0x42, 10);
        Out(0x42, 0);
        Assert.That(_pit.GetOutput(2), Is.True, "waits for a gate trigger");
        AdvanceTo(NsForTicks(50));
        Assert.That(_pit.GetOutput(2), Is.True);
        Out(0x61, 0x01); // trigger
        Assert.That(_pit.GetOutput(2), Is.False);
        AdvanceTo(NsForTicks(60));
        Assert.That(_pit.GetOutput(2), Is.True);
    }

    [Test]
    public void AOneShotThatExpiresWhileTheWriterIsPreemptedStillInterrupts()
    {
        // A loaded host can preempt the vCPU thread right after its count write, for longer than a short one-shot
        // (Linux's PIT clockevent programs counts of about 1400 pulses, 1.2 ms). Here every clock reading is 2 ms
        // later than the one before, so anything the PIT samples after the write already lies past the strobe. The
        // strobe's rising edge must still reach IRQ 0 once the timer runs; before the fix it was recorded as seen and
        // never raised, and a tickless Linux then slept forever in HLT.
        var ioLock = new IoLock();
        var clock = new SteppingClock(stepNanoseconds: 2_000_000);
        var timers = new TimerQueue(clock, ioLock);
        var irq = new RecordingInterruptLine();
        var pit = new Pit8254(clock, timers, irq);
        var bus = new PortIoBus(ioLock);
        bus.Register(Pit8254.BasePort, Pit8254.PortCount, new BytePortAdapter(pit, 4), "pit");
        bus.Write(0x43, 1, 0x38); // counter 0, LSB then MSB, mode 4
        bus.Write(0x40, 1, 1399 & 0xFF);
        bus.Write(0x40, 1, 1399 >> 8);
        int before = irq.RisingEdges;

        Assert.That(timers.NextDeadline, Is.Not.Null, "the strobe's edge is still scheduled, even though its time has passed");
        timers.RunDue();
        Assert.That(irq.RisingEdges - before, Is.EqualTo(1), "exactly one edge: the end of the strobe");
        Assert.That(timers.NextDeadline, Is.Null, "a one-shot interrupts once");
    }

    /// <summary>A clock that moves on by a fixed step at every reading, like a thread preempted between two readings.</summary>
    private sealed class SteppingClock(long stepNanoseconds) : IMachineClock
    {
        private long _now;

        public long NowNanoseconds => _now += stepNanoseconds;

        public DateTimeOffset StartTime => DateTimeOffset.UnixEpoch;
    }
}
