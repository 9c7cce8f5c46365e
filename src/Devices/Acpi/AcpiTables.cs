// Minimal ACPI tables for a PC without firmware (direct kernel boot), built at a fixed place in the BIOS area
// (ACPI 6.5 chapter 5, "ACPI Software Programming Model"):
//
//   base+0x000  RSDP, revision 2 (5.2.5): 16-byte aligned in 0xE0000-0xFFFFF, where an OS searches for it (5.2.5.1)
//   base+0x040  RSDT (5.2.7) -> FADT [, MADT]         base+0x080  XSDT (5.2.8) -> the same, 64-bit entries
//   base+0x100  FADT, revision 3 (5.2.9): SCI 9, PM1a event block, PM1a control block on ports; no SMI_CMD
//                (the machine is always in ACPI mode), a 32-bit PM timer, no GPE blocks; IA-PC boot flags: legacy devices,
//                an 8042, no VGA
//   base+0x200  FACS (5.2.10), 64-byte aligned
//   base+0x240  DSDT (5.2.11.1): only Name (_S5, Package () { S5, S5, 0, 0 }), hand-assembled AML (20.2)
//   base+0x300  HPET (IA-PC HPET specification 1.0a, 3.2.4 "The ACPI 2.0 HPET Description Table"), only when the
//                machine has an HPET: event timer block ID (GCAP_ID bits 31:0), the base address as a generic address
//                structure in system memory, HPET number 0, the minimum periodic tick, no page protection claim
//   base+0x340  MADT (5.2.12), only when the machine has local APICs: one LAPIC per processor (IDs 0..n-1), the
//                IOAPIC (ID 0, as its register and QEMU's MADT) at 0xFEC00000, IRQ0 -> GSI 2; 66 + 8n bytes, up to 0xB7A for 255
using System.Buffers.Binary;
using System.Text;

namespace Hypervisor.Devices.Acpi;

/// <summary>What the ACPI tables describe.</summary>
public sealed record AcpiTableOptions
{
    /// <summary>The guest-physical address the tables are built for (16-byte aligned, inside 0xE0000-0xFFFFF).</summary>
    public ulong BaseAddress { get; init; } = AcpiTables.DefaultBaseAddress;

    /// <summary>The PM1a event block's port; the control block follows 4 ports later.</summary>
    public ushort PmBasePort { get; init; } = AcpiPmDevice.DefaultPort;

    /// <summary>The ISA IRQ of the system control interrupt.</summary>
    public byte SciIrq { get; init; } = 9;

    /// <summary>
    /// True to include a MADT (local APICs at 0xFEE00000, an IOAPIC at 0xFEC00000, ISA IRQ 0 routed to GSI 2). Leave
    /// false when the machine has no local APIC: without a MADT the kernel uses the 8259 PIC.
    /// </summary>
    public bool IncludeMadt { get; init; }

    /// <summary>
    /// The processors the MADT lists (1-255, the default 1): local APIC IDs 0 to n-1, all enabled, processor 0 the
    /// bootstrap processor. The OS starts the others with INIT and start-up IPIs. Needs <see cref="IncludeMadt"/>.
    /// </summary>
    public int ProcessorCount { get; init; } = 1;

    /// <summary>
    /// The HPET to describe (its event timer block ID, GCAP_ID bits 31:0, and base address), or null (the default) for
    /// a machine without one: Linux then has no HPET and uses the PIT and the ACPI PM timer.
    /// </summary>
    public AcpiHpetDescription? Hpet { get; init; }
}

/// <summary>What the ACPI HPET table says about an HPET (IA-PC HPET specification 1.0a, 3.2.4).</summary>
/// <param name="EventTimerBlockId">GCAP_ID bits 31:0: revision, number of comparators, counter size, legacy-replacement capability, vendor.</param>
/// <param name="BaseAddress">The guest-physical address of the register block.</param>
/// <param name="MinimumPeriodicTicks">The smallest periodic-mode period, in counter ticks, that loses no interrupts.</param>
public sealed record AcpiHpetDescription(uint EventTimerBlockId, ulong BaseAddress, ushort MinimumPeriodicTicks = AcpiHpetDescription.DefaultMinimumPeriodicTicks)
{
    /// <summary>
    /// The default minimum tick: 128 counter ticks (1.28 us at 100 MHz), a value common in firmware HPET tables; a
    /// period that short is still delivered here, it merely states what a guest may rely on.
    /// </summary>
    public const ushort DefaultMinimumPeriodicTicks = 128;
}

/// <summary>Builds the RSDP, RSDT, XSDT, FADT, FACS, DSDT and optionally the MADT as one block of guest memory.</summary>
public static class AcpiTables
{
    /// <summary>Where the tables go by default: the start of the BIOS area an OS searches for the RSDP.</summary>
    public const ulong DefaultBaseAddress = 0xE0000;

    /// <summary>The size of the block <see cref="Build"/> returns.</summary>
    public const int BlockSize = 0x1000;

    /// <summary>The SLP_TYP value of \_S5 in our DSDT (any 3-bit value works; the PM device matches it).</summary>
    public const byte S5SleepType = 5;

    /// <summary>Offset of the RSDP in the block.</summary>
    public const int RsdpOffset = 0x000;

    private const int RsdtOffset = 0x040;
    private const int XsdtOffset = 0x080;
    private const int FadtOffset = 0x100;
    private const int FacsOffset = 0x200;
    private const int DsdtOffset = 0x240;
    private const int HpetOffset = 0x300;
    private const int MadtOffset = 0x340;

    /// <summary>The length of the HPET table: the header, then 20 bytes (3.2.4).</summary>
    public const int HpetTableLength = 56;
    private const int HeaderSize = 36;

    /// <summary>Builds the tables for <paramref name="options"/>; the result is written at <see cref="AcpiTableOptions.BaseAddress"/>.</summary>
    public static byte[] Build(AcpiTableOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.BaseAddress < 0xE0000 || options.BaseAddress + BlockSize > 0x100000 || options.BaseAddress % 16 != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.BaseAddress,
                "The RSDP must be 16-byte aligned inside 0xE0000-0xFFFFF, where an OS searches for it.");
        }

        if (options.ProcessorCount is < 1 or > 255)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.ProcessorCount, "The MADT lists 1 to 255 processors (xAPIC IDs).");
        }

        if (options.ProcessorCount > 1 && !options.IncludeMadt)
        {
            throw new ArgumentException("More than one processor needs a MADT (IncludeMadt): without one the OS finds only the bootstrap processor.", nameof(options));
        }

        byte[] block = new byte[BlockSize];
        Span<byte> b = block;
        uint at(int offset) => (uint)(options.BaseAddress + (ulong)offset);

        // DSDT: DefinitionBlock with one named object, \_S5 = Package (4) { S5, S5, 0, 0 }.
        //   08 NameOp, "_S5_", 12 PackageOp, PkgLength, NumElements 4, 0A BytePrefix S5 (twice), 00 ZeroOp (twice)
        ReadOnlySpan<byte> aml = [0x08, (byte)'_', (byte)'S', (byte)'5', (byte)'_', 0x12, 0x08, 0x04, 0x0A, S5SleepType, 0x0A, S5SleepType, 0x00, 0x00];
        aml.CopyTo(b[(DsdtOffset + HeaderSize)..]);
        WriteHeader(b[DsdtOffset..], "DSDT", HeaderSize + aml.Length, revision: 2);

        // FACS: signature, length 64, hardware signature 0, no waking vector, no global lock owner, version 2.
        Encoding.ASCII.GetBytes("FACS", b[FacsOffset..]);
        BinaryPrimitives.WriteUInt32LittleEndian(b[(FacsOffset + 4)..], 64);
        b[FacsOffset + 32] = 2;

        // FADT revision 3 (244 bytes); 32-bit block addresses only: the OS derives the X_ forms from them.
        Span<byte> fadt = b.Slice(FadtOffset, 244);
        BinaryPrimitives.WriteUInt32LittleEndian(fadt[36..], at(FacsOffset)); // FIRMWARE_CTRL
        BinaryPrimitives.WriteUInt32LittleEndian(fadt[40..], at(DsdtOffset)); // DSDT
        BinaryPrimitives.WriteUInt16LittleEndian(fadt[46..], options.SciIrq); // SCI_INT
        BinaryPrimitives.WriteUInt32LittleEndian(fadt[56..], options.PmBasePort); // PM1a_EVT_BLK
        BinaryPrimitives.WriteUInt32LittleEndian(fadt[64..], (uint)options.PmBasePort + AcpiPmDevice.ControlOffset); // PM1a_CNT_BLK
        BinaryPrimitives.WriteUInt32LittleEndian(fadt[76..], (uint)options.PmBasePort + AcpiPmDevice.TimerOffset); // PM_TMR_BLK
        fadt[88] = 4; // PM1_EVT_LEN
        fadt[89] = 2; // PM1_CNT_LEN
        fadt[91] = 4; // PM_TMR_LEN
        BinaryPrimitives.WriteUInt16LittleEndian(fadt[96..], 101); // P_LVL2_LAT > 100: C2 not supported
        BinaryPrimitives.WriteUInt16LittleEndian(fadt[98..], 1001); // P_LVL3_LAT > 1000: C3 not supported
        BinaryPrimitives.WriteUInt16LittleEndian(fadt[109..], 0x0007); // IAPC_BOOT_ARCH: LEGACY_DEVICES | 8042 | VGA Not Present
        // Flags: WBINVD | PROC_C1 | PWR_BUTTON (control method, i.e. none fixed) | SLP_BUTTON (likewise) | TMR_VAL_EXT.
        BinaryPrimitives.WriteUInt32LittleEndian(fadt[112..], (1u << 0) | (1u << 2) | (1u << 4) | (1u << 5) | (1u << 8));
        BinaryPrimitives.WriteUInt64LittleEndian(fadt[132..], at(FacsOffset)); // X_FIRMWARE_CTRL
        BinaryPrimitives.WriteUInt64LittleEndian(fadt[140..], at(DsdtOffset)); // X_DSDT
        WriteHeader(fadt, "FACP", 244, revision: 3);

        var tables = new List<int> { FadtOffset };
        if (options.IncludeMadt)
        {
            tables.Add(MadtOffset);
            WriteMadt(b[MadtOffset..], options.ProcessorCount);
        }

        if (options.Hpet is { } hpet)
        {
            tables.Add(HpetOffset);
            WriteHpet(b[HpetOffset..], hpet);
        }

        Span<byte> rsdt = b[RsdtOffset..];
        Span<byte> xsdt = b[XsdtOffset..];
        for (int i = 0; i < tables.Count; i++)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(rsdt[(HeaderSize + (4 * i))..], at(tables[i]));
            BinaryPrimitives.WriteUInt64LittleEndian(xsdt[(HeaderSize + (8 * i))..], at(tables[i]));
        }

        WriteHeader(rsdt, "RSDT", HeaderSize + (4 * tables.Count), revision: 1);
        WriteHeader(xsdt, "XSDT", HeaderSize + (8 * tables.Count), revision: 1);

        // RSDP revision 2: checksum over the first 20 bytes, extended checksum over all 36.
        Span<byte> rsdp = b.Slice(RsdpOffset, 36);
        Encoding.ASCII.GetBytes("RSD PTR ", rsdp);
        Encoding.ASCII.GetBytes("HVLIB ", rsdp[9..]);
        rsdp[15] = 2;
        BinaryPrimitives.WriteUInt32LittleEndian(rsdp[16..], at(RsdtOffset));
        BinaryPrimitives.WriteUInt32LittleEndian(rsdp[20..], 36);
        BinaryPrimitives.WriteUInt64LittleEndian(rsdp[24..], at(XsdtOffset));
        rsdp[8] = Checksum(rsdp[..20]);
        rsdp[32] = Checksum(rsdp);
        return block;
    }

    /// <summary>The byte that makes the sum of <paramref name="data"/> zero (modulo 256), as every ACPI checksum requires.</summary>
    public static byte Checksum(ReadOnlySpan<byte> data)
    {
        byte sum = 0;
        foreach (byte x in data)
        {
            sum += x;
        }

        return (byte)-sum;
    }

    private static void WriteMadt(Span<byte> madt, int processors)
    {
        // Local APIC address, flags PCAT_COMPAT (8259s present, to be masked when the APIC is used).
        BinaryPrimitives.WriteUInt32LittleEndian(madt[36..], 0xFEE0_0000);
        BinaryPrimitives.WriteUInt32LittleEndian(madt[40..], 1);
        int o = 44;
        for (int i = 0; i < processors; i++)
        {
            // Processor Local APIC: type 0, length 8, ACPI processor UID i, APIC ID i, flags Enabled.
            madt[o] = 0; madt[o + 1] = 8; madt[o + 2] = (byte)i; madt[o + 3] = (byte)i;
            BinaryPrimitives.WriteUInt32LittleEndian(madt[(o + 4)..], 1);
            o += 8;
        }

        // I/O APIC: type 1, length 12, ID 0 (what its ID register reads after reset, and QEMU's MADT, -smp 1 or more),
        // address 0xFEC00000, GSI base 0.
        madt[o] = 1; madt[o + 1] = 12; madt[o + 2] = 0;
        BinaryPrimitives.WriteUInt32LittleEndian(madt[(o + 4)..], 0xFEC0_0000);
        BinaryPrimitives.WriteUInt32LittleEndian(madt[(o + 8)..], 0);
        o += 12;
        // Interrupt Source Override: type 2, length 10, bus 0 (ISA), source IRQ 0, GSI 2, flags 0 (conforming).
        madt[o] = 2; madt[o + 1] = 10; madt[o + 2] = 0; madt[o + 3] = 0;
        BinaryPrimitives.WriteUInt32LittleEndian(madt[(o + 4)..], 2);
        o += 10;
        WriteHeader(madt, "APIC", o, revision: 3);
    }

    private static void WriteHpet(Span<byte> table, AcpiHpetDescription hpet)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(table[36..], hpet.EventTimerBlockId);
        // BASE_ADDRESS: a generic address structure (ACPI 6.5, 5.2.3.2): address space 0 (system memory), register
        // bit width, bit offset and access size 0, then the 64-bit address.
        table[40] = 0;
        table[41] = 0;
        table[42] = 0;
        table[43] = 0;
        BinaryPrimitives.WriteUInt64LittleEndian(table[44..], hpet.BaseAddress);
        table[52] = 0; // HPET number: the first (and only) timer block
        BinaryPrimitives.WriteUInt16LittleEndian(table[53..], hpet.MinimumPeriodicTicks);
        table[55] = 0; // page protection and OEM attribute: no guarantee about the rest of the page
        WriteHeader(table, "HPET", HpetTableLength, revision: 1);
    }

    private static void WriteHeader(Span<byte> table, string signature, int length, byte revision)
    {
        Encoding.ASCII.GetBytes(signature, table);
        BinaryPrimitives.WriteUInt32LittleEndian(table[4..], (uint)length);
        table[8] = revision;
        Encoding.ASCII.GetBytes("HVLIB ", table[10..]);
        Encoding.ASCII.GetBytes("HVPC    ", table[16..]);
        BinaryPrimitives.WriteUInt32LittleEndian(table[24..], 1); // OEM revision
        Encoding.ASCII.GetBytes("HVLB", table[28..]); // creator ID
        BinaryPrimitives.WriteUInt32LittleEndian(table[32..], 1); // creator revision
        table[9] = 0;
        table[9] = Checksum(table[..length]);
    }
}
