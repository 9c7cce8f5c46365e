using System.Globalization;
using Hypervisor.Accel.Tcg.State;

namespace Hypervisor.Accel.Tcg.Interpreter;

/// <summary>What raised an event, which decides the return address and the gate-DPL check.</summary>
internal enum EventKind
{
    /// <summary>A fault or trap raised by an instruction (return address: the instruction itself).</summary>
    Fault,

    /// <summary>An external interrupt from the interrupt controller.</summary>
    External,

    /// <summary>INT n: gate DPL is checked; returns after the instruction.</summary>
    SoftwareInt,

    /// <summary>INT3/INTO: gate DPL is checked; returns after the instruction.</summary>
    SoftwareException,

    /// <summary>INT1 (ICEBP): delivered like a hardware #DB, returns after the instruction.</summary>
    Icebp,

    /// <summary>
    /// #DB for an instruction breakpoint or a trap-class debug condition (single-step, data or I/O breakpoint, the
    /// TSS T flag): delivered like a fault, but the EFLAGS image keeps RF as it is (SDM Vol. 3B, 18.3.1.1).
    /// </summary>
    Debug,
}

// Exception and interrupt delivery (Intel SDM Vol. 3A, chapter 6: 6.4, 6.12, 6.14, and 6.15 for double faults).
internal sealed partial class TcgCpu
{
    /// <summary>INT n / INT3 / INTO / INT1 executed by the guest: delivered now, returning after the instruction.</summary>
    private void SoftwareInterrupt(int vector, EventKind kind)
    {
        if ((S.Rflags & Fl.VM) != 0 && kind == EventKind.SoftwareInt && V86SoftwareInterrupt(vector))
        {
            return; // redirected to the 8086 program's handler, or #GP(0) (TcgCpu.V86.cs)
        }

        Dispatch(vector, 0, false, kind, _nextRip);
        EndBlock();
    }

    /// <summary>
    /// Delivers a fault or external interrupt at the current instruction boundary, applying the double-fault rules
    /// (SDM Vol. 3A, Table 6-5) and entering shutdown on a triple fault.
    /// </summary>
    private void DeliverEvent(int vector, uint error, bool hasError, EventKind kind, ulong returnRip)
    {
        _deliveryDepth = 0;
        string history = Describe(vector, error, hasError);
        while (true)
        {
            try
            {
                Dispatch(vector, error, hasError, kind, returnRip);
                _halted = false;
                return;
            }
            catch (GuestFault second)
            {
                string next = Describe(second.Vector, second.ErrorCode, second.HasErrorCode);
                if (vector == Vec.DF)
                {
                    _shutdownDetail = $"triple fault: {next} while delivering #DF (faults: {history}) at RIP 0x{S.Rip:X}";
                    return;
                }

                if (++_deliveryDepth > 8)
                {
                    _shutdownDetail = $"triple fault: endless fault chain ({history}, {next}) at RIP 0x{S.Rip:X}";
                    return;
                }

                history += " -> " + next;
                bool firstContributory = vector is 0 or 10 or 11 or 12 or 13;
                bool secondContributory = second.Vector is 0 or 10 or 11 or 12 or 13;
                if ((firstContributory && secondContributory) || (vector == Vec.PF && (secondContributory || second.Vector == Vec.PF)))
                {
                    vector = Vec.DF;
                    error = 0;
                    hasError = true;
                }
                else
                {
                    vector = second.Vector;
                    error = second.ErrorCode;
                    hasError = second.HasErrorCode;
                }

                kind = EventKind.Fault;
            }
        }
    }

    private static string Describe(int vector, uint error, bool hasError)
    {
        string name = vector switch
        {
            0 => "#DE", 1 => "#DB", 2 => "NMI", 3 => "#BP", 4 => "#OF", 5 => "#BR", 6 => "#UD", 7 => "#NM", 8 => "#DF",
            10 => "#TS", 11 => "#NP", 12 => "#SS", 13 => "#GP", 14 => "#PF", 16 => "#MF", 17 => "#AC", 18 => "#MC",
            19 => "#XM", _ => "vector " + vector.ToString(CultureInfo.InvariantCulture),
        };
        return hasError ? $"{name}(0x{error:X})" : name;
    }

    /// <summary>Delivers one event through the IVT (real mode) or the IDT (protected and long mode).</summary>
    private void Dispatch(int vector, uint error, bool hasError, EventKind kind, ulong returnRip)
    {
        bool software = kind is EventKind.SoftwareInt or EventKind.SoftwareException;
        uint ext = kind is EventKind.External or EventKind.Fault or EventKind.Debug ? 1u : 0u;

        // RF in the EFLAGS image (SDM Vol. 3B, 18.3.1.1): 1 for any fault-class exception except an instruction
        // breakpoint #DB (EventKind.Debug); otherwise EFLAGS.RF as it is, which a REP string instruction paused after
        // an iteration that was not its last has set (an interrupt or a trap between iterations: ExecString). #DF is
        // an abort, not a fault. The frame builders (and a task switch saving the old task) add _eventRf to the image.
        _eventRf = kind == EventKind.Fault && vector != Vec.DF ? Fl.RF : 0;
        try
        {
            if (!ProtectedMode)
            {
                DispatchReal(vector, returnRip);
                return;
            }

            if (LongMode)
            {
                DispatchLong(vector, error, hasError, software, ext, returnRip);
                return;
            }

            DispatchProtected(vector, error, hasError, software, ext, returnRip);
        }
        finally
        {
            _eventRf = 0;
        }
    }

    /// <summary>RF for the EFLAGS image of the event being delivered (see <see cref="Dispatch"/>); 0 outside a delivery.</summary>
    private ulong _eventRf;

    private void DispatchReal(int vector, ulong returnRip)
    {
        ulong entry = (ulong)vector * 4;
        if (entry + 3 > S.IdtLimit)
        {
            throw Gp0();
        }

        ulong ivt = ReadSystem(S.IdtBase + entry, 4);
        ulong rsp = S.Gpr[4];
        PushTo(ref rsp, S.Rflags & 0xFFFF, 2);
        PushTo(ref rsp, S.Seg[Seg.CS].Selector, 2);
        PushTo(ref rsp, returnRip & 0xFFFF, 2);
        S.Gpr[4] = rsp;
        S.Rflags &= ~(Fl.IF | Fl.TF | Fl.AC | Fl.RF);
        S.Seg[Seg.CS].LoadReal((ushort)(ivt >> 16));
        _nextRip = ivt & 0xFFFF;
        S.Rip = _nextRip;
        EndBlock();
    }

    private void DispatchProtected(int vector, uint error, bool hasError, bool software, uint ext, ulong returnRip)
    {
        uint idtError = (uint)(vector * 8 + 2) | ext;
        ulong offset = (ulong)vector * 8;
        if (offset + 7 > S.IdtLimit)
        {
            throw Gp(idtError);
        }

        ulong gate = ReadSystem(S.IdtBase + offset, 8);
        int type = (int)((gate >> 40) & 0xF);
        int gateDpl = (int)((gate >> 45) & 3);
        if (type is not (5 or 6 or 7 or 0xE or 0xF) || (gate & (1UL << 44)) != 0)
        {
            throw Gp(idtError);
        }

        if (software && gateDpl < _cpl)
        {
            throw Gp(idtError);
        }

        if ((gate & (1UL << 47)) == 0)
        {
            throw new GuestFault(Vec.NP, idtError, true);
        }

        if (type == 5)
        {
            DispatchTaskGate(gate, error, hasError, ext, returnRip); // TcgCpu.TaskSwitch.cs
            return;
        }

        bool is32 = type >= 0xE;
        bool trap = (type & 1) != 0;
        int size = is32 ? 4 : 2;
        ushort sel = (ushort)(gate >> 16);
        ulong target = (gate & 0xFFFF) | (is32 ? (gate >> 32) & 0xFFFF_0000 : 0);
        if ((sel & 0xFFFC) == 0)
        {
            throw Gp(ext);
        }

        ulong d = ReadDescriptor(sel, out ulong daddr);
        SegmentCache cs = ParseDescriptor(sel, d);
        uint selErr = (uint)(sel & 0xFFFC) | ext;
        if (!cs.IsCode || cs.Dpl > _cpl)
        {
            throw Gp(selErr);
        }

        if (!cs.Present)
        {
            throw new GuestFault(Vec.NP, selErr, true);
        }

        bool conforming = (cs.Type & 4) != 0;
        int newCpl = conforming ? _cpl : cs.Dpl;
        if (target > cs.Limit)
        {
            throw Gp(ext);
        }

        if ((S.Rflags & Fl.VM) != 0)
        {
            DispatchFromV86(cs, sel, d, daddr, target, is32, trap, error, hasError, ext, returnRip); // TcgCpu.V86.cs
            return;
        }

        ulong oldFlags = S.Rflags | _eventRf;
        ulong oldRsp = S.Gpr[4];
        ushort oldSs = S.Seg[Seg.SS].Selector;
        SegmentCache newSs = S.Seg[Seg.SS];
        ulong rsp = oldRsp;
        SegmentCache savedSs = S.Seg[Seg.SS];
        if (newCpl < _cpl)
        {
            // Inner-privilege stack from the TSS (SDM Vol. 3A, 7.2.1 and 6.12.1).
            ReadTssStack(newCpl, out ushort tssSs, out ulong tssSp);
            if ((tssSs & 0xFFFC) == 0)
            {
                throw new GuestFault(Vec.TS, ext, true);
            }

            ulong sd = ReadDescriptor(tssSs, out ulong saddr);
            newSs = ParseDescriptor(tssSs, sd);
            uint tsErr = (uint)(tssSs & 0xFFFC) | ext;
            if ((tssSs & 3) != newCpl || newSs.IsSystem || newSs.IsCode || (newSs.Type & 2) == 0 || newSs.Dpl != newCpl)
            {
                throw new GuestFault(Vec.TS, tsErr, true);
            }

            if (!newSs.Present)
            {
                throw new GuestFault(Vec.SS, tsErr, true);
            }

            SetAccessed(saddr, sd);
            newSs.Attributes |= 1;
            // Push on the new stack: temporarily switch SS so PushTo uses its size and limit; restored if a push faults.
            S.Seg[Seg.SS] = newSs;
            int savedCpl = _cpl;
            _cpl = newCpl;
            try
            {
                rsp = tssSp;
                PushTo(ref rsp, oldSs, size);
                PushTo(ref rsp, oldRsp, size);
                PushFrame(ref rsp, oldFlags, returnRip, error, hasError, size);
            }
            catch
            {
                S.Seg[Seg.SS] = savedSs;
                _cpl = savedCpl;
                throw;
            }
        }
        else
        {
            PushFrame(ref rsp, oldFlags, returnRip, error, hasError, size);
        }

        SetAccessed(daddr, d);
        cs.Selector = (ushort)((sel & 0xFFFC) | newCpl);
        cs.Attributes |= 1;
        S.Gpr[4] = newSs.Big ? (uint)rsp : (S.Gpr[4] & ~0xFFFFUL) | (rsp & 0xFFFF);
        CommitCs(cs, newCpl);
        S.Rflags &= ~(Fl.TF | Fl.NT | Fl.RF | Fl.VM);
        if (!trap)
        {
            S.Rflags &= ~Fl.IF;
        }

        _nextRip = target;
        S.Rip = target;
    }

    private void PushFrame(ref ulong rsp, ulong flags, ulong returnRip, uint error, bool hasError, int size)
    {
        PushTo(ref rsp, flags, size);
        PushTo(ref rsp, S.Seg[Seg.CS].Selector, size);
        PushTo(ref rsp, returnRip, size);
        if (hasError)
        {
            PushTo(ref rsp, error, size);
        }
    }

    private void ReadTssStack(int cpl, out ushort ss, out ulong sp)
    {
        ref SegmentCache tr = ref S.Tr;
        int type = tr.Type;
        if (type is 9 or 0xB)
        {
            ulong off = 4 + (ulong)cpl * 8;
            if (off + 5 > tr.Limit)
            {
                throw new GuestFault(Vec.TS, (uint)(tr.Selector & 0xFFFC), true);
            }

            sp = ReadSystem(tr.Base + off, 4);
            ss = (ushort)ReadSystem(tr.Base + off + 4, 2);
        }
        else
        {
            ulong off = 2 + (ulong)cpl * 4;
            if (off + 3 > tr.Limit)
            {
                throw new GuestFault(Vec.TS, (uint)(tr.Selector & 0xFFFC), true);
            }

            sp = ReadSystem(tr.Base + off, 2);
            ss = (ushort)ReadSystem(tr.Base + off + 2, 2);
        }
    }

    private void DispatchLong(int vector, uint error, bool hasError, bool software, uint ext, ulong returnRip)
    {
        uint idtError = (uint)(vector * 8 + 2) | ext;
        ulong offset = (ulong)vector * 16;
        if (offset + 15 > S.IdtLimit)
        {
            throw Gp(idtError);
        }

        ulong lo = ReadSystem(S.IdtBase + offset, 8);
        ulong hi = ReadSystem(S.IdtBase + offset + 8, 8);
        int type = (int)((lo >> 40) & 0xF);
        int gateDpl = (int)((lo >> 45) & 3);
        if (type is not (0xE or 0xF) || (lo & (1UL << 44)) != 0)
        {
            throw Gp(idtError);
        }

        if (software && gateDpl < _cpl)
        {
            throw Gp(idtError);
        }

        if ((lo & (1UL << 47)) == 0)
        {
            throw new GuestFault(Vec.NP, idtError, true);
        }

        ushort sel = (ushort)(lo >> 16);
        ulong target = (lo & 0xFFFF) | ((lo >> 32) & 0xFFFF_0000) | ((hi & 0xFFFF_FFFF) << 32);
        int ist = (int)((lo >> 32) & 7);
        if ((sel & 0xFFFC) == 0)
        {
            throw Gp(ext);
        }

        ulong d = ReadDescriptor(sel, out ulong daddr);
        SegmentCache cs = ParseDescriptor(sel, d);
        uint selErr = (uint)(sel & 0xFFFC) | ext;
        if (!cs.IsCode || cs.Dpl > _cpl || !cs.Long || cs.Big)
        {
            throw Gp(selErr);
        }

        if (!cs.Present)
        {
            throw new GuestFault(Vec.NP, selErr, true);
        }

        if (!IsCanonical(target))
        {
            throw Gp(ext);
        }

        bool conforming = (cs.Type & 4) != 0;
        int newCpl = conforming ? _cpl : cs.Dpl;
        ulong rsp;
        if (ist != 0)
        {
            rsp = ReadTss64(0x24 + (ulong)(ist - 1) * 8);
        }
        else if (newCpl < _cpl)
        {
            rsp = ReadTss64(4 + (ulong)newCpl * 8);
        }
        else
        {
            rsp = S.Gpr[4];
        }

        rsp &= ~0xFUL;
        ulong oldRsp = S.Gpr[4];
        ulong oldFlags = S.Rflags | _eventRf;
        ushort oldSs = S.Seg[Seg.SS].Selector;
        ushort oldCs = S.Seg[Seg.CS].Selector;
        int savedCpl = _cpl;
        _cpl = newCpl; // pushes to an inner stack use the new privilege for paging checks
        try
        {
            PushLinear64(ref rsp, oldSs);
            PushLinear64(ref rsp, oldRsp);
            PushLinear64(ref rsp, oldFlags);
            PushLinear64(ref rsp, oldCs);
            PushLinear64(ref rsp, returnRip);
            if (hasError)
            {
                PushLinear64(ref rsp, error);
            }
        }
        catch
        {
            _cpl = savedCpl;
            throw;
        }

        SetAccessed(daddr, d);
        cs.Selector = (ushort)((sel & 0xFFFC) | newCpl);
        cs.Attributes |= 1;
        if (newCpl != savedCpl)
        {
            // SS becomes a null selector with RPL = new CPL (SDM Vol. 3A, 6.14.4).
            ref SegmentCache ss = ref S.Seg[Seg.SS];
            ss.Selector = (ushort)newCpl;
            ss.Unusable = true;
            ss.Attributes = (ushort)((ss.Attributes & ~0x60) | (newCpl << 5));
        }

        S.Gpr[4] = rsp;
        CommitCs(cs, newCpl);
        S.Rflags &= ~(Fl.TF | Fl.NT | Fl.RF | Fl.VM);
        if ((type & 1) == 0)
        {
            S.Rflags &= ~Fl.IF;
        }

        _nextRip = target;
        S.Rip = target;
    }

    private ulong ReadTss64(ulong offset)
    {
        ref SegmentCache tr = ref S.Tr;
        if (offset + 7 > tr.Limit)
        {
            throw new GuestFault(Vec.TS, (uint)(tr.Selector & 0xFFFC), true);
        }

        ulong v = ReadSystem(tr.Base + offset, 8);
        if (!IsCanonical(v))
        {
            throw new GuestFault(Vec.SS, 0, true);
        }

        return v;
    }

    /// <summary>A 64-bit push for interrupt delivery in IA-32e mode (no segment limit; canonical check, #SS).</summary>
    private void PushLinear64(ref ulong rsp, ulong value)
    {
        rsp -= 8;
        if (!IsCanonical(rsp))
        {
            throw new GuestFault(Vec.SS, 0, true);
        }

        WriteLinear(rsp, 8, value, _cpl == 3);
    }
}
