using Hypervisor.Accel.Tcg.State;
using Iced.Intel;

namespace Hypervisor.Accel.Tcg.Interpreter;

// Moves, stack operations and near/far control transfers.
internal sealed partial class TcgCpu
{
    private void ExecMov(ref Instruction ins)
    {
        OpKind k0 = ins.Op0Kind;
        if (k0 == OpKind.Register)
        {
            Register r0 = ins.Op0Register;
            RegInfo info = s_regs[(int)r0];
            switch (info.Kind)
            {
                case 1:
                    if (ins.Op1Kind == OpKind.Register && s_regs[(int)ins.Op1Register].Kind != 1)
                    {
                        ReadSpecial(ref ins);
                        return;
                    }

                    SetReg(r0, ReadOp(ref ins, 1, info.Size));
                    return;
                case 2:
                {
                    ulong sel = ReadOp(ref ins, 1, 2);
                    if (info.Index == Seg.CS)
                    {
                        throw Ud();
                    }

                    LoadDataSegment(info.Index, (ushort)sel);
                    if (info.Index == Seg.SS)
                    {
                        _inhibitOnce = true; // MOV SS blocks interrupts for one instruction (SDM Vol. 3A, 6.8.3)
                    }

                    EndBlock();
                    return;
                }

                case 3:
                    WriteControlRegister(info.Index, GetReg(ins.Op1Register));
                    return;
                case 4:
                    WriteDebugRegister(info.Index, GetReg(ins.Op1Register));
                    return;
                default:
                    Unimplemented(ref ins);
                    return;
            }
        }

        // Memory destination.
        if (ins.Op1Kind == OpKind.Register && s_regs[(int)ins.Op1Register].Kind == 2)
        {
            WriteOp(ref ins, 0, 2, S.Seg[s_regs[(int)ins.Op1Register].Index].Selector);
            return;
        }

        int sz = OpSize(ref ins, 0);
        WriteOp(ref ins, 0, sz, ReadOp(ref ins, 1, sz));
    }

    /// <summary>MOV r, Sreg / CRn / DRn.</summary>
    private void ReadSpecial(ref Instruction ins)
    {
        RegInfo src = s_regs[(int)ins.Op1Register];
        switch (src.Kind)
        {
            case 2:
                // MOV r32, Sreg zero-extends in current processors (SDM Vol. 2, MOV).
                SetReg(ins.Op0Register, S.Seg[src.Index].Selector);
                break;
            case 3:
                SetReg(ins.Op0Register, ReadControlRegister(src.Index));
                break;
            case 4:
                SetReg(ins.Op0Register, ReadDebugRegister(src.Index));
                break;
            default:
                Unimplemented(ref ins);
                break;
        }
    }

    private void ExecPush(ref Instruction ins)
    {
        int sz = -ins.StackPointerIncrement;
        ulong v;
        if (ins.Op0Kind == OpKind.Register && s_regs[(int)ins.Op0Register].Kind == 2)
        {
            v = S.Seg[s_regs[(int)ins.Op0Register].Index].Selector;
        }
        else if (ins.Op0Kind == OpKind.Register && ins.Op0Register is Register.SP or Register.ESP or Register.RSP)
        {
            v = S.Gpr[4] & SizeMask(sz); // the value before the push
        }
        else
        {
            v = ReadOp(ref ins, 0, sz);
        }

        Push(v, sz);
    }

    private void ExecPop(ref Instruction ins)
    {
        int sz = ins.StackPointerIncrement;
        if (ins.Op0Kind == OpKind.Register && s_regs[(int)ins.Op0Register].Kind == 2)
        {
            int seg = s_regs[(int)ins.Op0Register].Index;
            ulong rsp = S.Gpr[4];
            ulong sel = PopFrom(ref rsp, sz);
            LoadDataSegment(seg, (ushort)sel);
            S.Gpr[4] = rsp;
            if (seg == Seg.SS)
            {
                _inhibitOnce = true;
            }

            EndBlock();
            return;
        }

        ulong r = S.Gpr[4];
        ulong value = PopFrom(ref r, sz);
        if (ins.Op0Kind == OpKind.Register)
        {
            S.Gpr[4] = r;
            SetReg(ins.Op0Register, value);
        }
        else
        {
            // POP m: the address is computed with RSP already incremented (SDM Vol. 2, POP).
            ulong old = S.Gpr[4];
            S.Gpr[4] = r;
            try
            {
                WriteOp(ref ins, 0, sz, value);
            }
            catch (GuestFault)
            {
                S.Gpr[4] = old;
                throw;
            }
        }
    }

    private void ExecPushf(ref Instruction ins)
    {
        int sz = ins.Code == Code.Pushfw ? 2 : ins.Code == Code.Pushfd ? 4 : 8;
        if ((S.Rflags & Fl.VM) != 0 && ((S.Rflags >> 12) & 3) != 3)
        {
            PushfV86(sz); // VME, or #GP(0): TcgCpu.V86.cs
            return;
        }

        // VM and RF are cleared in the pushed image (SDM Vol. 2, PUSHF).
        Push((S.Rflags & ~(Fl.VM | Fl.RF)) | Fl.Fixed1, sz);
    }

    private void ExecPopf(ref Instruction ins)
    {
        int sz = ins.Code == Code.Popfw ? 2 : ins.Code == Code.Popfd ? 4 : 8;
        if ((S.Rflags & Fl.VM) != 0 && ((S.Rflags >> 12) & 3) != 3)
        {
            PopfV86(sz); // VME, or #GP(0): TcgCpu.V86.cs
            return;
        }

        ulong rsp = S.Gpr[4];
        ulong v = PopFrom(ref rsp, sz);
        S.Gpr[4] = rsp;
        SetFlagsFromPop(v, sz);
        EndBlock();
    }

    /// <summary>POPF/IRET-style flag load with the privilege rules of SDM Vol. 2, POPF: IOPL only at CPL 0, IF only at CPL &lt;= IOPL.</summary>
    private void SetFlagsFromPop(ulong v, int sz)
    {
        ulong changeable = Fl.Status | Fl.TF | Fl.DF | Fl.NT | Fl.AC | Fl.ID;
        if (!ProtectedMode || _cpl == 0)
        {
            changeable |= Fl.IOPL | Fl.IF;
        }
        else if (_cpl <= (int)((S.Rflags >> 12) & 3))
        {
            changeable |= Fl.IF;
        }

        if (sz == 2)
        {
            changeable &= 0xFFFF;
        }

        bool wasIf = (S.Rflags & Fl.IF) != 0;
        S.Rflags = (S.Rflags & ~changeable) | (v & changeable) | Fl.Fixed1;
        S.Rflags &= ~Fl.RF;
        _ = wasIf;
    }

    private void ExecEnter(ref Instruction ins)
    {
        int sz = ins.Code == Code.Enterw_imm16_imm8 ? 2 : ins.Code == Code.Enterd_imm16_imm8 ? 4 : 8;
        ulong alloc = ins.Immediate16;
        int level = ins.Immediate8_2nd & 31;
        ulong mask = StackMask;
        ulong rsp = S.Gpr[4];
        PushTo(ref rsp, S.Gpr[5], sz);
        ulong frame = rsp;
        if (level > 0)
        {
            ulong bp = S.Gpr[5];
            for (int i = 1; i < level; i++)
            {
                bp = (bp & ~mask) | ((bp - (ulong)sz) & mask);
                PushTo(ref rsp, ReadMem(Seg.SS, bp & mask, sz), sz);
            }

            PushTo(ref rsp, frame, sz);
        }

        ulong newRsp = (rsp & ~mask) | ((rsp - alloc) & mask);
        // The final stack pointer must be writable (SDM: ENTER faults if it would not be).
        if (alloc != 0)
        {
            ProbeWrite(Seg.SS, newRsp & mask, 1);
        }

        SetGpr(5, sz, frame);
        S.Gpr[4] = newRsp;
    }

    private void ExecBound(ref Instruction ins)
    {
        if (Is64)
        {
            throw Ud();
        }

        int sz = OpSize(ref ins, 0);
        int seg = SegIndex(ins.MemorySegment);
        ulong ea = EffectiveAddress(ref ins);
        long index = Alu.Alu.SignExtend(GetReg(ins.Op0Register), sz * 8);
        long lower = Alu.Alu.SignExtend(ReadMem(seg, ea, sz), sz * 8);
        long upper = Alu.Alu.SignExtend(ReadMem(seg, MaskAddress(ref ins, ea + (ulong)sz), sz), sz * 8);
        if (index < lower || index > upper)
        {
            throw new GuestFault(Vec.BR, 0, false);
        }
    }

    // ---------------------------------------------------------------- near transfers

    private void BranchNear(ulong target)
    {
        if (Is64)
        {
            if (!IsCanonical(target))
            {
                throw Gp0();
            }
        }
        else if (target > S.Seg[Seg.CS].Limit)
        {
            throw Gp0();
        }

        _nextRip = target;
    }

    private void ExecJmp(ref Instruction ins)
    {
        switch (ins.Op0Kind)
        {
            case OpKind.NearBranch16:
            case OpKind.NearBranch32:
            case OpKind.NearBranch64:
                BranchNear(ins.NearBranchTarget);
                return;
            case OpKind.FarBranch16:
            case OpKind.FarBranch32:
                FarJump(ins.FarBranchSelector, ins.Op0Kind == OpKind.FarBranch16 ? ins.FarBranch16 : ins.FarBranch32,
                    ins.Op0Kind == OpKind.FarBranch16 ? 2 : 4);
                return;
        }

        if (ins.Code is Code.Jmp_m1616 or Code.Jmp_m1632 or Code.Jmp_m1664)
        {
            int osz = ins.Code == Code.Jmp_m1616 ? 2 : ins.Code == Code.Jmp_m1632 ? 4 : 8;
            int seg = SegIndex(ins.MemorySegment);
            ulong ea = EffectiveAddress(ref ins);
            ulong offset = ReadMem(seg, ea, osz);
            ushort sel = (ushort)ReadMem(seg, MaskAddress(ref ins, ea + (ulong)osz), 2);
            FarJump(sel, offset, osz);
            return;
        }

        int sz = OpSize(ref ins, 0);
        BranchNear(ReadOp(ref ins, 0, sz));
    }

    private void ExecLoop(ref Instruction ins)
    {
        // The counter is CX, ECX or RCX by address size: Iced names it as operand 1 for LOOP, or 0 for JCXZ.
        int asz = ins.Code switch
        {
            Code.Loop_rel8_16_CX or Code.Loop_rel8_32_CX or Code.Loope_rel8_16_CX or Code.Loope_rel8_32_CX or
                Code.Loopne_rel8_16_CX or Code.Loopne_rel8_32_CX or Code.Jcxz_rel8_16 or Code.Jcxz_rel8_32 => 2,
            Code.Loop_rel8_16_ECX or Code.Loop_rel8_32_ECX or Code.Loop_rel8_64_ECX or Code.Loope_rel8_16_ECX or
                Code.Loope_rel8_32_ECX or Code.Loope_rel8_64_ECX or Code.Loopne_rel8_16_ECX or
                Code.Loopne_rel8_32_ECX or Code.Loopne_rel8_64_ECX or Code.Jecxz_rel8_16 or Code.Jecxz_rel8_32 or
                Code.Jecxz_rel8_64 => 4,
            _ => 8,
        };
        ulong mask = SizeMask(asz);
        ulong count = S.Gpr[1] & mask;
        bool taken;
        if (ins.Mnemonic is Mnemonic.Jcxz or Mnemonic.Jecxz or Mnemonic.Jrcxz)
        {
            taken = count == 0;
        }
        else
        {
            count = (count - 1) & mask;
            taken = count != 0;
            if (ins.Mnemonic == Mnemonic.Loope)
            {
                taken &= (S.Rflags & Fl.ZF) != 0;
            }
            else if (ins.Mnemonic == Mnemonic.Loopne)
            {
                taken &= (S.Rflags & Fl.ZF) == 0;
            }

            if (taken)
            {
                BranchNear(ins.NearBranchTarget);
            }

            SetGpr(1, asz, count);
            return;
        }

        if (taken)
        {
            BranchNear(ins.NearBranchTarget);
        }
    }

    private void ExecCall(ref Instruction ins)
    {
        switch (ins.Op0Kind)
        {
            case OpKind.NearBranch16:
            case OpKind.NearBranch32:
            case OpKind.NearBranch64:
            {
                int sz = ins.Op0Kind == OpKind.NearBranch16 ? 2 : ins.Op0Kind == OpKind.NearBranch32 ? 4 : 8;
                ulong ret = _nextRip;
                BranchNear(ins.NearBranchTarget);
                Push(ret, sz);
                return;
            }

            case OpKind.FarBranch16:
            case OpKind.FarBranch32:
                FarCall(ins.FarBranchSelector, ins.Op0Kind == OpKind.FarBranch16 ? ins.FarBranch16 : ins.FarBranch32,
                    ins.Op0Kind == OpKind.FarBranch16 ? 2 : 4);
                return;
        }

        if (ins.Code is Code.Call_m1616 or Code.Call_m1632 or Code.Call_m1664)
        {
            int osz = ins.Code == Code.Call_m1616 ? 2 : ins.Code == Code.Call_m1632 ? 4 : 8;
            int seg = SegIndex(ins.MemorySegment);
            ulong ea = EffectiveAddress(ref ins);
            ulong offset = ReadMem(seg, ea, osz);
            ushort sel = (ushort)ReadMem(seg, MaskAddress(ref ins, ea + (ulong)osz), 2);
            FarCall(sel, offset, osz);
            return;
        }

        {
            int sz = OpSize(ref ins, 0);
            ulong target = ReadOp(ref ins, 0, sz);
            ulong ret = _nextRip;
            BranchNear(target);
            Push(ret, sz);
        }
    }
}
