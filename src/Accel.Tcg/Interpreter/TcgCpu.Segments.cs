using Hypervisor.Accel.Tcg.State;
using Iced.Intel;

namespace Hypervisor.Accel.Tcg.Interpreter;

// Descriptor tables, segment loads and far transfers (Intel SDM Vol. 3A, chapter 5; Vol. 2: MOV, JMP, CALL, RET, IRET).
internal sealed partial class TcgCpu
{
    /// <summary>Reads the 8-byte descriptor for <paramref name="selector"/> from the GDT or LDT; #GP(selector) past the limit.</summary>
    private ulong ReadDescriptor(ushort selector, out ulong address)
    {
        ulong index = (ulong)(selector & 0xFFF8);
        ulong tableBase, limit;
        if ((selector & 4) != 0)
        {
            if (S.Ldtr.Unusable || S.Ldtr.Selector == 0)
            {
                throw Gp((uint)(selector & 0xFFFC));
            }

            tableBase = S.Ldtr.Base;
            limit = S.Ldtr.Limit;
        }
        else
        {
            tableBase = S.GdtBase;
            limit = S.GdtLimit;
        }

        if (index + 7 > limit)
        {
            throw Gp((uint)(selector & 0xFFFC));
        }

        address = tableBase + index;
        return ReadSystem(address, 8);
    }

    private static SegmentCache ParseDescriptor(ushort selector, ulong d)
    {
        uint limit = (uint)((d & 0xFFFF) | ((d >> 32) & 0xF_0000));
        if ((d & (1UL << 55)) != 0)
        {
            limit = (limit << 12) | 0xFFF;
        }

        return new SegmentCache
        {
            Selector = selector,
            Base = ((d >> 16) & 0xFF_FFFF) | (((d >> 56) & 0xFF) << 24),
            Limit = limit,
            Attributes = (ushort)((d >> 40) & 0xF0FF),
            Unusable = false,
        };
    }

    /// <summary>Sets the accessed bit of a code/data descriptor in memory (SDM Vol. 3A, 3.4.5.1).</summary>
    private void SetAccessed(ulong address, ulong d)
    {
        if ((d & (1UL << 40)) == 0)
        {
            WriteSystem(address + 5, 1, (byte)(d >> 40) | 1UL);
        }
    }

    /// <summary>MOV/POP/LDS... to DS, ES, FS, GS or SS with the protected-mode checks.</summary>
    private void LoadDataSegment(int seg, ushort selector)
    {
        if (!ProtectedMode || (S.Rflags & Fl.VM) != 0)
        {
            S.Seg[seg].LoadReal(selector);
            return;
        }

        if ((selector & 0xFFFC) == 0)
        {
            if (seg == Seg.SS && !(Is64 && _cpl != 3 && (selector & 3) == _cpl))
            {
                throw Gp0();
            }

            ref SegmentCache n = ref S.Seg[seg];
            n.Selector = selector;
            n.Unusable = true;
            if (seg != Seg.FS && seg != Seg.GS)
            {
                n.Base = 0;
            }

            if (seg == Seg.SS)
            {
                n.Attributes = (ushort)((n.Attributes & ~0x60) | (_cpl << 5));
            }

            return;
        }

        ulong d = ReadDescriptor(selector, out ulong addr);
        SegmentCache c = ParseDescriptor(selector, d);
        int rpl = selector & 3;
        uint err = (uint)(selector & 0xFFFC);
        if (seg == Seg.SS)
        {
            if (rpl != _cpl || c.IsSystem || c.IsCode || (c.Type & 2) == 0 || c.Dpl != _cpl)
            {
                throw Gp(err);
            }

            if (!c.Present)
            {
                throw new GuestFault(Vec.SS, err, true);
            }
        }
        else
        {
            bool readableCode = c.IsCode && (c.Type & 2) != 0;
            if (c.IsSystem || (c.IsCode && !readableCode))
            {
                throw Gp(err);
            }

            bool conformingCode = c.IsCode && (c.Type & 4) != 0;
            if (!conformingCode && (rpl > c.Dpl || _cpl > c.Dpl))
            {
                throw Gp(err);
            }

            if (!c.Present)
            {
                throw new GuestFault(Vec.NP, err, true);
            }
        }

        SetAccessed(addr, d);
        c.Attributes |= 1;
        if (Is64 && (seg == Seg.FS || seg == Seg.GS))
        {
            c.Base = (uint)c.Base;
        }

        S.Seg[seg] = c;
    }

    /// <summary>Reads and checks a code segment for a far JMP/CALL/RET or an interrupt; returns it with RPL = <paramref name="newCpl"/>.</summary>
    private SegmentCache CheckCodeSegment(ushort selector, ulong d, int newCpl, bool forReturn)
    {
        SegmentCache c = ParseDescriptor(selector, d);
        uint err = (uint)(selector & 0xFFFC);
        if (!c.IsCode)
        {
            throw Gp(err);
        }

        bool conforming = (c.Type & 4) != 0;
        int rpl = selector & 3;
        if (forReturn)
        {
            if (rpl < _cpl || (conforming ? c.Dpl > rpl : c.Dpl != rpl))
            {
                throw Gp(err);
            }
        }
        else if (conforming ? c.Dpl > _cpl : (rpl > _cpl || c.Dpl != _cpl))
        {
            throw Gp(err);
        }

        if (!c.Present)
        {
            throw new GuestFault(Vec.NP, err, true);
        }

        if (LongMode && c.Long && c.Big)
        {
            throw Gp(err); // L and D both set is reserved in IA-32e mode
        }

        c.Selector = (ushort)((selector & 0xFFFC) | newCpl);
        c.Attributes |= 1;
        return c;
    }

    private void CheckTargetOffset(in SegmentCache cs, ulong offset)
    {
        if (LongMode && cs.Long)
        {
            if (!IsCanonical(offset))
            {
                throw Gp0();
            }
        }
        else if (offset > cs.Limit)
        {
            throw Gp0();
        }
    }

    private void CommitCs(in SegmentCache cs, int cpl)
    {
        S.Seg[Seg.CS] = cs;
        _cpl = cpl;
        EndBlock();
    }

    private void FarJump(ushort selector, ulong offset, int opSize)
    {
        offset &= SizeMask(opSize);
        if (!ProtectedMode || (S.Rflags & Fl.VM) != 0)
        {
            if (offset > S.Seg[Seg.CS].Limit)
            {
                throw Gp0();
            }

            S.Seg[Seg.CS].LoadReal(selector);
            _nextRip = offset;
            EndBlock();
            return;
        }

        if ((selector & 0xFFFC) == 0)
        {
            throw Gp0();
        }

        ulong d = ReadDescriptor(selector, out ulong addr);
        if ((d & (1UL << 44)) == 0)
        {
            if (IsTaskDescriptor(d))
            {
                FarTaskTransfer(selector, d, call: false); // TcgCpu.TaskSwitch.cs
                return;
            }

            ResolveGate(selector, d, out selector, out offset, out d, out addr, call: false);
        }

        SegmentCache cs = CheckCodeSegment(selector, d, _cpl, forReturn: false);
        CheckTargetOffset(cs, offset);
        SetAccessed(addr, d);
        CommitCs(cs, _cpl);
        _nextRip = offset;
    }

    private void FarCall(ushort selector, ulong offset, int opSize)
    {
        offset &= SizeMask(opSize);
        ulong rsp = S.Gpr[4];
        ulong retIp = _nextRip;
        ushort retCs = S.Seg[Seg.CS].Selector;
        if (!ProtectedMode || (S.Rflags & Fl.VM) != 0)
        {
            if (offset > S.Seg[Seg.CS].Limit)
            {
                throw Gp0();
            }

            PushTo(ref rsp, retCs, opSize);
            PushTo(ref rsp, retIp, opSize);
            S.Gpr[4] = rsp;
            S.Seg[Seg.CS].LoadReal(selector);
            _nextRip = offset;
            EndBlock();
            return;
        }

        if ((selector & 0xFFFC) == 0)
        {
            throw Gp0();
        }

        ulong d = ReadDescriptor(selector, out ulong addr);
        if ((d & (1UL << 44)) == 0)
        {
            if (IsTaskDescriptor(d))
            {
                FarTaskTransfer(selector, d, call: true); // TcgCpu.TaskSwitch.cs
                return;
            }

            ResolveGate(selector, d, out selector, out offset, out d, out addr, call: true);
            opSize = _gateSize;
            if (_gateInner)
            {
                CallGateInner(selector, offset, d, addr, retCs, retIp, opSize);
                return;
            }
        }

        SegmentCache cs = CheckCodeSegment(selector, d, _cpl, forReturn: false);
        CheckTargetOffset(cs, offset);
        PushTo(ref rsp, retCs, opSize);
        PushTo(ref rsp, retIp, opSize);
        SetAccessed(addr, d);
        S.Gpr[4] = rsp;
        CommitCs(cs, _cpl);
        _nextRip = offset;
    }

    private int _gateSize;
    private int _gateParams;
    private bool _gateInner;

    /// <summary>A TSS descriptor or task gate outside IA-32e mode (where they are invalid and ResolveGate raises #GP).</summary>
    private bool IsTaskDescriptor(ulong d) => !LongMode && ((d >> 40) & 0xF) is 1 or 3 or 5 or 9 or 0xB;

    /// <summary>
    /// Follows a call gate for a far JMP/CALL (task gates and TSS descriptors go to <see cref="FarTaskTransfer"/>).
    /// </summary>
    private void ResolveGate(ushort selector, ulong d, out ushort targetSel, out ulong targetOffset, out ulong targetDesc,
        out ulong targetAddr, bool call)
    {
        int type = (int)((d >> 40) & 0xF);
        int dpl = (int)((d >> 45) & 3);
        uint err = (uint)(selector & 0xFFFC);
        bool gate32 = type == 0xC;
        if (type is 1 or 3 or 5 or 9 or 0xB)
        {
            throw Gp(err);
        }

        if (!(type == 0xC || (type == 4 && !LongMode)))
        {
            throw Gp(err);
        }

        if (dpl < _cpl || dpl < (selector & 3))
        {
            throw Gp(err);
        }

        if ((d & (1UL << 47)) == 0)
        {
            throw new GuestFault(Vec.NP, err, true);
        }

        targetSel = (ushort)(d >> 16);
        targetOffset = (d & 0xFFFF) | (gate32 ? ((d >> 32) & 0xFFFF_0000) : 0);
        if (LongMode)
        {
            ulong high = ReadSystem((selector & 4) != 0 ? S.Ldtr.Base + (ulong)(selector & 0xFFF8) + 8 : S.GdtBase + (ulong)(selector & 0xFFF8) + 8, 8);
            targetOffset |= (high & 0xFFFF_FFFF) << 32;
        }

        _gateSize = LongMode ? 8 : gate32 ? 4 : 2;
        targetDesc = ReadDescriptor(targetSel, out targetAddr);
        SegmentCache target = ParseDescriptor(targetSel, targetDesc);
        _gateParams = (int)((d >> 32) & 0x1F);
        _gateInner = false;
        if (target.IsCode && (target.Type & 4) == 0 && target.Dpl < _cpl)
        {
            if (!call)
            {
                throw Gp((uint)(targetSel & 0xFFFC)); // JMP through a gate cannot raise privilege (SDM Vol. 2, JMP)
            }

            _gateInner = true;
            return;
        }

        // The gate's target is used with RPL = CPL (no privilege change).
        targetSel = (ushort)((targetSel & 0xFFFC) | _cpl);
    }

    /// <summary>
    /// CALL through a call gate to a more privileged non-conforming code segment (SDM Vol. 2, CALL,
    /// "CALL-GATE ... MORE-PRIVILEGE"): the new stack comes from the TSS, the caller's SS:ESP and the gate's parameters
    /// are pushed on it (64-bit gates copy none, and SS becomes a null selector with RPL = new CPL).
    /// </summary>
    private void CallGateInner(ushort selector, ulong offset, ulong d, ulong addr, ushort retCs, ulong retIp, int size)
    {
        SegmentCache cs = ParseDescriptor(selector, d);
        uint err = (uint)(selector & 0xFFFC);
        if (!cs.IsCode || cs.Dpl > _cpl)
        {
            throw Gp(err);
        }

        if (!cs.Present)
        {
            throw new GuestFault(Vec.NP, err, true);
        }

        int newCpl = cs.Dpl;
        cs.Selector = (ushort)((selector & 0xFFFC) | newCpl);
        cs.Attributes |= 1;
        ulong oldRsp = S.Gpr[4];
        ushort oldSs = S.Seg[Seg.SS].Selector;
        int oldCpl = _cpl;
        if (LongMode)
        {
            if (!cs.Long || cs.Big)
            {
                throw Gp(err);
            }

            CheckTargetOffset(cs, offset);
            ulong rsp = ReadTss64(4 + (ulong)newCpl * 8);
            _cpl = newCpl;
            try
            {
                PushLinear64(ref rsp, oldSs);
                PushLinear64(ref rsp, oldRsp);
                PushLinear64(ref rsp, retCs);
                PushLinear64(ref rsp, retIp);
            }
            catch
            {
                _cpl = oldCpl;
                throw;
            }

            SetAccessed(addr, d);
            ref SegmentCache ss = ref S.Seg[Seg.SS];
            ss.Selector = (ushort)newCpl;
            ss.Unusable = true;
            ss.Attributes = (ushort)((ss.Attributes & ~0x60) | (newCpl << 5));
            S.Gpr[4] = rsp;
            CommitCs(cs, newCpl);
            _nextRip = offset;
            return;
        }

        CheckTargetOffset(cs, offset);
        // Read the parameters from the caller's stack before switching (at most 31).
        int count = _gateParams;
        Span<ulong> parameters = stackalloc ulong[32];
        ulong mask = StackMask;
        for (int i = 0; i < count; i++)
        {
            parameters[i] = ReadMem(Seg.SS, (oldRsp + (ulong)(i * size)) & mask, size);
        }

        ReadTssStack(newCpl, out ushort tssSs, out ulong tssSp);
        if ((tssSs & 0xFFFC) == 0)
        {
            throw new GuestFault(Vec.TS, 0, true);
        }

        ulong sd = ReadDescriptor(tssSs, out ulong saddr);
        SegmentCache newSs = ParseDescriptor(tssSs, sd);
        uint tsErr = (uint)(tssSs & 0xFFFC);
        if ((tssSs & 3) != newCpl || newSs.IsSystem || newSs.IsCode || (newSs.Type & 2) == 0 || newSs.Dpl != newCpl)
        {
            throw new GuestFault(Vec.TS, tsErr, true);
        }

        if (!newSs.Present)
        {
            throw new GuestFault(Vec.SS, tsErr, true);
        }

        SegmentCache savedSs = S.Seg[Seg.SS];
        S.Seg[Seg.SS] = newSs;
        _cpl = newCpl;
        ulong sp = tssSp;
        try
        {
            PushTo(ref sp, oldSs, size);
            PushTo(ref sp, oldRsp, size);
            for (int i = count - 1; i >= 0; i--)
            {
                PushTo(ref sp, parameters[i], size);
            }

            PushTo(ref sp, retCs, size);
            PushTo(ref sp, retIp, size);
        }
        catch
        {
            S.Seg[Seg.SS] = savedSs;
            _cpl = oldCpl;
            throw;
        }

        SetAccessed(saddr, sd);
        S.Seg[Seg.SS].Attributes |= 1;
        SetAccessed(addr, d);
        S.Gpr[4] = newSs.Big ? (uint)sp : (S.Gpr[4] & ~0xFFFFUL) | (sp & 0xFFFF);
        CommitCs(cs, newCpl);
        _nextRip = offset;
    }

    private void ExecRetf(ref Instruction ins)
    {
        int sz = ins.Code is Code.Retfw or Code.Retfw_imm16 ? 2 : ins.Code is Code.Retfd or Code.Retfd_imm16 ? 4 : 8;
        ulong imm = ins.OpCount == 1 ? ins.Immediate16 : 0UL;
        ulong rsp = S.Gpr[4];
        ulong ip = PopFrom(ref rsp, sz);
        ushort cs = (ushort)PopFrom(ref rsp, sz);
        ulong mask = StackMask;
        if (!ProtectedMode || (S.Rflags & Fl.VM) != 0)
        {
            ip &= SizeMask(sz);
            if (ip > S.Seg[Seg.CS].Limit)
            {
                throw Gp0();
            }

            rsp = (rsp & ~mask) | ((rsp + imm) & mask);
            S.Seg[Seg.CS].LoadReal(cs);
            S.Gpr[4] = rsp;
            _nextRip = ip;
            EndBlock();
            return;
        }

        ReturnToSegment(cs, ip & SizeMask(sz), rsp, sz, imm, null);
    }

    /// <summary>The common tail of RETF and protected-mode IRET: loads CS (and SS:RSP when returning outward).</summary>
    private void ReturnToSegment(ushort cs, ulong ip, ulong rsp, int sz, ulong imm, ulong? flags)
    {
        if ((cs & 0xFFFC) == 0)
        {
            throw Gp0();
        }

        ulong d = ReadDescriptor(cs, out ulong addr);
        int rpl = cs & 3;
        SegmentCache code = CheckCodeSegment(cs, d, rpl, forReturn: true);
        ulong mask = StackMask;
        rsp = (rsp & ~mask) | ((rsp + imm) & mask);
        bool outward = rpl > _cpl;
        bool popStack = outward || (Is64 && flags is not null);
        SegmentCache ss = S.Seg[Seg.SS];
        ulong newRsp = rsp;
        if (popStack)
        {
            ulong nsp = PopFrom(ref rsp, sz);
            ushort nss = (ushort)PopFrom(ref rsp, sz);
            if ((nss & 0xFFFC) == 0)
            {
                // A null SS is allowed when returning to 64-bit code at CPL 0-2 (SDM Vol. 2, IRET).
                if (!(LongMode && code.Long && rpl != 3))
                {
                    throw Gp0();
                }

                ss.Selector = nss;
                ss.Unusable = true;
                ss.Attributes = (ushort)((ss.Attributes & ~0x60) | (rpl << 5));
            }
            else
            {
                ulong sd = ReadDescriptor(nss, out ulong saddr);
                ss = ParseDescriptor(nss, sd);
                uint err = (uint)(nss & 0xFFFC);
                if ((nss & 3) != rpl || ss.IsSystem || ss.IsCode || (ss.Type & 2) == 0 || ss.Dpl != rpl)
                {
                    throw Gp(err);
                }

                if (!ss.Present)
                {
                    throw new GuestFault(Vec.SS, err, true);
                }

                SetAccessed(saddr, sd);
                ss.Attributes |= 1;
            }

            newRsp = nsp;
            if (flags is null)
            {
                newRsp += imm; // RET imm16 also releases parameters on the outer stack
            }
        }

        CheckTargetOffset(code, ip);
        SetAccessed(addr, d);
        int oldCpl = _cpl;
        if (flags is ulong f)
        {
            SetFlagsFromIret(f, sz, oldCpl);
        }

        CommitCs(code, rpl);
        if (popStack)
        {
            S.Seg[Seg.SS] = ss;
            bool ss32 = LongMode && code.Long ? true : ss.Big;
            S.Gpr[4] = LongMode && code.Long ? newRsp : ss32 ? (uint)newRsp : (S.Gpr[4] & ~0xFFFFUL) | (newRsp & 0xFFFF);
        }
        else
        {
            S.Gpr[4] = rsp;
        }

        if (outward)
        {
            // Data segments the outer level may not use become null (SDM Vol. 2, RET, "RETURN-TO-OUTER-PRIVILEGE-LEVEL").
            for (int s = 0; s < 6; s++)
            {
                if (s == Seg.CS || s == Seg.SS)
                {
                    continue;
                }

                ref SegmentCache sc = ref S.Seg[s];
                bool conformingCode = sc.IsCode && (sc.Type & 4) != 0;
                if (!sc.Unusable && !conformingCode && sc.Dpl < rpl)
                {
                    sc.Selector = 0;
                    sc.Unusable = true;
                }
            }
        }

        _nextRip = ip;
    }

    private void SetFlagsFromIret(ulong v, int sz, int oldCpl)
    {
        ulong changeable = Fl.Status | Fl.TF | Fl.DF | Fl.NT | Fl.RF | Fl.AC | Fl.ID;
        if (oldCpl == 0)
        {
            changeable |= Fl.IOPL | Fl.IF | Fl.VIF | Fl.VIP;
        }
        else if (oldCpl <= (int)((S.Rflags >> 12) & 3))
        {
            changeable |= Fl.IF;
        }

        if (sz == 2)
        {
            changeable &= 0xFFFF;
        }

        S.Rflags = (S.Rflags & ~changeable) | (v & changeable) | Fl.Fixed1;
    }

    private void ExecIret(ref Instruction ins)
    {
        int sz = ins.Code == Code.Iretw ? 2 : ins.Code == Code.Iretd ? 4 : 8;
        ulong rsp = S.Gpr[4];
        if (!ProtectedMode)
        {
            ulong ip = PopFrom(ref rsp, sz) & SizeMask(sz);
            ushort cs = (ushort)PopFrom(ref rsp, sz);
            ulong fl = PopFrom(ref rsp, sz);
            if (ip > S.Seg[Seg.CS].Limit && sz == 2)
            {
                throw Gp0();
            }

            ulong changeable = sz == 2 ? 0xFFFFUL & Fl.Writable : Fl.Writable & ~(Fl.VM | Fl.VIF | Fl.VIP);
            S.Rflags = (S.Rflags & ~changeable) | (fl & changeable) | Fl.Fixed1;
            S.Seg[Seg.CS].LoadReal(cs);
            S.Gpr[4] = rsp;
            _nextRip = ip;
            EndBlock();
            return;
        }

        if ((S.Rflags & Fl.VM) != 0)
        {
            IretInV86(sz); // TcgCpu.V86.cs
            return;
        }

        if ((S.Rflags & Fl.NT) != 0)
        {
            if (LongMode)
            {
                throw Gp0();
            }

            IretTaskReturn(); // TcgCpu.TaskSwitch.cs
            return;
        }

        ulong nip = PopFrom(ref rsp, sz);
        ushort ncs = (ushort)PopFrom(ref rsp, sz);
        ulong nfl = PopFrom(ref rsp, sz);
        if ((nfl & Fl.VM) != 0 && _cpl == 0 && sz == 4 && !LongMode)
        {
            IretToV86(nip, ncs, nfl, rsp); // TcgCpu.V86.cs
            return;
        }

        ReturnToSegment(ncs, sz == 8 ? nip : nip & SizeMask(sz), rsp, sz, 0, nfl);
        EndBlock();
    }
}
