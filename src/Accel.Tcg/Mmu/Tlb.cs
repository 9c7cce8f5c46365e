namespace Hypervisor.Accel.Tcg.Mmu;

/// <summary>One cached translation of a linear page for one kind of access.</summary>
internal struct TlbEntry
{
    /// <summary>Linear page number + 1; 0 = empty.</summary>
    public ulong Tag;

    /// <summary>The physical page number.</summary>
    public ulong PhysPage;

    /// <summary>The host address of the physical page when it is RAM (or ROM, for reads and fetches); else 0.</summary>
    public nint Host;

    /// <summary>True when user-mode (CPL 3) accesses of this kind are allowed.</summary>
    public bool User;

    /// <summary>True when the page is user-mode accessible (U/S set at every level): SMEP and SMAP apply to it.</summary>
    public bool UserPage;
}

/// <summary>A direct-mapped software TLB: separate arrays for reads, writes and fetches.</summary>
internal sealed class Tlb
{
    public const int Size = 256;

    public readonly TlbEntry[] Read = new TlbEntry[Size];
    public readonly TlbEntry[] Write = new TlbEntry[Size];
    public readonly TlbEntry[] Fetch = new TlbEntry[Size];

    /// <summary>Changes on every flush: decoded-block links made under an older epoch are not followed.</summary>
    public uint Epoch { get; private set; }

    public void Flush()
    {
        Epoch++;
        Array.Clear(Read);
        Array.Clear(Write);
        Array.Clear(Fetch);
    }

    public void FlushPage(ulong linearPage)
    {
        int i = (int)(linearPage & (Size - 1));
        ulong tag = linearPage + 1;
        Epoch++;
        if (Read[i].Tag == tag) { Read[i] = default; }
        if (Write[i].Tag == tag) { Write[i] = default; }
        if (Fetch[i].Tag == tag) { Fetch[i] = default; }
    }
}
