using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Hypervisor.Accel.Tcg.Decoding;
using Hypervisor.Accel.Tcg.Mmu;
using Hypervisor.Accel.Tcg.State;
using Iced.Intel;
using static Hypervisor.Accel.Tcg.Alu.Alu;

namespace Hypervisor.Accel.Tcg.Interpreter;

// The fast path: the common integer instruction forms, pre-decoded once per block into MicroOps (Decoding/MicroOp.cs)
// and executed from them. Everything else (and every form with a LOCK prefix, AH-CH-DH-BH, segment or control
// registers) is MicroKind.Generic and goes through Execute(ref Instruction), the full dispatcher. Both paths use the
// same ALU library, segmentation, TLB and fault rules, so they agree by construction; the differential and guest
// tests run through both.
internal sealed unsafe partial class TcgCpu
{
    /// <summary>
    /// Fills <paramref name="op"/> from a decoded instruction (block decode time, not per execution).
    /// <paramref name="ins"/> must be an element of a block's pinned <see cref="DecodedBlock.Instructions"/>.
    /// </summary>
    internal static void PreDecode(ref Instruction ins, ref MicroOp op, ulong ipMask)
    {
        op = default;
        op.Ins = (Instruction*)Unsafe.AsPointer(ref ins);
        op.NextIp = ins.NextIP & ipMask;
        op.Kind = MicroKind.Generic;
        op.Run = &HGeneric;
        op.Single = &HGeneric;
        if (ins.HasLockPrefix || ins.HasRepPrefix || ins.HasRepnePrefix || ins.Encoding != EncodingKind.Legacy)
        {
            return;
        }

        op.Kind = Classify(ref ins, ref op);
        op.Run = HandlerOf(ref op);
        op.Single = op.Run;
    }

    private static MicroKind Classify(ref Instruction ins, ref MicroOp op)
    {
        switch (ins.Mnemonic)
        {
            case Mnemonic.Nop:
                return MicroKind.Nop;
            case Mnemonic.Mov:
                return TwoOperand(ref ins, ref op, MicroKind.MovRR, MicroKind.MovRI, MicroKind.MovRM, MicroKind.MovMR, MicroKind.MovMI);
            case Mnemonic.Add: op.Sub = (byte)MicroAlu.Add; goto alu;
            case Mnemonic.Or: op.Sub = (byte)MicroAlu.Or; goto alu;
            case Mnemonic.Adc: op.Sub = (byte)MicroAlu.Adc; goto alu;
            case Mnemonic.Sbb: op.Sub = (byte)MicroAlu.Sbb; goto alu;
            case Mnemonic.And: op.Sub = (byte)MicroAlu.And; goto alu;
            case Mnemonic.Sub: op.Sub = (byte)MicroAlu.Sub; goto alu;
            case Mnemonic.Xor: op.Sub = (byte)MicroAlu.Xor; goto alu;
            case Mnemonic.Cmp: op.Sub = (byte)MicroAlu.Cmp; goto alu;
            case Mnemonic.Test: op.Sub = (byte)MicroAlu.Test; goto alu;
            alu:
                return TwoOperand(ref ins, ref op, MicroKind.AluRR, MicroKind.AluRI, MicroKind.AluRM, MicroKind.AluMR, MicroKind.AluMI);
            case Mnemonic.Inc:
            case Mnemonic.Dec:
            {
                bool inc = ins.Mnemonic == Mnemonic.Inc;
                if (TryGpr(ins.Op0Kind, ins.Op0Register, out op.R0, out op.Bits))
                {
                    return inc ? MicroKind.IncR : MicroKind.DecR;
                }

                if (ins.Op0Kind == OpKind.Memory && TryMemory(ref ins, ref op))
                {
                    op.Bits = (byte)(ins.MemorySize.GetSize() * 8);
                    return inc ? MicroKind.IncM : MicroKind.DecM;
                }

                return MicroKind.Generic;
            }

            case Mnemonic.Rol: op.Sub = (byte)MicroAlu.Rol; goto shift;
            case Mnemonic.Ror: op.Sub = (byte)MicroAlu.Ror; goto shift;
            case Mnemonic.Shl:
            case Mnemonic.Sal: op.Sub = (byte)MicroAlu.Shl; goto shift;
            case Mnemonic.Shr: op.Sub = (byte)MicroAlu.Shr; goto shift;
            case Mnemonic.Sar: op.Sub = (byte)MicroAlu.Sar; goto shift;
            shift:
                if (!TryGpr(ins.Op0Kind, ins.Op0Register, out op.R0, out op.Bits))
                {
                    return MicroKind.Generic;
                }

                if (ins.Op1Kind == OpKind.Register)
                {
                    return ins.Op1Register == Register.CL ? MicroKind.ShiftRCl : MicroKind.Generic;
                }

                op.Imm = ins.GetImmediate(1) & 0xFF;
                return MicroKind.ShiftRI;

            case Mnemonic.Lea:
                if (!TryGpr(ins.Op0Kind, ins.Op0Register, out op.R0, out op.Bits) || !TryMemory(ref ins, ref op))
                {
                    return MicroKind.Generic;
                }

                return MicroKind.Lea;

            case Mnemonic.Movzx:
            case Mnemonic.Movsx:
            case Mnemonic.Movsxd:
            {
                bool zx = ins.Mnemonic == Mnemonic.Movzx;
                if (!TryGpr(ins.Op0Kind, ins.Op0Register, out op.R0, out op.Bits))
                {
                    return MicroKind.Generic;
                }

                if (TryGpr(ins.Op1Kind, ins.Op1Register, out op.R1, out op.SrcBits))
                {
                    return zx ? MicroKind.MovzxRR : MicroKind.MovsxRR;
                }

                if (ins.Op1Kind == OpKind.Memory && TryMemory(ref ins, ref op))
                {
                    op.SrcBits = (byte)(ins.MemorySize.GetSize() * 8);
                    return zx ? MicroKind.MovzxRM : MicroKind.MovsxRM;
                }

                return MicroKind.Generic;
            }

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
                op.Sub = (byte)ins.ConditionCode;
                op.Imm = ins.NearBranchTarget;
                return MicroKind.Jcc;

            case Mnemonic.Jmp:
                if (ins.Op0Kind is OpKind.NearBranch16 or OpKind.NearBranch32 or OpKind.NearBranch64)
                {
                    op.Imm = ins.NearBranchTarget;
                    return MicroKind.Jmp;
                }

                return MicroKind.Generic;

            case Mnemonic.Call:
                if (ins.Op0Kind is OpKind.NearBranch16 or OpKind.NearBranch32 or OpKind.NearBranch64)
                {
                    op.Imm = ins.NearBranchTarget;
                    op.Bits = (byte)(ins.Op0Kind == OpKind.NearBranch16 ? 16 : ins.Op0Kind == OpKind.NearBranch32 ? 32 : 64);
                    return MicroKind.CallRel;
                }

                return MicroKind.Generic;

            case Mnemonic.Ret:
                op.Bits = (byte)(ins.Code is Code.Retnw or Code.Retnw_imm16 ? 16 : ins.Code is Code.Retnd or Code.Retnd_imm16 ? 32 : 64);
                op.Imm = ins.OpCount == 1 ? ins.Immediate16 : 0UL;
                return MicroKind.Ret;

            case Mnemonic.Push:
            {
                int sz = -ins.StackPointerIncrement;
                op.Bits = (byte)(sz * 8);
                if (TryGpr(ins.Op0Kind, ins.Op0Register, out op.R0, out byte regBits) && regBits == op.Bits)
                {
                    return MicroKind.PushR;
                }

                if (ins.Op0Kind is OpKind.Immediate8 or OpKind.Immediate16 or OpKind.Immediate32 or OpKind.Immediate8to16 or
                    OpKind.Immediate8to32 or OpKind.Immediate8to64 or OpKind.Immediate32to64)
                {
                    op.Imm = ins.GetImmediate(0) & SizeMask(sz);
                    return MicroKind.PushI;
                }

                return MicroKind.Generic;
            }

            case Mnemonic.Pop:
            {
                int sz = ins.StackPointerIncrement;
                op.Bits = (byte)(sz * 8);
                if (TryGpr(ins.Op0Kind, ins.Op0Register, out op.R0, out byte regBits) && regBits == op.Bits)
                {
                    return MicroKind.PopR;
                }

                return MicroKind.Generic;
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
                op.Sub = (byte)ins.ConditionCode;
                if (TryGpr(ins.Op0Kind, ins.Op0Register, out op.R0, out op.Bits) &&
                    TryGpr(ins.Op1Kind, ins.Op1Register, out op.R1, out _))
                {
                    return MicroKind.Cmov;
                }

                return MicroKind.Generic;

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
                op.Sub = (byte)ins.ConditionCode;
                return TryGpr(ins.Op0Kind, ins.Op0Register, out op.R0, out op.Bits) ? MicroKind.SetccR : MicroKind.Generic;

            case Mnemonic.Imul:
                if (ins.OpCount < 2 || !TryGpr(ins.Op0Kind, ins.Op0Register, out op.R0, out op.Bits))
                {
                    return MicroKind.Generic;
                }

                if (ins.OpCount == 3)
                {
                    if (!TryGpr(ins.Op1Kind, ins.Op1Register, out op.R1, out _))
                    {
                        return MicroKind.Generic;
                    }

                    op.Imm = ins.GetImmediate(2) & SizeMask(op.Bits / 8);
                    return MicroKind.ImulRRI;
                }

                if (TryGpr(ins.Op1Kind, ins.Op1Register, out op.R1, out _))
                {
                    return MicroKind.ImulRR;
                }

                return ins.Op1Kind == OpKind.Memory && TryMemory(ref ins, ref op) ? MicroKind.ImulRM : MicroKind.Generic;

            default:
                return MicroKind.Generic;
        }
    }

    /// <summary>Classifies the register/memory/immediate forms of a two-operand instruction of one operand size.</summary>
    private static MicroKind TwoOperand(ref Instruction ins, ref MicroOp op, MicroKind rr, MicroKind ri, MicroKind rm, MicroKind mr, MicroKind mi)
    {
        OpKind k0 = ins.Op0Kind, k1 = ins.Op1Kind;
        if (TryGpr(k0, ins.Op0Register, out op.R0, out op.Bits))
        {
            if (TryGpr(k1, ins.Op1Register, out op.R1, out byte b1))
            {
                return b1 == op.Bits ? rr : MicroKind.Generic;
            }

            if (IsImmediate(k1))
            {
                op.Imm = ins.GetImmediate(1) & SizeMask(op.Bits / 8);
                return ri;
            }

            if (k1 == OpKind.Memory && TryMemory(ref ins, ref op))
            {
                return rm;
            }

            return MicroKind.Generic;
        }

        if (k0 != OpKind.Memory || !TryMemory(ref ins, ref op))
        {
            return MicroKind.Generic;
        }

        op.Bits = (byte)(ins.MemorySize.GetSize() * 8);
        if (op.Bits is not (8 or 16 or 32 or 64))
        {
            return MicroKind.Generic;
        }

        if (TryGpr(k1, ins.Op1Register, out op.R1, out byte b))
        {
            return b == op.Bits ? mr : MicroKind.Generic;
        }

        if (IsImmediate(k1))
        {
            op.Imm = ins.GetImmediate(1) & SizeMask(op.Bits / 8);
            return mi;
        }

        return MicroKind.Generic;
    }

    private static bool IsImmediate(OpKind k) => k is OpKind.Immediate8 or OpKind.Immediate16 or OpKind.Immediate32 or
        OpKind.Immediate64 or OpKind.Immediate8to16 or OpKind.Immediate8to32 or OpKind.Immediate8to64 or OpKind.Immediate32to64;

    /// <summary>A general-purpose register other than AH/CH/DH/BH: its number and size in bits.</summary>
    private static bool TryGpr(OpKind kind, Register r, out byte index, out byte bits)
    {
        index = 0;
        bits = 0;
        if (kind != OpKind.Register)
        {
            return false;
        }

        RegInfo info = s_regs[(int)r];
        if (info.Kind != 1 || info.High)
        {
            return false;
        }

        index = info.Index;
        bits = (byte)(info.Size * 8);
        return true;
    }

    /// <summary>The memory operand's parts, with the same address-size rules as <see cref="EffectiveAddress"/>.</summary>
    private static bool TryMemory(ref Instruction ins, ref MicroOp op)
    {
        Register b = ins.MemoryBase, x = ins.MemoryIndex;
        op.Seg = (byte)SegIndex(ins.MemorySegment);
        if (b is Register.RIP or Register.EIP)
        {
            op.Base = MicroOp.NoReg;
            op.Index = MicroOp.NoReg;
            op.Disp = b == Register.EIP ? (uint)ins.MemoryDisplacement64 : ins.MemoryDisplacement64;
            op.AddrMask = ulong.MaxValue;
            return true;
        }

        op.Base = MicroOp.NoReg;
        op.Index = MicroOp.NoReg;
        if (b != Register.None)
        {
            RegInfo bi = s_regs[(int)b];
            if (bi.Kind != 1)
            {
                return false;
            }

            op.Base = bi.Index;
        }

        if (x != Register.None)
        {
            RegInfo xi = s_regs[(int)x];
            if (xi.Kind != 1)
            {
                return false; // VSIB and the like
            }

            op.Index = xi.Index;
            op.Shift = (byte)System.Numerics.BitOperations.Log2((uint)ins.MemoryIndexScale);
        }

        op.Disp = ins.MemoryDisplacement64;
        int addrSize = AddrSize(ref ins);
        if (addrSize == 0)
        {
            addrSize = ins.MemoryDisplSize switch
            {
                2 => 2,
                4 => 4,
                8 => 8,
                _ => ins.CodeSize switch { CodeSize.Code16 => 2, CodeSize.Code32 => 4, _ => 8 },
            };
        }

        op.AddrMask = addrSize switch { 2 => 0xFFFFUL, 4 => 0xFFFF_FFFFUL, _ => ulong.MaxValue };
        return true;
    }

    // ---------------------------------------------------------------- lazy flags
    //
    // The fast path's ADD/SUB/CMP/AND/OR/XOR/TEST/INC/DEC record their operands instead of computing CF PF AF ZF SF
    // OF; Jcc/CMOVcc/SETcc evaluate the common conditions straight from them. Every other reader sees RFLAGS through
    // MaterializeFlags(), which the fast path calls before a generic instruction, a flag-reading micro-op, the end of
    // a run of blocks and the delivery of a fault. Outside ExecuteBlocks the lazy state is always empty, so the rest
    // of the CPU (and Execute(ref Instruction), which computes flags eagerly) reads S.Rflags as before.

    private const byte LazyNone = 0, LazyAdd = 1, LazySub = 2, LazyLogic = 3, LazyInc = 4, LazyDec = 5, LazyShl = 6, LazyShr = 7,
        LazySar = 8;

    private byte _lazyOp;
    private int _lazyBits;
    private ulong _lazyA, _lazyB, _lazyR;

    /// <summary>Writes the pending lazy status flags into <see cref="CpuState.Rflags"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void MaterializeFlags()
    {
        if (_lazyOp != LazyNone)
        {
            MaterializeFlagsSlow();
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void MaterializeFlagsSlow()
    {
        ulong f = S.Rflags;
        int bits = _lazyBits;
        switch (_lazyOp)
        {
            case LazyAdd: Add(_lazyA, _lazyB, bits, ref f); break;
            case LazySub: Cmp(_lazyA, _lazyB, bits, ref f); break;
            case LazyLogic: Or(_lazyR, 0, bits, ref f); break;
            case LazyInc:
                f = (f & ~Fl.CF) | _lazyB;
                Inc(_lazyA, bits, ref f);
                break;
            case LazyShl: Shl(_lazyA, _lazyB, bits, ref f); break;
            case LazyShr: Shr(_lazyA, _lazyB, bits, ref f); break;
            case LazySar: Sar(_lazyA, _lazyB, bits, ref f); break;
            default:
                f = (f & ~Fl.CF) | _lazyB;
                Dec(_lazyA, bits, ref f);
                break;
        }

        S.Rflags = f;
        _lazyOp = LazyNone;
    }

    /// <summary>CF as the last flag-writing instruction left it (for INC/DEC, which keep it).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong CurrentCf()
    {
        switch (_lazyOp)
        {
            case LazyNone: return S.Rflags & Fl.CF;
            case LazySub: return _lazyA < _lazyB ? Fl.CF : 0;
            case LazyLogic: return 0;
            case LazyInc:
            case LazyDec: return _lazyB;
            default: return LazyCarry(_lazyOp);
        }
    }

    /// <summary>CF of a lazy ADD or shift (shift counts are 1 to bits - 1, see <see cref="HShiftLazy{TShift, TS}"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong LazyCarry(byte lazy) => lazy switch
    {
        LazyAdd => _lazyR < _lazyA ? Fl.CF : 0,
        LazyShl => (_lazyA >> (_lazyBits - (int)_lazyB)) & 1,
        _ => (_lazyA >> ((int)_lazyB - 1)) & 1,
    };

    /// <summary>Evaluates a condition code, from the lazy operands when they make it cheap.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool MicroCondition(byte cc)
    {
        byte lazy = _lazyOp;
        if (lazy == LazySub)
        {
            ulong a = _lazyA, b = _lazyB;
            int sh = 64 - _lazyBits;
            long sa = (long)(a << sh), sb = (long)(b << sh);
            switch ((ConditionCode)cc)
            {
                case ConditionCode.e: return a == b;
                case ConditionCode.ne: return a != b;
                case ConditionCode.b: return a < b;
                case ConditionCode.ae: return a >= b;
                case ConditionCode.be: return a <= b;
                case ConditionCode.a: return a > b;
                case ConditionCode.l: return sa < sb;
                case ConditionCode.ge: return sa >= sb;
                case ConditionCode.le: return sa <= sb;
                case ConditionCode.g: return sa > sb;
                case ConditionCode.s: return ((_lazyR >> (_lazyBits - 1)) & 1) != 0;
                case ConditionCode.ns: return ((_lazyR >> (_lazyBits - 1)) & 1) == 0;
            }
        }
        else if (lazy == LazyLogic)
        {
            ulong r = _lazyR;
            bool neg = ((r >> (_lazyBits - 1)) & 1) != 0;
            switch ((ConditionCode)cc)
            {
                case ConditionCode.e: return r == 0;
                case ConditionCode.ne: return r != 0;
                case ConditionCode.b: return false;
                case ConditionCode.ae: return true;
                case ConditionCode.be: return r == 0;
                case ConditionCode.a: return r != 0;
                case ConditionCode.s:
                case ConditionCode.l: return neg;
                case ConditionCode.ns:
                case ConditionCode.ge: return !neg;
                case ConditionCode.le: return r == 0 || neg;
                case ConditionCode.g: return r != 0 && !neg;
            }
        }

        else if (lazy != LazyNone)
        {
            // ADD, INC, DEC and the shifts: ZF and SF from the result, CF where it is one expression.
            ulong r = _lazyR;
            switch ((ConditionCode)cc)
            {
                case ConditionCode.e: return r == 0;
                case ConditionCode.ne: return r != 0;
                case ConditionCode.s: return ((r >> (_lazyBits - 1)) & 1) != 0;
                case ConditionCode.ns: return ((r >> (_lazyBits - 1)) & 1) == 0;
                case ConditionCode.b:
                case ConditionCode.ae:
                    if (lazy is LazyAdd or LazyShl or LazyShr or LazySar)
                    {
                        return (LazyCarry(lazy) != 0) == ((ConditionCode)cc == ConditionCode.b);
                    }

                    break;
            }
        }

        MaterializeFlags();
        return Condition((ConditionCode)cc);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void SetLazy(byte op, int bits, ulong a, ulong b, ulong r)
    {
        _lazyOp = op;
        _lazyBits = bits;
        _lazyA = a;
        _lazyB = b;
        _lazyR = r;
    }

    // ---------------------------------------------------------------- execution
    //
    // Direct-threaded dispatch: every micro-op carries a pointer to a small static handler chosen at decode time for
    // its form, operation and operand size (generic methods over the size and operation structs below, so each
    // instantiation is straight-line code without a switch). The handlers reach memory through FastRead/FastWrite,
    // which use the per-segment checks cached by RefreshFast and the TLB inline, and fall back to ReadMem/WriteMem
    // (the full segmentation and paging path, which raises the faults) for everything else.

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ref ulong Gpr(int index) => ref Unsafe.Add(ref Unsafe.As<GprFile, ulong>(ref S.Gpr), index & 15);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong BitsMask(int bits) => ulong.MaxValue >> (64 - bits);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void SetGprBits(int index, int bits, ulong value)
    {
        ref ulong g = ref Gpr(index);
        if (bits >= 32)
        {
            g = bits == 64 ? value : (uint)value;
        }
        else
        {
            ulong m = BitsMask(bits);
            g = (g & ~m) | (value & m);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void SetGpr<TS>(int index, ulong value)
        where TS : struct, IOpSize
    {
        ref ulong g = ref Gpr(index);
        if (TS.Bits == 64)
        {
            g = value;
        }
        else if (TS.Bits == 32)
        {
            g = (uint)value;
        }
        else
        {
            g = (g & ~TS.Mask) | (value & TS.Mask);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong MicroEa(ref MicroOp op)
    {
        ulong ea = op.Disp;
        if (op.Base != MicroOp.NoReg)
        {
            ea += Gpr(op.Base);
        }

        if (op.Index != MicroOp.NoReg)
        {
            ea += Gpr(op.Index) << op.Shift;
        }

        return ea & op.AddrMask;
    }

    /// <summary>ALU operation of a micro-op; returns false when the result is not written (CMP, TEST).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool MicroAluOp(byte sub, ulong a, ulong b, int bits, ref ulong f, out ulong r)
    {
        switch ((MicroAlu)sub)
        {
            case MicroAlu.Add: r = Add(a, b, bits, ref f); return true;
            case MicroAlu.Or: r = Or(a, b, bits, ref f); return true;
            case MicroAlu.Adc: r = Adc(a, b, bits, ref f); return true;
            case MicroAlu.Sbb: r = Sbb(a, b, bits, ref f); return true;
            case MicroAlu.And: r = And(a, b, bits, ref f); return true;
            case MicroAlu.Sub: r = Sub(a, b, bits, ref f); return true;
            case MicroAlu.Xor: r = Xor(a, b, bits, ref f); return true;
            case MicroAlu.Cmp: Cmp(a, b, bits, ref f); r = 0; return false;
            default: Test(a, b, bits, ref f); r = 0; return false;
        }
    }

    private static ulong MicroShift(byte sub, ulong a, ulong count, int bits, ref ulong f) => (MicroAlu)sub switch
    {
        MicroAlu.Rol => Rol(a, count, bits, ref f),
        MicroAlu.Ror => Ror(a, count, bits, ref f),
        MicroAlu.Shr => Shr(a, count, bits, ref f),
        MicroAlu.Sar => Sar(a, count, bits, ref f),
        _ => Shl(a, count, bits, ref f),
    };

    // ---------------------------------------------------------------- cached segment checks

    /// <summary>
    /// What a data access through one segment needs when the fast path may take it: the base, the wrap of the linear
    /// address, and one past the last offset a read or a write may reach (0: always take the full path).
    /// </summary>
    private struct SegFast
    {
        public ulong Base;
        public ulong LinMask;
        public ulong ReadEnd;
        public ulong WriteEnd;
    }

    [InlineArray(6)]
    private struct SegFastFile
    {
        private SegFast _element;
    }

    private SegFastFile _segFast;
    private bool _fastUser;
    private bool _fastSmapOk;
    private ulong _fastStackMask;
    private ulong _fastBranchMax;

    /// <summary>
    /// Identifies the code-segment/mode/CPL/TLB state blocks are linked under: changes whenever
    /// <see cref="RefreshFast"/> finds that state different (see <see cref="LinkValid"/>).
    /// </summary>
    private uint _contextId = 1;
    private ulong _ctxCsBase;
    private uint _ctxCsLimit;
    private ushort _ctxCsAttributes;
    private bool _ctxLong;
    private bool _ctxUser;
    private uint _ctxEpoch;

    /// <summary>Set by the generic handler: the block ran an instruction that may have changed any state.</summary>
    private bool _sawGeneric;

    /// <summary>
    /// Recomputes the cached per-segment checks, the stack and branch limits and the link context from the current
    /// state. Micro-ops change none of the state these depend on (segments, CR0, CR4, EFER, RFLAGS.VM/AC, DR7, CPL,
    /// TLB epoch), so this runs when a run of blocks starts and after every instruction that is not a micro-op.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void RefreshFast()
    {
        bool is64 = Is64;
        bool pm = ProtectedMode;
        bool slow = (S.Rflags & Fl.VM) != 0 || (S.Dr7 & 0xFF) != 0; // virtual-8086 mode, enabled breakpoints
        for (int seg = 0; seg < 6; seg++)
        {
            ref SegmentCache sc = ref S.Seg[seg];
            ref SegFast f = ref _segFast[seg];
            if (slow || (!is64 && pm && (sc.Unusable || sc.IsExpandDown)))
            {
                f.ReadEnd = 0;
                f.WriteEnd = 0;
                continue;
            }

            if (is64)
            {
                f.Base = seg >= Seg.FS ? sc.Base : 0;
                f.LinMask = ulong.MaxValue;
                f.ReadEnd = ulong.MaxValue;
                f.WriteEnd = ulong.MaxValue;
                continue;
            }

            int type = sc.Type;
            ulong end = (ulong)sc.Limit + 1;
            f.Base = sc.Base;
            f.LinMask = 0xFFFF_FFFF;
            f.ReadEnd = !pm || (type & 0xA) != 0x8 ? end : 0;
            f.WriteEnd = !pm || (type & 0xA) == 0x2 ? end : 0;
        }

        _fastUser = _cpl == 3;
        _fastSmapOk = (S.Cr4 & Cr.Cr4Smap) == 0 || (S.Rflags & Fl.AC) != 0;
        _fastStackMask = StackMask;
        _fastBranchMax = is64 ? 0x0000_7FFF_FFFF_FFFFUL : S.Seg[Seg.CS].Limit;

        ref SegmentCache cs = ref S.Seg[Seg.CS];
        bool lma = (S.Efer & Cr.EferLma) != 0;
        if (cs.Base != _ctxCsBase || cs.Limit != _ctxCsLimit || cs.Attributes != _ctxCsAttributes || lma != _ctxLong ||
            _fastUser != _ctxUser || _tlb.Epoch != _ctxEpoch)
        {
            _ctxCsBase = cs.Base;
            _ctxCsLimit = cs.Limit;
            _ctxCsAttributes = cs.Attributes;
            _ctxLong = lma;
            _ctxUser = _fastUser;
            _ctxEpoch = _tlb.Epoch;
            _contextId++;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ref SegFast SegFastOf(int seg) => ref Unsafe.Add(ref Unsafe.As<SegFastFile, SegFast>(ref _segFast), seg);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool FastTlbAllows(ref TlbEntry e) => _fastUser ? e.User : !e.UserPage || _fastSmapOk;

    /// <summary>A data read of <typeparamref name="TS"/>'s size: segment checks and TLB inline, else <see cref="ReadMem"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong FastRead<TS>(int seg, ulong offset)
        where TS : struct, IOpSize
    {
        int size = TS.Bits >> 3;
        ref SegFast sf = ref SegFastOf(seg);
        if (offset + (ulong)size <= sf.ReadEnd)
        {
            ulong lin = (sf.Base + offset) & sf.LinMask;
            if ((lin & 0xFFF) <= (ulong)(0x1000 - size) && IsCanonical(lin))
            {
                ref TlbEntry e = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_tlb.Read), (int)((lin >> 12) & (Tlb.Size - 1)));
                if (e.Tag == (lin >> 12) + 1 && e.Host != 0 && FastTlbAllows(ref e))
                {
                    byte* p = (byte*)e.Host + (lin & 0xFFF);
                    return TS.Bits switch
                    {
                        8 => *p,
                        16 => Unsafe.ReadUnaligned<ushort>(p),
                        32 => Unsafe.ReadUnaligned<uint>(p),
                        _ => Unsafe.ReadUnaligned<ulong>(p),
                    };
                }
            }
        }

        return ReadMem(seg, offset, size);
    }

    /// <summary>A data write of <typeparamref name="TS"/>'s size: segment checks and TLB inline, else <see cref="WriteMem"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void FastWrite<TS>(int seg, ulong offset, ulong value)
        where TS : struct, IOpSize
    {
        int size = TS.Bits >> 3;
        ref SegFast sf = ref SegFastOf(seg);
        if (offset + (ulong)size <= sf.WriteEnd)
        {
            ulong lin = (sf.Base + offset) & sf.LinMask;
            if ((lin & 0xFFF) <= (ulong)(0x1000 - size) && IsCanonical(lin))
            {
                ref TlbEntry e = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_tlb.Write), (int)((lin >> 12) & (Tlb.Size - 1)));
                if (e.Tag == (lin >> 12) + 1 && e.Host != 0 && FastTlbAllows(ref e))
                {
                    byte* p = (byte*)e.Host + (lin & 0xFFF);
                    switch (TS.Bits)
                    {
                        case 8: *p = (byte)value; break;
                        case 16: Unsafe.WriteUnaligned(p, (ushort)value); break;
                        case 32: Unsafe.WriteUnaligned(p, (uint)value); break;
                        default: Unsafe.WriteUnaligned(p, value); break;
                    }

                    Physical.NoteWrite(e.PhysPage);
                    if (e.PhysPage == _currentPage)
                    {
                        EndBlock();
                    }

                    return;
                }
            }
        }

        WriteMem(seg, offset, size, value);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void FastBranch(ulong target)
    {
        if (target <= _fastBranchMax)
        {
            _nextRip = target;
        }
        else
        {
            BranchNear(target);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void FastPush<TS>(ulong value)
        where TS : struct, IOpSize
    {
        ulong mask = _fastStackMask;
        ulong rsp = Gpr(4);
        ulong next = (rsp & ~mask) | ((rsp - (ulong)(TS.Bits >> 3)) & mask);
        FastWrite<TS>(Seg.SS, next & mask, value);
        Gpr(4) = next;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong FastPop<TS>()
        where TS : struct, IOpSize
    {
        ulong mask = _fastStackMask;
        ulong rsp = Gpr(4);
        ulong value = FastRead<TS>(Seg.SS, rsp & mask);
        Gpr(4) = (rsp & ~mask) | ((rsp + (ulong)(TS.Bits >> 3)) & mask);
        return value;
    }

    // ---------------------------------------------------------------- handler selection

    /// <summary>The handler of a classified micro-op (decode time).</summary>
    private static delegate*<TcgCpu, ref MicroOp, void> HandlerOf(ref MicroOp op)
    {
        int bits = op.Bits;
        switch (op.Kind)
        {
            case MicroKind.Nop: return &HNop;
            case MicroKind.MovRR: return BySize(bits, &HMovRR<S8>, &HMovRR<S16>, &HMovRR<S32>, &HMovRR<S64>);
            case MicroKind.MovRI: return BySize(bits, &HMovRI<S8>, &HMovRI<S16>, &HMovRI<S32>, &HMovRI<S64>);
            case MicroKind.MovRM: return BySize(bits, &HMovRM<S8>, &HMovRM<S16>, &HMovRM<S32>, &HMovRM<S64>);
            case MicroKind.MovMR: return BySize(bits, &HMovMR<S8>, &HMovMR<S16>, &HMovMR<S32>, &HMovMR<S64>);
            case MicroKind.MovMI: return BySize(bits, &HMovMI<S8>, &HMovMI<S16>, &HMovMI<S32>, &HMovMI<S64>);
            case MicroKind.AluRR:
            case MicroKind.AluRI:
            case MicroKind.AluRM:
            case MicroKind.AluMR:
            case MicroKind.AluMI:
                return (MicroAlu)op.Sub switch
                {
                    MicroAlu.Add => AluHandler<OpAdd>(op.Kind, bits),
                    MicroAlu.Or => AluHandler<OpOr>(op.Kind, bits),
                    MicroAlu.And => AluHandler<OpAnd>(op.Kind, bits),
                    MicroAlu.Sub => AluHandler<OpSub>(op.Kind, bits),
                    MicroAlu.Xor => AluHandler<OpXor>(op.Kind, bits),
                    MicroAlu.Cmp => AluHandler<OpCmp>(op.Kind, bits),
                    MicroAlu.Test => AluHandler<OpTest>(op.Kind, bits),
                    _ => &HAluCarry,
                };
            case MicroKind.IncR: return BySize(bits, &HIncDecR<S8, OpInc>, &HIncDecR<S16, OpInc>, &HIncDecR<S32, OpInc>, &HIncDecR<S64, OpInc>);
            case MicroKind.DecR: return BySize(bits, &HIncDecR<S8, OpDec>, &HIncDecR<S16, OpDec>, &HIncDecR<S32, OpDec>, &HIncDecR<S64, OpDec>);
            case MicroKind.IncM: return BySize(bits, &HIncDecM<S8, OpInc>, &HIncDecM<S16, OpInc>, &HIncDecM<S32, OpInc>, &HIncDecM<S64, OpInc>);
            case MicroKind.DecM: return BySize(bits, &HIncDecM<S8, OpDec>, &HIncDecM<S16, OpDec>, &HIncDecM<S32, OpDec>, &HIncDecM<S64, OpDec>);
            case MicroKind.ShiftRI:
            {
                int n = (int)op.Imm & (bits == 64 ? 63 : 31);
                if (n == 0 || n >= bits || (MicroAlu)op.Sub is MicroAlu.Rol or MicroAlu.Ror)
                {
                    return &HShift;
                }

                op.Imm = (ulong)n;
                return (MicroAlu)op.Sub switch
                {
                    MicroAlu.Shl => BySize(bits, &HShiftLazy<OpShl, S8>, &HShiftLazy<OpShl, S16>, &HShiftLazy<OpShl, S32>, &HShiftLazy<OpShl, S64>),
                    MicroAlu.Shr => BySize(bits, &HShiftLazy<OpShr, S8>, &HShiftLazy<OpShr, S16>, &HShiftLazy<OpShr, S32>, &HShiftLazy<OpShr, S64>),
                    _ => BySize(bits, &HShiftLazy<OpSar, S8>, &HShiftLazy<OpSar, S16>, &HShiftLazy<OpSar, S32>, &HShiftLazy<OpSar, S64>),
                };
            }

            case MicroKind.ShiftRCl:
                return &HShift;
            case MicroKind.Lea: return &HLea;
            case MicroKind.MovzxRR: return &HMovzxRR;
            case MicroKind.MovsxRR: return &HMovsxRR;
            case MicroKind.MovzxRM:
                return op.SrcBits switch { 8 => &HMovzxRM<S8>, 16 => &HMovzxRM<S16>, 32 => &HMovzxRM<S32>, _ => &HMovzxRM<S64> };
            case MicroKind.MovsxRM:
                return op.SrcBits switch { 8 => &HMovsxRM<S8>, 16 => &HMovsxRM<S16>, 32 => &HMovsxRM<S32>, _ => &HMovsxRM<S64> };
            case MicroKind.Jcc: return JccHandler(op.Sub);
            case MicroKind.Jmp: return &HJmp;
            case MicroKind.CallRel: return BySize(bits, &HGeneric, &HCall<S16>, &HCall<S32>, &HCall<S64>);
            case MicroKind.Ret:
                return op.Imm != 0 ? &HRetImm : BySize(bits, &HGeneric, &HRet<S16>, &HRet<S32>, &HRet<S64>);
            case MicroKind.PushR: return BySize(bits, &HGeneric, &HPushR<S16>, &HPushR<S32>, &HPushR<S64>);
            case MicroKind.PushI: return BySize(bits, &HGeneric, &HPushI<S16>, &HPushI<S32>, &HPushI<S64>);
            case MicroKind.PopR: return BySize(bits, &HGeneric, &HPopR<S16>, &HPopR<S32>, &HPopR<S64>);
            case MicroKind.Cmov: return &HCmov;
            case MicroKind.SetccR: return &HSetcc;
            case MicroKind.ImulRR:
            case MicroKind.ImulRM:
            case MicroKind.ImulRRI:
                return &HImul;
            default:
                return &HGeneric;
        }
    }

    private static delegate*<TcgCpu, ref MicroOp, void> BySize(int bits, delegate*<TcgCpu, ref MicroOp, void> h8,
        delegate*<TcgCpu, ref MicroOp, void> h16, delegate*<TcgCpu, ref MicroOp, void> h32, delegate*<TcgCpu, ref MicroOp, void> h64) =>
        bits switch { 8 => h8, 16 => h16, 32 => h32, _ => h64 };

    private static delegate*<TcgCpu, ref MicroOp, void> AluHandler<TOp>(MicroKind kind, int bits)
        where TOp : struct, IAluOp => kind switch
    {
        MicroKind.AluRR => BySize(bits, &HAluRR<TOp, S8>, &HAluRR<TOp, S16>, &HAluRR<TOp, S32>, &HAluRR<TOp, S64>),
        MicroKind.AluRI => BySize(bits, &HAluRI<TOp, S8>, &HAluRI<TOp, S16>, &HAluRI<TOp, S32>, &HAluRI<TOp, S64>),
        MicroKind.AluRM => BySize(bits, &HAluRM<TOp, S8>, &HAluRM<TOp, S16>, &HAluRM<TOp, S32>, &HAluRM<TOp, S64>),
        MicroKind.AluMR => BySize(bits, &HAluMR<TOp, S8>, &HAluMR<TOp, S16>, &HAluMR<TOp, S32>, &HAluMR<TOp, S64>),
        _ => BySize(bits, &HAluMI<TOp, S8>, &HAluMI<TOp, S16>, &HAluMI<TOp, S32>, &HAluMI<TOp, S64>),
    };

    private static delegate*<TcgCpu, ref MicroOp, void> JccHandler(byte cc) => (ConditionCode)cc switch
    {
        ConditionCode.o => &HJcc<CcO>,
        ConditionCode.no => &HJcc<CcNo>,
        ConditionCode.b => &HJcc<CcB>,
        ConditionCode.ae => &HJcc<CcAe>,
        ConditionCode.e => &HJcc<CcE>,
        ConditionCode.ne => &HJcc<CcNe>,
        ConditionCode.be => &HJcc<CcBe>,
        ConditionCode.a => &HJcc<CcA>,
        ConditionCode.s => &HJcc<CcS>,
        ConditionCode.ns => &HJcc<CcNs>,
        ConditionCode.p => &HJcc<CcP>,
        ConditionCode.np => &HJcc<CcNp>,
        ConditionCode.l => &HJcc<CcL>,
        ConditionCode.ge => &HJcc<CcGe>,
        ConditionCode.le => &HJcc<CcLe>,
        _ => &HJcc<CcG>,
    };

    // ---------------------------------------------------------------- handlers

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void HGeneric(TcgCpu c, ref MicroOp op)
    {
        c.MaterializeFlags();
        c._sawGeneric = true;
        c.Execute(ref *op.Ins);
        c.RefreshFast();
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void HNop(TcgCpu c, ref MicroOp op)
    {
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void HMovRR<TS>(TcgCpu c, ref MicroOp op)
        where TS : struct, IOpSize => c.SetGpr<TS>(op.R0, c.Gpr(op.R1));

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void HMovRI<TS>(TcgCpu c, ref MicroOp op)
        where TS : struct, IOpSize => c.SetGpr<TS>(op.R0, op.Imm);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void HMovRM<TS>(TcgCpu c, ref MicroOp op)
        where TS : struct, IOpSize => c.SetGpr<TS>(op.R0, c.FastRead<TS>(op.Seg, c.MicroEa(ref op)));

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void HMovMR<TS>(TcgCpu c, ref MicroOp op)
        where TS : struct, IOpSize => c.FastWrite<TS>(op.Seg, c.MicroEa(ref op), c.Gpr(op.R1));

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void HMovMI<TS>(TcgCpu c, ref MicroOp op)
        where TS : struct, IOpSize => c.FastWrite<TS>(op.Seg, c.MicroEa(ref op), op.Imm);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void AluLazy<TOp, TS>(ulong a, ulong b, out ulong r)
        where TOp : struct, IAluOp
        where TS : struct, IOpSize
    {
        r = TOp.Compute(a, b) & TS.Mask;
        _lazyOp = TOp.Lazy;
        _lazyBits = TS.Bits;
        _lazyA = a;
        _lazyB = b;
        _lazyR = r;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void HAluRR<TOp, TS>(TcgCpu c, ref MicroOp op)
        where TOp : struct, IAluOp
        where TS : struct, IOpSize
    {
        c.AluLazy<TOp, TS>(c.Gpr(op.R0) & TS.Mask, c.Gpr(op.R1) & TS.Mask, out ulong r);
        if (TOp.Writes)
        {
            c.SetGpr<TS>(op.R0, r);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void HAluRI<TOp, TS>(TcgCpu c, ref MicroOp op)
        where TOp : struct, IAluOp
        where TS : struct, IOpSize
    {
        c.AluLazy<TOp, TS>(c.Gpr(op.R0) & TS.Mask, op.Imm, out ulong r);
        if (TOp.Writes)
        {
            c.SetGpr<TS>(op.R0, r);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void HAluRM<TOp, TS>(TcgCpu c, ref MicroOp op)
        where TOp : struct, IAluOp
        where TS : struct, IOpSize
    {
        ulong b = c.FastRead<TS>(op.Seg, c.MicroEa(ref op));
        c.AluLazy<TOp, TS>(c.Gpr(op.R0) & TS.Mask, b, out ulong r);
        if (TOp.Writes)
        {
            c.SetGpr<TS>(op.R0, r);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void HAluMR<TOp, TS>(TcgCpu c, ref MicroOp op)
        where TOp : struct, IAluOp
        where TS : struct, IOpSize => c.AluMem<TOp, TS>(ref op, c.Gpr(op.R1) & TS.Mask);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void HAluMI<TOp, TS>(TcgCpu c, ref MicroOp op)
        where TOp : struct, IAluOp
        where TS : struct, IOpSize => c.AluMem<TOp, TS>(ref op, op.Imm);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void AluMem<TOp, TS>(ref MicroOp op, ulong b)
        where TOp : struct, IAluOp
        where TS : struct, IOpSize
    {
        ulong ea = MicroEa(ref op);
        ulong a = FastRead<TS>(op.Seg, ea);
        if (!TOp.Writes)
        {
            AluLazy<TOp, TS>(a, b, out _);
            return;
        }

        // Flags change only once the write has succeeded (a faulting instruction leaves no partial state).
        FastWrite<TS>(op.Seg, ea, TOp.Compute(a, b) & TS.Mask);
        AluLazy<TOp, TS>(a, b, out _);
    }

    /// <summary>ADC and SBB (register, immediate or memory forms): flags computed eagerly.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void HAluCarry(TcgCpu c, ref MicroOp op)
    {
        int bits = op.Bits;
        c.MaterializeFlags();
        ulong m = BitsMask(bits);
        ulong f = c.S.Rflags;
        switch (op.Kind)
        {
            case MicroKind.AluRR:
            case MicroKind.AluRI:
            case MicroKind.AluRM:
            {
                ulong b = op.Kind == MicroKind.AluRR ? c.Gpr(op.R1) : op.Kind == MicroKind.AluRI ? op.Imm : c.ReadMem(op.Seg, c.MicroEa(ref op), bits >> 3);
                MicroAluOp(op.Sub, c.Gpr(op.R0) & m, b & m, bits, ref f, out ulong r);
                c.SetGprBits(op.R0, bits, r);
                c.S.Rflags = f;
                return;
            }

            default:
            {
                ulong ea = c.MicroEa(ref op);
                ulong a = c.ReadMem(op.Seg, ea, bits >> 3);
                ulong b = op.Kind == MicroKind.AluMR ? c.Gpr(op.R1) : op.Imm;
                MicroAluOp(op.Sub, a, b & m, bits, ref f, out ulong r);
                c.WriteMem(op.Seg, ea, bits >> 3, r);
                c.S.Rflags = f;
                return;
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void HIncDecR<TS, TOp>(TcgCpu c, ref MicroOp op)
        where TS : struct, IOpSize
        where TOp : struct, IIncDec
    {
        ulong cf = c.CurrentCf();
        ulong a = c.Gpr(op.R0) & TS.Mask;
        ulong r = (TOp.Inc ? a + 1 : a - 1) & TS.Mask;
        c.SetGpr<TS>(op.R0, r);
        c.SetLazy(TOp.Inc ? LazyInc : LazyDec, TS.Bits, a, cf, r);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void HIncDecM<TS, TOp>(TcgCpu c, ref MicroOp op)
        where TS : struct, IOpSize
        where TOp : struct, IIncDec
    {
        ulong ea = c.MicroEa(ref op);
        ulong a = c.FastRead<TS>(op.Seg, ea) & TS.Mask;
        ulong r = (TOp.Inc ? a + 1 : a - 1) & TS.Mask;
        c.FastWrite<TS>(op.Seg, ea, r);
        ulong cf = c.CurrentCf();
        c.SetLazy(TOp.Inc ? LazyInc : LazyDec, TS.Bits, a, cf, r);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void HShift(TcgCpu c, ref MicroOp op)
    {
        int bits = op.Bits;
        c.MaterializeFlags();
        ulong count = op.Kind == MicroKind.ShiftRI ? op.Imm : c.Gpr(1) & 0xFF;
        ulong f = c.S.Rflags;
        ulong r = MicroShift(op.Sub, c.Gpr(op.R0), count, bits, ref f);
        c.SetGprBits(op.R0, bits, r);
        c.S.Rflags = f;
    }

    /// <summary>SHL/SHR/SAR by an immediate count of 1 to bits - 1 (chosen at decode time): flags left lazy.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void HShiftLazy<TShift, TS>(TcgCpu c, ref MicroOp op)
        where TShift : struct, IShiftOp
        where TS : struct, IOpSize
    {
        ulong a = c.Gpr(op.R0) & TS.Mask;
        int n = (int)op.Imm;
        ulong r = TShift.Lazy switch
        {
            LazyShl => (a << n) & TS.Mask,
            LazyShr => a >> n,
            _ => (ulong)(SignExtend(a, TS.Bits) >> n) & TS.Mask,
        };
        c.SetGpr<TS>(op.R0, r);
        c.SetLazy(TShift.Lazy, TS.Bits, a, (ulong)n, r);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void HLea(TcgCpu c, ref MicroOp op) => c.SetGprBits(op.R0, op.Bits, c.MicroEa(ref op));

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void HMovzxRR(TcgCpu c, ref MicroOp op) => c.SetGprBits(op.R0, op.Bits, c.Gpr(op.R1) & BitsMask(op.SrcBits));

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void HMovsxRR(TcgCpu c, ref MicroOp op) => c.SetGprBits(op.R0, op.Bits, (ulong)SignExtend(c.Gpr(op.R1), op.SrcBits));

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void HMovzxRM<TSrc>(TcgCpu c, ref MicroOp op)
        where TSrc : struct, IOpSize => c.SetGprBits(op.R0, op.Bits, c.FastRead<TSrc>(op.Seg, c.MicroEa(ref op)));

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void HMovsxRM<TSrc>(TcgCpu c, ref MicroOp op)
        where TSrc : struct, IOpSize => c.SetGprBits(op.R0, op.Bits, (ulong)SignExtend(c.FastRead<TSrc>(op.Seg, c.MicroEa(ref op)), TSrc.Bits));

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void HJcc<TCc>(TcgCpu c, ref MicroOp op)
        where TCc : struct, ICondition
    {
        if (c.MicroCondition(TCc.Code))
        {
            c.FastBranch(op.Imm);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void HJmp(TcgCpu c, ref MicroOp op) => c.FastBranch(op.Imm);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void HCall<TS>(TcgCpu c, ref MicroOp op)
        where TS : struct, IOpSize
    {
        ulong ret = c._nextRip;
        c.FastBranch(op.Imm);
        c.FastPush<TS>(ret);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void HRet<TS>(TcgCpu c, ref MicroOp op)
        where TS : struct, IOpSize
    {
        ulong mask = c._fastStackMask;
        ulong rsp = c.Gpr(4);
        ulong target = c.FastRead<TS>(Seg.SS, rsp & mask);
        c.FastBranch(target);
        c.Gpr(4) = (rsp & ~mask) | ((rsp + (ulong)(TS.Bits >> 3)) & mask);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void HRetImm(TcgCpu c, ref MicroOp op)
    {
        int bits = op.Bits;
        ulong rsp = c.S.Gpr[4];
        ulong target = c.PopFrom(ref rsp, bits >> 3);
        ulong mask = c.StackMask;
        rsp = (rsp & ~mask) | ((rsp + op.Imm) & mask);
        c.BranchNear(target);
        c.S.Gpr[4] = rsp;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void HPushR<TS>(TcgCpu c, ref MicroOp op)
        where TS : struct, IOpSize => c.FastPush<TS>(c.Gpr(op.R0) & TS.Mask);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void HPushI<TS>(TcgCpu c, ref MicroOp op)
        where TS : struct, IOpSize => c.FastPush<TS>(op.Imm);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void HPopR<TS>(TcgCpu c, ref MicroOp op)
        where TS : struct, IOpSize
    {
        ulong value = c.FastPop<TS>();
        c.SetGpr<TS>(op.R0, value);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void HCmov(TcgCpu c, ref MicroOp op)
    {
        int bits = op.Bits;
        if (c.MicroCondition(op.Sub))
        {
            c.SetGprBits(op.R0, bits, c.Gpr(op.R1));
        }
        else if (bits == 32)
        {
            c.SetGprBits(op.R0, 32, c.Gpr(op.R0));
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void HSetcc(TcgCpu c, ref MicroOp op) => c.SetGprBits(op.R0, 8, c.MicroCondition(op.Sub) ? 1UL : 0UL);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void HImul(TcgCpu c, ref MicroOp op)
    {
        int bits = op.Bits;
        ulong a, b;
        if (op.Kind == MicroKind.ImulRRI)
        {
            a = c.Gpr(op.R1);
            b = op.Imm;
        }
        else
        {
            a = c.Gpr(op.R0);
            b = op.Kind == MicroKind.ImulRR ? c.Gpr(op.R1) : c.ReadMem(op.Seg, c.MicroEa(ref op), bits >> 3);
        }

        c.MaterializeFlags();
        ulong f = c.S.Rflags;
        ulong r = Imul(a & BitsMask(bits), b & BitsMask(bits), bits, out _, ref f);
        c.SetGprBits(op.R0, bits, r);
        c.S.Rflags = f;
    }

    // ---------------------------------------------------------------- fused compare-and-branch

    /// <summary>
    /// When a block ends with a Jcc right after a flag-setting ALU micro-op that cannot write memory (CMP, TEST, the
    /// register forms of ADD/SUB/AND/OR/XOR, INC/DEC of a register), the ALU op's <see cref="MicroOp.Run"/> becomes a
    /// handler that also takes the branch: one dispatch for the pair. It retires both (RIP and count as if run one at
    /// a time) and ends the block; when the branch would fault it leaves the Jcc to run on its own.
    /// </summary>
    private static void FuseClosingBranch(DecodedBlock b)
    {
        int n = b.Count;
        if (n < 2 || b.Ops[n - 1].Kind != MicroKind.Jcc)
        {
            return;
        }

        ref MicroOp op = ref b.Ops[n - 2];
        int bits = op.Bits;
        byte cc = b.Ops[n - 1].Sub;
        bool noWrite = (MicroAlu)op.Sub is MicroAlu.Cmp or MicroAlu.Test;
        delegate*<TcgCpu, ref MicroOp, void> h = null;
        switch (op.Kind)
        {
            case MicroKind.AluRR:
            case MicroKind.AluRI:
            case MicroKind.AluRM:
            case MicroKind.AluMI when noWrite:
            case MicroKind.AluMR when noWrite:
                h = (MicroAlu)op.Sub switch
                {
                    MicroAlu.Add => FusedAlu<OpAdd>(op.Kind, bits, cc),
                    MicroAlu.Or => FusedAlu<OpOr>(op.Kind, bits, cc),
                    MicroAlu.And => FusedAlu<OpAnd>(op.Kind, bits, cc),
                    MicroAlu.Sub => FusedAlu<OpSub>(op.Kind, bits, cc),
                    MicroAlu.Xor => FusedAlu<OpXor>(op.Kind, bits, cc),
                    MicroAlu.Cmp => FusedAlu<OpCmp>(op.Kind, bits, cc),
                    MicroAlu.Test => FusedAlu<OpTest>(op.Kind, bits, cc),
                    _ => null,
                };
                break;
            case MicroKind.IncR:
                h = bits switch { 8 => FusedIncDec<S8, OpInc>(cc), 16 => FusedIncDec<S16, OpInc>(cc), 32 => FusedIncDec<S32, OpInc>(cc), _ => FusedIncDec<S64, OpInc>(cc) };
                break;
            case MicroKind.DecR:
                h = bits switch { 8 => FusedIncDec<S8, OpDec>(cc), 16 => FusedIncDec<S16, OpDec>(cc), 32 => FusedIncDec<S32, OpDec>(cc), _ => FusedIncDec<S64, OpDec>(cc) };
                break;
        }

        if (h != null)
        {
            op.Run = h;
        }
    }

    private static delegate*<TcgCpu, ref MicroOp, void> FusedAlu<TOp>(MicroKind kind, int bits, byte cc)
        where TOp : struct, IAluOp => kind switch
    {
        MicroKind.AluRR => FusedBySize<TOp, FormRR>(bits, cc),
        MicroKind.AluRI => FusedBySize<TOp, FormRI>(bits, cc),
        MicroKind.AluRM => FusedBySize<TOp, FormRM>(bits, cc),
        _ when TOp.Writes => null, // a memory destination is written: never fused
        MicroKind.AluMR => FusedBySize<TOp, FormMR>(bits, cc),
        _ => FusedBySize<TOp, FormMI>(bits, cc),
    };

    private static delegate*<TcgCpu, ref MicroOp, void> FusedBySize<TOp, TForm>(int bits, byte cc)
        where TOp : struct, IAluOp
        where TForm : struct, IAluForm => bits switch
    {
        8 => FusedCc<TOp, S8, TForm>(cc),
        16 => FusedCc<TOp, S16, TForm>(cc),
        32 => FusedCc<TOp, S32, TForm>(cc),
        _ => FusedCc<TOp, S64, TForm>(cc),
    };

    /// <summary>The fused handler for one operation, size, form and branch condition (decode time).</summary>
    private static delegate*<TcgCpu, ref MicroOp, void> FusedCc<TOp, TS, TForm>(byte cc)
        where TOp : struct, IAluOp
        where TS : struct, IOpSize
        where TForm : struct, IAluForm => (ConditionCode)cc switch
    {
        ConditionCode.o => &HFuseAlu<TOp, TS, TForm, CcO>,
        ConditionCode.no => &HFuseAlu<TOp, TS, TForm, CcNo>,
        ConditionCode.b => &HFuseAlu<TOp, TS, TForm, CcB>,
        ConditionCode.ae => &HFuseAlu<TOp, TS, TForm, CcAe>,
        ConditionCode.e => &HFuseAlu<TOp, TS, TForm, CcE>,
        ConditionCode.ne => &HFuseAlu<TOp, TS, TForm, CcNe>,
        ConditionCode.be => &HFuseAlu<TOp, TS, TForm, CcBe>,
        ConditionCode.a => &HFuseAlu<TOp, TS, TForm, CcA>,
        ConditionCode.s => &HFuseAlu<TOp, TS, TForm, CcS>,
        ConditionCode.ns => &HFuseAlu<TOp, TS, TForm, CcNs>,
        ConditionCode.p => &HFuseAlu<TOp, TS, TForm, CcP>,
        ConditionCode.np => &HFuseAlu<TOp, TS, TForm, CcNp>,
        ConditionCode.l => &HFuseAlu<TOp, TS, TForm, CcL>,
        ConditionCode.ge => &HFuseAlu<TOp, TS, TForm, CcGe>,
        ConditionCode.le => &HFuseAlu<TOp, TS, TForm, CcLe>,
        _ => &HFuseAlu<TOp, TS, TForm, CcG>,
    };

    private static delegate*<TcgCpu, ref MicroOp, void> FusedIncDec<TS, TOp>(byte cc)
        where TS : struct, IOpSize
        where TOp : struct, IIncDec => (ConditionCode)cc switch
    {
        ConditionCode.o => &HFuseIncDec<TS, TOp, CcO>,
        ConditionCode.no => &HFuseIncDec<TS, TOp, CcNo>,
        ConditionCode.b => &HFuseIncDec<TS, TOp, CcB>,
        ConditionCode.ae => &HFuseIncDec<TS, TOp, CcAe>,
        ConditionCode.e => &HFuseIncDec<TS, TOp, CcE>,
        ConditionCode.ne => &HFuseIncDec<TS, TOp, CcNe>,
        ConditionCode.be => &HFuseIncDec<TS, TOp, CcBe>,
        ConditionCode.a => &HFuseIncDec<TS, TOp, CcA>,
        ConditionCode.s => &HFuseIncDec<TS, TOp, CcS>,
        ConditionCode.ns => &HFuseIncDec<TS, TOp, CcNs>,
        ConditionCode.p => &HFuseIncDec<TS, TOp, CcP>,
        ConditionCode.np => &HFuseIncDec<TS, TOp, CcNp>,
        ConditionCode.l => &HFuseIncDec<TS, TOp, CcL>,
        ConditionCode.ge => &HFuseIncDec<TS, TOp, CcGe>,
        ConditionCode.le => &HFuseIncDec<TS, TOp, CcLe>,
        _ => &HFuseIncDec<TS, TOp, CcG>,
    };

    // The fused handlers are specialised on the branch condition as well: the flags the condition reads come straight
    // from the operands in registers (the lazy state is still recorded for later readers), with no switch over the
    // condition or the lazy operation at run time.

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void HFuseAlu<TOp, TS, TForm, TCc>(TcgCpu c, ref MicroOp op)
        where TOp : struct, IAluOp
        where TS : struct, IOpSize
        where TForm : struct, IAluForm
        where TCc : struct, ICondition
    {
        ulong a, b;
        if (TForm.MemoryFirst)
        {
            a = c.FastRead<TS>(op.Seg, c.MicroEa(ref op));
            b = TForm.Immediate ? op.Imm : c.Gpr(op.R1) & TS.Mask;
        }
        else
        {
            a = c.Gpr(op.R0) & TS.Mask;
            b = TForm.Immediate ? op.Imm : TForm.Memory ? c.FastRead<TS>(op.Seg, c.MicroEa(ref op)) : c.Gpr(op.R1) & TS.Mask;
        }

        c.AluLazy<TOp, TS>(a, b, out ulong r);
        if (TOp.Writes && !TForm.MemoryFirst)
        {
            c.SetGpr<TS>(op.R0, r);
        }

        c.TakeFusedBranch(ref Unsafe.Add(ref op, 1), c.FusedCondition<TS, TCc>(TOp.Lazy, a, b, r));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void HFuseIncDec<TS, TOp, TCc>(TcgCpu c, ref MicroOp op)
        where TS : struct, IOpSize
        where TOp : struct, IIncDec
        where TCc : struct, ICondition
    {
        ulong cf = c.CurrentCf();
        ulong a = c.Gpr(op.R0) & TS.Mask;
        ulong r = (TOp.Inc ? a + 1 : a - 1) & TS.Mask;
        c.SetGpr<TS>(op.R0, r);
        byte lazy = TOp.Inc ? LazyInc : LazyDec;
        c.SetLazy(lazy, TS.Bits, a, cf, r);
        c.TakeFusedBranch(ref Unsafe.Add(ref op, 1), c.FusedCondition<TS, TCc>(lazy, a, cf, r));
    }

    /// <summary>
    /// <see cref="MicroCondition"/> for a lazy state that was just recorded as (<paramref name="lazy"/>, TS.Bits,
    /// <paramref name="a"/>, <paramref name="b"/>, <paramref name="r"/>), with the operation and the condition known
    /// when the handler is compiled: the same rules, folded to the one that applies; the others go through it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool FusedCondition<TS, TCc>(byte lazy, ulong a, ulong b, ulong r)
        where TS : struct, IOpSize
        where TCc : struct, ICondition
    {
        ConditionCode cc = (ConditionCode)TCc.Code;
        bool neg = ((r >> (TS.Bits - 1)) & 1) != 0;
        if (lazy == LazySub)
        {
            int sh = 64 - TS.Bits;
            long sa = (long)(a << sh), sb = (long)(b << sh);
            switch (cc)
            {
                case ConditionCode.e: return a == b;
                case ConditionCode.ne: return a != b;
                case ConditionCode.b: return a < b;
                case ConditionCode.ae: return a >= b;
                case ConditionCode.be: return a <= b;
                case ConditionCode.a: return a > b;
                case ConditionCode.l: return sa < sb;
                case ConditionCode.ge: return sa >= sb;
                case ConditionCode.le: return sa <= sb;
                case ConditionCode.g: return sa > sb;
                case ConditionCode.s: return neg;
                case ConditionCode.ns: return !neg;
            }
        }
        else if (lazy == LazyLogic)
        {
            switch (cc)
            {
                case ConditionCode.e: return r == 0;
                case ConditionCode.ne: return r != 0;
                case ConditionCode.b: return false;
                case ConditionCode.ae: return true;
                case ConditionCode.be: return r == 0;
                case ConditionCode.a: return r != 0;
                case ConditionCode.s:
                case ConditionCode.l: return neg;
                case ConditionCode.ns:
                case ConditionCode.ge: return !neg;
                case ConditionCode.le: return r == 0 || neg;
                case ConditionCode.g: return r != 0 && !neg;
            }
        }
        else
        {
            // ADD, INC, DEC: ZF and SF from the result; CF of ADD is one expression (INC/DEC keep CF: the general rule).
            switch (cc)
            {
                case ConditionCode.e: return r == 0;
                case ConditionCode.ne: return r != 0;
                case ConditionCode.s: return neg;
                case ConditionCode.ns: return !neg;
                case ConditionCode.b when lazy == LazyAdd: return r < a;
                case ConditionCode.ae when lazy == LazyAdd: return r >= a;
            }
        }

        return MicroCondition(TCc.Code);
    }

    /// <summary>The Jcc half of a fused pair: RIP and count of the Jcc, then the block ends.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void TakeFusedBranch(ref MicroOp jcc, bool taken)
    {
        ulong target = jcc.NextIp;
        if (taken)
        {
            target = jcc.Imm;
            if (target > _fastBranchMax)
            {
                return; // the Jcc runs by itself and raises the fault
            }
        }

        _nextRip = target;
        _lastExecuted++;
        _endBlock = true;
    }

    /// <summary>The operand form of a fused ALU op as a type.</summary>
    private interface IAluForm
    {
        static abstract bool Immediate { get; }

        static abstract bool Memory { get; }

        static abstract bool MemoryFirst { get; }
    }

    private struct FormRR : IAluForm
    {
        public static bool Immediate => false;

        public static bool Memory => false;

        public static bool MemoryFirst => false;
    }

    private struct FormRI : IAluForm
    {
        public static bool Immediate => true;

        public static bool Memory => false;

        public static bool MemoryFirst => false;
    }

    private struct FormRM : IAluForm
    {
        public static bool Immediate => false;

        public static bool Memory => true;

        public static bool MemoryFirst => false;
    }

    private struct FormMR : IAluForm
    {
        public static bool Immediate => false;

        public static bool Memory => true;

        public static bool MemoryFirst => true;
    }

    private struct FormMI : IAluForm
    {
        public static bool Immediate => true;

        public static bool Memory => true;

        public static bool MemoryFirst => true;
    }

    // ---------------------------------------------------------------- specialisation types

    /// <summary>An operand size as a type, so that generic handlers are compiled once per size.</summary>
    private interface IOpSize
    {
        static abstract int Bits { get; }

        static abstract ulong Mask { get; }
    }

    private struct S8 : IOpSize
    {
        public static int Bits => 8;

        public static ulong Mask => 0xFF;
    }

    private struct S16 : IOpSize
    {
        public static int Bits => 16;

        public static ulong Mask => 0xFFFF;
    }

    private struct S32 : IOpSize
    {
        public static int Bits => 32;

        public static ulong Mask => 0xFFFF_FFFF;
    }

    private struct S64 : IOpSize
    {
        public static int Bits => 64;

        public static ulong Mask => ulong.MaxValue;
    }

    /// <summary>A lazily-flagged binary ALU operation as a type.</summary>
    private interface IAluOp
    {
        static abstract bool Writes { get; }

        static abstract byte Lazy { get; }

        static abstract ulong Compute(ulong a, ulong b);
    }

    private struct OpAdd : IAluOp
    {
        public static bool Writes => true;

        public static byte Lazy => LazyAdd;

        public static ulong Compute(ulong a, ulong b) => a + b;
    }

    private struct OpSub : IAluOp
    {
        public static bool Writes => true;

        public static byte Lazy => LazySub;

        public static ulong Compute(ulong a, ulong b) => a - b;
    }

    private struct OpCmp : IAluOp
    {
        public static bool Writes => false;

        public static byte Lazy => LazySub;

        public static ulong Compute(ulong a, ulong b) => a - b;
    }

    private struct OpAnd : IAluOp
    {
        public static bool Writes => true;

        public static byte Lazy => LazyLogic;

        public static ulong Compute(ulong a, ulong b) => a & b;
    }

    private struct OpTest : IAluOp
    {
        public static bool Writes => false;

        public static byte Lazy => LazyLogic;

        public static ulong Compute(ulong a, ulong b) => a & b;
    }

    private struct OpOr : IAluOp
    {
        public static bool Writes => true;

        public static byte Lazy => LazyLogic;

        public static ulong Compute(ulong a, ulong b) => a | b;
    }

    private struct OpXor : IAluOp
    {
        public static bool Writes => true;

        public static byte Lazy => LazyLogic;

        public static ulong Compute(ulong a, ulong b) => a ^ b;
    }

    private interface IShiftOp
    {
        static abstract byte Lazy { get; }
    }

    private struct OpShl : IShiftOp
    {
        public static byte Lazy => LazyShl;
    }

    private struct OpShr : IShiftOp
    {
        public static byte Lazy => LazyShr;
    }

    private struct OpSar : IShiftOp
    {
        public static byte Lazy => LazySar;
    }

    private interface IIncDec
    {
        static abstract bool Inc { get; }
    }

    private struct OpInc : IIncDec
    {
        public static bool Inc => true;
    }

    private struct OpDec : IIncDec
    {
        public static bool Inc => false;
    }

    /// <summary>A condition code as a type (Jcc handlers).</summary>
    private interface ICondition
    {
        static abstract byte Code { get; }
    }

    private struct CcO : ICondition { public static byte Code => (byte)ConditionCode.o; }
    private struct CcNo : ICondition { public static byte Code => (byte)ConditionCode.no; }
    private struct CcB : ICondition { public static byte Code => (byte)ConditionCode.b; }
    private struct CcAe : ICondition { public static byte Code => (byte)ConditionCode.ae; }
    private struct CcE : ICondition { public static byte Code => (byte)ConditionCode.e; }
    private struct CcNe : ICondition { public static byte Code => (byte)ConditionCode.ne; }
    private struct CcBe : ICondition { public static byte Code => (byte)ConditionCode.be; }
    private struct CcA : ICondition { public static byte Code => (byte)ConditionCode.a; }
    private struct CcS : ICondition { public static byte Code => (byte)ConditionCode.s; }
    private struct CcNs : ICondition { public static byte Code => (byte)ConditionCode.ns; }
    private struct CcP : ICondition { public static byte Code => (byte)ConditionCode.p; }
    private struct CcNp : ICondition { public static byte Code => (byte)ConditionCode.np; }
    private struct CcL : ICondition { public static byte Code => (byte)ConditionCode.l; }
    private struct CcGe : ICondition { public static byte Code => (byte)ConditionCode.ge; }
    private struct CcLe : ICondition { public static byte Code => (byte)ConditionCode.le; }
    private struct CcG : ICondition { public static byte Code => (byte)ConditionCode.g; }
}
