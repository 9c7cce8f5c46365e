using Hypervisor.Accel.Tcg.State;

namespace Hypervisor.Accel.Tcg.Interpreter;

// Virtual-8086 mode (Intel SDM Vol. 3B, chapter 20; Vol. 2: IRET "RETURN-TO-VIRTUAL-8086-MODE", INT n
// "INTERRUPT-FROM-VIRTUAL-8086-MODE"). 8086 code runs at CPL 3 with real-mode segmentation (base = selector × 16,
// limit 0xFFFF, 16-bit code and stack); CLI, STI, PUSHF, POPF, INT n and IRET are IOPL-sensitive (#GP(0) below
// IOPL 3), IN/OUT go through the TSS I/O permission bitmap. The virtual-mode extensions (CR4.VME/PVI, VIF/VIP, the
// interrupt redirection bitmap) are not implemented: CPUID does not advertise VME and CR4.VME/PVI cannot be set.
internal sealed partial class TcgCpu
{
    /// <summary>Attributes of every segment register in virtual-8086 mode: present, DPL 3, read/write data, accessed, 16-bit.</summary>
    private const ushort V86Attributes = 0xF3;

    /// <summary>Loads a segment register the way virtual-8086 mode does: base = selector × 16, limit 0xFFFF, DPL 3.</summary>
    private void LoadV86Segment(int seg, ushort selector)
    {
        ref SegmentCache c = ref S.Seg[seg];
        c.Selector = selector;
        c.Base = (ulong)selector << 4;
        c.Limit = 0xFFFF;
        c.Attributes = V86Attributes;
        c.Unusable = false;
    }

    /// <summary>
    /// IRETD at CPL 0 whose EFLAGS image has VM = 1: the 9-dword frame (EIP, CS, EFLAGS, ESP, SS, ES, DS, FS, GS) of
    /// a return to virtual-8086 mode (SDM Vol. 2, IRET, "RETURN-TO-VIRTUAL-8086-MODE").
    /// </summary>
    private void IretToV86(ulong eip, ushort cs, ulong flags, ulong rsp)
    {
        ulong esp = PopFrom(ref rsp, 4);
        Span<ushort> sel = stackalloc ushort[4];
        ushort ss = (ushort)PopFrom(ref rsp, 4);
        for (int i = 0; i < 4; i++)
        {
            sel[i] = (ushort)PopFrom(ref rsp, 4); // ES, DS, FS, GS
        }

        eip &= 0xFFFF_FFFF;
        if (eip > 0xFFFF)
        {
            throw Gp0(); // beyond the 64-KiB limit of the virtual-8086 code segment
        }

        S.Rflags = (flags & Fl.Writable) | Fl.Fixed1;
        LoadV86Segment(Seg.CS, cs);
        LoadV86Segment(Seg.SS, ss);
        LoadV86Segment(Seg.ES, sel[0]);
        LoadV86Segment(Seg.DS, sel[1]);
        LoadV86Segment(Seg.FS, sel[2]);
        LoadV86Segment(Seg.GS, sel[3]);
        S.Gpr[4] = esp & 0xFFFF_FFFF;
        _cpl = 3;
        _nextRip = eip;
        EndBlock();
    }

    /// <summary>
    /// IRET executed in virtual-8086 mode: #GP(0) unless IOPL = 3; then a real-mode style return that cannot change
    /// IOPL, VM, VIF or VIP (SDM Vol. 2, IRET, "IF VM = 1").
    /// </summary>
    private void IretInV86(int size)
    {
        if (((S.Rflags >> 12) & 3) != 3)
        {
            throw Gp0();
        }

        ulong rsp = S.Gpr[4];
        ulong ip = PopFrom(ref rsp, size);
        ushort cs = (ushort)PopFrom(ref rsp, size);
        ulong flags = PopFrom(ref rsp, size);
        if (size == 4 && (ip & 0xFFFF_FFFF) > 0xFFFF)
        {
            throw Gp0();
        }

        // 257FD5H: the flags an IRETD may change here; IOPL, VM, VIF and VIP stay (SDM Vol. 2, IRET).
        ulong changeable = (size == 4 ? 0x257FD5UL : 0xFFFFUL & Fl.Writable) & ~Fl.IOPL;
        S.Rflags = (S.Rflags & ~changeable) | (flags & changeable) | Fl.Fixed1;
        S.Seg[Seg.CS].LoadReal(cs);
        S.Gpr[4] = rsp;
        _nextRip = ip & 0xFFFF;
        EndBlock();
    }

    /// <summary>
    /// An interrupt or exception taken in virtual-8086 mode through a 32- or 16-bit interrupt or trap gate (SDM Vol. 2,
    /// INT n, "INTERRUPT-FROM-VIRTUAL-8086-MODE"): the handler must be a non-conforming DPL-0 code segment; the
    /// ring-0 stack comes from the TSS; GS, FS, DS, ES, SS, ESP, EFLAGS, CS, EIP (and an error code) are pushed, and
    /// the data segment registers become null.
    /// </summary>
    private void DispatchFromV86(SegmentCache cs, ushort gateSelector, ulong d, ulong daddr, ulong target, bool is32,
        bool trap, uint error, bool hasError, uint ext, ulong returnRip)
    {
        uint selErr = (uint)(gateSelector & 0xFFFC) | ext;
        if ((cs.Type & 4) != 0 || cs.Dpl != 0)
        {
            throw Gp(selErr);
        }

        ReadTssStack(0, out ushort tssSs, out ulong tssSp);
        if ((tssSs & 0xFFFC) == 0)
        {
            throw new GuestFault(Vec.TS, ext, true);
        }

        ulong sd = ReadDescriptor(tssSs, out ulong saddr);
        SegmentCache newSs = ParseDescriptor(tssSs, sd);
        uint tsErr = (uint)(tssSs & 0xFFFC) | ext;
        if ((tssSs & 3) != 0 || newSs.IsSystem || newSs.IsCode || (newSs.Type & 2) == 0 || newSs.Dpl != 0)
        {
            throw new GuestFault(Vec.TS, tsErr, true);
        }

        if (!newSs.Present)
        {
            throw new GuestFault(Vec.SS, tsErr, true);
        }

        int size = is32 ? 4 : 2;
        ulong oldFlags = S.Rflags;
        ulong oldEsp = S.Gpr[4];
        SegmentCache savedSs = S.Seg[Seg.SS];
        ulong rsp = newSs.Big ? tssSp & 0xFFFF_FFFF : tssSp & 0xFFFF;
        newSs.Attributes |= 1;
        S.Seg[Seg.SS] = newSs;
        _cpl = 0;
        try
        {
            PushTo(ref rsp, S.Seg[Seg.GS].Selector, size);
            PushTo(ref rsp, S.Seg[Seg.FS].Selector, size);
            PushTo(ref rsp, S.Seg[Seg.DS].Selector, size);
            PushTo(ref rsp, S.Seg[Seg.ES].Selector, size);
            PushTo(ref rsp, savedSs.Selector, size);
            PushTo(ref rsp, oldEsp, size);
            PushTo(ref rsp, oldFlags, size);
            PushTo(ref rsp, S.Seg[Seg.CS].Selector, size);
            PushTo(ref rsp, returnRip, size);
            if (hasError)
            {
                PushTo(ref rsp, error, size);
            }
        }
        catch
        {
            S.Seg[Seg.SS] = savedSs;
            _cpl = 3;
            throw;
        }

        SetAccessed(saddr, sd);
        SetAccessed(daddr, d);
        foreach (int seg in (ReadOnlySpan<int>)[Seg.ES, Seg.DS, Seg.FS, Seg.GS])
        {
            ref SegmentCache s = ref S.Seg[seg];
            s = default;
            s.Unusable = true;
        }

        cs.Selector = (ushort)(cs.Selector & 0xFFFC);
        cs.Attributes |= 1;
        S.Gpr[4] = newSs.Big ? (uint)rsp : (S.Gpr[4] & ~0xFFFFUL) | (rsp & 0xFFFF);
        S.Rflags &= ~(Fl.TF | Fl.NT | Fl.RF | Fl.VM);
        if (!trap)
        {
            S.Rflags &= ~Fl.IF;
        }

        CommitCs(cs, 0);
        _nextRip = is32 ? target : target & 0xFFFF;
        S.Rip = _nextRip;
    }
}
