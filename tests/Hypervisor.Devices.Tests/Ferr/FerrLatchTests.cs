using Hypervisor.Core.Io;
using Hypervisor.Devices.Bus;
using Hypervisor.Devices.Ferr;
using Hypervisor.Devices.Tests.Fakes;

namespace Hypervisor.Devices.Tests.Ferr;

/// <summary>The PC/AT FERR# → IRQ 13 logic (SDM Vol. 1, Appendix D.2): latch on FERR#, acknowledge through port 0xF0.</summary>
public class FerrLatchTests
{
    private static (FerrLatch Latch, RecordingInterruptLine Irq13, PortIoBus Bus) Create()
    {
        var ioLock = new IoLock();
        var irq = new RecordingInterruptLine();
        var latch = new FerrLatch(irq, ioLock);
        var bus = new PortIoBus(ioLock);
        bus.Register(FerrLatch.Port, 1, new BytePortAdapter(latch, 1), "ferr");
        return (latch, irq, bus);
    }

    [Test]
    public void FerrRaisesIrq13UntilPortF0IsWritten()
    {
        (FerrLatch latch, RecordingInterruptLine irq, PortIoBus bus) = Create();
        latch.SetLevel(true);
        Assert.That(irq.Level, Is.True);
        Assert.That(latch.IrqRaised, Is.True);

        bus.Write(FerrLatch.Port, 1, 0);
        Assert.That(irq.Level, Is.False);
        Assert.That(latch.IrqRaised, Is.False);
        Assert.That(irq.RisingEdges, Is.EqualTo(1));
        Assert.That(bus.Read(FerrLatch.Port, 1), Is.EqualTo(0xFFu));
    }

    [Test]
    public void IgnneHoldsOffANewInterruptUntilFerrFalls()
    {
        (FerrLatch latch, RecordingInterruptLine irq, PortIoBus bus) = Create();
        latch.SetLevel(true);
        bus.Write(FerrLatch.Port, 1, 0); // acknowledged while FERR# is still asserted: IGNNE# asserted

        latch.SetLevel(false);
        latch.SetLevel(true); // the exception was cleared and a new one arrived
        Assert.That(irq.RisingEdges, Is.EqualTo(2));

        bus.Write(FerrLatch.Port, 1, 0);
        latch.SetLevel(true); // FERR# still high (no falling edge): no new interrupt
        Assert.That(irq.RisingEdges, Is.EqualTo(2));
        Assert.That(irq.Level, Is.False);
        Assert.That(latch.RaiseCount, Is.EqualTo(2));
    }

    [Test]
    public void RepeatedFerrWithoutAcknowledgeIsOneInterrupt()
    {
        (FerrLatch latch, RecordingInterruptLine irq, _) = Create();
        latch.SetLevel(true);
        latch.SetLevel(false);
        latch.SetLevel(true);
        Assert.That(irq.RisingEdges, Is.EqualTo(1));
        Assert.That(irq.Level, Is.True);
    }
}
