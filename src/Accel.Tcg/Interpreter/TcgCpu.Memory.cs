using System.Runtime.CompilerServices;
using Hypervisor.Accel.Tcg.Mmu;
using Hypervisor.Accel.Tcg.State;

namespace Hypervisor.Accel.Tcg.Interpreter;

// Segmentation, paging (Intel SDM Vol. 3A, chapters 3 and 4) and linear/physical accesses.
internal sealed unsafe partial class TcgCpu
{
    /// <summary>The physical-address width this CPU reports in CPUID 0x80000008 (bits above it are reserved in paging entries).</summary>
    internal const int MaxPhysAddrBits = 40;

    private const ulong PhysAddrMask = ((1UL << MaxPhysAddrBits) - 1) & ~0xFFFUL;
    private const ulong ReservedHigh = ((1UL << 52) - 1) & ~((1UL << MaxPhysAddrBits) - 1);
    private const int AccessRead = 0, AccessWrite = 1, AccessFetch = 2;

    private readonly Tlb _tlb = new();
    private int _cpl;

    internal int Cpl => _cpl;

    private bool LongMode { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => (S.Efer & Cr.EferLma) != 0; }

    private bool Is64 { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => (S.Efer & Cr.EferLma) != 0 && S.Seg[Seg.CS].Long; }

    private bool ProtectedMode { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => (S.Cr0 & Cr.PE) != 0; }

    internal void FlushTlb() => _tlb.Flush();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static bool IsCanonical(ulong address) => (ulong)(((long)address << 16) >> 16) == address;

    // ---------------------------------------------------------------- segmentation

    /// <summary>Translates a segment offset to a linear address with the limit and rights checks of the current mode.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private ulong Linear(int seg, ulong offset, int size, bool write)
    {
        if (Is64)
        {
            ulong lin = seg >= Seg.FS ? S.Seg[seg].Base + offset : offset;
            if (!IsCanonical(lin))
            {
                throw new GuestFault(seg == Seg.SS ? Vec.SS : Vec.GP, 0, true);
            }

            return lin;
        }

        ref SegmentCache sc = ref S.Seg[seg];
        int vector = seg == Seg.SS ? Vec.SS : Vec.GP;
        if (ProtectedMode && (S.Rflags & Fl.VM) == 0)
        {
            if (sc.Unusable)
            {
                throw new GuestFault(vector, 0, true);
            }

            int type = sc.Type;
            if (write ? (type & 0xA) != 0x2 : (type & 0xA) == 0x8)
            {
                // Writes need a writable data segment; reads fail only on execute-only code.
                throw new GuestFault(vector, 0, true);
            }
        }

        ulong last = offset + (ulong)size - 1;
        if (sc.IsExpandDown && ProtectedMode)
        {
            ulong upper = sc.Big ? 0xFFFF_FFFFUL : 0xFFFFUL;
            if (offset <= sc.Limit || last > upper)
            {
                throw new GuestFault(vector, 0, true);
            }
        }
        else if (last > sc.Limit)
        {
            throw new GuestFault(vector, 0, true);
        }

        return (sc.Base + offset) & 0xFFFF_FFFF;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal ulong ReadMem(int seg, ulong offset, int size) => ReadLinear(Linear(seg, offset, size, false), size, _cpl == 3);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal void WriteMem(int seg, ulong offset, int size, ulong value) =>
        WriteLinear(Linear(seg, offset, size, true), size, value, _cpl == 3);

    /// <summary>Checks that a write would succeed (segment and page) without writing: for instructions that must not fault half-way.</summary>
    private void ProbeWrite(int seg, ulong offset, int size) =>
        TranslateChecked(Linear(seg, offset, size, true), AccessWrite, _cpl == 3, size);

    // ---------------------------------------------------------------- linear accesses

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ulong ReadLinear(ulong lin, int size, bool user)
    {
        if ((lin & 0xFFF) <= (ulong)(0x1000 - size))
        {
            ref TlbEntry e = ref _tlb.Read[(int)((lin >> 12) & (Tlb.Size - 1))];
            if (e.Tag == (lin >> 12) + 1 && e.Host != 0 && (user ? e.User : !e.UserPage || SmapAllows()))
            {
                return PhysicalMemory.ReadHost((byte*)e.Host + (lin & 0xFFF), size);
            }
        }

        return ReadLinearSlow(lin, size, user);
    }

    private ulong ReadLinearSlow(ulong lin, int size, bool user)
    {
        ulong firstBytes = 0x1000 - (lin & 0xFFF);
        if ((ulong)size <= firstBytes)
        {
            ulong pa = TranslateChecked(lin, AccessRead, user, size);
            return Physical.Read(pa, size);
        }

        // Crossing a page: translate both pages before reading anything (either may fault).
        ulong pa1 = TranslateChecked(lin, AccessRead, user, size);
        ulong lin2 = WrapLinear(lin + firstBytes);
        ulong pa2 = TranslateChecked(lin2, AccessRead, user, size);
        ulong value = 0;
        for (int i = 0; i < size; i++)
        {
            ulong pa = (ulong)i < firstBytes ? pa1 + (ulong)i : pa2 + ((ulong)i - firstBytes);
            value |= Physical.Read(pa, 1) << (8 * i);
        }

        return value;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void WriteLinear(ulong lin, int size, ulong value, bool user)
    {
        if ((lin & 0xFFF) <= (ulong)(0x1000 - size))
        {
            ref TlbEntry e = ref _tlb.Write[(int)((lin >> 12) & (Tlb.Size - 1))];
            if (e.Tag == (lin >> 12) + 1 && e.Host != 0 && (user ? e.User : !e.UserPage || SmapAllows()))
            {
                PhysicalMemory.WriteHost((byte*)e.Host + (lin & 0xFFF), size, value);
                Physical.NoteWrite(e.PhysPage);
                if (e.PhysPage == _currentPage)
                {
                    EndBlock();
                }

                return;
            }
        }

        WriteLinearSlow(lin, size, value, user);
    }

    private void WriteLinearSlow(ulong lin, int size, ulong value, bool user)
    {
        ulong firstBytes = 0x1000 - (lin & 0xFFF);
        if ((ulong)size <= firstBytes)
        {
            ulong pa = TranslateChecked(lin, AccessWrite, user, size);
            Physical.Write(pa, size, value);
            if (pa >> 12 == _currentPage)
            {
                EndBlock();
            }

            return;
        }

        ulong pa1 = TranslateChecked(lin, AccessWrite, user, size);
        ulong pa2 = TranslateChecked(WrapLinear(lin + firstBytes), AccessWrite, user, size);
        for (int i = 0; i < size; i++)
        {
            ulong pa = (ulong)i < firstBytes ? pa1 + (ulong)i : pa2 + ((ulong)i - firstBytes);
            Physical.Write(pa, 1, value >> (8 * i));
        }

        if (pa1 >> 12 == _currentPage || pa2 >> 12 == _currentPage)
        {
            EndBlock();
        }
    }

    private ulong WrapLinear(ulong lin) => LongMode ? lin : lin & 0xFFFF_FFFF;

    /// <summary>
    /// Reads a system structure (GDT, LDT, IDT, TSS) with supervisor rights: an implicit supervisor-mode access, which
    /// SMAP checks regardless of EFLAGS.AC (SDM Vol. 3A, 4.6).
    /// </summary>
    private ulong ReadSystem(ulong lin, int size)
    {
        _implicitSupervisor = true;
        try
        {
            return ReadLinear(WrapLinear(lin), size, false);
        }
        finally
        {
            _implicitSupervisor = false;
        }
    }

    private void WriteSystem(ulong lin, int size, ulong value)
    {
        _implicitSupervisor = true;
        try
        {
            WriteLinear(WrapLinear(lin), size, value, false);
        }
        finally
        {
            _implicitSupervisor = false;
        }
    }

    /// <summary>True while the access in progress is an implicit supervisor-mode access (system structures).</summary>
    private bool _implicitSupervisor;

    /// <summary>
    /// Whether a supervisor-mode data access may touch a user page (SDM Vol. 3A, 4.6.1): always without CR4.SMAP;
    /// with it, only explicit accesses with EFLAGS.AC set.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool SmapAllows() => (S.Cr4 & Cr.Cr4Smap) == 0 || ((S.Rflags & Fl.AC) != 0 && !_implicitSupervisor);

    /// <summary>Whether a supervisor-mode access of this kind to a user page is forbidden by SMEP (fetch) or SMAP (data).</summary>
    private bool SupervisorBlocked(int access) =>
        access == AccessFetch ? (S.Cr4 & Cr.Cr4Smep) != 0 : !SmapAllows();

    // ---------------------------------------------------------------- paging

    /// <summary>Translates or raises #PF (with CR2 and the error code).</summary>
    private ulong TranslateChecked(ulong lin, int access, bool user, int size)
    {
        if (!TryTranslate(lin, access, user, out ulong phys, out uint error))
        {
            S.Cr2 = lin;
            throw new GuestFault(Vec.PF, error, true);
        }

        if (_dataBreakpoints)
        {
            CheckDataBreakpoints(lin, access, size); // TcgCpu.Debug.cs: watched pages always come here
        }

        return phys;
    }

    internal bool TryTranslateFetch(ulong lin, out ulong phys, out int vector, out uint error)
    {
        vector = Vec.PF;
        return TryTranslate(lin, AccessFetch, _cpl == 3, out phys, out error);
    }

    private bool TryTranslate(ulong lin, int access, bool user, out ulong phys, out uint error)
    {
        TlbEntry[] tlb = access == AccessRead ? _tlb.Read : access == AccessWrite ? _tlb.Write : _tlb.Fetch;
        ref TlbEntry e = ref tlb[(int)((lin >> 12) & (Tlb.Size - 1))];
        if (e.Tag == (lin >> 12) + 1 && (e.User || !user))
        {
            if (!user && e.UserPage && SupervisorBlocked(access))
            {
                // SMEP/SMAP protection violation (SDM Vol. 3A, 4.7): P=1, W/R, I/D for fetches.
                error = 1u | (access == AccessWrite ? 2u : 0u) |
                        (access == AccessFetch && ((S.Efer & Cr.EferNxe) != 0 || (S.Cr4 & Cr.Cr4Smep) != 0) ? 0x10u : 0u);
                phys = 0;
                return false;
            }

            phys = (e.PhysPage << 12) | (lin & 0xFFF);
            error = 0;
            return true;
        }

        if (!Walk(lin, access, user, out ulong physPage, out bool userOk, out bool userPage, out error))
        {
            phys = 0;
            return false;
        }

        e.Tag = (lin >> 12) + 1;
        e.PhysPage = physPage;
        e.Host = Physical.HostPage(physPage, access == AccessWrite);
        e.User = userOk;
        e.UserPage = userPage;
        if (_dataBreakpoints && DataBreakpointOnPage(lin))
        {
            e.Host = 0; // no fast path for a page a data breakpoint watches (TcgCpu.Debug.cs)
        }
        phys = (physPage << 12) | (lin & 0xFFF);
        return true;
    }

    /// <summary>
    /// Walks the page tables (SDM Vol. 3A, 4.3 32-bit, 4.4 PAE, 4.5 4-level), checks the access, sets accessed and
    /// dirty bits, and returns the physical page and whether user-mode accesses of this kind are allowed.
    /// </summary>
    private bool Walk(ulong lin, int access, bool user, out ulong physPage, out bool userOk, out bool userPage, out uint error)
    {
        ulong cr0 = S.Cr0, cr4 = S.Cr4;
        bool write = access == AccessWrite, fetch = access == AccessFetch;
        bool nxe = (S.Efer & Cr.EferNxe) != 0;
        bool wp = (cr0 & Cr.WP) != 0;
        error = 0;
        userPage = false;
        if ((cr0 & Cr.PG) == 0)
        {
            physPage = (lin & 0xFFFF_FFFF) >> 12;
            userOk = true;
            return true;
        }

        // Error code bits (SDM Vol. 3A, 4.7): P=1 protection, W/R=2, U/S=4, RSVD=8, I/D=16 (fetch with NXE).
        // I/D is reported for fetches when NXE or SMEP is on (SDM Vol. 3A, 4.7).
        uint baseError = (write ? 2u : 0u) | (user ? 4u : 0u) | (fetch && (nxe || (cr4 & Cr.Cr4Smep) != 0) ? 0x10u : 0u);
        bool rw = true, us = true, nx = false;
        Span<ulong> addrs = stackalloc ulong[4];
        Span<ulong> entries = stackalloc ulong[4];
        Span<bool> wide = stackalloc bool[4];
        int n = 0;
        physPage = 0;
        userOk = false;

        if ((cr4 & Cr.Cr4Pae) == 0)
        {
            ulong pdeAddr = (S.Cr3 & 0xFFFF_F000) | ((lin >> 20) & 0xFFC);
            ulong pde = Physical.Read(pdeAddr, 4);
            if ((pde & 1) == 0)
            {
                error = baseError;
                return false;
            }

            rw &= (pde & 2) != 0;
            us &= (pde & 4) != 0;
            addrs[n] = pdeAddr; entries[n] = pde; wide[n] = false; n++;
            if ((pde & 0x80) != 0 && (cr4 & Cr.Cr4Pse) != 0)
            {
                // 4 MiB page with PSE-36: bits 20:13 give physical bits 39:32; bit 21 is reserved.
                if ((pde & (1UL << 21)) != 0)
                {
                    error = baseError | 9;
                    return false;
                }

                physPage = ((pde & 0xFFC0_0000) | (((pde >> 13) & 0xFF) << 32) | (lin & 0x3F_F000)) >> 12;
            }
            else
            {
                ulong pteAddr = (pde & 0xFFFF_F000) | ((lin >> 10) & 0xFFC);
                ulong pte = Physical.Read(pteAddr, 4);
                if ((pte & 1) == 0)
                {
                    error = baseError;
                    return false;
                }

                rw &= (pte & 2) != 0;
                us &= (pte & 4) != 0;
                addrs[n] = pteAddr; entries[n] = pte; wide[n] = false; n++;
                physPage = (pte & 0xFFFF_F000) >> 12;
            }
        }
        else
        {
            ulong table;
            int shift;
            if ((S.Efer & Cr.EferLma) != 0)
            {
                table = S.Cr3 & PhysAddrMask;
                shift = 39;
            }
            else
            {
                // PAE: the PDPTEs (SDM 4.4.1; read at walk time here, hardware caches them at CR3 load).
                ulong pdpte = Physical.Read((S.Cr3 & 0xFFFF_FFE0) + ((lin >> 30) & 3) * 8, 8);
                if ((pdpte & 1) == 0)
                {
                    error = baseError;
                    return false;
                }

                if ((pdpte & (ReservedHigh | 0x1E6 | (1UL << 63))) != 0)
                {
                    error = baseError | 9;
                    return false;
                }

                table = pdpte & PhysAddrMask;
                shift = 21;
            }

            while (true)
            {
                ulong addr = table + ((lin >> shift) & 0x1FF) * 8;
                ulong entry = Physical.Read(addr, 8);
                if ((entry & 1) == 0)
                {
                    error = baseError;
                    return false;
                }

                ulong reserved = ReservedHigh;
                if (shift == 39)
                {
                    reserved |= 0x80; // PS is reserved in a PML4E
                }

                if (!nxe)
                {
                    reserved |= 1UL << 63;
                }

                bool large = shift != 12 && (entry & 0x80) != 0 && shift != 39;
                if (large)
                {
                    // Low address bits of a large page below its size (except PAT at bit 12) are reserved.
                    reserved |= ((1UL << shift) - 1) & ~0x1FFFUL;
                }

                if ((entry & reserved) != 0)
                {
                    error = baseError | 9;
                    return false;
                }

                rw &= (entry & 2) != 0;
                us &= (entry & 4) != 0;
                nx |= (entry & (1UL << 63)) != 0;
                addrs[n] = addr; entries[n] = entry; wide[n] = true; n++;
                if (shift == 12)
                {
                    physPage = (entry & PhysAddrMask) >> 12;
                    break;
                }

                if (large)
                {
                    ulong pageMask = (1UL << shift) - 1;
                    physPage = (((entry & PhysAddrMask) & ~pageMask) | (lin & pageMask & ~0xFFFUL)) >> 12;
                    break;
                }

                table = entry & PhysAddrMask;
                shift -= 9;
            }
        }

        // SMEP/SMAP (SDM Vol. 3A, 4.6): supervisor fetches from, and (without EFLAGS.AC) data accesses to, user pages.
        if ((user && !us) || (write && !rw && (user || wp)) || (fetch && nx && nxe) || (!user && us && SupervisorBlocked(access)))
        {
            error = baseError | 1;
            return false;
        }

        // Set accessed bits on every level and the dirty bit on the leaf for writes (SDM 4.8).
        for (int i = 0; i < n; i++)
        {
            ulong want = entries[i] | 0x20;
            if (write && i == n - 1)
            {
                want |= 0x40;
            }

            if (want != entries[i])
            {
                Physical.Write(addrs[i], wide[i] ? 8 : 4, want);
            }
        }

        userOk = us && (!write || rw);
        userPage = us;
        return true;
    }

    // ---------------------------------------------------------------- stack

    private int StackAddrSize => Is64 ? 8 : S.Seg[Seg.SS].Big ? 4 : 2;

    private ulong StackMask => Is64 ? ulong.MaxValue : S.Seg[Seg.SS].Big ? 0xFFFF_FFFFUL : 0xFFFFUL;

    /// <summary>Writes <paramref name="value"/> below <paramref name="rsp"/> (updated) without committing RSP.</summary>
    private void PushTo(ref ulong rsp, ulong value, int size)
    {
        ulong mask = StackMask;
        ulong next = (rsp & ~mask) | ((rsp - (ulong)size) & mask);
        WriteMem(Seg.SS, next & mask, size, value);
        rsp = next;
    }

    private ulong PopFrom(ref ulong rsp, int size)
    {
        ulong mask = StackMask;
        ulong value = ReadMem(Seg.SS, rsp & mask, size);
        rsp = (rsp & ~mask) | ((rsp + (ulong)size) & mask);
        return value;
    }

    private void Push(ulong value, int size)
    {
        ulong rsp = S.Gpr[4];
        PushTo(ref rsp, value, size);
        S.Gpr[4] = rsp;
    }

    private ulong Pop(int size)
    {
        ulong rsp = S.Gpr[4];
        ulong v = PopFrom(ref rsp, size);
        S.Gpr[4] = rsp;
        return v;
    }
}
