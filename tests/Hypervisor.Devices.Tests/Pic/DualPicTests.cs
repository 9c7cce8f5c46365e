using Hypervisor.Core.Io;
using Hypervisor.Devices.Bus;
using Hypervisor.Devices.Pic;
using Hypervisor.Devices.Tests.Fakes;

namespace Hypervisor.Devices.Tests.Pic;

// Expected behaviour follows the Intel 8259A data sheet (231468): initialisation sequence, OCW2 command table,
// OCW3 read/poll/special mask, priority resolution, and the INTA sequence; ELCR masks from the 82371AB data sheet.
public class DualPicTests
{
    private RecordingMachineControl _control = null!;
    private PortIoBus _bus = null!;
    private DualPic _pic = null!;

    [SetUp]
    public void SetUp()
    {
        var ioLock = new IoLock();
        _control = new RecordingMachineControl();
        _bus = new PortIoBus(ioLock);
        _pic = new DualPic(_control, ioLock);
        _bus.Register(DualPic.MasterPort, 2, new BytePortAdapter(_pic.Master, 2), "pic-master");
        _bus.Register(DualPic.SlavePort, 2, new BytePortAdapter(_pic.Slave, 2), "pic-slave");
        _bus.Register(DualPic.ElcrPort, 2, new BytePortAdapter(_pic.Elcr, 2), "elcr");
    }

    /// <summary>The sequence BIOSes and Linux use: vectors 0x08 and 0x70 (or as given), cascade on IR2, 8086 mode.</summary>
    private void Init(byte masterBase = 0x08, byte slaveBase = 0x70, byte icw4 = 0x01)
    {
        Out(0x20, 0x11); Out(0x21, masterBase); Out(0x21, 0x04); Out(0x21, icw4);
        Out(0xA0, 0x11); Out(0xA1, slaveBase); Out(0xA1, 0x02); Out(0xA1, icw4);
    }

    private void Out(ushort port, byte value) => _bus.Write(port, 1, value);

    private byte In(ushort port) => (byte)_bus.Read(port, 1);

    private void Pulse(int irq)
    {
        _pic.GetLine(irq).SetLevel(true);
        _pic.GetLine(irq).SetLevel(false);
    }

    [Test]
    public void TimerInterruptIsDeliveredAndEndsWithEoi()
    {
        Init();
        Assert.That(_pic.HasPendingInterrupt, Is.False);
        Pulse(0);
        Assert.That(_pic.HasPendingInterrupt, Is.True);
        Assert.That(_control.InterruptNotifications, Is.EqualTo(1));
        Assert.That(_pic.AcknowledgeInterrupt(), Is.EqualTo(0x08));
        Assert.That(_pic.Master.Isr, Is.EqualTo(0x01));
        Assert.That(_pic.HasPendingInterrupt, Is.False);
        Out(0x20, 0x20);
        Assert.That(_pic.Master.Isr, Is.Zero);
        Assert.That(_pic.AcknowledgeInterrupt(), Is.EqualTo(-1), "nothing was requested");
    }

    [Test]
    public void FixedPriorityAndNesting()
    {
        Init();
        Pulse(3);
        Pulse(1);
        Assert.That(_pic.AcknowledgeInterrupt(), Is.EqualTo(0x09), "IR1 beats IR3");
        Assert.That(_pic.HasPendingInterrupt, Is.False, "IR3 waits while IR1 is in service");
        Pulse(0);
        Assert.That(_pic.AcknowledgeInterrupt(), Is.EqualTo(0x08), "IR0 nests over IR1");
        Out(0x20, 0x20); // non-specific EOI ends IR0, the highest in service
        Assert.That(_pic.Master.Isr, Is.EqualTo(0x02));
        Out(0x20, 0x20);
        Assert.That(_pic.AcknowledgeInterrupt(), Is.EqualTo(0x0B));
    }

    [Test]
    public void CascadeDeliversSlaveVectors()
    {
        Init();
        Pulse(12);
        Assert.That(_pic.HasPendingInterrupt, Is.True);
        Assert.That(_pic.AcknowledgeInterrupt(), Is.EqualTo(0x74));
        Assert.That(_pic.Master.Isr, Is.EqualTo(0x04), "the master has IR2 in service");
        Assert.That(_pic.Slave.Isr, Is.EqualTo(0x10));
        Pulse(8);
        Assert.That(_pic.HasPendingInterrupt, Is.False, "fully nested: IR2 in service on the master blocks the slave");
        Out(0xA0, 0x20);
        Out(0x20, 0x20);
        Assert.That(_pic.AcknowledgeInterrupt(), Is.EqualTo(0x70));
    }

    [Test]
    public void SpecialFullyNestedModeLetsAHigherSlaveRequestThrough()
    {
        Init(icw4: 0x11);
        Pulse(12);
        Assert.That(_pic.AcknowledgeInterrupt(), Is.EqualTo(0x74));
        Pulse(8);
        Assert.That(_pic.AcknowledgeInterrupt(), Is.EqualTo(0x70));
    }

    [Test]
    public void MaskedRequestsWaitInIrr()
    {
        Init();
        Out(0x21, 0xFF); // mask everything
        Pulse(4);
        Assert.That(_pic.HasPendingInterrupt, Is.False);
        Out(0x20, 0x0A); // OCW3: read IRR
        Assert.That(In(0x20), Is.EqualTo(0x10));
        Assert.That(In(0x21), Is.EqualTo(0xFF));
        Out(0x21, 0xEF);
        Assert.That(_pic.AcknowledgeInterrupt(), Is.EqualTo(0x0C));
        Out(0x20, 0x0B); // OCW3: read ISR
        Assert.That(In(0x20), Is.EqualTo(0x10));
    }

    [Test]
    public void EdgeTriggeredInputNeedsANewEdge()
    {
        Init();
        _pic.GetLine(1).SetLevel(true);
        Assert.That(_pic.AcknowledgeInterrupt(), Is.EqualTo(0x09));
        Out(0x20, 0x20);
        Assert.That(_pic.HasPendingInterrupt, Is.False, "the line stayed high: no new edge");
        _pic.GetLine(1).SetLevel(false);
        _pic.GetLine(1).SetLevel(true);
        Assert.That(_pic.HasPendingInterrupt, Is.True);
    }

    [Test]
    public void LevelTriggeredInputThroughElcr()
    {
        Init();
        Out(0x4D0, 0xFF);
        Out(0x4D1, 0xFF);
        Assert.That(In(0x4D0), Is.EqualTo(0xF8), "IRQ 0-2 are always edge-triggered");
        Assert.That(In(0x4D1), Is.EqualTo(0xDE), "IRQ 8 and 13 are always edge-triggered");
        Out(0x4D1, 0x04); // IRQ 10 level
        _pic.GetLine(10).SetLevel(true);
        Assert.That(_pic.AcknowledgeInterrupt(), Is.EqualTo(0x72));
        Out(0xA0, 0x20);
        Out(0x20, 0x20);
        Assert.That(_pic.AcknowledgeInterrupt(), Is.EqualTo(0x72), "still high: requested again after EOI");
        _pic.GetLine(10).SetLevel(false);
        Out(0xA0, 0x20);
        Out(0x20, 0x20);
        Assert.That(_pic.HasPendingInterrupt, Is.False);
    }

    [Test]
    public void SetPriorityAndRotateOnEoi()
    {
        Init();
        Out(0x20, 0xC3); // OCW2 set priority: IR3 lowest, so IR4 highest
        Assert.That(_pic.Master.LowestPriorityLevel, Is.EqualTo(3));
        Pulse(1);
        Pulse(5);
        Assert.That(_pic.AcknowledgeInterrupt(), Is.EqualTo(0x0D), "IR5 ranks above IR1 now");
        Out(0x20, 0xA0); // rotate on non-specific EOI: IR5 becomes lowest
        Assert.That(_pic.Master.LowestPriorityLevel, Is.EqualTo(5));
        Assert.That(_pic.AcknowledgeInterrupt(), Is.EqualTo(0x09));
        Out(0x20, 0xE1); // rotate on specific EOI of IR1
        Assert.That(_pic.Master.Isr, Is.Zero);
        Assert.That(_pic.Master.LowestPriorityLevel, Is.EqualTo(1));
    }

    [Test]
    public void AutoEoiLeavesIsrClearAndCanRotate()
    {
        Init(icw4: 0x03);
        Pulse(6);
        Assert.That(_pic.AcknowledgeInterrupt(), Is.EqualTo(0x0E));
        Assert.That(_pic.Master.Isr, Is.Zero);
        Out(0x20, 0x80); // rotate in AEOI mode
        Pulse(1);
        Assert.That(_pic.AcknowledgeInterrupt(), Is.EqualTo(0x09));
        Assert.That(_pic.Master.LowestPriorityLevel, Is.EqualTo(1));
    }

    [Test]
    public void SpecialMaskModeEnablesLowerLevels()
    {
        Init();
        Pulse(1);
        Assert.That(_pic.AcknowledgeInterrupt(), Is.EqualTo(0x09));
        Pulse(3);
        Assert.That(_pic.HasPendingInterrupt, Is.False);
        Out(0x20, 0x68); // OCW3: set special mask
        Out(0x21, 0x02); // mask IR1, which is in service
        Assert.That(_pic.AcknowledgeInterrupt(), Is.EqualTo(0x0B));
        Out(0x20, 0x48); // reset special mask
        Assert.That(_pic.Master.SpecialMask, Is.False);
    }

    [Test]
    public void PollModeActsAsAcknowledge()
    {
        Init();
        Pulse(5);
        Out(0x20, 0x0C); // OCW3 poll
        Assert.That(In(0x20), Is.EqualTo(0x85));
        Assert.That(_pic.Master.Isr, Is.EqualTo(0x20));
        Out(0x20, 0x0C);
        Assert.That(In(0x20), Is.Zero, "no request");
        Out(0x20, 0x0A);
        Assert.That(In(0x20), Is.Zero, "the poll read is done; reads return IRR again");
    }

    [Test]
    public void RequestThatGoesAwayGivesSpuriousIrq7()
    {
        Init();
        Pulse(5);
        Assert.That(_pic.HasPendingInterrupt, Is.True);
        Out(0x21, 0x20); // mask it before the CPU acknowledges
        Assert.That(_pic.AcknowledgeInterrupt(), Is.EqualTo(0x0F));
        Assert.That(_pic.Master.Isr, Is.Zero, "a spurious IRQ 7 sets no ISR bit");
        Assert.That(_pic.SpuriousCount, Is.EqualTo(1));
    }

    [Test]
    public void SlaveRequestThatGoesAwayGivesSpuriousIrq15()
    {
        Init();
        Pulse(10);
        Out(0xA1, 0x04); // mask IRQ 10 on the slave; master IR2 stays latched (edge)
        Assert.That(_pic.AcknowledgeInterrupt(), Is.EqualTo(0x77));
        Assert.That(_pic.Slave.Isr, Is.Zero);
        Assert.That(_pic.Master.Isr, Is.EqualTo(0x04), "the master saw a real IR2 and needs an EOI");
    }

    [Test]
    public void BrokenInitialisationSequenceRecovers()
    {
        Init();
        Out(0x20, 0x11);
        Out(0x21, 0x20); // ICW2, then the guest gives up
        Assert.That(_pic.Master.IsInitializing, Is.True);
        Out(0x20, 0x20); // an OCW2 in the middle
        Out(0x20, 0x11); // start again, properly
        Out(0x21, 0x30); Out(0x21, 0x04); Out(0x21, 0x01);
        Assert.That(_pic.Master.IsInitializing, Is.False);
        Pulse(0);
        Assert.That(_pic.AcknowledgeInterrupt(), Is.EqualTo(0x30));
    }

    [Test]
    public void Icw1ClearsMaskAndPendingEdges()
    {
        Init();
        Out(0x21, 0xFF);
        Pulse(3);
        Out(0x20, 0x11);
        Assert.That(_pic.Master.Imr, Is.Zero);
        Assert.That(_pic.Master.Irr, Is.Zero);
    }
}
