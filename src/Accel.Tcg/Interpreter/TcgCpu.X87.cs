using Hypervisor.Accel.Tcg.Fpu;
using Hypervisor.Accel.Tcg.State;
using Iced.Intel;
using static Hypervisor.Accel.Tcg.Alu.Alu;

namespace Hypervisor.Accel.Tcg.Interpreter;

// The first x87 slice over the Fpu semantic library: loads, stores, the arithmetic families, comparisons, FXCH, FCHS,
// FABS, FSQRT, FRNDINT, integer stores and the control words. Not yet: constants (FLD1...), transcendentals,
// FSAVE/FSTENV, and the last instruction/data pointers and opcode (FIP/FDP/FOP stay as last loaded).
internal sealed partial class TcgCpu
{
    /// <summary>Executes a wired x87 instruction; false when <paramref name="ins"/> is not one this file implements.</summary>
    private bool ExecX87(ref Instruction ins)
    {
        switch (ins.Mnemonic)
        {
            case Mnemonic.Fninit:
                X87Available(waiting: false);
                S.X87.Init();
                return true;
            case Mnemonic.Finit:
                X87Available(waiting: true);
                S.X87.Init();
                return true;
            case Mnemonic.Fnstsw:
            case Mnemonic.Fstsw:
                X87Available(waiting: ins.Mnemonic == Mnemonic.Fstsw);
                if (ins.Op0Kind == OpKind.Register)
                {
                    SetReg(Register.AX, S.X87.Fsw);
                }
                else
                {
                    WriteMem(SegIndex(ins.MemorySegment), EffectiveAddress(ref ins), 2, S.X87.Fsw);
                }

                return true;
            case Mnemonic.Fnstcw:
            case Mnemonic.Fstcw:
                X87Available(waiting: ins.Mnemonic == Mnemonic.Fstcw);
                WriteMem(SegIndex(ins.MemorySegment), EffectiveAddress(ref ins), 2, S.X87.Fcw);
                return true;
            case Mnemonic.Fldcw:
            {
                X87Available(waiting: true);
                ushort v = (ushort)ReadMem(SegIndex(ins.MemorySegment), EffectiveAddress(ref ins), 2);
                S.X87.LoadControlWord(v);
                return true;
            }

            case Mnemonic.Fld:
                X87Available(waiting: true);
                X87Load(ref ins);
                return true;
            case Mnemonic.Fild:
            {
                X87Available(waiting: true);
                int size = ins.MemorySize.GetSize();
                long v = SignExtend(ReadMem(SegIndex(ins.MemorySegment), EffectiveAddress(ref ins), size), size * 8);
                X87Instructions.Load(ref S.X87, X87Arithmetic.FromInt64(v));
                return true;
            }

            case Mnemonic.Fst:
            case Mnemonic.Fstp:
                X87Available(waiting: true);
                X87Store(ref ins, ins.Mnemonic == Mnemonic.Fstp);
                return true;

            case Mnemonic.Fadd: X87Arith(ref ins, X87ArithmeticOp.Add, false); return true;
            case Mnemonic.Faddp: X87Arith(ref ins, X87ArithmeticOp.Add, true); return true;
            case Mnemonic.Fiadd: X87Arith(ref ins, X87ArithmeticOp.Add, false); return true;
            case Mnemonic.Fsub: X87Arith(ref ins, X87ArithmeticOp.Sub, false); return true;
            case Mnemonic.Fsubp: X87Arith(ref ins, X87ArithmeticOp.Sub, true); return true;
            case Mnemonic.Fisub: X87Arith(ref ins, X87ArithmeticOp.Sub, false); return true;
            case Mnemonic.Fsubr: X87Arith(ref ins, X87ArithmeticOp.SubReverse, false); return true;
            case Mnemonic.Fsubrp: X87Arith(ref ins, X87ArithmeticOp.SubReverse, true); return true;
            case Mnemonic.Fisubr: X87Arith(ref ins, X87ArithmeticOp.SubReverse, false); return true;
            case Mnemonic.Fmul: X87Arith(ref ins, X87ArithmeticOp.Mul, false); return true;
            case Mnemonic.Fmulp: X87Arith(ref ins, X87ArithmeticOp.Mul, true); return true;
            case Mnemonic.Fimul: X87Arith(ref ins, X87ArithmeticOp.Mul, false); return true;
            case Mnemonic.Fdiv: X87Arith(ref ins, X87ArithmeticOp.Div, false); return true;
            case Mnemonic.Fdivp: X87Arith(ref ins, X87ArithmeticOp.Div, true); return true;
            case Mnemonic.Fidiv: X87Arith(ref ins, X87ArithmeticOp.Div, false); return true;
            case Mnemonic.Fdivr: X87Arith(ref ins, X87ArithmeticOp.DivReverse, false); return true;
            case Mnemonic.Fdivrp: X87Arith(ref ins, X87ArithmeticOp.DivReverse, true); return true;
            case Mnemonic.Fidivr: X87Arith(ref ins, X87ArithmeticOp.DivReverse, false); return true;

            case Mnemonic.Fcomi:
            case Mnemonic.Fcomip:
            case Mnemonic.Fucomi:
            case Mnemonic.Fucomip:
            {
                X87Available(waiting: true);
                bool quiet = ins.Mnemonic is Mnemonic.Fucomi or Mnemonic.Fucomip;
                int pops = ins.Mnemonic is Mnemonic.Fcomip or Mnemonic.Fucomip ? 1 : 0;
                if (X87Instructions.Compare(ref S.X87, null, ins.Op1Register - Register.ST0, quiet, true, pops, out uint bits))
                {
                    // SDM Vol. 2, FCOMI: ZF PF CF from the comparison, OF SF AF cleared.
                    S.Rflags = (S.Rflags & ~Fl.Status) | bits;
                }

                return true;
            }

            case Mnemonic.Fcom:
            case Mnemonic.Fcomp:
            case Mnemonic.Fucom:
            case Mnemonic.Fucomp:
            case Mnemonic.Fcompp:
            case Mnemonic.Fucompp:
                X87Available(waiting: true);
                X87CompareConditionCodes(ref ins);
                return true;
            case Mnemonic.Fxch:
                X87Available(waiting: true);
                X87Instructions.Exchange(ref S.X87, ins.Op1Register - Register.ST0);
                return true;
            case Mnemonic.Fchs:
            case Mnemonic.Fabs:
                X87Available(waiting: true);
                X87Instructions.SignOp(ref S.X87, abs: ins.Mnemonic == Mnemonic.Fabs);
                return true;
            case Mnemonic.Fsqrt:
            case Mnemonic.Frndint:
                X87Available(waiting: true);
                X87Instructions.Unary(ref S.X87, sqrt: ins.Mnemonic == Mnemonic.Fsqrt);
                return true;
            case Mnemonic.Fist:
            case Mnemonic.Fistp:
            case Mnemonic.Fisttp:
            {
                X87Available(waiting: true);
                int seg = SegIndex(ins.MemorySegment);
                ulong ea = EffectiveAddress(ref ins);
                int size = ins.MemorySize.GetSize();
                ProbeWrite(seg, ea, size);
                X87Instructions.StoreInteger(ref S.X87, size * 8, truncate: ins.Mnemonic == Mnemonic.Fisttp,
                    pop: ins.Mnemonic != Mnemonic.Fist, out long result, out bool write);
                if (write)
                {
                    WriteMem(seg, ea, size, (ulong)result);
                }

                return true;
            }

            default:
                return false;
        }
    }

    /// <summary>FCOM/FCOMP/FCOMPP/FUCOM/FUCOMP/FUCOMPP with ST(i), m32fp or m64fp: C3 C2 C0 from the comparison.</summary>
    private void X87CompareConditionCodes(ref Instruction ins)
    {
        bool quiet = ins.Mnemonic is Mnemonic.Fucom or Mnemonic.Fucomp or Mnemonic.Fucompp;
        int pops = ins.Mnemonic switch
        {
            Mnemonic.Fcompp or Mnemonic.Fucompp => 2,
            Mnemonic.Fcomp or Mnemonic.Fucomp => 1,
            _ => 0,
        };
        ExtendedFloat? operand = null;
        int src = 1;
        if (ins.OpCount > 0 && ins.Op0Kind == OpKind.Memory)
        {
            int seg = SegIndex(ins.MemorySegment);
            ulong ea = EffectiveAddress(ref ins);
            bool denormal;
            operand = ins.MemorySize == MemorySize.Float32
                ? X87Arithmetic.WidenSingle((uint)ReadMem(seg, ea, 4), out denormal)
                : X87Arithmetic.WidenDouble(ReadMem(seg, ea, 8), out denormal);
            // Widened exactly, a denormal single/double is a normal extended value, so the comparison cannot see it: DE
            // is raised here, unless ST(0) is empty or a NaN (then IE or underflow wins, as in X87Arithmetic.Compare).
            if (denormal && !S.X87.IsEmpty(0))
            {
                FloatParts st0 = S.X87.St(0).Unpack();
                if (!st0.IsNaN && st0.Class != FloatClass.Unsupported && S.X87.Raise(FloatExceptions.Denormal))
                {
                    return; // unmasked DE is a pre-computation exception: no comparison (SDM Vol. 1, 8.5.2)
                }
            }
        }
        else if (ins.OpCount > 1)
        {
            src = ins.Op1Register - Register.ST0;
        }
        else if (ins.OpCount == 1)
        {
            src = ins.Op0Register - Register.ST0;
        }

        X87Instructions.Compare(ref S.X87, operand, src, quiet, false, pops, out _);
    }

    /// <summary>
    /// x87 availability: #NM when CR0.EM or CR0.TS is set (SDM Vol. 3A, Table 2-2); a waiting instruction with an unmasked
    /// exception pending (FSW.ES) raises #MF when CR0.NE is set (SDM Vol. 1, 8.7). With CR0.NE clear the PC-style FERR#/IRQ 13
    /// path is not modelled and the instruction proceeds.
    /// </summary>
    private void X87Available(bool waiting)
    {
        if ((S.Cr0 & (Cr.EM | Cr.TS)) != 0)
        {
            throw new GuestFault(Vec.NM, 0, false);
        }

        if (waiting && (S.X87.Fsw & 0x80) != 0 && (S.Cr0 & Cr.NE) != 0)
        {
            throw new GuestFault(Vec.MF, 0, false);
        }
    }

    private void X87Load(ref Instruction ins)
    {
        if (ins.Op0Kind == OpKind.Register)
        {
            X87Instructions.LoadRegister(ref S.X87, ins.Op0Register - Register.ST0);
            return;
        }

        int seg = SegIndex(ins.MemorySegment);
        ulong ea = EffectiveAddress(ref ins);
        var flags = FloatExceptions.None;
        switch (ins.MemorySize)
        {
            case MemorySize.Float32:
                X87Instructions.LoadConverted(ref S.X87, X87Arithmetic.FromSingle((uint)ReadMem(seg, ea, 4), ref flags), flags);
                break;
            case MemorySize.Float64:
                X87Instructions.LoadConverted(ref S.X87, X87Arithmetic.FromDouble(ReadMem(seg, ea, 8), ref flags), flags);
                break;
            default:
            {
                ulong significand = ReadMem(seg, ea, 8);
                ushort signExponent = (ushort)ReadMem(seg, ea + 8, 2);
                X87Instructions.Load(ref S.X87, new ExtendedFloat(significand, signExponent));
                break;
            }
        }
    }

    private void X87Store(ref Instruction ins, bool pop)
    {
        if (ins.Op0Kind == OpKind.Register)
        {
            X87Instructions.StoreRegister(ref S.X87, ins.Op0Register - Register.ST0, pop);
            return;
        }

        int seg = SegIndex(ins.MemorySegment);
        ulong ea = EffectiveAddress(ref ins);
        int bits = ins.MemorySize switch { MemorySize.Float32 => 32, MemorySize.Float64 => 64, _ => 80 };
        // The store must not fault after the stack has been popped: check the destination first.
        ProbeWrite(seg, ea, bits / 8);
        X87Instructions.StoreMemory(ref S.X87, bits, pop, out ulong result, out ushort high16, out bool write);
        if (!write)
        {
            return;
        }

        if (bits == 80)
        {
            WriteMem(seg, ea, 8, result);
            WriteMem(seg, ea + 8, 2, high16);
        }
        else
        {
            WriteMem(seg, ea, bits / 8, result);
        }
    }

    private void X87Arith(ref Instruction ins, X87ArithmeticOp op, bool pop)
    {
        X87Available(waiting: true);
        if (ins.Op0Kind == OpKind.Register)
        {
            X87Instructions.Arithmetic(ref S.X87, op, ins.Op0Register - Register.ST0, ins.Op1Register - Register.ST0, pop);
            return;
        }

        int seg = SegIndex(ins.MemorySegment);
        ulong ea = EffectiveAddress(ref ins);
        ExtendedFloat operand;
        bool denormal = false;
        switch (ins.MemorySize)
        {
            case MemorySize.Float32:
                operand = X87Arithmetic.WidenSingle((uint)ReadMem(seg, ea, 4), out denormal);
                break;
            case MemorySize.Float64:
                operand = X87Arithmetic.WidenDouble(ReadMem(seg, ea, 8), out denormal);
                break;
            default:
            {
                int size = ins.MemorySize.GetSize();
                operand = X87Arithmetic.FromInt64(SignExtend(ReadMem(seg, ea, size), size * 8));
                break;
            }
        }

        X87Instructions.ArithmeticMemory(ref S.X87, op, operand, denormal);
    }
}
