using Hypervisor.Core.Io;
using Hypervisor.Devices.Bus;
using Hypervisor.Devices.Tests.Fakes;
using Hypervisor.Devices.Uart;

namespace Hypervisor.Devices.Tests.Uart;

// Expected values follow the PC16550D data sheet (register reset values in its Table IV, interrupt priorities in
// Table V).
public class Uart16550Tests
{
    private const int Rbr = 0, Ier = 1, Iir = 2, Fcr = 2, Lcr = 3, Mcr = 4, Lsr = 5, Msr = 6, Scr = 7;

    private static (Uart16550 Uart, RecordingInterruptLine Irq, MemoryStream Out) Create(int inputCapacity = Uart16550.DefaultInputCapacity)
    {
        var irq = new RecordingInterruptLine();
        var output = new MemoryStream();
        return (new Uart16550(irq, output, new IoLock(), inputCapacity), irq, output);
    }

    [Test]
    public void ResetValues()
    {
        var (uart, irq, _) = Create();
        Assert.That(uart.ReadRegister(Ier), Is.Zero);
        Assert.That(uart.ReadRegister(Iir), Is.EqualTo(0x01), "no interrupt pending");
        Assert.That(uart.ReadRegister(Lcr), Is.Zero);
        Assert.That(uart.ReadRegister(Mcr), Is.EqualTo(0x08), "OUT2, as QEMU resets it");
        Assert.That(uart.ReadRegister(Lsr), Is.EqualTo(0x60), "THRE and TEMT");
        Assert.That(uart.ReadRegister(Msr) & 0xF0, Is.EqualTo(0xB0), "CTS, DSR, DCD from the host side");
        Assert.That(irq.Level, Is.False);
    }

    [Test]
    public void DivisorLatchSharesOffsetsZeroAndOne()
    {
        var (uart, _, output) = Create();
        uart.WriteRegister(Lcr, 0x80);
        uart.WriteRegister(0, 0x0C);
        uart.WriteRegister(1, 0x00);
        Assert.That(uart.ReadRegister(0), Is.EqualTo(0x0C));
        Assert.That(uart.Divisor, Is.EqualTo(12), "9600 baud");
        Assert.That(output.Length, Is.Zero, "a DLL write is not transmitted");
        uart.WriteRegister(Lcr, 0x03);
        uart.WriteRegister(1, 0x05);
        Assert.That(uart.ReadRegister(Ier), Is.EqualTo(0x05));
        uart.WriteRegister(Lcr, 0x83);
        Assert.That(uart.ReadRegister(1), Is.Zero, "DLM unchanged by the IER write");
    }

    [Test]
    public void TransmittedBytesReachTheStreamAtOnce()
    {
        var (uart, _, output) = Create();
        foreach (byte b in "hi\n"u8.ToArray())
        {
            uart.WriteRegister(0, b);
            Assert.That(uart.ReadRegister(Lsr) & 0x60, Is.EqualTo(0x60));
        }

        Assert.That(output.ToArray(), Is.EqualTo("hi\n"u8.ToArray()));
        Assert.That(uart.BytesTransmitted, Is.EqualTo(3));
    }

    [Test]
    public void ThreInterruptIsClearedByReadingIirAndRaisedByWritingThr()
    {
        var (uart, irq, _) = Create();
        uart.WriteRegister(Ier, 0x02);
        Assert.That(irq.Level, Is.True, "enabling ETBEI with an empty THR interrupts");
        Assert.That(uart.ReadRegister(Iir), Is.EqualTo(0x02));
        Assert.That(irq.Level, Is.False);
        Assert.That(uart.ReadRegister(Iir), Is.EqualTo(0x01));
        uart.WriteRegister(0, (byte)'x');
        Assert.That(irq.Level, Is.True);
        Assert.That(uart.ReadRegister(Iir), Is.EqualTo(0x02));
    }

    [Test]
    public void ReceivedDataWithoutFifo()
    {
        var (uart, irq, _) = Create();
        uart.WriteRegister(Ier, 0x01);
        Assert.That(uart.EnqueueInput("AB"u8), Is.EqualTo(2));
        Assert.That(irq.Level, Is.True);
        Assert.That(uart.ReadRegister(Iir), Is.EqualTo(0x04));
        Assert.That(uart.ReadRegister(Lsr) & 0x01, Is.EqualTo(1));
        Assert.That(uart.ReadRegister(Rbr), Is.EqualTo((byte)'A'));
        Assert.That(uart.ReadRegister(Rbr), Is.EqualTo((byte)'B'));
        Assert.That(uart.ReadRegister(Lsr) & 0x01, Is.Zero);
        Assert.That(irq.Level, Is.False);
    }

    [Test]
    public void FifoTriggerLevelAndCharacterTimeout()
    {
        var (uart, irq, _) = Create();
        uart.WriteRegister(Fcr, 0xC7); // enable, clear both, trigger 14
        uart.WriteRegister(Ier, 0x01);
        uart.EnqueueInput(new byte[10]);
        Assert.That(uart.ReadRegister(Iir), Is.EqualTo(0xCC), "below the trigger level with nothing more coming: timeout");
        uart.EnqueueInput(new byte[4]);
        Assert.That(uart.ReadRegister(Iir), Is.EqualTo(0xC4), "14 bytes reach the trigger level");
        Assert.That(irq.Level, Is.True);
        for (int i = 0; i < 14; i++)
        {
            uart.ReadRegister(Rbr);
        }

        Assert.That(uart.ReadRegister(Iir), Is.EqualTo(0xC1));
        Assert.That(irq.Level, Is.False);
    }

    [TestCase(0x00, 1)]
    [TestCase(0x40, 4)]
    [TestCase(0x80, 8)]
    [TestCase(0xC0, 14)]
    public void TriggerLevels(int fcrBits, int level)
    {
        var (uart, _, _) = Create();
        uart.WriteRegister(Fcr, (byte)(fcrBits | 1));
        uart.WriteRegister(Ier, 0x01);
        uart.EnqueueInput(new byte[level - 1]);
        if (level > 1)
        {
            Assert.That(uart.ReadRegister(Iir) & 0x0F, Is.EqualTo(0x0C));
        }

        uart.EnqueueInput(new byte[1]);
        Assert.That(uart.ReadRegister(Iir) & 0x0F, Is.EqualTo(0x04));
    }

    [Test]
    public void InputBeyondTheFifoIsKeptInOrder()
    {
        var (uart, _, _) = Create();
        uart.WriteRegister(Fcr, 0x01);
        byte[] data = Enumerable.Range(0, 40).Select(i => (byte)i).ToArray();
        uart.EnqueueInput(data);
        var received = new List<byte>();
        while ((uart.ReadRegister(Lsr) & 1) != 0)
        {
            received.Add(uart.ReadRegister(Rbr));
        }

        Assert.That(received, Is.EqualTo(data));
    }

    [Test]
    public void InterruptPriorityAndLoopbackOverrun()
    {
        var (uart, irq, output) = Create();
        uart.WriteRegister(Mcr, 0x10); // loopback, modem outputs off
        uart.WriteRegister(0, 0x41);
        uart.WriteRegister(0, 0x42); // no FIFO: the one-byte receiver is full, so this one overruns
        uart.WriteRegister(Ier, 0x0F);
        Assert.That(output.Length, Is.Zero, "loopback does not transmit");
        Assert.That(uart.ReadRegister(Iir), Is.EqualTo(0x06), "line status first");
        Assert.That(uart.ReadRegister(Lsr) & 0x03, Is.EqualTo(0x03), "DR and OE");
        Assert.That(uart.ReadRegister(Lsr) & 0x02, Is.Zero, "OE clears on read");
        Assert.That(uart.ReadRegister(Iir), Is.EqualTo(0x04), "then received data");
        Assert.That(uart.ReadRegister(Rbr), Is.EqualTo(0x41));
        Assert.That(uart.ReadRegister(Iir), Is.EqualTo(0x02), "then THR empty (cleared by this read)");
        Assert.That(uart.ReadRegister(Iir), Is.EqualTo(0x00), "then modem status: CTS, DSR, DCD dropped on entering loopback");
        Assert.That(uart.ReadRegister(Msr), Is.EqualTo(0x0B));
        Assert.That(uart.ReadRegister(Iir), Is.EqualTo(0x01));
        Assert.That(irq.Level, Is.False);
    }

    [Test]
    public void LoopbackModemLines()
    {
        var (uart, _, _) = Create();
        uart.WriteRegister(Mcr, 0x10);
        uart.ReadRegister(Msr);
        uart.WriteRegister(Mcr, 0x1F);
        Assert.That(uart.ReadRegister(Msr), Is.EqualTo(0xF0 | 0x0B), "RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD with deltas");
        uart.WriteRegister(Mcr, 0x1B); // OUT1 off: trailing edge of RI
        Assert.That(uart.ReadRegister(Msr), Is.EqualTo(0xB0 | 0x04));
    }

    [Test]
    public void ScratchRegister()
    {
        var (uart, _, _) = Create();
        uart.WriteRegister(Scr, 0x5A);
        Assert.That(uart.ReadRegister(Scr), Is.EqualTo(0x5A));
    }

    [Test]
    public void HostInputIsBounded()
    {
        var (uart, _, _) = Create(inputCapacity: 8);
        int accepted = uart.EnqueueInput(new byte[100]);
        Assert.That(accepted, Is.EqualTo(8));
        Assert.That(uart.InputBytesDropped, Is.EqualTo(92));
        Assert.That(uart.PendingInputCount, Is.EqualTo(8));
    }

    [Test]
    public async Task PumpDeliversAStreamInOrderWhileTheGuestReadsOnAnotherThread()
    {
        var ioLock = new IoLock();
        var bus = new PortIoBus(ioLock);
        var uart = new Uart16550(new RecordingInterruptLine(), null, ioLock, inputCapacity: 16);
        bus.Register(Uart16550.Com1Port, Uart16550.PortCount, new BytePortAdapter(uart, Uart16550.PortCount), "com1");
        byte[] data = new byte[5000];
        new Random(4).NextBytes(data);

        Task pump = uart.PumpInputAsync(new MemoryStream(data));
        var received = new List<byte>();
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (received.Count < data.Length && DateTime.UtcNow < deadline)
        {
            if ((bus.Read(Uart16550.Com1Port + Lsr, 1) & 1) != 0)
            {
                received.Add((byte)bus.Read(Uart16550.Com1Port, 1));
            }
        }

        await pump;
        Assert.That(received, Is.EqualTo(data));
        Assert.That(uart.InputBytesDropped, Is.Zero, "the pump waits instead of dropping");
    }
}
