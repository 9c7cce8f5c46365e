using Hypervisor.Accel.Tcg.State;
using Iced.Intel;
using static Hypervisor.Accel.Tcg.Alu.Alu;

namespace Hypervisor.Accel.Tcg.Interpreter;

// The instruction dispatcher: one switch over Iced's mnemonic; families live in their own files.
internal sealed partial class TcgCpu
{
    private void Execute(ref Instruction ins)
    {
        if (ins.HasLockPrefix && !LockAllowed(ref ins))
        {
            throw Ud(); // LOCK is only valid on read-modify-write instructions with a memory destination (SDM Vol. 2, LOCK)
        }

        if (!_inLocked && IsLocked(ref ins))
        {
            ExecuteLocked(ref ins); // atomic across vCPUs: TcgCpu.Atomic.cs
            return;
        }

        switch (ins.Mnemonic)
        {
            // ------------------------------------------------ data movement
            case Mnemonic.Mov:
                ExecMov(ref ins);
                break;
            case Mnemonic.Movzx:
            {
                int ss = OpSize(ref ins, 1);
                ulong v = ReadOp(ref ins, 1, ss);
                SetReg(ins.Op0Register, v);
                break;
            }

            case Mnemonic.Movsx:
            case Mnemonic.Movsxd:
            {
                int ss = OpSize(ref ins, 1);
                ulong v = (ulong)SignExtend(ReadOp(ref ins, 1, ss), ss * 8);
                SetReg(ins.Op0Register, v);
                break;
            }

            case Mnemonic.Lea:
            {
                ulong ea = EffectiveAddress(ref ins);
                SetReg(ins.Op0Register, ea);
                break;
            }

            case Mnemonic.Xchg:
            {
                int sz = OpSize(ref ins, 0);
                if (ins.Op0Kind == OpKind.Register && ins.Op1Kind == OpKind.Register)
                {
                    ulong a = GetReg(ins.Op0Register), b = GetReg(ins.Op1Register);
                    if (ins.Op0Register == ins.Op1Register && sz == 4 && ins.Code == Code.Nopd)
                    {
                        break;
                    }

                    SetReg(ins.Op0Register, b);
                    SetReg(ins.Op1Register, a);
                }
                else
                {
                    int memOp = ins.Op0Kind == OpKind.Memory ? 0 : 1;
                    Register reg = ins.GetOpRegister(1 - memOp);
                    ulong m = ReadOp(ref ins, memOp, sz);
                    WriteOp(ref ins, memOp, sz, GetReg(reg));
                    SetReg(reg, m);
                }

                break;
            }

            case Mnemonic.Bswap:
            {
                int sz = OpSize(ref ins, 0);
                // BSWAP of a 16-bit register is undefined; hardware clears it.
                SetReg(ins.Op0Register, sz == 2 ? 0 : Bswap(GetReg(ins.Op0Register), sz * 8));
                break;
            }

            case Mnemonic.Movbe:
            {
                int sz = OpSize(ref ins, 0);
                ulong v = Bswap(ReadOp(ref ins, 1, sz), sz * 8);
                WriteOp(ref ins, 0, sz, v);
                break;
            }

            case Mnemonic.Cmova:
            case Mnemonic.Cmovae:
            case Mnemonic.Cmovb:
            case Mnemonic.Cmovbe:
            case Mnemonic.Cmove:
            case Mnemonic.Cmovg:
            case Mnemonic.Cmovge:
            case Mnemonic.Cmovl:
            case Mnemonic.Cmovle:
            case Mnemonic.Cmovne:
            case Mnemonic.Cmovno:
            case Mnemonic.Cmovnp:
            case Mnemonic.Cmovns:
            case Mnemonic.Cmovo:
            case Mnemonic.Cmovp:
            case Mnemonic.Cmovs:
            {
                int sz = OpSize(ref ins, 0);
                ulong v = ReadOp(ref ins, 1, sz); // the source is read (and may fault) even when the condition fails
                if (Condition(ins.ConditionCode))
                {
                    SetReg(ins.Op0Register, v);
                }
                else if (sz == 4)
                {
                    SetReg(ins.Op0Register, GetReg(ins.Op0Register));
                }

                break;
            }

            case Mnemonic.Seta:
            case Mnemonic.Setae:
            case Mnemonic.Setb:
            case Mnemonic.Setbe:
            case Mnemonic.Sete:
            case Mnemonic.Setg:
            case Mnemonic.Setge:
            case Mnemonic.Setl:
            case Mnemonic.Setle:
            case Mnemonic.Setne:
            case Mnemonic.Setno:
            case Mnemonic.Setnp:
            case Mnemonic.Setns:
            case Mnemonic.Seto:
            case Mnemonic.Setp:
            case Mnemonic.Sets:
                WriteOp(ref ins, 0, 1, Condition(ins.ConditionCode) ? 1UL : 0UL);
                break;

            case Mnemonic.Cbw:
                SetGpr(0, 2, (ulong)(sbyte)S.Gpr[0]);
                break;
            case Mnemonic.Cwde:
                SetGpr(0, 4, (ulong)(short)S.Gpr[0]);
                break;
            case Mnemonic.Cdqe:
                S.Gpr[0] = (ulong)(int)S.Gpr[0];
                break;
            case Mnemonic.Cwd:
                SetGpr(2, 2, (short)S.Gpr[0] < 0 ? 0xFFFFUL : 0);
                break;
            case Mnemonic.Cdq:
                SetGpr(2, 4, (int)S.Gpr[0] < 0 ? 0xFFFF_FFFFUL : 0);
                break;
            case Mnemonic.Cqo:
                S.Gpr[2] = (long)S.Gpr[0] < 0 ? ulong.MaxValue : 0;
                break;
            case Mnemonic.Xlatb:
            {
                ulong ea = EffectiveAddress(ref ins);
                ulong v = ReadMem(SegIndex(ins.MemorySegment), ea, 1);
                SetGpr(0, 1, v);
                break;
            }

            case Mnemonic.Lahf:
                if (Is64 && !LahfIn64)
                {
                    throw Ud();
                }

                S.Gpr[0] = (S.Gpr[0] & ~0xFF00UL) | (((S.Rflags & 0xD5) | 2) << 8);
                break;
            case Mnemonic.Sahf:
                S.Rflags = (S.Rflags & ~0xD5UL) | ((S.Gpr[0] >> 8) & 0xD5);
                break;

            // ------------------------------------------------ stack
            case Mnemonic.Push:
                ExecPush(ref ins);
                break;
            case Mnemonic.Pop:
                ExecPop(ref ins);
                break;
            case Mnemonic.Pusha:
            case Mnemonic.Pushad:
            {
                if (Is64)
                {
                    throw Ud();
                }

                int sz = ins.Code == Code.Pushad ? 4 : 2;
                ulong rsp = S.Gpr[4];
                ulong original = S.Gpr[4];
                for (int r = 0; r < 8; r++)
                {
                    PushTo(ref rsp, r == 4 ? original : S.Gpr[r], sz);
                }

                S.Gpr[4] = rsp;
                break;
            }

            case Mnemonic.Popa:
            case Mnemonic.Popad:
            {
                if (Is64)
                {
                    throw Ud();
                }

                int sz = ins.Code == Code.Popad ? 4 : 2;
                ulong rsp = S.Gpr[4];
                GprFile v = default; // not stackalloc: a localloc would make the JIT compile all of Execute fully optimised at its first call
                for (int r = 7; r >= 0; r--)
                {
                    v[r] = PopFrom(ref rsp, sz);
                }

                for (int r = 0; r < 8; r++)
                {
                    if (r != 4)
                    {
                        SetGpr(r, sz, v[r]);
                    }
                }

                S.Gpr[4] = rsp;
                break;
            }

            case Mnemonic.Pushf:
            case Mnemonic.Pushfd:
            case Mnemonic.Pushfq:
                ExecPushf(ref ins);
                break;
            case Mnemonic.Popf:
            case Mnemonic.Popfd:
            case Mnemonic.Popfq:
                ExecPopf(ref ins);
                break;
            case Mnemonic.Enter:
                ExecEnter(ref ins);
                break;
            case Mnemonic.Leave:
            {
                int sz = ins.Code == Code.Leavew ? 2 : ins.Code == Code.Leaved ? 4 : 8;
                ulong mask = StackMask;
                ulong rsp = (S.Gpr[4] & ~mask) | (S.Gpr[5] & mask);
                ulong bp = PopFrom(ref rsp, sz);
                S.Gpr[4] = rsp;
                SetGpr(5, sz, bp);
                break;
            }

            // ------------------------------------------------ arithmetic and logic
            case Mnemonic.Add:
            case Mnemonic.Or:
            case Mnemonic.Adc:
            case Mnemonic.Sbb:
            case Mnemonic.And:
            case Mnemonic.Sub:
            case Mnemonic.Xor:
            case Mnemonic.Cmp:
            case Mnemonic.Test:
            case Mnemonic.Inc:
            case Mnemonic.Dec:
            case Mnemonic.Neg:
            case Mnemonic.Not:
            case Mnemonic.Rol:
            case Mnemonic.Ror:
            case Mnemonic.Rcl:
            case Mnemonic.Rcr:
            case Mnemonic.Shl:
            case Mnemonic.Sal:
            case Mnemonic.Shr:
            case Mnemonic.Sar:
            case Mnemonic.Shld:
            case Mnemonic.Shrd:
            case Mnemonic.Bt:
            case Mnemonic.Bts:
            case Mnemonic.Btr:
            case Mnemonic.Btc:
            case Mnemonic.Bsf:
            case Mnemonic.Bsr:
            case Mnemonic.Popcnt:
            case Mnemonic.Lzcnt:
            case Mnemonic.Tzcnt:
            case Mnemonic.Mul:
            case Mnemonic.Imul:
            case Mnemonic.Div:
            case Mnemonic.Idiv:
            case Mnemonic.Xadd:
            case Mnemonic.Cmpxchg:
            case Mnemonic.Cmpxchg8b:
            case Mnemonic.Cmpxchg16b:
            case Mnemonic.Daa:
            case Mnemonic.Das:
            case Mnemonic.Aaa:
            case Mnemonic.Aas:
            case Mnemonic.Aam:
            case Mnemonic.Aad:
            case Mnemonic.Andn:
            case Mnemonic.Bextr:
            case Mnemonic.Blsi:
            case Mnemonic.Blsmsk:
            case Mnemonic.Blsr:
            case Mnemonic.Bzhi:
            case Mnemonic.Pdep:
            case Mnemonic.Pext:
            case Mnemonic.Rorx:
            case Mnemonic.Sarx:
            case Mnemonic.Shlx:
            case Mnemonic.Shrx:
            case Mnemonic.Mulx:
            case Mnemonic.Adcx:
            case Mnemonic.Adox:
                ExecAlu(ref ins);
                break;

            // ------------------------------------------------ flags
            case Mnemonic.Clc: S.Rflags &= ~Fl.CF; break;
            case Mnemonic.Stc: S.Rflags |= Fl.CF; break;
            case Mnemonic.Cmc: S.Rflags ^= Fl.CF; break;
            case Mnemonic.Cld: S.Rflags &= ~Fl.DF; break;
            case Mnemonic.Std: S.Rflags |= Fl.DF; break;
            case Mnemonic.Cli:
                if (!IoPrivileged())
                {
                    SetVirtualInterruptFlag(false); // VME/PVI, or #GP(0): TcgCpu.V86.cs
                    break;
                }

                S.Rflags &= ~Fl.IF;
                break;
            case Mnemonic.Sti:
                if (!IoPrivileged())
                {
                    SetVirtualInterruptFlag(true); // VME/PVI, or #GP(0): TcgCpu.V86.cs
                    break;
                }

                if ((S.Rflags & Fl.IF) == 0)
                {
                    // The STI shadow: interrupts stay blocked until after the next instruction (SDM Vol. 2, STI).
                    _inhibitOnce = true;
                }

                S.Rflags |= Fl.IF;
                EndBlock();
                break;
            case Mnemonic.Salc:
                if (Is64)
                {
                    throw Ud();
                }

                SetGpr(0, 1, (S.Rflags & Fl.CF) != 0 ? 0xFFUL : 0);
                break;

            // ------------------------------------------------ control flow
            case Mnemonic.Jmp:
                ExecJmp(ref ins);
                break;
            case Mnemonic.Ja:
            case Mnemonic.Jae:
            case Mnemonic.Jb:
            case Mnemonic.Jbe:
            case Mnemonic.Je:
            case Mnemonic.Jg:
            case Mnemonic.Jge:
            case Mnemonic.Jl:
            case Mnemonic.Jle:
            case Mnemonic.Jne:
            case Mnemonic.Jno:
            case Mnemonic.Jnp:
            case Mnemonic.Jns:
            case Mnemonic.Jo:
            case Mnemonic.Jp:
            case Mnemonic.Js:
                if (Condition(ins.ConditionCode))
                {
                    BranchNear(ins.NearBranchTarget);
                }

                break;
            case Mnemonic.Jcxz:
            case Mnemonic.Jecxz:
            case Mnemonic.Jrcxz:
            case Mnemonic.Loop:
            case Mnemonic.Loope:
            case Mnemonic.Loopne:
                ExecLoop(ref ins);
                break;
            case Mnemonic.Call:
                ExecCall(ref ins);
                break;
            case Mnemonic.Ret:
            {
                int sz = ins.Code is Code.Retnw or Code.Retnw_imm16 ? 2 : ins.Code is Code.Retnd or Code.Retnd_imm16 ? 4 : 8;
                ulong rsp = S.Gpr[4];
                ulong target = PopFrom(ref rsp, sz);
                if (ins.OpCount == 1)
                {
                    ulong mask = StackMask;
                    rsp = (rsp & ~mask) | ((rsp + ins.Immediate16) & mask);
                }

                BranchNear(target);
                S.Gpr[4] = rsp;
                break;
            }

            case Mnemonic.Retf:
                ExecRetf(ref ins);
                break;
            case Mnemonic.Iret:
            case Mnemonic.Iretd:
            case Mnemonic.Iretq:
                ExecIret(ref ins);
                _nmiBlocked = false; // SDM Vol. 3A, 6.7.1: IRET ends NMI blocking
                break;
            case Mnemonic.Int:
                SoftwareInterrupt(ins.Immediate8, EventKind.SoftwareInt);
                break;
            case Mnemonic.Int3:
                SoftwareInterrupt(Vec.BP, EventKind.SoftwareException);
                break;
            case Mnemonic.Int1:
                SoftwareInterrupt(Vec.DB, EventKind.Icebp);
                break;
            case Mnemonic.Into:
                if (Is64)
                {
                    throw Ud();
                }

                if ((S.Rflags & Fl.OF) != 0)
                {
                    SoftwareInterrupt(Vec.OF, EventKind.SoftwareException);
                }

                break;
            case Mnemonic.Bound:
                ExecBound(ref ins);
                break;

            // ------------------------------------------------ strings and I/O
            case Mnemonic.Movsb:
            case Mnemonic.Movsw:
            case Mnemonic.Movsd:
            case Mnemonic.Movsq:
            case Mnemonic.Cmpsb:
            case Mnemonic.Cmpsw:
            case Mnemonic.Cmpsd:
            case Mnemonic.Cmpsq:
            case Mnemonic.Stosb:
            case Mnemonic.Stosw:
            case Mnemonic.Stosd:
            case Mnemonic.Stosq:
            case Mnemonic.Lodsb:
            case Mnemonic.Lodsw:
            case Mnemonic.Lodsd:
            case Mnemonic.Lodsq:
            case Mnemonic.Scasb:
            case Mnemonic.Scasw:
            case Mnemonic.Scasd:
            case Mnemonic.Scasq:
            case Mnemonic.Insb:
            case Mnemonic.Insw:
            case Mnemonic.Insd:
            case Mnemonic.Outsb:
            case Mnemonic.Outsw:
            case Mnemonic.Outsd:
                if (ins.Encoding != EncodingKind.Legacy || (ins.Mnemonic is Mnemonic.Movsd or Mnemonic.Cmpsd && ins.Code is not (Code.Movsd_m32_m32 or Code.Cmpsd_m32_m32)))
                {
                    if (!ExecSse(ref ins))
                    {
                        Unimplemented(ref ins);
                    }

                    break;
                }

                ExecString(ref ins);
                break;
            case Mnemonic.In:
                ExecIn(ref ins);
                break;
            case Mnemonic.Out:
                ExecOut(ref ins);
                break;

            // ------------------------------------------------ misc
            case Mnemonic.Nop:
            case Mnemonic.Pause:
            case Mnemonic.Lfence:
            case Mnemonic.Sfence:
            case Mnemonic.Mfence:
            case Mnemonic.Prefetch:
            case Mnemonic.Prefetchnta:
            case Mnemonic.Prefetcht0:
            case Mnemonic.Prefetcht1:
            case Mnemonic.Prefetcht2:
            case Mnemonic.Prefetchw:
            case Mnemonic.Endbr32:
            case Mnemonic.Endbr64:
                break;
            case Mnemonic.Ud0:
            case Mnemonic.Ud1:
            case Mnemonic.Ud2:
                throw Ud();
            case Mnemonic.Wait:
                X87Wait(); // TcgCpu.X87Environment.cs: #NM with CR0.MP and CR0.TS, #MF for a pending x87 exception
                break;

            default:
                // System instructions first: their mnemonics are disjoint from the SSE and x87 ones, and a guest that
                // uses none of those then never pays for compiling the (large) SSE and x87 dispatchers.
                if (!ExecSystem(ref ins) && !ExecSse(ref ins) && !ExecX87(ref ins))
                {
                    Unimplemented(ref ins);
                }

                break;
        }
    }

    /// <summary>Raises #UD for an instruction we do not implement (or #NM/#UD for x87/SSE per CR0/CR4) and counts it.</summary>
    private void Unimplemented(ref Instruction ins)
    {
        if (!ins.IsInvalid)
        {
            CountUnimplemented(ins.Mnemonic);
            CheckFpuSseAvailability(ref ins);
        }

        throw Ud();
    }

    /// <summary>
    /// x87 and SSE-family instructions that reach the generic path unimplemented (MMX-register forms, AVX; CPUID advertises
    /// none of them): x87 raises #NM when CR0.EM or CR0.TS is set, SSE
    /// raises #UD when CR0.EM is set or CR4.OSFXSR is clear and #NM when CR0.TS is set (SDM Vol. 3A, 2.5 and Table 13-1);
    /// otherwise the caller raises #UD.
    /// </summary>
    private void CheckFpuSseAvailability(ref Instruction ins)
    {
        foreach (CpuidFeature f in ins.CpuidFeatures)
        {
            if (f is CpuidFeature.FPU or CpuidFeature.FPU287 or CpuidFeature.FPU387 or CpuidFeature.FPU387SL_ONLY)
            {
                if ((S.Cr0 & (Cr.EM | Cr.TS)) != 0)
                {
                    throw new GuestFault(Vec.NM, 0, false);
                }

                return;
            }

            if (f is CpuidFeature.SSE or CpuidFeature.SSE2 or CpuidFeature.SSE3 or CpuidFeature.SSSE3 or CpuidFeature.SSE4_1 or
                CpuidFeature.SSE4_2 or CpuidFeature.FXSR)
            {
                if ((S.Cr0 & Cr.EM) != 0 || (S.Cr4 & Cr.Cr4Osfxsr) == 0)
                {
                    return;
                }

                if ((S.Cr0 & Cr.TS) != 0)
                {
                    throw new GuestFault(Vec.NM, 0, false);
                }

                return;
            }
        }
    }

    private static bool LockAllowed(ref Instruction ins) =>
        ins.Op0Kind == OpKind.Memory && ins.Mnemonic is Mnemonic.Add or Mnemonic.Adc or Mnemonic.And or Mnemonic.Btc or
            Mnemonic.Btr or Mnemonic.Bts or Mnemonic.Cmpxchg or Mnemonic.Cmpxchg8b or Mnemonic.Cmpxchg16b or Mnemonic.Dec or
            Mnemonic.Inc or Mnemonic.Neg or Mnemonic.Not or Mnemonic.Or or Mnemonic.Sbb or Mnemonic.Sub or Mnemonic.Xor or
            Mnemonic.Xadd or Mnemonic.Xchg;

    private static GuestFault Ud() => new(Vec.UD, 0, false);

    private static GuestFault Gp0() => new(Vec.GP, 0, true);

    private static GuestFault Gp(uint error) => new(Vec.GP, error, true);

    /// <summary>LAHF/SAHF in 64-bit mode: advertised by CPUID 0x80000001 ECX bit 0.</summary>
    private const bool LahfIn64 = true;

    private bool IoPrivileged() => !ProtectedMode || _cpl <= (int)((S.Rflags >> 12) & 3);
}
