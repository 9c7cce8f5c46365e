using Hypervisor.Accel.Tcg.Fpu;
using Hypervisor.Accel.Tcg.State;
using Iced.Intel;
using static Hypervisor.Accel.Tcg.Alu.Alu;

namespace Hypervisor.Accel.Tcg.Interpreter;

// The x87 over the Fpu semantic library: every x87 instruction of the Pentium Pro and later (loads, stores, constants,
// arithmetic, comparisons, FCMOVcc, transcendentals, BCD, stack and control instructions). Control instructions
// (FINIT, FCLEX, FLDCW, FSTCW, FSTSW, FSTENV, FLDENV, FSAVE, FRSTOR) live in TcgCpu.X87Environment.cs together with
// the last-instruction pointers (FIP/FCS/FOP/FDP/FDS) and #MF delivery.
internal sealed partial class TcgCpu
{
    /// <summary>Executes an x87 instruction; false when <paramref name="ins"/> is not an x87 instruction.</summary>
    private bool ExecX87(ref Instruction ins)
    {
        if (ExecX87Control(ref ins))
        {
            return true;
        }

        switch (ins.Mnemonic)
        {
            case Mnemonic.Fld:
                X87Begin(ref ins);
                X87Load(ref ins);
                return true;
            case Mnemonic.Fild:
            {
                X87Begin(ref ins);
                int size = ins.MemorySize.GetSize();
                long v = SignExtend(ReadMem(SegIndex(ins.MemorySegment), EffectiveAddress(ref ins), size), size * 8);
                X87Instructions.Load(ref S.X87, X87Arithmetic.FromInt64(v));
                return true;
            }

            case Mnemonic.Fbld:
            {
                X87Begin(ref ins);
                int seg = SegIndex(ins.MemorySegment);
                ulong ea = EffectiveAddress(ref ins);
                Span<byte> bcd = stackalloc byte[10];
                System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(bcd, ReadMem(seg, ea, 8));
                System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(bcd[8..], (ushort)ReadMem(seg, ea + 8, 2));
                X87Instructions.Load(ref S.X87, X87Arithmetic.FromPackedBcd(bcd));
                return true;
            }

            case Mnemonic.Fbstp:
                X87Begin(ref ins);
                X87StoreBcd(ref ins);
                return true;

            case Mnemonic.Fld1: X87Constant(ref ins, Fpu.X87Constant.One); return true;
            case Mnemonic.Fldz: X87Constant(ref ins, Fpu.X87Constant.Zero); return true;
            case Mnemonic.Fldpi: X87Constant(ref ins, Fpu.X87Constant.Pi); return true;
            case Mnemonic.Fldl2e: X87Constant(ref ins, Fpu.X87Constant.Log2E); return true;
            case Mnemonic.Fldl2t: X87Constant(ref ins, Fpu.X87Constant.Log2Ten); return true;
            case Mnemonic.Fldlg2: X87Constant(ref ins, Fpu.X87Constant.Log10Two); return true;
            case Mnemonic.Fldln2: X87Constant(ref ins, Fpu.X87Constant.LnTwo); return true;

            case Mnemonic.Fst:
            case Mnemonic.Fstp:
                X87Begin(ref ins);
                X87Store(ref ins, ins.Mnemonic == Mnemonic.Fstp);
                return true;
            case Mnemonic.Fstpnce:
                // D9 D8+i: FSTP ST(i) that does not check for an empty ST(0): then nothing is stored and nothing is
                // signalled, it only pops (observed on the host; the SDM lists the encoding as reserved).
                X87Begin(ref ins);
                if (!S.X87.IsEmpty(0))
                {
                    S.X87.SetSt(ins.Op0Register - Register.ST0, S.X87.St(0));
                }

                S.X87.SetC1(false);
                S.X87.Pop();
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
                X87Begin(ref ins);
                bool quiet = ins.Mnemonic is Mnemonic.Fucomi or Mnemonic.Fucomip;
                int pops = ins.Mnemonic is Mnemonic.Fcomip or Mnemonic.Fucomip ? 1 : 0;
                X87Instructions.Compare(ref S.X87, null, ins.Op1Register - Register.ST0, quiet, true, pops, out uint bits);
                // SDM Vol. 2, FCOMI: ZF PF CF from the comparison, OF SF AF cleared; also when an unmasked exception stops
                // the instruction (unordered for IE and stack underflow), as the host does.
                S.Rflags = (S.Rflags & ~Fl.Status) | bits;

                return true;
            }

            case Mnemonic.Fcom:
            case Mnemonic.Fcomp:
            case Mnemonic.Fucom:
            case Mnemonic.Fucomp:
            case Mnemonic.Fcompp:
            case Mnemonic.Fucompp:
                X87Begin(ref ins);
                X87CompareConditionCodes(ref ins);
                return true;
            case Mnemonic.Ficom:
            case Mnemonic.Ficomp:
            {
                X87Begin(ref ins);
                int size = ins.MemorySize.GetSize();
                long v = SignExtend(ReadMem(SegIndex(ins.MemorySegment), EffectiveAddress(ref ins), size), size * 8);
                X87Instructions.Compare(ref S.X87, X87Arithmetic.FromInt64(v), 0, false, false, ins.Mnemonic == Mnemonic.Ficomp ? 1 : 0, out _);
                return true;
            }

            case Mnemonic.Ftst:
                X87Begin(ref ins);
                X87Instructions.Test(ref S.X87);
                return true;
            case Mnemonic.Fxam:
                X87Begin(ref ins);
                X87Instructions.Examine(ref S.X87);
                return true;
            case Mnemonic.Fcmovb:
            case Mnemonic.Fcmove:
            case Mnemonic.Fcmovbe:
            case Mnemonic.Fcmovu:
            case Mnemonic.Fcmovnb:
            case Mnemonic.Fcmovne:
            case Mnemonic.Fcmovnbe:
            case Mnemonic.Fcmovnu:
            {
                X87Begin(ref ins);
                ulong f = S.Rflags;
                bool cf = (f & Fl.CF) != 0, zf = (f & Fl.ZF) != 0, pf = (f & Fl.PF) != 0;
                bool condition = ins.Mnemonic switch
                {
                    Mnemonic.Fcmovb => cf,
                    Mnemonic.Fcmove => zf,
                    Mnemonic.Fcmovbe => cf || zf,
                    Mnemonic.Fcmovu => pf,
                    Mnemonic.Fcmovnb => !cf,
                    Mnemonic.Fcmovne => !zf,
                    Mnemonic.Fcmovnbe => !cf && !zf,
                    _ => !pf,
                };
                X87Instructions.ConditionalMove(ref S.X87, ins.Op1Register - Register.ST0, condition);
                return true;
            }

            case Mnemonic.Fxch:
                X87Begin(ref ins);
                X87Instructions.Exchange(ref S.X87, ins.Op1Register - Register.ST0);
                return true;
            case Mnemonic.Ffree:
                X87Begin(ref ins);
                S.X87.Free(ins.Op0Register - Register.ST0);
                return true;
            case Mnemonic.Ffreep:
                X87Begin(ref ins);
                X87Instructions.FreeAndPop(ref S.X87, ins.Op0Register - Register.ST0);
                return true;
            case Mnemonic.Fincstp:
            case Mnemonic.Fdecstp:
                X87Begin(ref ins);
                S.X87.Rotate(ins.Mnemonic == Mnemonic.Fincstp ? 1 : -1);
                return true;
            case Mnemonic.Fnop:
                X87Begin(ref ins);
                return true;
            case Mnemonic.Fchs:
            case Mnemonic.Fabs:
                X87Begin(ref ins);
                X87Instructions.SignOp(ref S.X87, abs: ins.Mnemonic == Mnemonic.Fabs);
                return true;
            case Mnemonic.Fsqrt:
            case Mnemonic.Frndint:
                X87Begin(ref ins);
                X87Instructions.Unary(ref S.X87, sqrt: ins.Mnemonic == Mnemonic.Fsqrt);
                return true;
            case Mnemonic.Fscale:
                X87Begin(ref ins);
                X87Instructions.Scale(ref S.X87);
                return true;
            case Mnemonic.Fprem:
            case Mnemonic.Fprem1:
                X87Begin(ref ins);
                X87Instructions.PartialRemainder(ref S.X87, ieee: ins.Mnemonic == Mnemonic.Fprem1);
                return true;
            case Mnemonic.Fxtract:
                X87Begin(ref ins);
                X87Instructions.Extract(ref S.X87);
                return true;
            case Mnemonic.F2xm1:
                X87Begin(ref ins);
                X87Instructions.TwoToXMinusOne(ref S.X87);
                return true;
            case Mnemonic.Fyl2x:
                X87Begin(ref ins);
                X87Instructions.Binary(ref S.X87, X87Instructions.BinaryTranscendental.YLog2X);
                return true;
            case Mnemonic.Fyl2xp1:
                X87Begin(ref ins);
                X87Instructions.Binary(ref S.X87, X87Instructions.BinaryTranscendental.YLog2XPlusOne);
                return true;
            case Mnemonic.Fpatan:
                X87Begin(ref ins);
                X87Instructions.Binary(ref S.X87, X87Instructions.BinaryTranscendental.PartialArctangent);
                return true;
            case Mnemonic.Fsin:
            case Mnemonic.Fcos:
                X87Begin(ref ins);
                X87Instructions.SineOrCosine(ref S.X87, cos: ins.Mnemonic == Mnemonic.Fcos);
                return true;
            case Mnemonic.Fsincos:
                X87Begin(ref ins);
                X87Instructions.SineAndCosine(ref S.X87);
                return true;
            case Mnemonic.Fptan:
                X87Begin(ref ins);
                X87Instructions.PartialTangent(ref S.X87);
                return true;
            case Mnemonic.Fist:
            case Mnemonic.Fistp:
            case Mnemonic.Fisttp:
            {
                X87Begin(ref ins);
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

    private void X87Constant(ref Instruction ins, Fpu.X87Constant c)
    {
        X87Begin(ref ins);
        X87Instructions.LoadConstant(ref S.X87, c);
    }

    /// <summary>FBSTP m80bcd: rounds ST(0) per FCW.RC, stores 18 BCD digits and pops; an unmasked exception stores nothing.</summary>
    private void X87StoreBcd(ref Instruction ins)
    {
        int seg = SegIndex(ins.MemorySegment);
        ulong ea = EffectiveAddress(ref ins);
        ProbeWrite(seg, ea, 10);
        Span<byte> bcd = stackalloc byte[10];
        if (!X87Instructions.StorePackedBcd(ref S.X87, bcd))
        {
            return;
        }

        WriteMem(seg, ea, 8, System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(bcd));
        WriteMem(seg, ea + 8, 2, System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(bcd[8..]));
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
                    // Unmasked DE stops the instruction, but the host still reports the comparison in C3 C2 C0 (as for
                    // the register forms, see X87Instructions.Compare); only the pop is skipped.
                    pops = 0;
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
        X87Begin(ref ins);
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
