namespace Hypervisor.Core.Memory;

/// <summary>What backs a region of guest-physical address space.</summary>
public enum MemoryRegionKind
{
    /// <summary>Readable and writable host memory.</summary>
    Ram,

    /// <summary>Read-only host memory (firmware); guest writes are ignored (and counted by the map).</summary>
    Rom,

    /// <summary>Memory-mapped I/O: every access goes to a device.</summary>
    Mmio,
}

/// <summary>One region of the guest-physical address space.</summary>
/// <remarks>
/// RAM and ROM regions are backed by a <see cref="NativeMemoryBlock"/>; an alias (the firmware's last 128 KiB below
/// 1 MiB, for example) shares its target's block at an offset. Regions are immutable once added.
/// </remarks>
public sealed class MemoryRegion
{
    internal MemoryRegion(string name, MemoryRegionKind kind, GuestAddress start, ulong sizeInBytes,
        NativeMemoryBlock? backing, ulong backingOffset, IMmioDevice? device)
    {
        Name = name;
        Kind = kind;
        Start = start;
        SizeInBytes = sizeInBytes;
        Backing = backing;
        BackingOffset = backingOffset;
        Device = device;
    }

    /// <summary>A name for messages and diagnostics.</summary>
    public string Name { get; }

    /// <summary>RAM, ROM or MMIO.</summary>
    public MemoryRegionKind Kind { get; }

    /// <summary>The first guest-physical address.</summary>
    public GuestAddress Start { get; }

    /// <summary>The size in bytes.</summary>
    public ulong SizeInBytes { get; }

    /// <summary>The address one past the last byte.</summary>
    public GuestAddress End => Start + SizeInBytes;

    /// <summary>The host memory behind a RAM or ROM region; null for MMIO.</summary>
    public NativeMemoryBlock? Backing { get; }

    /// <summary>Where this region starts inside <see cref="Backing"/>.</summary>
    public ulong BackingOffset { get; }

    /// <summary>The device behind an MMIO region; null for RAM and ROM.</summary>
    public IMmioDevice? Device { get; }

    /// <summary>True when <paramref name="address"/> lies inside the region.</summary>
    public bool Contains(GuestAddress address) => address >= Start && address.Value - Start.Value < SizeInBytes;

    /// <summary>The host address of the region's first byte (RAM and ROM only).</summary>
    /// <exception cref="InvalidOperationException">The region is MMIO.</exception>
    public nint HostPointer => Backing is null
        ? throw new InvalidOperationException($"Region '{Name}' is MMIO and has no host memory.")
        : Backing.Pointer + (nint)BackingOffset;

    /// <summary>A span over part of a RAM or ROM region, bounds-checked.</summary>
    public Span<byte> GetSpan(ulong offset, int length)
    {
        if (Backing is null)
        {
            throw new InvalidOperationException($"Region '{Name}' is MMIO and has no host memory.");
        }

        if (length < 0 || offset > SizeInBytes || (ulong)length > SizeInBytes - offset)
        {
            throw new ArgumentOutOfRangeException(nameof(offset),
                $"Range {offset}+{length} is outside region '{Name}' of {SizeInBytes} bytes.");
        }

        return Backing.GetSpan(BackingOffset + offset, length);
    }

    /// <inheritdoc />
    public override string ToString() => $"{Name} [{Start}..{End}) {Kind}";
}
