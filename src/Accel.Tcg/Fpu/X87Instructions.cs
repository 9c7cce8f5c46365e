namespace Hypervisor.Accel.Tcg.Fpu;

/// <summary>The x87 two-operand arithmetic instructions.</summary>
internal enum X87ArithmeticOp : byte
{
    Add,
    Mul,
    /// <summary>FSUB: destination - source.</summary>
    Sub,
    /// <summary>FSUBR: source - destination.</summary>
    SubReverse,
    /// <summary>FDIV: destination / source.</summary>
    Div,
    /// <summary>FDIVR: source / destination.</summary>
    DivReverse,
}

/// <summary>
/// x87 instructions over <see cref="X87State"/>: stack checks, exception recording and the masked and unmasked
/// responses (SDM Vol. 1, 8.5). Each returns <c>false</c> when an unmasked exception stopped it (FSW.ES set); the
/// interpreter then delivers #MF at the next waiting instruction. Memory operands are passed in already read, and
/// memory results are returned through <c>out</c> with a flag telling whether to write them.
/// </summary>
internal static class X87Instructions
{
    private const FloatExceptions StackFault = (FloatExceptions)0x40;
    private const FloatExceptions PreComputation = FloatExceptions.Invalid | FloatExceptions.Denormal | FloatExceptions.ZeroDivide;

    /// <summary>FLD m80fp / FILD / FLD1 and the other constants (a value known exactly): push.</summary>
    public static bool Load(ref X87State s, ExtendedFloat value) => s.Push(value);

    /// <summary>FLD m32fp / m64fp after <see cref="X87Arithmetic.FromSingle"/> or <see cref="X87Arithmetic.FromDouble"/> produced the value and flags.</summary>
    public static bool LoadConverted(ref X87State s, ExtendedFloat value, FloatExceptions flags)
    {
        if (!s.IsEmpty(-1))
            return s.Push(value); // stack overflow takes priority
        if ((X87Control.Unmasked(s.Fcw, flags) & FloatExceptions.Invalid) != 0)
        {
            s.Raise(flags);
            return false;
        }
        // A denormal source with DE unmasked is still loaded (observed on the host): the exception is only reported.
        s.Push(value);
        return !s.Raise(flags);
    }

    /// <summary>
    /// FLD ST(i). An empty source is a stack underflow (C1=0) even if the new top is also occupied; masked, the indefinite
    /// is pushed over whatever is there (observed on the host, consistent with underflow being checked first).
    /// </summary>
    public static bool LoadRegister(ref X87State s, int i)
    {
        if (s.IsEmpty(i))
        {
            if (s.Underflow())
                return false;
            s.Top = (s.Top - 1) & 7;
            s.SetSt(0, ExtendedFloat.Indefinite);
            return true;
        }
        return s.Push(s.St(i));
    }

    /// <summary>
    /// Register forms: ST(<paramref name="dst"/>) = ST(dst) op ST(<paramref name="src"/>), then pop if <paramref name="pop"/>
    /// (FADD ST(0),ST(i); FADD ST(i),ST(0); FADDP ...).
    /// </summary>
    public static bool Arithmetic(ref X87State s, X87ArithmeticOp op, int dst, int src, bool pop)
    {
        if (s.IsEmpty(dst) || s.IsEmpty(src))
            return Underflowed(ref s, dst, pop);
        return Complete(ref s, op, dst, s.St(src), FloatExceptions.None, pop);
    }

    /// <summary>Memory forms (FADD m32fp/m64fp, FIADD m16int/m32int): ST(0) = ST(0) op operand, operand widened exactly.</summary>
    public static bool ArithmeticMemory(ref X87State s, X87ArithmeticOp op, ExtendedFloat operand, bool operandDenormal)
    {
        if (s.IsEmpty(0))
            return Underflowed(ref s, 0, false);
        return Complete(ref s, op, 0, operand, operandDenormal ? FloatExceptions.Denormal : FloatExceptions.None, false);
    }

    private static bool Complete(ref X87State s, X87ArithmeticOp op, int dst, ExtendedFloat other, FloatExceptions extra, bool pop)
    {
        var d = s.St(dst);
        var flags = FloatExceptions.None;
        bool c1;
        ExtendedFloat r = op switch
        {
            X87ArithmeticOp.Add => X87Arithmetic.Add(d, other, s.Fcw, ref flags, out c1),
            X87ArithmeticOp.Mul => X87Arithmetic.Mul(d, other, s.Fcw, ref flags, out c1),
            X87ArithmeticOp.Sub => X87Arithmetic.Sub(d, other, s.Fcw, ref flags, out c1),
            X87ArithmeticOp.SubReverse => X87Arithmetic.Sub(other, d, s.Fcw, ref flags, out c1),
            X87ArithmeticOp.Div => X87Arithmetic.Div(d, other, s.Fcw, ref flags, out c1),
            _ => X87Arithmetic.Div(other, d, s.Fcw, ref flags, out c1),
        };
        // A denormal memory operand (normal once widened) signals DE unless a NaN operand, IE or ZE takes priority
        // (SDM Vol. 1, 4.9.2; matches the host).
        if (extra != 0 && (flags & (FloatExceptions.Invalid | FloatExceptions.ZeroDivide)) == 0 && !d.Unpack().IsNaN && !other.Unpack().IsNaN)
            flags |= extra;
        return Finish(ref s, dst, r, flags, c1, pop);
    }

    /// <summary>
    /// Records the flags and writes the result: an unmasked IE, DE or ZE leaves the destination and the stack unchanged;
    /// an unmasked OE or UE still writes the (exponent-wrapped) result.
    /// </summary>
    private static bool Finish(ref X87State s, int dst, ExtendedFloat r, FloatExceptions flags, bool c1, bool pop)
    {
        if ((X87Control.Unmasked(s.Fcw, flags) & PreComputation) != 0)
        {
            // An unmasked pre-computation exception stops the instruction before the result is computed: no
            // post-computation flags, C1 cleared (observed on the host; SDM Vol. 1, 4.9.2 and 8.5).
            s.SetC1(false);
            s.Raise(flags & PreComputation);
            return false;
        }
        s.SetC1(c1);
        bool unmasked = s.Raise(flags);
        s.SetSt(dst, r);
        if (pop)
            s.Pop();
        return !unmasked;
    }

    private static bool Underflowed(ref X87State s, int dst, bool pop)
    {
        if (s.Underflow())
            return false;
        s.SetSt(dst, ExtendedFloat.Indefinite);
        if (pop)
            s.Pop();
        return true;
    }

    /// <summary>FSQRT and FRNDINT on ST(0).</summary>
    public static bool Unary(ref X87State s, bool sqrt)
    {
        if (s.IsEmpty(0))
            return Underflowed(ref s, 0, false);
        var flags = FloatExceptions.None;
        bool c1;
        var r = sqrt ? X87Arithmetic.Sqrt(s.St(0), s.Fcw, ref flags, out c1) : X87Arithmetic.RoundToInteger(s.St(0), s.Fcw, ref flags, out c1);
        return Finish(ref s, 0, r, flags, c1, false);
    }

    /// <summary>FCHS (<paramref name="abs"/> false) and FABS: no exceptions besides stack underflow; C1 cleared.</summary>
    public static bool SignOp(ref X87State s, bool abs)
    {
        if (s.IsEmpty(0))
            return Underflowed(ref s, 0, false);
        var v = s.St(0);
        s.SetSt(0, abs ? v.Abs() : v.Negate());
        s.SetC1(false);
        return true;
    }

    /// <summary>FXCH ST(i): an empty operand is first replaced by the indefinite when underflow is masked.</summary>
    public static bool Exchange(ref X87State s, int i)
    {
        if (s.IsEmpty(0) || s.IsEmpty(i))
        {
            if (s.Underflow())
                return false;
            if (s.IsEmpty(0))
                s.SetSt(0, ExtendedFloat.Indefinite);
            if (s.IsEmpty(i))
                s.SetSt(i, ExtendedFloat.Indefinite);
        }
        else
        {
            s.SetC1(false);
        }
        var a = s.St(0);
        s.SetSt(0, s.St(i));
        s.SetSt(i, a);
        return true;
    }

    /// <summary>
    /// FCOM/FCOMP/FCOMPP/FUCOM*/FICOM* (<paramref name="eflags"/> false: C3 C2 C0 set, C1 cleared) and FCOMI/FUCOMI/FCOMIP/FUCOMIP
    /// (<paramref name="eflags"/> true: ZF PF CF returned in <paramref name="eflagsBits"/>, condition codes other than C1 untouched).
    /// An empty operand is a stack underflow whose masked response is "unordered". Pops <paramref name="pops"/> times.
    /// </summary>
    public static bool Compare(ref X87State s, ExtendedFloat? memoryOperand, int src, bool quiet, bool eflags, int pops, out uint eflagsBits)
    {
        eflagsBits = 0;
        var flags = FloatExceptions.None;
        FloatComparison c;
        bool stopped;
        if (s.IsEmpty(0) || (memoryOperand is null && s.IsEmpty(src)))
        {
            stopped = s.Underflow();
            c = FloatComparison.Unordered;
        }
        else
        {
            c = X87Arithmetic.Compare(s.St(0), memoryOperand ?? s.St(src), quiet, ref flags);
            s.SetC1(false);
            stopped = s.Raise(flags) && (X87Control.Unmasked(s.Fcw, flags) & PreComputation) != 0;
        }
        // The result is reported even when an unmasked exception stops the instruction (observed on the host for
        // FTST, FICOM and FCOM: unordered for IE and stack underflow, the real order for DE); only the pops are skipped.
        if (eflags)
            eflagsBits = X87Arithmetic.EflagsBits(c);
        else
            s.SetConditionCodes((ushort)(X87Arithmetic.ConditionCodes(c) | (s.Fsw & X87State.C1)));
        if (stopped)
            return false;
        for (int i = 0; i < pops; i++)
            s.Pop();
        return true;
    }

    /// <summary>FST/FSTP ST(i).</summary>
    public static bool StoreRegister(ref X87State s, int i, bool pop)
    {
        if (s.IsEmpty(0))
            return Underflowed(ref s, i, pop);
        s.SetSt(i, s.St(0));
        s.SetC1(false);
        if (pop)
            s.Pop();
        return true;
    }

    /// <summary>
    /// FST/FSTP m32fp, m64fp, m80fp (<paramref name="bits"/> 32, 64, 80; for 80 the value is <c>result</c>'s low 64 bits plus
    /// <paramref name="high16"/>). Returns false with <paramref name="write"/> false when an unmasked exception suppresses the store.
    /// </summary>
    public static bool StoreMemory(ref X87State s, int bits, bool pop, out ulong result, out ushort high16, out bool write)
    {
        high16 = 0;
        write = false;
        result = 0;
        if (s.IsEmpty(0))
        {
            if (s.Underflow())
                return false;
            var ind = ExtendedFloat.Indefinite;
            result = bits switch { 32 => 0xFFC0_0000, 64 => 0xFFF8_0000_0000_0000, _ => ind.Significand };
            high16 = ind.SignExponent;
            write = true;
            if (pop)
                s.Pop();
            return true;
        }
        var v = s.St(0);
        var flags = FloatExceptions.None;
        bool c1 = false;
        if (bits == 80)
        {
            result = v.Significand;
            high16 = v.SignExponent;
        }
        else
        {
            result = bits == 32 ? X87Arithmetic.ToSingle(v, s.Fcw, ref flags, out c1) : X87Arithmetic.ToDouble(v, s.Fcw, ref flags, out c1);
        }
        s.SetC1(c1);
        return FinishStore(ref s, flags, pop, out write);
    }

    // A memory store is suppressed by an unmasked IE, DE, ZE, OE or UE; an unmasked PE alone still stores (and pops).
    private static bool FinishStore(ref X87State s, FloatExceptions flags, bool pop, out bool write)
    {
        var stopping = X87Control.Unmasked(s.Fcw, flags) & ~FloatExceptions.Precision;
        if (stopping != 0)
        {
            // Nothing is stored, so PE and the round-up C1 are not reported (observed on the host for OE and UE).
            s.SetC1(false);
            flags &= ~FloatExceptions.Precision;
        }
        bool unmasked = s.Raise(flags);
        write = stopping == 0;
        if (write && pop)
            s.Pop();
        return !unmasked;
    }

    /// <summary>FIST/FISTP/FISTTP m16/m32/m64int: a masked invalid stores the integer indefinite.</summary>
    public static bool StoreInteger(ref X87State s, int bits, bool truncate, bool pop, out long result, out bool write)
    {
        write = false;
        result = 0;
        if (s.IsEmpty(0))
        {
            if (s.Underflow())
                return false;
            result = bits == 64 ? long.MinValue : -(1L << (bits - 1));
            write = true;
            if (pop)
                s.Pop();
            return true;
        }
        var flags = FloatExceptions.None;
        result = X87Arithmetic.ToInteger(s.St(0), bits, s.Fcw, truncate, ref flags, out bool c1);
        s.SetC1(c1);
        return FinishStore(ref s, flags, pop, out write);
    }

    /// <summary>FXAM: C1 = sign; C3 C2 C0 = class (SDM Vol. 2A, FXAM Table 3-45). Works on an empty ST(0).</summary>
    public static void Examine(ref X87State s)
    {
        var v = s.St(0);
        ushort c = s.IsEmpty(0) ? (ushort)(X87State.C3 | X87State.C0) : X87Arithmetic.ExamineClass(v);
        if (v.Sign)
            c |= X87State.C1;
        s.SetConditionCodes(c);
    }

    /// <summary>FLD1, FLDZ, FLDPI, FLDL2E, FLDL2T, FLDLG2, FLDLN2: push the constant rounded per FCW.RC (SDM Vol. 1, 8.3.8).</summary>
    public static bool LoadConstant(ref X87State s, X87Constant c) => s.Push(X87Arithmetic.Constant(c, s.Fcw));

    /// <summary>FTST: compares ST(0) with +0.0 like FCOM (any NaN is invalid).</summary>
    public static bool Test(ref X87State s) => Compare(ref s, ExtendedFloat.PositiveZero, 0, false, false, 0, out _);

    /// <summary>
    /// FCMOVcc ST(0), ST(i): an empty operand is a stack underflow whose masked response writes the indefinite to ST(0)
    /// whatever the condition; otherwise ST(i) is copied when <paramref name="condition"/> holds. C1 is cleared.
    /// </summary>
    public static bool ConditionalMove(ref X87State s, int i, bool condition)
    {
        if (s.IsEmpty(0) || s.IsEmpty(i))
        {
            if (s.Underflow())
                return false;
            s.SetSt(0, ExtendedFloat.Indefinite);
            return true;
        }
        s.SetC1(false);
        if (condition)
            s.SetSt(0, s.St(i));
        return true;
    }

    /// <summary>FFREEP ST(i): tags ST(i) empty, then pops.</summary>
    public static void FreeAndPop(ref X87State s, int i)
    {
        s.Free(i);
        s.Pop();
    }

    /// <summary>FSCALE: ST(0) = ST(0) * 2^trunc(ST(1)).</summary>
    public static bool Scale(ref X87State s)
    {
        if (s.IsEmpty(0) || s.IsEmpty(1))
            return Underflowed(ref s, 0, false);
        var flags = FloatExceptions.None;
        var r = X87Arithmetic.Scale(s.St(0), s.St(1), s.Fcw, ref flags, out bool c1);
        var pa = s.St(0).Unpack();
        var pb = s.St(1).Unpack();
        if (pa.Class == FloatClass.Finite && pb.Class == FloatClass.Finite && (X87Control.Unmasked(s.Fcw, flags) & PreComputation) == 0)
        {
            // Unmasked OE/UE deliver the result with the exponent wrapped by 24576; when even that cannot represent it,
            // the host delivers the infinity (OE) or the zero (UE) of the result's sign, with PE (C1 = 1 for the infinity).
            long n = pb.Exponent < 0 ? 0 : pb.Exponent > 20 ? 1 << 20 : (long)(pb.Significand >> (63 - pb.Exponent));
            long e = pa.Exponent + (pb.Sign ? -n : n);
            if (e > 16383 + 0x6000 && (s.Fcw & 0x08) == 0)
            {
                r = ExtendedFloat.Pack(FloatParts.Infinity(pa.Sign));
                flags = (flags & FloatExceptions.Denormal) | FloatExceptions.Overflow | FloatExceptions.Precision;
                c1 = true;
            }
            else if (e < -16382 - 0x6000 && !X87Control.UnderflowMasked(s.Fcw))
            {
                r = ExtendedFloat.Pack(FloatParts.Zero(pa.Sign));
                flags = (flags & FloatExceptions.Denormal) | FloatExceptions.Underflow | FloatExceptions.Precision;
                c1 = false;
            }
        }
        return Finish(ref s, 0, r, flags, c1, false);
    }

    /// <summary>
    /// FPREM (<paramref name="ieee"/> false) and FPREM1: ST(0) = partial remainder of ST(0) / ST(1); C2 = incomplete,
    /// C0 C3 C1 = quotient bits 2 1 0 when complete (SDM Vol. 2A, FPREM). An invalid operation leaves C0-C3 cleared.
    /// </summary>
    public static bool PartialRemainder(ref X87State s, bool ieee)
    {
        if (s.IsEmpty(0) || s.IsEmpty(1))
        {
            s.SetConditionCodes(0);
            return Underflowed(ref s, 0, false);
        }
        var flags = FloatExceptions.None;
        var r = X87Arithmetic.Remainder(s.St(0), s.St(1), ieee, ref flags, out ushort cc);
        if ((X87Control.Unmasked(s.Fcw, flags) & PreComputation) != 0)
        {
            s.SetC1(false);
            s.Raise(flags & PreComputation);
            return false;
        }
        s.SetConditionCodes(cc);
        if (r.BiasedExponent == 0 && r.Significand != 0 && !X87Control.UnderflowMasked(s.Fcw))
        {
            // An exact but tiny remainder with UE unmasked: delivered normalized with the exponent biased by 24576, as
            // any unmasked underflow result (SDM Vol. 1, 8.5.5.2; observed on the host). Masked, it stays denormal with no UE.
            int lz = System.Numerics.BitOperations.LeadingZeroCount(r.Significand);
            r = new ExtendedFloat(r.Significand << lz, (ushort)((r.SignExponent & 0x8000) | (1 - lz + 0x6000)));
            flags |= FloatExceptions.Underflow;
        }
        bool unmasked = s.Raise(flags);
        s.SetSt(0, r);
        return !unmasked;
    }

    /// <summary>FXTRACT: ST(0) = exponent of ST(0), then pushes its significand.</summary>
    public static bool Extract(ref X87State s)
    {
        if (s.IsEmpty(0))
        {
            if (s.Underflow())
                return false;
            s.SetSt(0, ExtendedFloat.Indefinite);
            return s.Push(ExtendedFloat.Indefinite);
        }
        if (!s.IsEmpty(-1))
        {
            // Stack overflow: masked, both results are the indefinite (ST(0) then the pushed one).
            s.SetC1(true);
            if (s.Raise(FloatExceptions.Invalid | StackFault))
                return false;
            s.SetSt(0, ExtendedFloat.Indefinite);
            s.Top = (s.Top - 1) & 7;
            s.SetSt(0, ExtendedFloat.Indefinite);
            return true;
        }
        var flags = FloatExceptions.None;
        var (exponent, significand) = X87Arithmetic.Extract(s.St(0), ref flags);
        if ((X87Control.Unmasked(s.Fcw, flags) & PreComputation) != 0)
        {
            s.SetC1(false);
            s.Raise(flags & PreComputation);
            return false;
        }
        bool unmasked = s.Raise(flags);
        s.SetSt(0, exponent);
        s.Push(significand);
        return !unmasked;
    }

    /// <summary>The one-operand transcendental F2XM1: ST(0) = 2^ST(0) - 1.</summary>
    public static bool TwoToXMinusOne(ref X87State s)
    {
        if (s.IsEmpty(0))
            return Underflowed(ref s, 0, false);
        var flags = FloatExceptions.None;
        var r = X87Transcendental.TwoToXMinusOne(s.St(0), s.Fcw, ref flags, out bool c1);
        return Finish(ref s, 0, r, flags, c1, false);
    }

    /// <summary>The two-operand instructions that replace ST(1) and pop.</summary>
    public enum BinaryTranscendental : byte
    {
        /// <summary>FPATAN: ST(1) = atan(ST(1) / ST(0)).</summary>
        PartialArctangent,
        /// <summary>FYL2X: ST(1) = ST(1) * log2(ST(0)).</summary>
        YLog2X,
        /// <summary>FYL2XP1: ST(1) = ST(1) * log2(ST(0) + 1).</summary>
        YLog2XPlusOne,
    }

    /// <summary>FPATAN, FYL2X, FYL2XP1: ST(1) = f(ST(0), ST(1)), then pop.</summary>
    public static bool Binary(ref X87State s, BinaryTranscendental op)
    {
        if (s.IsEmpty(0) || s.IsEmpty(1))
            return Underflowed(ref s, 1, true);
        var flags = FloatExceptions.None;
        bool c1;
        var x = s.St(0);
        var y = s.St(1);
        var r = op switch
        {
            BinaryTranscendental.PartialArctangent => X87Transcendental.PartialArctangent(x, y, s.Fcw, ref flags, out c1),
            BinaryTranscendental.YLog2X => X87Transcendental.YLog2X(x, y, s.Fcw, ref flags, out c1),
            _ => X87Transcendental.YLog2XPlusOne(x, y, s.Fcw, ref flags, out c1),
        };
        return Finish(ref s, 1, r, flags, c1, true);
    }

    /// <summary>
    /// FSIN (<paramref name="cos"/> false) and FCOS: ST(0) replaced; |ST(0)| &gt;= 2^63 sets C2 and leaves it unchanged,
    /// otherwise C2 is cleared (SDM Vol. 2A, FSIN).
    /// </summary>
    public static bool SineOrCosine(ref X87State s, bool cos)
    {
        if (s.IsEmpty(0))
        {
            s.SetC2(false);
            return Underflowed(ref s, 0, false);
        }
        var sinFlags = FloatExceptions.None;
        var cosFlags = FloatExceptions.None;
        if (!X87Transcendental.SinCos(s.St(0), s.Fcw, ref sinFlags, ref cosFlags, out var sin, out var cosine, out bool sinC1, out bool cosC1))
        {
            s.SetC1(false);
            s.SetC2(true);
            return true;
        }
        s.SetC2(false);
        return Finish(ref s, 0, cos ? cosine : sin, cos ? cosFlags : sinFlags, cos ? cosC1 : sinC1, false);
    }

    /// <summary>FSINCOS: ST(0) = sin, then pushes cos; out of range (C2 = 1) changes nothing else.</summary>
    public static bool SineAndCosine(ref X87State s)
    {
        if (s.IsEmpty(0))
        {
            s.SetC2(false);
            if (s.Underflow())
                return false;
            s.SetSt(0, ExtendedFloat.Indefinite);
            return s.Push(ExtendedFloat.Indefinite);
        }
        if (!s.IsEmpty(-1))
            return PushOverflow(ref s);
        var sinFlags = FloatExceptions.None;
        var cosFlags = FloatExceptions.None;
        if (!X87Transcendental.SinCos(s.St(0), s.Fcw, ref sinFlags, ref cosFlags, out var sin, out var cos, out _, out bool cosC1))
        {
            s.SetC1(false);
            s.SetC2(true);
            return true;
        }
        s.SetC2(false);
        return TwoResults(ref s, sin, cos, sinFlags | cosFlags, cosC1);
    }

    /// <summary>FPTAN: ST(0) = tan, then pushes +1.0; out of range (C2 = 1) changes nothing else.</summary>
    public static bool PartialTangent(ref X87State s)
    {
        if (s.IsEmpty(0))
        {
            s.SetC2(false);
            if (s.Underflow())
                return false;
            s.SetSt(0, ExtendedFloat.Indefinite);
            return s.Push(ExtendedFloat.Indefinite);
        }
        if (!s.IsEmpty(-1))
            return PushOverflow(ref s);
        var flags = FloatExceptions.None;
        if (!X87Transcendental.Tan(s.St(0), s.Fcw, ref flags, out var tan, out bool c1))
        {
            s.SetC1(false);
            s.SetC2(true);
            return true;
        }
        s.SetC2(false);
        // A NaN operand (or an invalid one, giving the indefinite) is pushed again in place of +1.0 (observed on the host).
        return TwoResults(ref s, tan, tan.BiasedExponent == 0x7FFF && (tan.Significand << 1) != 0 ? tan : ExtendedFloat.One, flags, c1);
    }

    // ST(0) = first, push second (FSINCOS, FPTAN). An unmasked pre-computation exception changes nothing.
    private static bool TwoResults(ref X87State s, ExtendedFloat first, ExtendedFloat second, FloatExceptions flags, bool c1)
    {
        if ((X87Control.Unmasked(s.Fcw, flags) & PreComputation) != 0)
        {
            s.SetC1(false);
            s.Raise(flags & PreComputation);
            return false;
        }
        bool unmasked = s.Raise(flags);
        s.SetSt(0, first);
        s.Push(second);
        s.SetC1(c1);
        return !unmasked;
    }

    // A push-type instruction whose ST(7) is occupied: IE + SF with C1 = 1; masked, ST(0) and the new top get the indefinite.
    private static bool PushOverflow(ref X87State s)
    {
        s.SetC1(true);
        if (s.Raise(FloatExceptions.Invalid | StackFault))
            return false;
        s.SetSt(0, ExtendedFloat.Indefinite);
        s.Top = (s.Top - 1) & 7;
        s.SetSt(0, ExtendedFloat.Indefinite);
        return true;
    }

    /// <summary>
    /// FBSTP m80bcd into <paramref name="tenBytes"/>; returns whether to write them. An empty ST(0) or an invalid operand
    /// stores the packed BCD indefinite when IE is masked; then ST(0) is popped.
    /// </summary>
    public static bool StorePackedBcd(ref X87State s, Span<byte> tenBytes)
    {
        if (s.IsEmpty(0))
        {
            if (s.Underflow())
                return false;
            tenBytes.Clear();
            tenBytes[7] = 0xC0;
            tenBytes[8] = 0xFF;
            tenBytes[9] = 0xFF;
            s.Pop();
            return true;
        }
        var flags = FloatExceptions.None;
        X87Arithmetic.ToPackedBcd(s.St(0), s.Fcw, tenBytes, ref flags, out bool c1);
        s.SetC1(c1);
        FinishStore(ref s, flags, true, out bool write);
        return write;
    }
}
