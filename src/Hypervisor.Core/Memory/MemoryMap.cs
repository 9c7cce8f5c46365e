using Hypervisor.Core.Io;

namespace Hypervisor.Core.Memory;

/// <summary>The standard <see cref="IMemoryMap"/>: it owns the host memory of every RAM and ROM region it creates.</summary>
public sealed class MemoryMap : IMemoryMap, IDisposable
{
    /// <summary>The highest guest-physical address width we accept (52 bits, the architectural maximum).</summary>
    public const int MaxPhysicalAddressBits = 52;

    private readonly IoLock _ioLock;
    private readonly List<NativeMemoryBlock> _owned = [];
    private MemoryRegion[] _regions = [];
    private long _unclaimed;
    private bool _frozen;

    /// <summary>Creates an empty map whose MMIO accesses take <paramref name="ioLock"/>.</summary>
    public MemoryMap(IoLock ioLock) => _ioLock = ioLock ?? throw new ArgumentNullException(nameof(ioLock));

    /// <inheritdoc />
    public IReadOnlyList<MemoryRegion> Regions => _regions;

    /// <inheritdoc />
    public bool IsFrozen => _frozen;

    /// <inheritdoc />
    public long UnclaimedAccessCount => Interlocked.Read(ref _unclaimed);

    /// <inheritdoc />
    public event Action<GuestAddress, ulong>? HostWrite;

    /// <summary>Prevents further changes; called when a virtual machine is created on the map.</summary>
    public void Freeze() => _frozen = true;

    /// <inheritdoc />
    public MemoryRegion AddRam(GuestAddress start, ulong sizeInBytes, string name)
    {
        CheckNewRange(start, sizeInBytes, name);
        var block = new NativeMemoryBlock(sizeInBytes);
        return AddOwned(block, new MemoryRegion(name, MemoryRegionKind.Ram, start, sizeInBytes, block, 0, null));
    }

    /// <inheritdoc />
    public MemoryRegion AddRom(GuestAddress start, ReadOnlySpan<byte> contents, string name)
    {
        if (contents.IsEmpty)
        {
            throw new MemoryMapException($"ROM '{name}' is empty.");
        }

        ulong size = AlignUp((ulong)contents.Length);
        CheckNewRange(start, size, name);
        var block = new NativeMemoryBlock(size);
        contents.CopyTo(block.GetSpan(0, contents.Length));
        return AddOwned(block, new MemoryRegion(name, MemoryRegionKind.Rom, start, size, block, 0, null));
    }

    /// <inheritdoc />
    public MemoryRegion AddAlias(GuestAddress start, MemoryRegion target, ulong offsetInTarget, ulong sizeInBytes, string name)
    {
        ArgumentNullException.ThrowIfNull(target);
        if (target.Backing is null)
        {
            throw new MemoryMapException($"Alias '{name}': target '{target.Name}' is MMIO; only RAM and ROM can be aliased.");
        }

        if (offsetInTarget % NativeMemoryBlock.PageSize != 0 || offsetInTarget > target.SizeInBytes ||
            sizeInBytes > target.SizeInBytes - offsetInTarget)
        {
            throw new MemoryMapException(
                $"Alias '{name}': offset {offsetInTarget} and size {sizeInBytes} do not fit page-aligned inside '{target.Name}' ({target.SizeInBytes} bytes).");
        }

        CheckNewRange(start, sizeInBytes, name);
        return Insert(new MemoryRegion(name, target.Kind, start, sizeInBytes, target.Backing,
            target.BackingOffset + offsetInTarget, null));
    }

    /// <inheritdoc />
    public MemoryRegion AddMmio(GuestAddress start, ulong sizeInBytes, IMmioDevice device, string name)
    {
        ArgumentNullException.ThrowIfNull(device);
        CheckNewRange(start, sizeInBytes, name);
        return Insert(new MemoryRegion(name, MemoryRegionKind.Mmio, start, sizeInBytes, null, 0, device));
    }

    /// <inheritdoc />
    public MemoryRegion? FindRegion(GuestAddress address)
    {
        MemoryRegion[] regions = _regions;
        int lo = 0, hi = regions.Length - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            MemoryRegion r = regions[mid];
            if (address < r.Start)
            {
                hi = mid - 1;
            }
            else if (address.Value - r.Start.Value >= r.SizeInBytes)
            {
                lo = mid + 1;
            }
            else
            {
                return r;
            }
        }

        return null;
    }

    /// <inheritdoc />
    public void Read(GuestAddress address, Span<byte> destination)
    {
        while (!destination.IsEmpty)
        {
            MemoryRegion r = FindBacked(address, destination.Length, write: false);
            ulong offset = address - r.Start;
            int n = (int)Math.Min((ulong)destination.Length, r.SizeInBytes - offset);
            r.GetSpan(offset, n).CopyTo(destination);
            destination = destination[n..];
            address += (ulong)n;
        }
    }

    /// <inheritdoc />
    public void Write(GuestAddress address, ReadOnlySpan<byte> source)
    {
        GuestAddress start = address;
        ulong length = (ulong)source.Length;
        while (!source.IsEmpty)
        {
            MemoryRegion r = FindBacked(address, source.Length, write: true);
            ulong offset = address - r.Start;
            int n = (int)Math.Min((ulong)source.Length, r.SizeInBytes - offset);
            source[..n].CopyTo(r.GetSpan(offset, n));
            source = source[n..];
            address += (ulong)n;
        }

        if (length != 0)
        {
            HostWrite?.Invoke(start, length);
        }
    }

    /// <inheritdoc />
    public ulong ReadMmio(GuestAddress address, int size)
    {
        MemoryRegion? r = FindRegion(address);
        if (r?.Device is null)
        {
            Interlocked.Increment(ref _unclaimed);
            return size >= 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1;
        }

        lock (_ioLock.Sync)
        {
            return r.Device.Read(address - r.Start, size);
        }
    }

    /// <inheritdoc />
    public void WriteMmio(GuestAddress address, int size, ulong value)
    {
        MemoryRegion? r = FindRegion(address);
        if (r?.Device is null)
        {
            Interlocked.Increment(ref _unclaimed);
            return;
        }

        lock (_ioLock.Sync)
        {
            r.Device.Write(address - r.Start, size, value);
        }
    }

    /// <summary>Counts a guest access that hit nothing or wrote to ROM (accelerators call this).</summary>
    public void CountUnclaimedAccess() => Interlocked.Increment(ref _unclaimed);

    /// <summary>Releases the host memory of every region. No virtual machine may run on the map afterwards.</summary>
    public void Dispose()
    {
        foreach (NativeMemoryBlock block in _owned)
        {
            block.Dispose();
        }

        _owned.Clear();
    }

    private MemoryRegion FindBacked(GuestAddress address, int length, bool write)
    {
        MemoryRegion? r = FindRegion(address);
        if (r is null || r.Backing is null || (write && r.Kind == MemoryRegionKind.Rom))
        {
            string what = r is null ? "nothing is mapped there" : $"it is {r.Kind} region '{r.Name}'";
            throw new MemoryMapException(
                $"Host {(write ? "write to" : "read from")} guest memory at {address} ({length} bytes) failed: {what}.");
        }

        return r;
    }

    private static ulong AlignUp(ulong size) =>
        (size + NativeMemoryBlock.PageSize - 1) & ~(ulong)(NativeMemoryBlock.PageSize - 1);

    private void CheckNewRange(GuestAddress start, ulong size, string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (_frozen)
        {
            throw new MemoryMapException($"Cannot add region '{name}': the memory map is frozen (a virtual machine uses it).");
        }

        if (size == 0)
        {
            throw new MemoryMapException($"Region '{name}' has size zero.");
        }

        if (!start.IsAligned(NativeMemoryBlock.PageSize) || size % NativeMemoryBlock.PageSize != 0)
        {
            throw new MemoryMapException(
                $"Region '{name}' at {start} with size 0x{size:X} is not aligned to {NativeMemoryBlock.PageSize}-byte pages.");
        }

        const ulong limit = 1UL << MaxPhysicalAddressBits;
        if (start.Value >= limit || size > limit - start.Value)
        {
            throw new MemoryMapException(
                $"Region '{name}' at {start} with size 0x{size:X} extends beyond the {MaxPhysicalAddressBits}-bit physical address space.");
        }

        foreach (MemoryRegion r in _regions)
        {
            if (start.Value < r.End.Value && r.Start.Value < start.Value + size)
            {
                throw new MemoryMapException(
                    $"Region '{name}' [{start}..{start + size}) overlaps region '{r.Name}' [{r.Start}..{r.End}).");
            }
        }
    }

    private MemoryRegion AddOwned(NativeMemoryBlock block, MemoryRegion region)
    {
        _owned.Add(block);
        return Insert(region);
    }

    private MemoryRegion Insert(MemoryRegion region)
    {
        var list = new List<MemoryRegion>(_regions) { region };
        list.Sort((a, b) => a.Start.CompareTo(b.Start));
        _regions = [.. list];
        return region;
    }
}
