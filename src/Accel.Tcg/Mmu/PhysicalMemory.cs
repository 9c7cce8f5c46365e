using System.Runtime.CompilerServices;
using Hypervisor.Core.Memory;

namespace Hypervisor.Accel.Tcg.Mmu;

/// <summary>
/// Guest-physical accesses for one vCPU: RAM and ROM through host pointers, MMIO through the map's devices,
/// unmapped addresses as all ones. Also tracks which physical pages hold decoded code, so that writes to them
/// (by the guest or by the host through <see cref="IMemoryMap.HostWrite"/>) invalidate the decoded blocks.
/// </summary>
/// <remarks>Every pointer access is bounds-checked against its region: a guest cannot reach host memory outside it.</remarks>
internal sealed unsafe class PhysicalMemory : IDisposable
{
    public const int PageShift = 12;
    public const ulong PageSize = 1UL << PageShift;
    public const ulong PageMask = PageSize - 1;

    private readonly IMemoryMap _map;
    private readonly MemoryMap? _concreteMap;
    private readonly MemoryRegion[] _regions;

    /// <summary>Per physical page below <see cref="_trackedPages"/>: a generation bumped when a page holding code is written.</summary>
    private readonly uint[] _codeGeneration;

    /// <summary>Per physical page: 1 while decoded blocks from this page may be cached.</summary>
    private readonly byte[] _holdsCode;

    private readonly ulong _trackedPages;
    private MemoryRegion? _last;
    private long _busAccesses;

    public PhysicalMemory(IMemoryMap map)
    {
        _map = map;
        _concreteMap = map as MemoryMap;
        _regions = [.. map.Regions];
        ulong maxEnd = 0;
        foreach (MemoryRegion r in _regions)
        {
            if (r.Backing is not null && r.End.Value > maxEnd)
            {
                maxEnd = r.End.Value;
            }
        }

        // Code tracking covers backed memory up to 64 GiB (16 M pages); code above is executed without caching.
        _trackedPages = Math.Min(maxEnd >> PageShift, 1UL << 24);
        _codeGeneration = new uint[_trackedPages];
        _holdsCode = new byte[_trackedPages];
        map.HostWrite += OnHostWrite;
    }

    /// <summary>Accesses that reached a device bus (MMIO) or hit nothing.</summary>
    public long BusAccesses => Interlocked.Read(ref _busAccesses);

    public void Dispose() => _map.HostWrite -= OnHostWrite;

    /// <summary>True when the physical page can hold cached code (it is tracked RAM or ROM).</summary>
    public bool IsTracked(ulong page) => page < _trackedPages;

    /// <summary>
    /// Serialises the locked instructions of the machine's vCPUs that cannot be done with one host compare-and-swap
    /// (split locks, CMPXCHG16B, MMIO): see TcgCpu.Atomic.cs.
    /// </summary>
    public Lock AtomicLock { get; } = new();

    /// <summary>The current code generation of a tracked page.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public uint Generation(ulong page) => page < _trackedPages ? Volatile.Read(ref _codeGeneration[page]) : 0;

    /// <summary>Marks a page as holding cached code.</summary>
    public void MarkCode(ulong page)
    {
        if (page < _trackedPages)
        {
            _holdsCode[page] = 1;
        }
    }

    /// <summary>Called for every guest write to RAM: invalidates the page's decoded blocks if it holds code.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void NoteWrite(ulong page)
    {
        if (page < _trackedPages && _holdsCode[page] != 0)
        {
            _holdsCode[page] = 0;
            Interlocked.Increment(ref _codeGeneration[page]);
        }
    }

    private void OnHostWrite(GuestAddress start, ulong length)
    {
        if (length == 0)
        {
            return;
        }

        ulong first = start.Value >> PageShift;
        ulong last = (start.Value + length - 1) >> PageShift;
        for (ulong p = first; p <= last && p < _trackedPages; p++)
        {
            _holdsCode[p] = 0;
            Interlocked.Increment(ref _codeGeneration[p]);
        }
    }

    /// <summary>The region holding <paramref name="address"/>, or null.</summary>
    public MemoryRegion? Find(ulong address)
    {
        MemoryRegion? r = _last;
        if (r is not null && address - r.Start.Value < r.SizeInBytes)
        {
            return r;
        }

        MemoryRegion[] regions = _regions;
        int lo = 0, hi = regions.Length - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            r = regions[mid];
            if (address < r.Start.Value)
            {
                hi = mid - 1;
            }
            else if (address - r.Start.Value >= r.SizeInBytes)
            {
                lo = mid + 1;
            }
            else
            {
                _last = r;
                return r;
            }
        }

        return null;
    }

    /// <summary>
    /// The host address of the start of physical page <paramref name="page"/> if it is RAM (or ROM, for reads), else 0.
    /// </summary>
    public nint HostPage(ulong page, bool write)
    {
        MemoryRegion? r = Find(page << PageShift);
        if (r is null || r.Backing is null || (write && r.Kind == MemoryRegionKind.Rom))
        {
            return 0;
        }

        // Regions are page-aligned and whole pages, so the page lies entirely inside the region.
        return r.HostPointer + (nint)((page << PageShift) - r.Start.Value);
    }

    /// <summary>Reads 1, 2, 4 or 8 bytes that do not cross a page.</summary>
    public ulong Read(ulong address, int size)
    {
        MemoryRegion? r = Find(address);
        if (r is not null && r.Backing is not null)
        {
            byte* p = (byte*)(r.HostPointer + (nint)(address - r.Start.Value));
            return ReadHost(p, size);
        }

        Interlocked.Increment(ref _busAccesses);
        return _map.ReadMmio(new GuestAddress(address), size);
    }

    /// <summary>Writes 1, 2, 4 or 8 bytes that do not cross a page. ROM writes are ignored and counted.</summary>
    public void Write(ulong address, int size, ulong value)
    {
        MemoryRegion? r = Find(address);
        if (r is not null && r.Backing is not null)
        {
            if (r.Kind == MemoryRegionKind.Rom)
            {
                _concreteMap?.CountUnclaimedAccess();
                return;
            }

            byte* p = (byte*)(r.HostPointer + (nint)(address - r.Start.Value));
            WriteHost(p, size, value);
            NoteWrite(address >> PageShift);
            return;
        }

        Interlocked.Increment(ref _busAccesses);
        _map.WriteMmio(new GuestAddress(address), size, value);
    }

    /// <summary>Counts a write the vCPU dropped because it targeted ROM through a cached pointer-less path.</summary>
    public void CountRomWrite() => _concreteMap?.CountUnclaimedAccess();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong ReadHost(byte* p, int size) => size switch
    {
        1 => *p,
        2 => Unsafe.ReadUnaligned<ushort>(p),
        4 => Unsafe.ReadUnaligned<uint>(p),
        _ => Unsafe.ReadUnaligned<ulong>(p),
    };

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void WriteHost(byte* p, int size, ulong value)
    {
        switch (size)
        {
            case 1: *p = (byte)value; break;
            case 2: Unsafe.WriteUnaligned(p, (ushort)value); break;
            case 4: Unsafe.WriteUnaligned(p, (uint)value); break;
            default: Unsafe.WriteUnaligned(p, value); break;
        }
    }
}
