using Hypervisor.Core.Io;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Timing;
using Hypervisor.Devices.Pic;
using Hypervisor.Devices.Tests.Fakes;
using Hypervisor.Devices.Uart;

namespace Hypervisor.Devices.Tests.Robustness;

// A guest can write anything anywhere: the host must stay healthy and the devices must still work when programmed
// properly afterwards (testing.md, "Robustness").
public class PortHammerTests
{
    private static readonly int[] Sizes = [1, 2, 4];

    private static (VirtualMachineBuilder Builder, ManualClock Clock, MemoryStream Serial, PcDevices Pc) CreatePc()
    {
        var clock = new ManualClock(new DateTimeOffset(2024, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var builder = new VirtualMachineBuilder(clock);
        var serial = new MemoryStream();
        PcDevices pc = builder.AddPcDevices(new PcOptions { SerialOutput = serial, MemorySizeInBytes = 8 << 20 });
        return (builder, clock, serial, pc);
    }

    private static ushort RandomPort(Random random, IReadOnlyList<PortRange> ranges)
    {
        if (random.Next(10) < 7)
        {
            PortRange r = ranges[random.Next(ranges.Count)];
            return (ushort)(r.First + random.Next(r.Count));
        }

        return (ushort)random.Next(65536);
    }

    private static void Hammer(VirtualMachineBuilder builder, ManualClock clock, PcDevices pc, int seed, int operations)
    {
        var random = new Random(seed);
        IReadOnlyList<PortRange> ranges = builder.Ports.Ranges;
        for (int i = 0; i < operations; i++)
        {
            ushort port = RandomPort(random, ranges);
            int size = Sizes[random.Next(3)];
            if (random.Next(2) == 0)
            {
                builder.Ports.Write(port, size, (uint)random.NextInt64(0, 1L << 32));
            }
            else
            {
                builder.Ports.Read(port, size);
            }

            if (i % 997 == 0)
            {
                // Mostly small steps, sometimes days at once.
                clock.Advance(random.Next(20) == 0 ? random.NextInt64(0, 86_400_000_000_000L * 3) : random.Next(0, 50_000_000));
                builder.Timers.RunDue();
            }

            if (i % 101 == 0 && pc.Pic.HasPendingInterrupt)
            {
                pc.Pic.AcknowledgeInterrupt();
            }
        }
    }

    private static void Out(VirtualMachineBuilder b, ushort port, int value) => b.Ports.Write(port, 1, (uint)value);

    private static void InitPic(VirtualMachineBuilder b)
    {
        Out(b, 0x20, 0x11); Out(b, 0x21, 0x08); Out(b, 0x21, 0x04); Out(b, 0x21, 0x01);
        Out(b, 0xA0, 0x11); Out(b, 0xA1, 0x70); Out(b, 0xA1, 0x02); Out(b, 0xA1, 0x01);
    }

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(3)]
    public void RandomPortTrafficNeverThrowsAndDevicesStillWork(int seed)
    {
        var (builder, clock, serial, pc) = CreatePc();
        using (builder)
        {
            Assert.DoesNotThrow(() => Hammer(builder, clock, pc, seed, 200_000));
            Assert.That(builder.Ports.UnclaimedReadCount + builder.Ports.UnclaimedWriteCount, Is.GreaterThan(0), "stray accesses are counted");

            // The PIC and PIT recover with a proper initialisation.
            Out(builder, 0x4D0, 0);
            Out(builder, 0x4D1, 0);
            InitPic(builder);
            Out(builder, 0x21, 0xFE);
            Out(builder, 0xA1, 0xFF);
            Out(builder, 0x43, 0x34);
            Out(builder, 0x40, 0xA9);
            Out(builder, 0x40, 0x04);
            for (int i = 0; i < 4 && pc.Pic.HasPendingInterrupt; i++)
            {
                pc.Pic.AcknowledgeInterrupt();
                Out(builder, 0x20, 0x20);
            }

            clock.Advance(1_000_000);
            builder.Timers.RunDue();
            Assert.That(pc.Pic.AcknowledgeInterrupt(), Is.EqualTo(0x08), "the timer interrupt arrives after re-initialisation");

            // The UART transmits again once programmed.
            Out(builder, 0x3FB, 0x03);
            Out(builder, 0x3FC, 0x00);
            Out(builder, 0x3FA, 0x07);
            long before = serial.Length;
            Out(builder, 0x3F8, 'Z');
            Assert.That(serial.Length, Is.EqualTo(before + 1));
            Assert.That(serial.ToArray()[^1], Is.EqualTo((byte)'Z'));

            // The debug console stays within its bound.
            Assert.That(pc.DebugCon.GetBufferedBytes().Length, Is.LessThanOrEqualTo(pc.DebugCon.BufferCapacity));
        }
    }

    [Test]
    public void ConcurrentGuestHostAndTimerTrafficNeverThrows()
    {
        var (builder, clock, _, pc) = CreatePc();
        using (builder)
        {
            var errors = new System.Collections.Concurrent.ConcurrentQueue<Exception>();
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            void Guard(Action action)
            {
                try
                {
                    action();
                }
                catch (Exception e)
                {
                    errors.Enqueue(e);
                }
            }

            var threads = new List<Thread>
            {
                new(() => Guard(() =>
                {
                    var random = new Random(10);
                    IReadOnlyList<PortRange> ranges = builder.Ports.Ranges;
                    while (!stop.IsCancellationRequested)
                    {
                        ushort port = RandomPort(random, ranges);
                        if (random.Next(2) == 0) builder.Ports.Write(port, 1, (uint)random.Next(256));
                        else builder.Ports.Read(port, 1);
                    }
                })),
                new(() => Guard(() =>
                {
                    while (!stop.IsCancellationRequested)
                    {
                        pc.Com1.EnqueueInput("typed by the host"u8);
                        pc.I8042.EnqueueScanCodes([0x1C, 0xF0, 0x1C]);
                    }
                })),
                new(() => Guard(() =>
                {
                    while (!stop.IsCancellationRequested)
                    {
                        clock.Advance(100_000);
                        builder.Timers.RunDue();
                    }
                })),
                new(() => Guard(() =>
                {
                    while (!stop.IsCancellationRequested)
                    {
                        if (pc.Pic.HasPendingInterrupt)
                        {
                            pc.Pic.AcknowledgeInterrupt();
                        }
                    }
                })),
            };
            threads.ForEach(t => t.Start());
            threads.ForEach(t => Assert.That(t.Join(TimeSpan.FromSeconds(30)), Is.True, "no thread hangs"));
            Assert.That(errors, Is.Empty);
            Assert.That(pc.Com1.PendingInputCount, Is.LessThanOrEqualTo(pc.Com1.InputCapacity + 16));
        }
    }

    [Test]
    public void UartInputOverrunIsBounded()
    {
        var uart = new Uart16550(new RecordingInterruptLine(), null, new IoLock(), inputCapacity: 1024);
        byte[] flood = new byte[1 << 16];
        int accepted = 0;
        for (int i = 0; i < 16; i++)
        {
            accepted += uart.EnqueueInput(flood);
        }

        // The guest never read: the host queue's capacity plus the one-byte receive holding register (FIFO off).
        Assert.That(accepted, Is.EqualTo(1024 + 1));
        Assert.That(uart.PendingInputCount, Is.EqualTo(1024 + 1));
        Assert.That(uart.InputBytesDropped, Is.EqualTo(16L * flood.Length - (1024 + 1)));
    }

    [TestCase(7)]
    [TestCase(8)]
    public void PicMisprogrammingDoesNotWedge(int seed)
    {
        var ioLock = new IoLock();
        var control = new RecordingMachineControl();
        var pic = new DualPic(control, ioLock);
        var random = new Random(seed);
        for (int i = 0; i < 50_000; i++)
        {
            var chip = random.Next(2) == 0 ? pic.Master : pic.Slave;
            chip.WriteRegister(random.Next(2), (byte)random.Next(256));
            if (random.Next(4) == 0)
            {
                pic.GetLine(random.Next(16)).SetLevel(random.Next(2) == 0);
            }

            if (random.Next(8) == 0)
            {
                chip.ReadRegister(random.Next(2));
            }

            if (random.Next(8) == 0 && pic.HasPendingInterrupt)
            {
                int vector = pic.AcknowledgeInterrupt();
                Assert.That(vector, Is.InRange(-1, 255));
            }
        }

        // A broken ICW sequence is left in place; a new ICW1 must start over.
        pic.Master.WriteRegister(0, 0x11);
        pic.Master.WriteRegister(1, 0x20);
        pic.Master.WriteRegister(0, 0x11);
        pic.Master.WriteRegister(1, 0x20); pic.Master.WriteRegister(1, 0x04); pic.Master.WriteRegister(1, 0x01);
        pic.Slave.WriteRegister(0, 0x11);
        pic.Slave.WriteRegister(1, 0x28); pic.Slave.WriteRegister(1, 0x02); pic.Slave.WriteRegister(1, 0x01);
        for (int irq = 0; irq < 16; irq++)
        {
            pic.GetLine(irq).SetLevel(false);
        }

        pic.GetLine(3).SetLevel(true);
        Assert.That(pic.AcknowledgeInterrupt(), Is.EqualTo(0x23));
        pic.Master.WriteRegister(0, 0x20);
        pic.GetLine(9).SetLevel(true);
        Assert.That(pic.AcknowledgeInterrupt(), Is.EqualTo(0x29));
    }
}
