using Hypervisor.Core.Memory;

namespace Hypervisor.Core.Boot;

/// <summary>The type of an e820 range (ACPI specification, "System Address Map Interfaces": AddressRangeMemory ...).</summary>
public enum E820Type : uint
{
    /// <summary>Usable RAM (AddressRangeMemory).</summary>
    Ram = 1,

    /// <summary>Reserved: the operating system must not use it (AddressRangeReserved).</summary>
    Reserved = 2,

    /// <summary>ACPI tables the operating system may reclaim once read (AddressRangeACPI).</summary>
    Acpi = 3,
}

/// <summary>One range of the e820 memory map a boot loader hands the kernel.</summary>
/// <param name="Start">First byte.</param>
/// <param name="SizeInBytes">Length.</param>
/// <param name="Type">What the range is.</param>
public readonly record struct E820Entry(GuestAddress Start, ulong SizeInBytes, E820Type Type)
{
    /// <summary>One past the last byte.</summary>
    public GuestAddress End => Start + SizeInBytes;

    /// <summary>
    /// Builds the e820 map of <paramref name="memory"/>: RAM regions are usable, except those between 0xA0000 and 1 MiB
    /// (the PC's video and option-ROM window, which a BIOS reports as reserved); ROM regions (firmware, ACPI tables in
    /// the BIOS area) are reserved. MMIO ranges are left out, as on a PC. Adjacent ranges of one type are merged.
    /// </summary>
    public static IReadOnlyList<E820Entry> FromMemoryMap(IMemoryMap memory)
    {
        ArgumentNullException.ThrowIfNull(memory);
        var entries = new List<E820Entry>();
        foreach (MemoryRegion region in memory.Regions)
        {
            E820Type type;
            switch (region.Kind)
            {
                case MemoryRegionKind.Ram:
                    type = region.Start.Value >= 0xA0000 && region.End.Value <= 0x100000 ? E820Type.Reserved : E820Type.Ram;
                    break;
                case MemoryRegionKind.Rom:
                    type = E820Type.Reserved;
                    break;
                default:
                    continue;
            }

            if (entries.Count > 0 && entries[^1].End == region.Start && entries[^1].Type == type)
            {
                entries[^1] = entries[^1] with { SizeInBytes = entries[^1].SizeInBytes + region.SizeInBytes };
            }
            else
            {
                entries.Add(new E820Entry(region.Start, region.SizeInBytes, type));
            }
        }

        return entries;
    }
}
