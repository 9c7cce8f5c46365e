using Hypervisor.Accel.Tcg.State;

namespace Hypervisor.Accel.Tcg.Interpreter;

// Virtual-8086 mode (Intel SDM Vol. 3B, chapter 20; Vol. 2: IRET "RETURN-TO-VIRTUAL-8086-MODE", INT n
// "INTERRUPT-FROM-VIRTUAL-8086-MODE"). 8086 code runs at CPL 3 with real-mode segmentation (base = selector × 16,
// limit 0xFFFF, 16-bit code and stack); CLI, STI, PUSHF, POPF, INT n and IRET are IOPL-sensitive (#GP(0) below
// IOPL 3), IN/OUT go through the TSS I/O permission bitmap.
// The virtual-8086 mode extensions (SDM Vol. 3B, 20.3 and 20.4; Vol. 2, CLI, STI, PUSHF, POPF, IRET): with CR4.VME and
// IOPL < 3, CLI/STI and 16-bit PUSHF/POPF/IRET work on VIF in place of IF (STI, POPF and IRET raise #GP(0) instead of
// setting VIF while VIP is set, POPF and IRET also for an image with TF set); INT n consults the interrupt redirection
// bitmap (the 32 bytes below the I/O map base in the TSS) and either goes to the 8086 program's own handler through
// its IVT at linear 0 or takes the usual path (Table 20-2). With CR4.PVI, CLI/STI at CPL 3 in protected mode change
// VIF the same way. The one rule left out is the #GP "if VIF and VIP are both set at the beginning of an instruction"
// that older editions of 20.3.2 describe: the instruction pages (POPF, IRET, STI) put those checks in the instructions.
internal sealed partial class TcgCpu
{
    /// <summary>
    /// CLI (<paramref name="set"/> false) or STI (true) where IOPL does not allow them: VIF in virtual-8086 mode with
    /// CR4.VME and at CPL 3 in protected mode with CR4.PVI (STI raises #GP(0) while VIP is set), else #GP(0)
    /// (SDM Vol. 2, CLI and STI).
    /// </summary>
    private void SetVirtualInterruptFlag(bool set)
    {
        bool v86 = (S.Rflags & Fl.VM) != 0;
        bool virtualFlags = v86 ? (S.Cr4 & Cr.Cr4Vme) != 0 : _cpl == 3 && (S.Cr4 & Cr.Cr4Pvi) != 0;
        if (!virtualFlags || (set && (S.Rflags & Fl.VIP) != 0))
        {
            throw Gp0();
        }

        S.Rflags = set ? S.Rflags | Fl.VIF : S.Rflags & ~Fl.VIF;
    }

    /// <summary>PUSHF in virtual-8086 mode below IOPL 3: with CR4.VME a 16-bit image with VIF as IF and IOPL 3, else #GP(0).</summary>
    private void PushfV86(int size)
    {
        if ((S.Cr4 & Cr.Cr4Vme) == 0 || size != 2)
        {
            throw Gp0();
        }

        ulong image = (S.Rflags & 0xFFFF & ~(Fl.IF | Fl.IOPL)) | Fl.IOPL | ((S.Rflags & Fl.VIF) != 0 ? Fl.IF : 0) | Fl.Fixed1;
        Push(image, 2);
    }

    /// <summary>
    /// POPF in virtual-8086 mode below IOPL 3: with CR4.VME and a 16-bit operand, FLAGS but IF and IOPL from the image
    /// and VIF from its IF; #GP(0) if the image sets TF, or IF while VIP is set (and without VME or for POPFD).
    /// </summary>
    private void PopfV86(int size)
    {
        if ((S.Cr4 & Cr.Cr4Vme) == 0 || size != 2)
        {
            throw Gp0();
        }

        ulong rsp = S.Gpr[4];
        ulong image = PopFrom(ref rsp, 2);
        LoadVirtualFlags(image);
        S.Gpr[4] = rsp;
        EndBlock();
    }

    /// <summary>The 16-bit FLAGS image of a POPF or IRET under VME at IOPL &lt; 3 (checks first, then IF goes to VIF).</summary>
    private void LoadVirtualFlags(ulong image)
    {
        if ((image & Fl.TF) != 0 || ((image & Fl.IF) != 0 && (S.Rflags & Fl.VIP) != 0))
        {
            throw Gp0();
        }

        ulong changeable = 0xFFFF & Fl.Writable & ~(Fl.IF | Fl.IOPL);
        S.Rflags = (S.Rflags & ~changeable & ~Fl.VIF) | (image & changeable) | ((image & Fl.IF) != 0 ? Fl.VIF : 0) | Fl.Fixed1;
    }

    /// <summary>
    /// INT n in virtual-8086 mode (SDM Vol. 3B, 20.3.3, Table 20-2). Without VME: #GP(0) below IOPL 3, else the IDT
    /// (false). With VME the redirection bitmap bit for <paramref name="vector"/> decides: clear, the 8086 handler
    /// from the IVT at linear 0 (true: done); set, the IDT at IOPL 3 (false) and #GP(0) below it.
    /// </summary>
    private bool V86SoftwareInterrupt(int vector)
    {
        bool iopl3 = (S.Rflags & Fl.IOPL) == Fl.IOPL;
        if ((S.Cr4 & Cr.Cr4Vme) == 0 || !InterruptRedirected(vector))
        {
            return iopl3 ? false : throw Gp0();
        }

        // To the 8086 handler (methods 5 and 6): FLAGS (below IOPL 3 with VIF as IF and IOPL 3), CS and IP of the next
        // instruction on the 8086 stack; then IF (VIF below IOPL 3), TF and RF are cleared.
        ulong flags = S.Rflags & 0xFFFF;
        if (!iopl3)
        {
            flags = (flags & ~Fl.IF) | Fl.IOPL | ((S.Rflags & Fl.VIF) != 0 ? Fl.IF : 0);
        }

        ulong entry = ReadLinear((ulong)vector * 4, 4, true);
        ulong rsp = S.Gpr[4];
        PushTo(ref rsp, flags | Fl.Fixed1, 2);
        PushTo(ref rsp, S.Seg[Seg.CS].Selector, 2);
        PushTo(ref rsp, _nextRip & 0xFFFF, 2);
        S.Gpr[4] = rsp;
        S.Rflags &= ~(Fl.TF | Fl.RF | (iopl3 ? Fl.IF : Fl.VIF));
        LoadV86Segment(Seg.CS, (ushort)(entry >> 16));
        _nextRip = entry & 0xFFFF;
        EndBlock();
        return true;
    }

    /// <summary>
    /// The bit for <paramref name="vector"/> in the TSS's interrupt redirection bitmap, which ends where the I/O
    /// permission bitmap begins (the word at offset 66H): true when it is clear. A bitmap beyond the TSS limit (or no
    /// 32-bit TSS) is #GP(0).
    /// </summary>
    private bool InterruptRedirected(int vector)
    {
        ref SegmentCache tr = ref S.Tr;
        if (tr.Unusable || (tr.Type != 0xB && tr.Type != 9) || tr.Limit < 0x67)
        {
            throw Gp0();
        }

        ulong mapBase = ReadSystem(tr.Base + 0x66, 2);
        ulong offset = mapBase - 32 + (ulong)(vector >> 3);
        if (mapBase < 32 || offset > tr.Limit)
        {
            throw Gp0();
        }

        return (ReadSystem(tr.Base + offset, 1) & (1UL << (vector & 7))) == 0;
    }

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
            IretInV86Virtual(size);
            return;
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
    /// IRET in virtual-8086 mode below IOPL 3: with CR4.VME a 16-bit IRET whose FLAGS image is loaded as by POPF (IF to
    /// VIF; #GP(0) for TF, or IF while VIP is set); otherwise, and for IRETD, #GP(0) (SDM Vol. 2, IRET).
    /// </summary>
    private void IretInV86Virtual(int size)
    {
        if ((S.Cr4 & Cr.Cr4Vme) == 0 || size != 2)
        {
            throw Gp0();
        }

        ulong rsp = S.Gpr[4];
        ulong ip = PopFrom(ref rsp, 2);
        ushort cs = (ushort)PopFrom(ref rsp, 2);
        ulong flags = PopFrom(ref rsp, 2);
        LoadVirtualFlags(flags);
        LoadV86Segment(Seg.CS, cs);
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
        ulong oldFlags = S.Rflags | _eventRf;
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
