using System.Buffers.Binary;
using System.Text;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Memory;
using Hypervisor.Core.Timing;
using Hypervisor.Devices.Acpi;
using Hypervisor.Devices.Hpet;

namespace Hypervisor.Devices.Tests.Hpet;

// The HPET as the PC wires it (QEMU's pc: the block at 0xFED00000; legacy replacement takes ISA IRQ 0 and 8 from the
// 8254 and the RTC) and as the ACPI HPET table describes it (IA-PC HPET specification 1.0a, 3.2.4).
public class HpetOnThePcTests
{
    private VirtualMachineBuilder _builder = null!;
    private ManualClock _clock = null!;
    private PcDevices _pc = null!;

    [SetUp]
    public void SetUp()
    {
        _clock = new ManualClock(DateTimeOffset.UnixEpoch);
        _builder = new VirtualMachineBuilder(_clock);
        _pc = _builder.AddPcDevices(new PcOptions());
    }

    [TearDown]
    public void TearDown() => _builder.Dispose();

    private void Out(ushort port, int value) => _builder.Ports.Write(port, 1, (uint)value);

    private IMmioDevice HpetAt0xFed00000()
    {
        MemoryRegion region = _builder.Memory.FindRegion(new GuestAddress(0xFED0_0000))!;
        Assert.That(region, Is.Not.Null, "nothing mapped at 0xFED00000");
        Assert.That(region.Kind, Is.EqualTo(MemoryRegionKind.Mmio));
        return region.Device!;
    }

    private void Advance(long ns)
    {
        _clock.Advance(ns);
        _builder.Timers.RunDue();
    }

    [Test]
    public void ThePcHasAnHpetAtQemusAddressOnlyWithAnApic()
    {
        IMmioDevice hpet = HpetAt0xFed00000();
        Assert.That(hpet, Is.SameAs(_pc.Hpet));
        Assert.That(hpet.Read(0, 4) >> 16, Is.EqualTo(0x8086UL));

        using var without = new VirtualMachineBuilder(_clock);
        PcDevices pc = without.AddPcDevices(new PcOptions { Hpet = false });
        Assert.That(pc.Hpet, Is.Null);
        Assert.That(without.Memory.FindRegion(new GuestAddress(0xFED0_0000)), Is.Null);

        using var isa = new VirtualMachineBuilder(_clock);
        Assert.That(isa.AddPcDevices(new PcOptions { Apic = false }).Hpet, Is.Null, "no APIC, no HPET (as QEMU's isapc)");
    }

    [Test]
    public void LegacyReplacementTakesIrq0FromThePit()
    {
        Out(0x20, 0x11); Out(0x21, 0x08); Out(0x21, 0x04); Out(0x21, 0x01);
        Out(0xA0, 0x11); Out(0xA1, 0x70); Out(0xA1, 0x02); Out(0xA1, 0x01);
        Out(0x43, 0x34); // PIT counter 0, mode 2, 1 kHz
        Out(0x40, 0xA9);
        Out(0x40, 0x04);
        IMmioDevice hpet = HpetAt0xFed00000();
        hpet.Write(0x100, 4, 1 << 2); // timer 0: edge, interrupt enabled
        hpet.Write(0x108, 8, 500_000); // 5 ms at 100 MHz
        hpet.Write(0x010, 4, 3); // ENABLE_CNF | LEG_RT_CNF
        for (int ms = 0; ms < 4; ms++)
        {
            Advance(1_000_000);
            Assert.That(_pc.Pic.HasPendingInterrupt, Is.False, $"the PIT's tick {ms + 1} is blocked");
        }

        Advance(1_000_000);
        Assert.That(_pc.Pic.AcknowledgeInterrupt(), Is.EqualTo(0x08), "HPET timer 0 on IRQ 0");
        Out(0x20, 0x20); // EOI

        hpet.Write(0x010, 4, 1); // legacy replacement off: the PIT's ticks come through again
        Advance(1_000_000);
        Assert.That(_pc.Pic.AcknowledgeInterrupt(), Is.EqualTo(0x08));
    }

    [Test]
    public void AcpiHpetTableDescribesTheBlock()
    {
        var options = new AcpiTableOptions
        {
            IncludeMadt = true,
            Hpet = new AcpiHpetDescription((uint)HpetTimerBlock.Capabilities, HpetTimerBlock.DefaultBase),
        };
        byte[] block = AcpiTables.Build(options);
        ulong b = AcpiTables.DefaultBaseAddress;
        int rsdt = (int)(BinaryPrimitives.ReadUInt32LittleEndian(block.AsSpan(16)) - b);
        int xsdt = (int)(BinaryPrimitives.ReadUInt64LittleEndian(block.AsSpan(24)) - b);
        int rsdtEntries = (BinaryPrimitives.ReadInt32LittleEndian(block.AsSpan(rsdt + 4)) - 36) / 4;
        int xsdtEntries = (BinaryPrimitives.ReadInt32LittleEndian(block.AsSpan(xsdt + 4)) - 36) / 8;
        int[] fromRsdt = Enumerable.Range(0, rsdtEntries).Select(i => (int)(BinaryPrimitives.ReadUInt32LittleEndian(block.AsSpan(rsdt + 36 + (4 * i))) - b)).ToArray();
        int[] fromXsdt = Enumerable.Range(0, xsdtEntries).Select(i => (int)(BinaryPrimitives.ReadUInt64LittleEndian(block.AsSpan(xsdt + 36 + (8 * i))) - b)).ToArray();
        Assert.That(fromXsdt, Is.EqualTo(fromRsdt));
        int[] hpets = fromRsdt.Where(t => Encoding.ASCII.GetString(block, t, 4) == "HPET").ToArray();
        Assert.That(hpets, Has.Length.EqualTo(1));
        byte[] table = block.AsSpan(hpets[0], 56).ToArray();
        Assert.Multiple(() =>
        {
            Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(table.AsSpan(4)), Is.EqualTo(56u), "length: header + 20 bytes");
            Assert.That(table[8], Is.EqualTo(1), "revision");
            int sum = 0;
            foreach (byte x in table)
            {
                sum += x;
            }

            Assert.That(sum % 256, Is.Zero, "checksum");
            Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(table.AsSpan(36)), Is.EqualTo((uint)_pc.Hpet!.Read(0, 4)), "event timer block ID = GCAP_ID[31:0]");
            Assert.That(table[40], Is.Zero, "GAS address space: system memory");
            Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(table.AsSpan(44)), Is.EqualTo(0xFED0_0000UL), "base address");
            Assert.That(table[52], Is.Zero, "HPET number");
        });

        byte[] none = AcpiTables.Build(new AcpiTableOptions { IncludeMadt = true });
        int noneRsdt = (int)(BinaryPrimitives.ReadUInt32LittleEndian(none.AsSpan(16)) - b);
        Assert.That(BinaryPrimitives.ReadInt32LittleEndian(none.AsSpan(noneRsdt + 4)), Is.EqualTo(36 + 8), "without an HPET: FADT and MADT only");
    }
}
