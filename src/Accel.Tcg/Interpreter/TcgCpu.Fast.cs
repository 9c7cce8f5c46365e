using System.Runtime.CompilerServices;
using Hypervisor.Accel.Tcg.Decoding;
using Hypervisor.Accel.Tcg.State;
using Iced.Intel;
using static Hypervisor.Accel.Tcg.Alu.Alu;

namespace Hypervisor.Accel.Tcg.Interpreter;

// The fast path: the common integer instruction forms, pre-decoded once per block into MicroOps (Decoding/MicroOp.cs)
// and executed from them. Everything else (and every form with a LOCK prefix, AH-CH-DH-BH, segment or control
// registers) is MicroKind.Generic and goes through Execute(ref Instruction), the full dispatcher. Both paths use the
// same ALU library, segmentation, TLB and fault rules, so they agree by construction; the differential and guest
// tests run through both.
internal sealed partial class TcgCpu
{
    /// <summary>Fills <paramref name="op"/> from a decoded instruction (block decode time, not per execution).</summary>
    internal static void PreDecode(ref Instruction ins, ref MicroOp op, ulong ipMask)
    {
        op = default;
        op.NextIp = ins.NextIP & ipMask;
        op.Kind = MicroKind.Generic;
        if (ins.HasLockPrefix || ins.HasRepPrefix || ins.HasRepnePrefix || ins.Encoding != EncodingKind.Legacy)
        {
            return;
        }

        op.Kind = Classify(ref ins, ref op);
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

    private const byte LazyNone = 0, LazyAdd = 1, LazySub = 2, LazyLogic = 3, LazyInc = 4, LazyDec = 5;

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
            default:
                f = (f & ~Fl.CF) | _lazyB;
                Dec(_lazyA, bits, ref f);
                break;
        }

        S.Rflags = f;
        _lazyOp = LazyNone;
    }

    /// <summary>CF as the last flag-writing instruction left it (for INC/DEC, which keep it).</summary>
    private ulong CurrentCf()
    {
        switch (_lazyOp)
        {
            case LazyNone: return S.Rflags & Fl.CF;
            case LazySub: return _lazyA < _lazyB ? Fl.CF : 0;
            case LazyLogic: return 0;
            case LazyInc:
            case LazyDec: return _lazyB;
            default:
                MaterializeFlagsSlow();
                return S.Rflags & Fl.CF;
        }
    }

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

        MaterializeFlags();
        return Condition((ConditionCode)cc);
    }

    /// <summary>
    /// A binary ALU micro-op: records lazy flags for ADD/SUB/CMP/logic, computes ADC/SBB eagerly. Returns false when the
    /// result is not written (CMP, TEST).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool MicroAluLazy(byte sub, ulong a, ulong b, int bits, out ulong r)
    {
        ulong m = BitsMask(bits);
        a &= m;
        b &= m;
        switch ((MicroAlu)sub)
        {
            case MicroAlu.Add:
                r = (a + b) & m;
                SetLazy(LazyAdd, bits, a, b, r);
                return true;
            case MicroAlu.Sub:
                r = (a - b) & m;
                SetLazy(LazySub, bits, a, b, r);
                return true;
            case MicroAlu.Cmp:
                SetLazy(LazySub, bits, a, b, 0);
                r = 0;
                return false;
            case MicroAlu.And:
                r = a & b;
                SetLazy(LazyLogic, bits, 0, 0, r);
                return true;
            case MicroAlu.Or:
                r = a | b;
                SetLazy(LazyLogic, bits, 0, 0, r);
                return true;
            case MicroAlu.Xor:
                r = a ^ b;
                SetLazy(LazyLogic, bits, 0, 0, r);
                return true;
            case MicroAlu.Test:
                SetLazy(LazyLogic, bits, 0, 0, a & b);
                r = 0;
                return false;
            default:
            {
                MaterializeFlags();
                ulong f = S.Rflags;
                bool write = MicroAluOp(sub, a, b, bits, ref f, out r);
                S.Rflags = f;
                return write;
            }
        }
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

    /// <summary>Executes one pre-decoded instruction; <see cref="MicroKind.Generic"/> runs <see cref="Execute"/>.</summary>
    private void ExecuteMicro(ref MicroOp op, ref Instruction ins)
    {
        int bits = op.Bits;
        switch (op.Kind)
        {
            case MicroKind.Nop:
                return;
            case MicroKind.MovRR:
                SetGprBits(op.R0, bits, Gpr(op.R1));
                return;
            case MicroKind.MovRI:
                SetGprBits(op.R0, bits, op.Imm);
                return;
            case MicroKind.MovRM:
                SetGprBits(op.R0, bits, ReadMem(op.Seg, MicroEa(ref op), bits >> 3));
                return;
            case MicroKind.MovMR:
                WriteMem(op.Seg, MicroEa(ref op), bits >> 3, Gpr(op.R1));
                return;
            case MicroKind.MovMI:
                WriteMem(op.Seg, MicroEa(ref op), bits >> 3, op.Imm);
                return;

            case MicroKind.AluRR:
                if (MicroAluLazy(op.Sub, Gpr(op.R0), Gpr(op.R1), bits, out ulong rr))
                {
                    SetGprBits(op.R0, bits, rr);
                }

                return;

            case MicroKind.AluRI:
                if (MicroAluLazy(op.Sub, Gpr(op.R0), op.Imm, bits, out ulong ri))
                {
                    SetGprBits(op.R0, bits, ri);
                }

                return;

            case MicroKind.AluRM:
            {
                ulong b = ReadMem(op.Seg, MicroEa(ref op), bits >> 3);
                if (MicroAluLazy(op.Sub, Gpr(op.R0), b, bits, out ulong r))
                {
                    SetGprBits(op.R0, bits, r);
                }

                return;
            }

            case MicroKind.AluMR:
            case MicroKind.AluMI:
            {
                ulong ea = MicroEa(ref op);
                ulong a = ReadMem(op.Seg, ea, bits >> 3);
                ulong b = op.Kind == MicroKind.AluMR ? Gpr(op.R1) : op.Imm;
                if ((MicroAlu)op.Sub is MicroAlu.Cmp or MicroAlu.Test)
                {
                    MicroAluLazy(op.Sub, a, b, bits, out _);
                    return;
                }

                // Flags change only once the write has succeeded (a faulting instruction leaves no partial state).
                ulong r;
                if ((MicroAlu)op.Sub is MicroAlu.Adc or MicroAlu.Sbb)
                {
                    MaterializeFlags();
                    ulong f = S.Rflags;
                    MicroAluOp(op.Sub, a, b, bits, ref f, out r);
                    WriteMem(op.Seg, ea, bits >> 3, r);
                    S.Rflags = f;
                    return;
                }

                ulong m = BitsMask(bits);
                r = (MicroAlu)op.Sub switch
                {
                    MicroAlu.Add => a + b,
                    MicroAlu.Sub => a - b,
                    MicroAlu.And => a & b,
                    MicroAlu.Or => a | b,
                    _ => a ^ b,
                } & m;
                WriteMem(op.Seg, ea, bits >> 3, r);
                MicroAluLazy(op.Sub, a, b, bits, out _);
                return;
            }

            case MicroKind.IncR:
            case MicroKind.DecR:
            {
                ulong cf = CurrentCf();
                ulong a = Gpr(op.R0) & BitsMask(bits);
                bool inc = op.Kind == MicroKind.IncR;
                SetGprBits(op.R0, bits, inc ? a + 1 : a - 1);
                SetLazy(inc ? LazyInc : LazyDec, bits, a, cf, 0);
                return;
            }

            case MicroKind.IncM:
            case MicroKind.DecM:
            {
                ulong ea = MicroEa(ref op);
                ulong a = ReadMem(op.Seg, ea, bits >> 3);
                bool inc = op.Kind == MicroKind.IncM;
                WriteMem(op.Seg, ea, bits >> 3, inc ? a + 1 : a - 1);
                ulong cf = CurrentCf();
                SetLazy(inc ? LazyInc : LazyDec, bits, a & BitsMask(bits), cf, 0);
                return;
            }

            case MicroKind.ShiftRI:
            case MicroKind.ShiftRCl:
            {
                MaterializeFlags();
                ulong count = op.Kind == MicroKind.ShiftRI ? op.Imm : Gpr(1) & 0xFF;
                ulong f = S.Rflags;
                ulong r = MicroShift(op.Sub, Gpr(op.R0), count, bits, ref f);
                SetGprBits(op.R0, bits, r);
                S.Rflags = f;
                return;
            }

            case MicroKind.Lea:
                SetGprBits(op.R0, bits, MicroEa(ref op));
                return;
            case MicroKind.MovzxRR:
                SetGprBits(op.R0, bits, Gpr(op.R1) & BitsMask(op.SrcBits));
                return;
            case MicroKind.MovzxRM:
                SetGprBits(op.R0, bits, ReadMem(op.Seg, MicroEa(ref op), op.SrcBits >> 3));
                return;
            case MicroKind.MovsxRR:
                SetGprBits(op.R0, bits, (ulong)SignExtend(Gpr(op.R1), op.SrcBits));
                return;
            case MicroKind.MovsxRM:
                SetGprBits(op.R0, bits, (ulong)SignExtend(ReadMem(op.Seg, MicroEa(ref op), op.SrcBits >> 3), op.SrcBits));
                return;

            case MicroKind.Jcc:
                if (MicroCondition(op.Sub))
                {
                    BranchNear(op.Imm);
                }

                return;
            case MicroKind.Jmp:
                BranchNear(op.Imm);
                return;
            case MicroKind.CallRel:
            {
                ulong ret = _nextRip;
                BranchNear(op.Imm);
                Push(ret, bits >> 3);
                return;
            }

            case MicroKind.Ret:
            {
                ulong rsp = S.Gpr[4];
                ulong target = PopFrom(ref rsp, bits >> 3);
                if (op.Imm != 0)
                {
                    ulong mask = StackMask;
                    rsp = (rsp & ~mask) | ((rsp + op.Imm) & mask);
                }

                BranchNear(target);
                S.Gpr[4] = rsp;
                return;
            }

            case MicroKind.PushR:
                Push(Gpr(op.R0) & BitsMask(bits), bits >> 3);
                return;
            case MicroKind.PushI:
                Push(op.Imm, bits >> 3);
                return;
            case MicroKind.PopR:
            {
                ulong rsp = S.Gpr[4];
                ulong value = PopFrom(ref rsp, bits >> 3);
                S.Gpr[4] = rsp;
                SetGprBits(op.R0, bits, value);
                return;
            }

            case MicroKind.Cmov:
                if (MicroCondition(op.Sub))
                {
                    SetGprBits(op.R0, bits, Gpr(op.R1));
                }
                else if (bits == 32)
                {
                    SetGprBits(op.R0, 32, Gpr(op.R0));
                }

                return;
            case MicroKind.SetccR:
                SetGprBits(op.R0, 8, MicroCondition(op.Sub) ? 1UL : 0UL);
                return;

            case MicroKind.ImulRR:
            case MicroKind.ImulRM:
            case MicroKind.ImulRRI:
            {
                ulong a, b;
                if (op.Kind == MicroKind.ImulRRI)
                {
                    a = Gpr(op.R1);
                    b = op.Imm;
                }
                else
                {
                    a = Gpr(op.R0);
                    b = op.Kind == MicroKind.ImulRR ? Gpr(op.R1) : ReadMem(op.Seg, MicroEa(ref op), bits >> 3);
                }

                MaterializeFlags();
                ulong f = S.Rflags;
                ulong r = Imul(a & BitsMask(bits), b & BitsMask(bits), bits, out _, ref f);
                SetGprBits(op.R0, bits, r);
                S.Rflags = f;
                return;
            }

            default:
                MaterializeFlags();
                Execute(ref ins);
                return;
        }
    }
}
