namespace Hypervisor.Accel.Tcg.Fpu;

/// <summary>Result of an x87 or SSE comparison.</summary>
internal enum FloatComparison : byte
{
    Greater,
    Less,
    Equal,
    Unordered,
}

/// <summary>
/// x87 arithmetic on <see cref="ExtendedFloat"/> values under a control word (FCW). Every method returns the masked
/// response (SDM Vol. 1, 4.9.1 and 8.5) and ORs the exceptions it detected into <c>flags</c>; an interpreter that finds
/// an unmasked exception in <c>flags &amp; ~FCW</c> raises it instead of storing (see <see cref="X87Control"/>).
/// <c>c1</c> is the status-word C1 "rounded up" indication (SDM Vol. 1, 8.1.3.3).
/// </summary>
internal static partial class X87Arithmetic
{
    public static ExtendedFloat Add(ExtendedFloat a, ExtendedFloat b, ushort fcw, ref FloatExceptions flags, out bool c1) =>
        AddCore(a.Unpack(), b.Unpack(), fcw, ref flags, out c1);

    public static ExtendedFloat Sub(ExtendedFloat a, ExtendedFloat b, ushort fcw, ref FloatExceptions flags, out bool c1)
    {
        var pb = b.Unpack();
        if (pb.Class is FloatClass.Zero or FloatClass.Finite or FloatClass.Infinity)
            pb.Sign = !pb.Sign;
        return AddCore(a.Unpack(), pb, fcw, ref flags, out c1);
    }

    private static ExtendedFloat AddCore(FloatParts pa, FloatParts pb, ushort fcw, ref FloatExceptions flags, out bool c1)
    {
        c1 = false;
        if (TryPropagate(pa, pb, ref flags, out var nan))
            return nan;
        var rc = X87Control.Rounding(fcw);
        if (pa.Class == FloatClass.Infinity || pb.Class == FloatClass.Infinity)
        {
            if (pa.Class == FloatClass.Infinity && pb.Class == FloatClass.Infinity && pa.Sign != pb.Sign)
                return Invalid(ref flags);
            Denormals(pa, pb, ref flags);
            return pa.Class == FloatClass.Infinity ? ExtendedFloat.Pack(pa) : ExtendedFloat.Pack(pb);
        }
        Denormals(pa, pb, ref flags);
        var fmt = X87Control.Format(fcw);
        bool um = X87Control.UnderflowMasked(fcw);
        if (pa.Class == FloatClass.Zero && pb.Class == FloatClass.Zero)
            return ExtendedFloat.Pack(FloatParts.Zero(pa.Sign == pb.Sign ? pa.Sign : rc == RoundingMode.Down));
        if (pa.Class == FloatClass.Zero || pb.Class == FloatClass.Zero)
        {
            var x = pa.Class == FloatClass.Zero ? pb : pa;
            return ExtendedFloat.Pack(FloatCore.RoundPack(x.Sign, x.Exponent, (UInt128)x.Significand << 64, fmt, rc, um, false, ref flags, out c1));
        }
        return ExtendedFloat.Pack(FloatCore.AddFinite(pa, pb, fmt, rc, um, false, ref flags, out c1));
    }

    public static ExtendedFloat Mul(ExtendedFloat a, ExtendedFloat b, ushort fcw, ref FloatExceptions flags, out bool c1)
    {
        c1 = false;
        var pa = a.Unpack();
        var pb = b.Unpack();
        if (TryPropagate(pa, pb, ref flags, out var nan))
            return nan;
        bool sign = pa.Sign ^ pb.Sign;
        if (pa.Class == FloatClass.Infinity || pb.Class == FloatClass.Infinity)
        {
            if (pa.Class == FloatClass.Zero || pb.Class == FloatClass.Zero)
                return Invalid(ref flags);
            Denormals(pa, pb, ref flags);
            return ExtendedFloat.Pack(FloatParts.Infinity(sign));
        }
        Denormals(pa, pb, ref flags);
        if (pa.Class == FloatClass.Zero || pb.Class == FloatClass.Zero)
            return ExtendedFloat.Pack(FloatParts.Zero(sign));
        return ExtendedFloat.Pack(FloatCore.MulFinite(pa, pb, X87Control.Format(fcw), X87Control.Rounding(fcw),
            X87Control.UnderflowMasked(fcw), false, ref flags, out c1));
    }

    /// <summary>a / b.</summary>
    public static ExtendedFloat Div(ExtendedFloat a, ExtendedFloat b, ushort fcw, ref FloatExceptions flags, out bool c1)
    {
        c1 = false;
        var pa = a.Unpack();
        var pb = b.Unpack();
        if (TryPropagate(pa, pb, ref flags, out var nan))
            return nan;
        bool sign = pa.Sign ^ pb.Sign;
        if (pa.Class == FloatClass.Infinity)
        {
            if (pb.Class == FloatClass.Infinity)
                return Invalid(ref flags);
            Denormals(pa, pb, ref flags);
            return ExtendedFloat.Pack(FloatParts.Infinity(sign));
        }
        if (pb.Class == FloatClass.Infinity)
        {
            Denormals(pa, pb, ref flags);
            return ExtendedFloat.Pack(FloatParts.Zero(sign));
        }
        if (pb.Class == FloatClass.Zero)
        {
            if (pa.Class == FloatClass.Zero)
                return Invalid(ref flags);
            flags |= FloatExceptions.ZeroDivide;
            return ExtendedFloat.Pack(FloatParts.Infinity(sign));
        }
        Denormals(pa, pb, ref flags);
        if (pa.Class == FloatClass.Zero)
            return ExtendedFloat.Pack(FloatParts.Zero(sign));
        return ExtendedFloat.Pack(FloatCore.DivFinite(pa, pb, X87Control.Format(fcw), X87Control.Rounding(fcw),
            X87Control.UnderflowMasked(fcw), false, ref flags, out c1));
    }

    public static ExtendedFloat Sqrt(ExtendedFloat a, ushort fcw, ref FloatExceptions flags, out bool c1)
    {
        c1 = false;
        var pa = a.Unpack();
        if (pa.Class == FloatClass.Unsupported)
            return Invalid(ref flags);
        if (pa.IsNaN)
        {
            if (pa.Class == FloatClass.SignalingNaN)
                flags |= FloatExceptions.Invalid;
            return ExtendedFloat.Pack(pa.Quieted());
        }
        if (pa.Class == FloatClass.Zero)
            return a;
        if (pa.Sign)
            return Invalid(ref flags);
        if (pa.Class == FloatClass.Infinity)
            return a;
        if (pa.Denormal)
            flags |= FloatExceptions.Denormal;
        return ExtendedFloat.Pack(FloatCore.SqrtFinite(pa, X87Control.Format(fcw), X87Control.Rounding(fcw),
            X87Control.UnderflowMasked(fcw), false, ref flags, out c1));
    }

    /// <summary>
    /// FCOM/FUCOM/FCOMI/FUCOMI/FTST (with b = +0): unordered compares raise IE on any NaN unless <paramref name="quiet"/>,
    /// in which case only SNaNs do. Unsupported encodings are always invalid.
    /// </summary>
    public static FloatComparison Compare(ExtendedFloat a, ExtendedFloat b, bool quiet, ref FloatExceptions flags)
    {
        var pa = a.Unpack();
        var pb = b.Unpack();
        if (pa.Class == FloatClass.Unsupported || pb.Class == FloatClass.Unsupported)
        {
            flags |= FloatExceptions.Invalid;
            return FloatComparison.Unordered;
        }
        if (pa.IsNaN || pb.IsNaN)
        {
            if (!quiet || pa.Class == FloatClass.SignalingNaN || pb.Class == FloatClass.SignalingNaN)
                flags |= FloatExceptions.Invalid;
            return FloatComparison.Unordered;
        }
        Denormals(pa, pb, ref flags);
        int c = FloatCore.CompareOrdered(pa, pb);
        return c < 0 ? FloatComparison.Less : c > 0 ? FloatComparison.Greater : FloatComparison.Equal;
    }

    /// <summary>The FSW condition bits C3 (bit 14), C2 (bit 10) and C0 (bit 8) that FCOM sets (SDM Vol. 2A, FCOM Table 3-21).</summary>
    public static ushort ConditionCodes(FloatComparison c) => c switch
    {
        FloatComparison.Greater => 0,
        FloatComparison.Less => 0x0100,
        FloatComparison.Equal => 0x4000,
        _ => 0x4500,
    };

    /// <summary>ZF (bit 6), PF (bit 2) and CF (bit 0) as FCOMI/FUCOMI/COMISS/UCOMISS set them; OF, SF and AF are cleared.</summary>
    public static uint EflagsBits(FloatComparison c) => c switch
    {
        FloatComparison.Greater => 0,
        FloatComparison.Less => 0x01,
        FloatComparison.Equal => 0x40,
        _ => 0x45,
    };

    /// <summary>
    /// FXAM class bits C3 C2 C0 for a non-empty register: unsupported 000, NaN 001, normal 010, infinity 011, zero 100,
    /// denormal (and pseudo-denormal) 110.
    /// </summary>
    public static ushort ExamineClass(ExtendedFloat v)
    {
        const ushort c0 = 0x0100, c2 = 0x0400, c3 = 0x4000;
        int e = v.BiasedExponent;
        ulong m = v.Significand;
        if (e == 0x7FFF)
        {
            if ((m >> 63) == 0)
                return 0;
            return (m << 1) == 0 ? (ushort)(c2 | c0) : c0;
        }
        if (e == 0)
            return m == 0 ? c3 : (ushort)(c3 | c2);
        return (m >> 63) != 0 ? c2 : (ushort)0;
    }

    /// <summary>FILD: every 16/32/64-bit integer is exact in extended precision.</summary>
    public static ExtendedFloat FromInt64(long value)
    {
        if (value == 0)
            return ExtendedFloat.PositiveZero;
        bool sign = value < 0;
        ulong mag = sign ? (ulong)-value : (ulong)value;
        int lz = System.Numerics.BitOperations.LeadingZeroCount(mag);
        return new ExtendedFloat(mag << lz, (ushort)((sign ? 0x8000 : 0) | (ExtendedFloat.Bias + 63 - lz)));
    }

    /// <summary>
    /// FIST/FISTP (<paramref name="truncate"/> false, rounding per FCW.RC) and FISTTP (truncate): rounds to an integer of
    /// <paramref name="bits"/> (16, 32 or 64). NaN, infinity or out of range: IE and the integer indefinite (only the top bit set).
    /// </summary>
    public static long ToInteger(ExtendedFloat a, int bits, ushort fcw, bool truncate, ref FloatExceptions flags, out bool c1)
    {
        var rc = truncate ? RoundingMode.TowardZero : X87Control.Rounding(fcw);
        return FloatToInteger(a.Unpack(), bits, rc, ref flags, out c1);
    }

    /// <summary>Shared by x87 and SSE: rounds a value to a signed integer of the given width, with the integer indefinite on invalid.</summary>
    public static long FloatToInteger(in FloatParts pa, int bits, RoundingMode rc, ref FloatExceptions flags, out bool c1)
    {
        c1 = false;
        long indefinite = bits == 64 ? long.MinValue : -(1L << (bits - 1));
        if (pa.Class is FloatClass.Unsupported or FloatClass.QuietNaN or FloatClass.SignalingNaN or FloatClass.Infinity)
        {
            flags |= FloatExceptions.Invalid;
            return indefinite;
        }
        if (pa.Class == FloatClass.Zero)
            return 0;
        // value = sig * 2^(e - 63): integer part = sig >> (63 - e)
        int drop = 63 - pa.Exponent;
        if (drop < -1)
        {
            flags |= FloatExceptions.Invalid;
            return indefinite;
        }
        UInt128 n = FloatCore.RoundInteger(pa.Significand, drop, pa.Sign, rc, out bool inexact, out bool up);
        UInt128 limit = pa.Sign ? (UInt128.One << (bits - 1)) : (UInt128.One << (bits - 1)) - 1;
        if (n > limit)
        {
            flags |= FloatExceptions.Invalid;
            return indefinite;
        }
        // No DE: FIST and CVTSS2SI list only #IA/#P (SDM Vol. 2A), and the host agrees.
        if (inexact)
            flags |= FloatExceptions.Precision;
        c1 = up;
        long v = (long)(ulong)n;
        return pa.Sign ? -v : v;
    }

    /// <summary>
    /// A binary32 memory operand of an arithmetic instruction (FADD m32fp ...): widened exactly, an SNaN kept signalling
    /// so that the operation applies the NaN rules; <paramref name="denormal"/> reports a denormal source (DE).
    /// </summary>
    public static ExtendedFloat WidenSingle(uint bits, out bool denormal)
    {
        var p = FloatCodec.UnpackSingle(bits);
        denormal = p.Denormal;
        return ExtendedFloat.Pack(p);
    }

    /// <summary>A binary64 memory operand, widened exactly (see <see cref="WidenSingle"/>).</summary>
    public static ExtendedFloat WidenDouble(ulong bits, out bool denormal)
    {
        var p = FloatCodec.UnpackDouble(bits);
        denormal = p.Denormal;
        return ExtendedFloat.Pack(p);
    }

    /// <summary>FLD m32fp: exact; DE for a denormal source, IE and quieting for an SNaN.</summary>
    public static ExtendedFloat FromSingle(uint bits, ref FloatExceptions flags) => FromParts(FloatCodec.UnpackSingle(bits), ref flags);

    /// <summary>FLD m64fp: exact; DE for a denormal source, IE and quieting for an SNaN.</summary>
    public static ExtendedFloat FromDouble(ulong bits, ref FloatExceptions flags) => FromParts(FloatCodec.UnpackDouble(bits), ref flags);

    private static ExtendedFloat FromParts(FloatParts p, ref FloatExceptions flags)
    {
        if (p.Class == FloatClass.SignalingNaN)
        {
            flags |= FloatExceptions.Invalid;
            p = p.Quieted();
        }
        if (p.Denormal)
            flags |= FloatExceptions.Denormal;
        return ExtendedFloat.Pack(p);
    }

    /// <summary>FST/FSTP m32fp: rounds per FCW.RC to binary32 with its own exponent range.</summary>
    public static uint ToSingle(ExtendedFloat a, ushort fcw, ref FloatExceptions flags, out bool c1)
    {
        var r = Narrow(a, FloatFormat.Single, fcw, ref flags, out c1);
        return FloatCodec.PackSingle(r);
    }

    /// <summary>FST/FSTP m64fp: rounds per FCW.RC to binary64 with its own exponent range.</summary>
    public static ulong ToDouble(ExtendedFloat a, ushort fcw, ref FloatExceptions flags, out bool c1)
    {
        var r = Narrow(a, FloatFormat.Double, fcw, ref flags, out c1);
        return FloatCodec.PackDouble(r);
    }

    private static FloatParts Narrow(ExtendedFloat a, in FloatFormat fmt, ushort fcw, ref FloatExceptions flags, out bool c1)
    {
        c1 = false;
        var p = a.Unpack();
        switch (p.Class)
        {
            case FloatClass.Unsupported:
                flags |= FloatExceptions.Invalid;
                return FloatParts.DefaultNaN;
            case FloatClass.SignalingNaN:
                flags |= FloatExceptions.Invalid;
                return p.Quieted();
            case FloatClass.QuietNaN:
            case FloatClass.Zero:
            case FloatClass.Infinity:
                return p;
        }
        // No DE for a denormal source: "the denormal exception (#D) is not generated" (SDM Vol. 2A, FST/FSTP).
        return FloatCore.RoundPack(p.Sign, p.Exponent, (UInt128)p.Significand << 64, fmt, X87Control.Rounding(fcw),
            X87Control.UnderflowMasked(fcw), false, ref flags, out c1);
    }

    /// <summary>FRNDINT: rounds to an integral value per FCW.RC (PE if inexact; precision control does not apply).</summary>
    public static ExtendedFloat RoundToInteger(ExtendedFloat a, ushort fcw, ref FloatExceptions flags, out bool c1)
    {
        c1 = false;
        var p = a.Unpack();
        switch (p.Class)
        {
            case FloatClass.Unsupported:
                return Invalid(ref flags);
            case FloatClass.SignalingNaN:
                flags |= FloatExceptions.Invalid;
                return ExtendedFloat.Pack(p.Quieted());
            case FloatClass.QuietNaN:
            case FloatClass.Zero:
            case FloatClass.Infinity:
                return a;
        }
        if (p.Denormal)
            flags |= FloatExceptions.Denormal;
        if (p.Exponent >= 63)
            return a;
        var rc = X87Control.Rounding(fcw);
        UInt128 n = FloatCore.RoundInteger(p.Significand, 63 - p.Exponent, p.Sign, rc, out bool inexact, out c1);
        if (inexact)
            flags |= FloatExceptions.Precision;
        if (n == UInt128.Zero)
            return ExtendedFloat.Pack(FloatParts.Zero(p.Sign));
        int lz = (int)UInt128.LeadingZeroCount(n);
        var r = FloatParts.Finite(p.Sign, 127 - lz, (ulong)(n << (lz - 64)));
        return ExtendedFloat.Pack(r);
    }

    /// <summary>
    /// Two-operand NaN and unsupported-operand handling for the x87 (SDM Vol. 1, Table 4-7): an unsupported operand gives
    /// the indefinite; an SNaN raises IE; between two NaNs the larger significand wins (the positive one on a tie), and an
    /// SNaN paired with a QNaN yields the QNaN.
    /// </summary>
    private static bool TryPropagate(in FloatParts a, in FloatParts b, ref FloatExceptions flags, out ExtendedFloat result)
    {
        if (a.Class == FloatClass.Unsupported || b.Class == FloatClass.Unsupported)
        {
            result = Invalid(ref flags);
            return true;
        }
        if (!a.IsNaN && !b.IsNaN)
        {
            result = default;
            return false;
        }
        bool sa = a.Class == FloatClass.SignalingNaN, sb = b.Class == FloatClass.SignalingNaN;
        if (sa || sb)
            flags |= FloatExceptions.Invalid;
        FloatParts pick;
        if (a.IsNaN && b.IsNaN)
        {
            if (sa != sb)
                pick = sa ? b : a;
            else
            {
                ulong ma = a.Significand & 0x7FFF_FFFF_FFFF_FFFF, mb = b.Significand & 0x7FFF_FFFF_FFFF_FFFF;
                pick = ma > mb ? a : mb > ma ? b : (!a.Sign ? a : b);
            }
        }
        else
        {
            pick = a.IsNaN ? a : b;
        }
        result = ExtendedFloat.Pack(pick.Quieted());
        return true;
    }

    private static void Denormals(in FloatParts a, in FloatParts b, ref FloatExceptions flags)
    {
        if (a.Denormal || b.Denormal)
            flags |= FloatExceptions.Denormal;
    }

    private static ExtendedFloat Invalid(ref FloatExceptions flags)
    {
        flags |= FloatExceptions.Invalid;
        return ExtendedFloat.Indefinite;
    }
}

/// <summary>Fields of the x87 control word (SDM Vol. 1, 8.1.5).</summary>
internal static class X87Control
{
    /// <summary>The control word after FNINIT: all exceptions masked, 64-bit precision, round to nearest.</summary>
    public const ushort Default = 0x037F;

    public static RoundingMode Rounding(ushort fcw) => (RoundingMode)((fcw >> 10) & 3);

    /// <summary>FCW.PC: 00 = 24 bits, 10 = 53 bits, 11 = 64 bits; 01 is reserved and treated as 64 bits.</summary>
    public static int Precision(ushort fcw) => ((fcw >> 8) & 3) switch
    {
        0 => 24,
        2 => 53,
        _ => 64,
    };

    /// <summary>The destination format for a register result: FCW.PC, with the unmasked OE/UE wrapping responses.</summary>
    public static FloatFormat Format(ushort fcw) =>
        FloatFormat.ExtendedWithPrecision(Precision(fcw), wrapOverflow: (fcw & 0x08) == 0, wrapUnderflow: (fcw & 0x10) == 0);

    public static bool UnderflowMasked(ushort fcw) => (fcw & 0x10) != 0;

    /// <summary>The exceptions in <paramref name="flags"/> that FCW leaves unmasked.</summary>
    public static FloatExceptions Unmasked(ushort fcw, FloatExceptions flags) => flags & (FloatExceptions)(~fcw & 0x3F);
}
