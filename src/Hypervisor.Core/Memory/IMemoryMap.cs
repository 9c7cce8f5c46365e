namespace Hypervisor.Core.Memory;

/// <summary>
/// The guest-physical address space: RAM and ROM backed by page-aligned host memory, and MMIO ranges owned by
/// devices.
/// </summary>
/// <remarks>
/// Regions are added while the machine is being built; the map is frozen when a virtual machine is created on it,
/// after which adding a region throws. Overlapping, misaligned or out-of-range regions are rejected with a
/// <see cref="MemoryMapException"/>. Reading and writing regions is thread-safe.
/// </remarks>
public interface IMemoryMap
{
    /// <summary>All regions, sorted by start address.</summary>
    IReadOnlyList<MemoryRegion> Regions { get; }

    /// <summary>True once a virtual machine has been created on this map.</summary>
    bool IsFrozen { get; }

    /// <summary>Adds zeroed RAM.</summary>
    MemoryRegion AddRam(GuestAddress start, ulong sizeInBytes, string name);

    /// <summary>Adds read-only memory holding <paramref name="contents"/> (padded with zeros to whole pages).</summary>
    MemoryRegion AddRom(GuestAddress start, ReadOnlySpan<byte> contents, string name);

    /// <summary>Adds a second view of part of an existing RAM or ROM region, with the target's access rights.</summary>
    MemoryRegion AddAlias(GuestAddress start, MemoryRegion target, ulong offsetInTarget, ulong sizeInBytes, string name);

    /// <summary>Adds a memory-mapped I/O range answered by <paramref name="device"/>.</summary>
    MemoryRegion AddMmio(GuestAddress start, ulong sizeInBytes, IMmioDevice device, string name);

    /// <summary>The region containing <paramref name="address"/>, or null where nothing is mapped.</summary>
    MemoryRegion? FindRegion(GuestAddress address);

    /// <summary>
    /// Reads guest memory as the host (loaders, devices doing DMA, debuggers). RAM and ROM only.
    /// </summary>
    /// <exception cref="MemoryMapException">Part of the range is unmapped or MMIO.</exception>
    void Read(GuestAddress address, Span<byte> destination);

    /// <summary>
    /// Writes guest RAM as the host (loaders, DMA). Accelerators that cache translated code are told through
    /// <see cref="HostWrite"/>.
    /// </summary>
    /// <exception cref="MemoryMapException">Part of the range is unmapped, ROM or MMIO.</exception>
    void Write(GuestAddress address, ReadOnlySpan<byte> source);

    /// <summary>Performs a guest read of an MMIO address (with the I/O lock); unclaimed addresses read as all ones.</summary>
    ulong ReadMmio(GuestAddress address, int size);

    /// <summary>Performs a guest write to an MMIO address (with the I/O lock); unclaimed addresses ignore it.</summary>
    void WriteMmio(GuestAddress address, int size, ulong value);

    /// <summary>Guest accesses that hit no region (or wrote to ROM); counted, never fatal.</summary>
    long UnclaimedAccessCount { get; }

    /// <summary>Raised after the host wrote guest memory through <see cref="Write"/>: start address and length.</summary>
    event Action<GuestAddress, ulong>? HostWrite;
}

/// <summary>An invalid memory-map operation: overlap, misalignment, out of range, unmapped access.</summary>
public sealed class MemoryMapException : HypervisorException
{
    /// <summary>Creates an exception with a message.</summary>
    public MemoryMapException(string message) : base(message) { }
}
