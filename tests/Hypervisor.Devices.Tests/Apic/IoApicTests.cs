using Hypervisor.Devices.Apic;

namespace Hypervisor.Devices.Tests.Apic;

// Expected behaviour follows the Intel 82093AA I/O APIC data sheet (290566): IOREGSEL/IOWIN, the ID, version and
// redirection registers, edge and level delivery with remote IRR, and the EOI message from the local APIC
// (SDM Vol. 3A, 11.8.5).
public class IoApicTests
{
    private static ApicTestMachine EnabledMachine(int vcpus = 1)
    {
        var m = new ApicTestMachine(vcpus);
        for (int i = 0; i < vcpus; i++)
        {
            m.Enable(i);
        }

        return m;
    }

    [Test]
    public void IdentificationRegisters()
    {
        var m = new ApicTestMachine();
        m.Ioapic(0, 0xFFFF_FFFF);
        Assert.Multiple(() =>
        {
            Assert.That(m.Ioapic(1), Is.EqualTo(0x0017_0020u), "24 entries (max 0x17), version 0x20");
            Assert.That(m.Ioapic(0), Is.EqualTo(0x0F00_0000u), "ID bits 27:24");
            Assert.That(m.Bus.IoApic.Read(0x00, 1), Is.EqualTo(0UL), "IOREGSEL reads back");
            for (int pin = 0; pin < 24; pin++)
            {
                Assert.That(m.Ioapic(0x10 + 2 * pin), Is.EqualTo(0x1_0000u), $"pin {pin} masked at reset");
            }
        });
    }

    [Test]
    public void RedirectionEntryKeepsWritableBits()
    {
        var m = new ApicTestMachine();
        m.Ioapic(0x10 + 2 * 5, 0xFFFF_FFFF);
        m.Ioapic(0x11 + 2 * 5, 0xFFFF_FFFF);
        Assert.That(m.Ioapic(0x10 + 2 * 5), Is.EqualTo(0x1_AFFFu), "delivery status (12) and remote IRR (14) are read-only");
        Assert.That(m.Ioapic(0x11 + 2 * 5), Is.EqualTo(0xFF00_0000u), "destination bits 63:56");
    }

    [Test]
    public void EdgePinDeliversOnRisingEdgesOnly()
    {
        var m = EnabledMachine();
        m.Ioapic(0x10 + 2 * 2, 0x30);
        m.Pin(2, true);
        Assert.That(m.Ack(), Is.EqualTo(0x30));
        m.Eoi();
        Assert.That(m.Bsp.HasPendingInterrupt, Is.False, "a held line is one edge");
        Assert.That(m.TmrBit(0x30), Is.False, "edge: TMR clear");
        m.Pin(2, false);
        m.Pin(2, true);
        Assert.That(m.Ack(), Is.EqualTo(0x30));
        m.Eoi();
        m.Ioapic(0x10 + 2 * 2, 0x1_0030);
        m.Pin(2, false);
        m.Pin(2, true);
        m.Ioapic(0x10 + 2 * 2, 0x30);
        Assert.That(m.Bsp.HasPendingInterrupt, Is.False, "an edge while masked is lost");
    }

    [Test]
    public void LevelPinWaitsForEoiThroughRemoteIrr()
    {
        var m = EnabledMachine();
        m.Ioapic(0x10 + 2 * 9, 0x8000 | 0x39);
        m.Pin(9, true);
        Assert.That(m.Ioapic(0x10 + 2 * 9) & 0x4000, Is.EqualTo(0x4000u), "remote IRR set on delivery");
        Assert.That(m.Ack(), Is.EqualTo(0x39));
        Assert.That(m.TmrBit(0x39), Is.True, "level: TMR set");
        m.Pin(9, false);
        m.Pin(9, true);
        Assert.That(m.Bsp.HasPendingInterrupt, Is.False, "no new message while remote IRR is set");
        m.Eoi();
        Assert.That(m.Ack(), Is.EqualTo(0x39), "EOI with the line still asserted redelivers");
        m.Pin(9, false);
        m.Eoi();
        Assert.That(m.Ioapic(0x10 + 2 * 9) & 0x4000, Is.Zero, "remote IRR cleared by the EOI message");
        Assert.That(m.Bsp.HasPendingInterrupt, Is.False, "line low: nothing more");
    }

    [Test]
    public void EoiRegisterClearsRemoteIrr()
    {
        var m = EnabledMachine();
        m.Ioapic(0x10 + 2 * 11, 0x8000 | 0x3B);
        m.Pin(11, true);
        Assert.That(m.Ack(), Is.EqualTo(0x3B));
        lock (m.IoLock.Sync)
        {
            m.Bus.IoApic.Write(0x40, 4, 0x3A);
        }

        Assert.That(m.Ioapic(0x10 + 2 * 11) & 0x4000, Is.EqualTo(0x4000u), "another vector: no effect");
        lock (m.IoLock.Sync)
        {
            m.Bus.IoApic.Write(0x40, 4, 0x3B);
        }

        Assert.That(m.IrrBit(0x3B), Is.True, "still asserted: delivered again");
        m.Pin(11, false);
        lock (m.IoLock.Sync)
        {
            m.Bus.IoApic.Write(0x40, 4, 0x3B);
        }

        Assert.That(m.Ioapic(0x10 + 2 * 11) & 0x4000, Is.Zero, "deasserted: remote IRR stays clear");
    }

    [Test]
    public void UnmaskingAnAssertedLevelPinDelivers()
    {
        var m = EnabledMachine();
        m.Ioapic(0x10 + 2 * 10, 0x1_8000 | 0x3A);
        m.Pin(10, true);
        Assert.That(m.Bsp.HasPendingInterrupt, Is.False);
        m.Ioapic(0x10 + 2 * 10, 0x8000 | 0x3A);
        Assert.That(m.Ack(), Is.EqualTo(0x3A));
    }

    [Test]
    public void DestinationSelectsTheLocalApic()
    {
        var m = EnabledMachine(vcpus: 2);
        m.Ioapic(0x10 + 2 * 4, 0x34);
        m.Ioapic(0x11 + 2 * 4, 1u << 24);
        m.Pin(4, true);
        Assert.That(m.IrrBit(0x34, 0), Is.False);
        Assert.That(m.IrrBit(0x34, 1), Is.True);
        Assert.That(m.Control.Notifications[1], Is.GreaterThan(0));
    }

    [Test]
    public void NmiAndExtIntDeliveryModes()
    {
        var m = new ApicTestMachine(withPic: true);
        m.Enable();
        m.Ioapic(0x10 + 2 * 7, 0x400);
        m.Pin(7, true);
        Assert.That(m.Bsp.TakeNmi(), Is.True);
        m.Write(0x350, 0x1_0700); // LINT0 masked: the 8259 only reaches the CPU through an ExtINT message
        m.Ioapic(0x10 + 2 * 0, 0x700);
        lock (m.IoLock.Sync)
        {
            foreach ((int port, byte value) in new[] { (0, (byte)0x11), (1, (byte)0x20), (1, (byte)0x04), (1, (byte)0x01), (1, (byte)0x00) })
            {
                m.Pic!.Master.WriteRegister(port, value);
            }

            m.Pic!.GetLine(1).SetLevel(true);
        }

        Assert.That(m.Bsp.HasPendingInterrupt, Is.False);
        m.Pin(0, true);
        Assert.That(m.Bsp.HasPendingInterrupt, Is.True);
        Assert.That(m.Bsp.AcknowledgeInterrupt(), Is.EqualTo(0x21));
    }
}
