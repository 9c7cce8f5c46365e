using Hypervisor.Accel.Tcg.State;

namespace Hypervisor.Accel.Tcg.Interpreter;

/// <summary>What started a hardware task switch (Intel SDM Vol. 3A, 7.3): it decides busy bits, NT and the back link.</summary>
internal enum TaskSwitchReason
{
    /// <summary>JMP to a TSS or task gate: the old task's busy bit is cleared, no back link.</summary>
    Jump,

    /// <summary>CALL to a TSS or task gate: the new task is nested (NT set, back link written).</summary>
    Call,

    /// <summary>IRET with EFLAGS.NT = 1: return to the task in the back link.</summary>
    Iret,

    /// <summary>An interrupt or exception through a task gate: nested like CALL.</summary>
    Interrupt,
}

// Hardware task switching in protected mode (Intel SDM Vol. 3A, chapter 7: 7.2 TSS layout, 7.3 task switching,
// Table 7-1 checks and their order, 7.4 task linking; Vol. 2: JMP, CALL, IRET and INT n pseudo-code). 32-bit and
// 16-bit TSSs. Not available in IA-32e mode, where the callers raise #GP instead.
internal sealed partial class TcgCpu
{
    private const ulong TssBusy = 1UL << 41;

    /// <summary>
    /// Far JMP/CALL whose selector names a TSS descriptor or a task gate (SDM Vol. 2, JMP and CALL, "TASK-GATE" and
    /// "TASK-STATE-SEGMENT"). <paramref name="d"/> is the descriptor the selector names.
    /// </summary>
    private void FarTaskTransfer(ushort selector, ulong d, bool call)
    {
        int type = (int)((d >> 40) & 0xF);
        int dpl = (int)((d >> 45) & 3);
        uint err = (uint)(selector & 0xFFFC);
        if (dpl < _cpl || dpl < (selector & 3))
        {
            throw Gp(err);
        }

        ushort tss = selector;
        if (type == 5)
        {
            if ((d & (1UL << 47)) == 0)
            {
                throw new GuestFault(Vec.NP, err, true);
            }

            tss = (ushort)(d >> 16);
            if ((tss & 4) != 0)
            {
                throw Gp((uint)(tss & 0xFFFC));
            }
        }
        else if (type is 3 or 0xB)
        {
            throw Gp(err); // a busy TSS cannot be entered by JMP or CALL
        }

        TaskSwitch(tss, call ? TaskSwitchReason.Call : TaskSwitchReason.Jump, _nextRip, 0, 0, false);
    }

    /// <summary>An interrupt or exception whose IDT entry is a task gate (SDM Vol. 3A, 6.12.2).</summary>
    private void DispatchTaskGate(ulong gate, uint error, bool hasError, uint ext, ulong returnRip)
    {
        ushort tss = (ushort)(gate >> 16);
        if ((tss & 4) != 0)
        {
            throw new GuestFault(Vec.TS, (uint)(tss & 0xFFFC) | ext, true);
        }

        TaskSwitch(tss, TaskSwitchReason.Interrupt, returnRip, ext, error, hasError);
    }

    /// <summary>IRET with EFLAGS.NT = 1 in protected mode: back to the task named by the current TSS's back link.</summary>
    private void IretTaskReturn()
    {
        ushort link = (ushort)ReadSystem(S.Tr.Base, 2);
        TaskSwitch(link, TaskSwitchReason.Iret, _nextRip, 0, 0, false);
    }

    /// <summary>
    /// Switches to the task whose TSS <paramref name="selector"/> names. Faults before the commit point (the TR load)
    /// are taken in the old task; after it, in the new one. <paramref name="returnEip"/> is saved as the old task's
    /// EIP; an interrupt's error code is pushed on the new task's stack.
    /// </summary>
    private void TaskSwitch(ushort selector, TaskSwitchReason reason, ulong returnEip, uint ext, uint error, bool hasError)
    {
        bool iret = reason == TaskSwitchReason.Iret;
        uint err = (uint)(selector & 0xFFFC) | ext;
        int badSelector = iret ? Vec.TS : Vec.GP;

        // Table 7-1: the selector references the GDT within its limit; the descriptor is present, a TSS of the right
        // busy state, and large enough.
        ulong index = (ulong)(selector & 0xFFF8);
        if ((selector & 4) != 0 || (selector & 0xFFFC) == 0 || index + 7 > S.GdtLimit)
        {
            throw new GuestFault(badSelector, err, true);
        }

        ulong descAddr = S.GdtBase + index;
        ulong d = ReadSystem(descAddr, 8);
        int type = (int)((d >> 40) & 0x1F); // includes S (bit 4): system descriptors only
        bool busy = (type & 2) != 0;
        if (type is not (1 or 3 or 9 or 0xB))
        {
            throw new GuestFault(badSelector, err, true);
        }

        if ((d & (1UL << 47)) == 0)
        {
            throw new GuestFault(Vec.NP, err, true);
        }

        if (iret ? !busy : busy)
        {
            throw new GuestFault(badSelector, err, true);
        }

        SegmentCache newTr = ParseDescriptor(selector, d);
        bool new32 = (type & 8) != 0;
        if (newTr.Limit < (new32 ? 0x67u : 0x2Bu))
        {
            throw new GuestFault(Vec.TS, err, true);
        }

        ref SegmentCache oldTr = ref S.Tr;
        bool old32 = oldTr.Type is 9 or 0xB;
        uint oldErr = (uint)(oldTr.Selector & 0xFFFC) | ext;
        if (oldTr.Unusable || oldTr.Limit < (old32 ? 0x5Fu : 0x29u))
        {
            throw new GuestFault(Vec.TS, oldErr, true);
        }

        // Read the whole new state first, so that a page fault on the new TSS leaves the old task untouched.
        ulong b = newTr.Base;
        Span<ulong> gpr = stackalloc ulong[8];
        Span<ushort> sel = stackalloc ushort[6];
        ulong newCr3 = 0, newEip, newFlags;
        ushort ldt;
        bool trap = false;
        if (new32)
        {
            newCr3 = ReadSystem(b + 0x1C, 4);
            newEip = ReadSystem(b + 0x20, 4);
            newFlags = ReadSystem(b + 0x24, 4);
            for (int i = 0; i < 8; i++)
            {
                gpr[i] = ReadSystem(b + 0x28 + (ulong)(i * 4), 4);
            }

            for (int i = 0; i < 6; i++)
            {
                sel[i] = (ushort)ReadSystem(b + 0x48 + (ulong)(i * 4), 2);
            }

            ldt = (ushort)ReadSystem(b + 0x60, 2);
            trap = (ReadSystem(b + 0x64, 2) & 1) != 0;
        }
        else
        {
            newEip = ReadSystem(b + 0x0E, 2);
            newFlags = ReadSystem(b + 0x10, 2) | (S.Rflags & 0xFFFF_0000 & ~(Fl.VM | Fl.RF));
            for (int i = 0; i < 8; i++)
            {
                gpr[i] = (S.Gpr[i] & 0xFFFF_0000) | ReadSystem(b + 0x12 + (ulong)(i * 2), 2);
            }

            for (int i = 0; i < 6; i++)
            {
                sel[i] = (ushort)ReadSystem(b + 0x22 + (ulong)(i * 2), 2);
            }

            ldt = (ushort)ReadSystem(b + 0x2A, 2);
        }

        // The new TSS must be writable where the processor will write it (busy bit, back link), and the old TSS
        // where its state is saved: probe before changing anything (SDM Vol. 3A, 7.3 step 5).
        ulong oldBase = oldTr.Base;
        ProbeSystemWrite(old32 ? oldBase + 0x20 : oldBase + 0x0E, old32 ? 0x40 : 0x1C);
        if (!iret)
        {
            ProbeSystemWrite(b, 2);
        }

        // Save the old task (7.3 steps 6-8): JMP and IRET free the old TSS; IRET saves NT clear.
        MaterializeFlags();
        ulong oldFlags = S.Rflags | _eventRf; // RF of a fault delivered through a task gate (TcgCpu.Exceptions.cs)
        if (iret)
        {
            oldFlags &= ~Fl.NT;
        }

        if (reason is TaskSwitchReason.Jump or TaskSwitchReason.Iret)
        {
            ulong oldIndex = (ulong)(oldTr.Selector & 0xFFF8);
            ulong od = ReadSystem(S.GdtBase + oldIndex, 8);
            WriteSystem(S.GdtBase + oldIndex + 5, 1, (od >> 40) & 0xFD);
        }

        if (old32)
        {
            WriteSystem(oldBase + 0x20, 4, returnEip & 0xFFFF_FFFF);
            WriteSystem(oldBase + 0x24, 4, oldFlags & 0xFFFF_FFFF);
            for (int i = 0; i < 8; i++)
            {
                WriteSystem(oldBase + 0x28 + (ulong)(i * 4), 4, S.Gpr[i] & 0xFFFF_FFFF);
            }

            for (int i = 0; i < 6; i++)
            {
                WriteSystem(oldBase + 0x48 + (ulong)(i * 4), 2, S.Seg[i].Selector);
            }
        }
        else
        {
            WriteSystem(oldBase + 0x0E, 2, returnEip & 0xFFFF);
            WriteSystem(oldBase + 0x10, 2, oldFlags & 0xFFFF);
            for (int i = 0; i < 8; i++)
            {
                WriteSystem(oldBase + 0x12 + (ulong)(i * 2), 2, S.Gpr[i] & 0xFFFF);
            }

            for (int i = 0; i < 6; i++)
            {
                WriteSystem(oldBase + 0x22 + (ulong)(i * 2), 2, S.Seg[i].Selector);
            }
        }

        // Link and lock the new task (steps 9-10).
        if (reason is TaskSwitchReason.Call or TaskSwitchReason.Interrupt)
        {
            newFlags |= Fl.NT;
            WriteSystem(b, 2, oldTr.Selector);
        }

        if (!iret)
        {
            WriteSystem(descAddr + 5, 1, ((d >> 40) & 0xFF) | 2);
            d |= TssBusy;
        }

        // Commit point: TR holds the new task (step 11); CR0.TS is set; local breakpoints end with the old task.
        newTr.Attributes |= 2;
        S.Tr = newTr;
        S.Cr0 |= Cr.TS;
        S.Dr7 &= ~0x155UL; // L0-L3 and LE (SDM Vol. 3A, 18.2.4)
        OnDebugRegistersChanged();

        // Step 12: load the new task's state. Faults from here on are taken in the new task.
        if (new32 && (S.Cr0 & Cr.PG) != 0)
        {
            S.Cr3 = newCr3;
            FlushTlb();
        }

        for (int i = 0; i < 8; i++)
        {
            S.Gpr[i] = gpr[i];
        }

        S.Rflags = (newFlags & Fl.Writable) | Fl.Fixed1;
        S.Rip = newEip;
        _nextRip = newEip;
        bool v86 = (S.Rflags & Fl.VM) != 0;
        for (int i = 0; i < 6; i++)
        {
            S.Seg[i].Selector = sel[i];
        }

        S.Ldtr.Selector = ldt;
        S.Ldtr.Unusable = true;
        _cpl = v86 ? 3 : sel[Seg.CS] & 3;
        EndBlock();
        _taskSegmentsLoaded = 0;
        try
        {
            LoadTaskLdt(ldt, ext);
            if (v86)
            {
                for (int i = 0; i < 6; i++)
                {
                    LoadV86Segment(i, sel[i]);
                }
            }
            else
            {
                LoadTaskSegments(sel, ext);
            }
        }
        catch (GuestFault)
        {
            CompleteTaskSegmentsUnchecked(sel, v86);
            throw;
        }

        if (newEip > S.Seg[Seg.CS].Limit)
        {
            throw Gp(ext);
        }

        if (hasError)
        {
            // The error code goes on the new task's stack, as wide as the new TSS (SDM Vol. 3A, 6.12.2).
            Push(error, new32 ? 4 : 2);
        }

        if (trap)
        {
            PendDebugTrap(Dr6Bt); // the T flag: #DB before the new task's first instruction (SDM Vol. 3A, 7.2.1)
        }
    }

    /// <summary>Segment registers (bit per <see cref="Seg"/> index) that step 13 of the task switch in progress has loaded and checked.</summary>
    private int _taskSegmentsLoaded;

    /// <summary>
    /// A fault while the new task's LDT and segment descriptors are loaded and checked (after the commit point): the
    /// selectors are all loaded already, and the processor "completes the task switch (without performing additional
    /// access and segment availability checks)" before it raises the exception in the new task (SDM Vol. 3A, 7.3,
    /// note to step 13; 6.15, #TS and #NP: the remaining segment registers "are loaded but not checked for validity and
    /// therefore may not be usable"). So each register not yet loaded, the faulting one included, takes the descriptor
    /// its selector names as it is, rather than keeping the old task's; where no descriptor can be read (a null
    /// selector, one beyond its table's limit, an LDT selector without a usable LDT) it is unusable. The accessed bits
    /// are left alone. A virtual-8086 task's segments need no descriptors: they are all loaded.
    /// </summary>
    private void CompleteTaskSegmentsUnchecked(ReadOnlySpan<ushort> sel, bool v86)
    {
        for (int i = 0; i < 6; i++)
        {
            if ((_taskSegmentsLoaded & (1 << i)) != 0)
            {
                continue;
            }

            if (v86)
            {
                LoadV86Segment(i, sel[i]);
                continue;
            }

            ref SegmentCache c = ref S.Seg[i];
            ushort s = sel[i];
            ulong index = (ulong)(s & 0xFFF8);
            bool inLdt = (s & 4) != 0;
            bool readable = (s & 0xFFFC) != 0 &&
                            (inLdt ? !S.Ldtr.Unusable && index + 7 <= S.Ldtr.Limit : index + 7 <= S.GdtLimit);
            c = default;
            c.Selector = s;
            c.Unusable = true;
            if (readable)
            {
                ulong cr2 = S.Cr2;
                try
                {
                    c = ParseDescriptor(s, ReadSystem((inLdt ? S.Ldtr.Base : S.GdtBase) + index, 8));
                }
                catch (GuestFault)
                {
                    // The table itself cannot be read (a page fault): nothing to load, the register stays unusable,
                    // and CR2 keeps what the fault being raised put there.
                    S.Cr2 = cr2;
                }
            }
        }
    }

    /// <summary>Checks with supervisor rights that <paramref name="size"/> bytes at <paramref name="lin"/> can be written (#PF if not).</summary>
    private void ProbeSystemWrite(ulong lin, int size)
    {
        for (ulong a = lin & ~0xFFFUL; a < lin + (ulong)size; a += 0x1000)
        {
            ulong probe = Math.Max(a, lin);
            _implicitSupervisor = true;
            try
            {
                TranslateChecked(WrapLinear(probe), AccessWrite, false, 1);
            }
            finally
            {
                _implicitSupervisor = false;
            }
        }
    }

    /// <summary>LDTR from the new TSS (Table 7-1: #TS(LDT selector) unless it names a present LDT descriptor in the GDT).</summary>
    private void LoadTaskLdt(ushort ldt, uint ext)
    {
        if ((ldt & 0xFFFC) == 0)
        {
            return;
        }

        uint err = (uint)(ldt & 0xFFFC) | ext;
        ulong index = (ulong)(ldt & 0xFFF8);
        if ((ldt & 4) != 0 || index + 7 > S.GdtLimit)
        {
            throw new GuestFault(Vec.TS, err, true);
        }

        ulong d = ReadSystem(S.GdtBase + index, 8);
        SegmentCache c = ParseDescriptor(ldt, d);
        if (!c.IsSystem || c.Type != 2 || !c.Present)
        {
            throw new GuestFault(Vec.TS, err, true);
        }

        S.Ldtr = c;
    }

    /// <summary>CS, SS, DS, ES, FS, GS of the new task with the checks of Table 7-1 (new CPL = CS.RPL).</summary>
    private void LoadTaskSegments(ReadOnlySpan<ushort> sel, uint ext)
    {
        int cpl = sel[Seg.CS] & 3;

        // Code segment: valid (in a table, within its limit, a code segment), privilege, present.
        ushort cs = sel[Seg.CS];
        uint csErr = (uint)(cs & 0xFFFC) | ext;
        if ((cs & 0xFFFC) == 0)
        {
            throw new GuestFault(Vec.TS, csErr, true);
        }

        ulong cd = ReadTaskDescriptor(cs, csErr, out ulong caddr);
        SegmentCache code = ParseDescriptor(cs, cd);
        bool conforming = (code.Type & 4) != 0;
        if (!code.IsCode || (conforming ? code.Dpl > cpl : code.Dpl != cpl))
        {
            throw new GuestFault(Vec.TS, csErr, true);
        }

        // Stack segment: valid, writable data, RPL = DPL = CPL, present (#SS).
        ushort ss = sel[Seg.SS];
        uint ssErr = (uint)(ss & 0xFFFC) | ext;
        if ((ss & 0xFFFC) == 0)
        {
            throw new GuestFault(Vec.TS, ssErr, true);
        }

        ulong sd = ReadTaskDescriptor(ss, ssErr, out ulong saddr);
        SegmentCache stack = ParseDescriptor(ss, sd);
        if (stack.IsSystem || stack.IsCode || (stack.Type & 2) == 0 || (ss & 3) != cpl || stack.Dpl != cpl)
        {
            throw new GuestFault(Vec.TS, ssErr, true);
        }

        if (!stack.Present)
        {
            throw new GuestFault(Vec.SS, ssErr, true);
        }

        if (!code.Present)
        {
            throw new GuestFault(Vec.NP, csErr, true);
        }

        SetAccessed(caddr, cd);
        code.Attributes |= 1;
        S.Seg[Seg.CS] = code;
        SetAccessed(saddr, sd);
        stack.Attributes |= 1;
        S.Seg[Seg.SS] = stack;
        _taskSegmentsLoaded |= (1 << Seg.CS) | (1 << Seg.SS);

        // Data segments: null is allowed; otherwise valid, readable, present (#NP), and DPL >= CPL and RPL unless
        // conforming code.
        foreach (int seg in (ReadOnlySpan<int>)[Seg.DS, Seg.ES, Seg.FS, Seg.GS])
        {
            ushort s = sel[seg];
            ref SegmentCache target = ref S.Seg[seg];
            if ((s & 0xFFFC) == 0)
            {
                target = default;
                target.Selector = s;
                target.Unusable = true;
                _taskSegmentsLoaded |= 1 << seg;
                continue;
            }

            uint e = (uint)(s & 0xFFFC) | ext;
            ulong dd = ReadTaskDescriptor(s, e, out ulong daddr);
            SegmentCache c = ParseDescriptor(s, dd);
            bool readableCode = c.IsCode && (c.Type & 2) != 0;
            bool conformingCode = c.IsCode && (c.Type & 4) != 0;
            if (c.IsSystem || (c.IsCode && !readableCode) || (!conformingCode && (c.Dpl < cpl || c.Dpl < (s & 3))))
            {
                throw new GuestFault(Vec.TS, e, true);
            }

            if (!c.Present)
            {
                throw new GuestFault(Vec.NP, e, true);
            }

            SetAccessed(daddr, dd);
            c.Attributes |= 1;
            target = c;
            _taskSegmentsLoaded |= 1 << seg;
        }
    }

    /// <summary>A descriptor read for a task switch: beyond the table's limit (or an unusable LDT) is #TS(selector).</summary>
    private ulong ReadTaskDescriptor(ushort selector, uint tsError, out ulong address)
    {
        ulong index = (ulong)(selector & 0xFFF8);
        bool ldt = (selector & 4) != 0;
        if (ldt ? S.Ldtr.Unusable || index + 7 > S.Ldtr.Limit : index + 7 > S.GdtLimit)
        {
            throw new GuestFault(Vec.TS, tsError, true);
        }

        address = (ldt ? S.Ldtr.Base : S.GdtBase) + index;
        return ReadSystem(address, 8);
    }
}
