namespace Hypervisor.Accel.Tcg.Fpu;

/// <summary>The constants loaded by FLD1, FLDL2T, FLDL2E, FLDPI, FLDLG2, FLDLN2 and FLDZ.</summary>
internal enum X87Constant : byte
{
    One,
    Log2Ten,
    Log2E,
    Pi,
    Log10Two,
    LnTwo,
    Zero,
}

internal static partial class X87Arithmetic
{
    /// <summary>
    /// FLD1/FLDL2T/FLDL2E/FLDPI/FLDLG2/FLDLN2/FLDZ: the constant rounded to 64 bits under FCW.RC (SDM Vol. 1, 8.3.8);
    /// no exception is reported. The 128-bit significands are floor(constant * 2^(127 - e)), computed with exact integer
    /// series (Machin's formula for pi, sum 1/(k 2^k) for ln 2, 2 atanh(1/9) for ln 1.25), plus a sticky bit.
    /// </summary>
    public static ExtendedFloat Constant(X87Constant c, ushort fcw)
    {
        (int e, ulong hi, ulong lo) = c switch
        {
            X87Constant.One => (0, 0x8000_0000_0000_0000UL, 0UL),
            X87Constant.Zero => (0, 0UL, 0UL),
            X87Constant.Log2Ten => (1, 0xD49A_784B_CD1B_8AFEUL, 0x492B_F6FF_4DAF_DB4CUL),
            X87Constant.Log2E => (0, 0xB8AA_3B29_5C17_F0BBUL, 0xBE87_FED0_691D_3E88UL),
            X87Constant.Pi => (1, 0xC90F_DAA2_2168_C234UL, 0xC4C6_628B_80DC_1CD1UL),
            X87Constant.Log10Two => (-2, 0x9A20_9A84_FBCF_F798UL, 0x8F89_59AC_0B7C_9178UL),
            _ => (-1, 0xB172_17F7_D1CF_79ABUL, 0xC9E3_B398_03F2_F6AFUL),
        };
        if (hi == 0)
            return ExtendedFloat.PositiveZero;
        UInt128 sig = ((UInt128)hi << 64) | lo;
        if (c != X87Constant.One)
            sig |= 1; // irrational: the tail below bit 0 is non-zero
        var ignored = FloatExceptions.None;
        return ExtendedFloat.Pack(FloatCore.RoundPack(false, e, sig, FloatFormat.Extended, X87Control.Rounding(fcw), true, false, ref ignored, out _));
    }

    /// <summary>FXTRACT: returns (exponent, significand); the caller writes ST(0) = exponent then pushes the significand.
    /// A zero gives ZE with exponent -infinity and the signed zero as significand.</summary>
    public static (ExtendedFloat Exponent, ExtendedFloat Significand) Extract(ExtendedFloat a, ref FloatExceptions flags)
    {
        var p = a.Unpack();
        switch (p.Class)
        {
            case FloatClass.Unsupported:
                flags |= FloatExceptions.Invalid;
                return (ExtendedFloat.Indefinite, ExtendedFloat.Indefinite);
            case FloatClass.QuietNaN:
            case FloatClass.SignalingNaN:
                if (p.Class == FloatClass.SignalingNaN)
                    flags |= FloatExceptions.Invalid;
                var q = ExtendedFloat.Pack(p.Quieted());
                return (q, q);
            case FloatClass.Zero:
                flags |= FloatExceptions.ZeroDivide;
                return (ExtendedFloat.NegativeInfinity, a);
            case FloatClass.Infinity:
                return (ExtendedFloat.PositiveInfinity, a);
        }
        if (p.Denormal)
            flags |= FloatExceptions.Denormal;
        var sig = new ExtendedFloat(p.Significand, (ushort)((p.Sign ? 0x8000 : 0) | ExtendedFloat.Bias));
        return (FromInt64(p.Exponent), sig);
    }

    /// <summary>
    /// FSCALE: ST(0) * 2^trunc(ST(1)), rounded per FCW.RC at 64-bit precision (precision control does not apply) only if
    /// the result is tiny; overflow and underflow as for any arithmetic result (SDM Vol. 2A, FSCALE Table 3-37).
    /// </summary>
    public static ExtendedFloat Scale(ExtendedFloat a, ExtendedFloat b, ushort fcw, ref FloatExceptions flags, out bool c1)
    {
        c1 = false;
        var pa = a.Unpack();
        var pb = b.Unpack();
        if (TryPropagate(pa, pb, ref flags, out var nan))
            return nan;
        if (pb.Class == FloatClass.Infinity)
        {
            if ((pa.Class == FloatClass.Zero && !pb.Sign) || (pa.Class == FloatClass.Infinity && pb.Sign))
                return Invalid(ref flags);
            Denormals(pa, pb, ref flags);
            if (pa.Class is FloatClass.Zero or FloatClass.Infinity)
                return a;
            return pb.Sign ? ExtendedFloat.Pack(FloatParts.Zero(pa.Sign)) : ExtendedFloat.Pack(FloatParts.Infinity(pa.Sign));
        }
        Denormals(pa, pb, ref flags);
        if (pa.Class is FloatClass.Zero or FloatClass.Infinity)
            return a;
        // trunc(ST(1)), clamped far beyond any exponent that can still produce a finite non-zero result.
        long n = 0;
        if (pb.Class == FloatClass.Finite && pb.Exponent >= 0)
            n = pb.Exponent > 20 ? 1 << 20 : (long)(pb.Significand >> (63 - pb.Exponent));
        if (pb.Sign)
            n = -n;
        var fmt = FloatFormat.ExtendedWithPrecision(64, (fcw & 0x08) == 0, (fcw & 0x10) == 0);
        return ExtendedFloat.Pack(FloatCore.RoundPack(pa.Sign, (int)(pa.Exponent + n), (UInt128)pa.Significand << 64, fmt,
            X87Control.Rounding(fcw), X87Control.UnderflowMasked(fcw), false, ref flags, out c1));
    }

    /// <summary>
    /// FPREM (<paramref name="ieee"/> false: quotient truncated) and FPREM1 (quotient rounded to nearest even): the exact
    /// partial remainder. <paramref name="conditionCodes"/> gets C2 = 1 when the reduction is incomplete, otherwise
    /// C0, C3, C1 = quotient bits 2, 1, 0. When the exponent difference D is 64 or more the reduction is partial by
    /// 2^(D - N) with N = 32 + (D mod 32) (the SDM leaves N implementation-dependent between 32 and 63).
    /// </summary>
    public static ExtendedFloat Remainder(ExtendedFloat a, ExtendedFloat b, bool ieee, ref FloatExceptions flags, out ushort conditionCodes)
    {
        conditionCodes = 0;
        var pa = a.Unpack();
        var pb = b.Unpack();
        if (TryPropagate(pa, pb, ref flags, out var nan))
            return nan;
        if (pa.Class == FloatClass.Infinity || pb.Class == FloatClass.Zero)
            return Invalid(ref flags);
        Denormals(pa, pb, ref flags);
        if (pa.Class == FloatClass.Zero)
            return a;
        if (pb.Class == FloatClass.Infinity)
            return Canonical(pa);
        int d = pa.Exponent - pb.Exponent;
        if (d >= 64)
        {
            int nbits = 32 + (d % 32);
            int e = d - nbits;
            UInt128 num = (UInt128)pa.Significand << nbits;
            UInt128 r = num % pb.Significand;
            conditionCodes = X87State.C2;
            if (r == UInt128.Zero)
                return ExtendedFloat.Pack(FloatParts.Zero(pa.Sign));
            var ignored = FloatExceptions.None;
            return ExtendedFloat.Pack(FloatCore.NormalizeRoundPack(pa.Sign, r, pb.Exponent - 63 + e, FloatFormat.Extended, RoundingMode.NearestEven, true, false, ref ignored, out _));
        }
        UInt128 qv, rv, bv;
        if (d >= 0)
        {
            UInt128 num = (UInt128)pa.Significand << d;
            bv = pb.Significand;
            qv = num / bv;
            rv = num % bv;
        }
        else if (d == -1)
        {
            bv = (UInt128)pb.Significand << 1;
            qv = 0;
            rv = pa.Significand;
        }
        else
        {
            return Canonical(pa); // |a| < |b| / 2: quotient 0 for both forms
        }
        bool sign = pa.Sign;
        if (ieee)
        {
            UInt128 twice = rv << 1;
            if (twice > bv || (twice == bv && (qv & 1) != 0))
            {
                qv++;
                rv = bv - rv;
                sign = !sign;
            }
        }
        ulong q = (ulong)qv;
        conditionCodes = (ushort)(((q & 4) != 0 ? X87State.C0 : 0) | ((q & 2) != 0 ? X87State.C3 : 0) | ((q & 1) != 0 ? X87State.C1 : 0));
        int unitExp = d >= 0 ? pb.Exponent - 63 : pa.Exponent - 63; // exponent of one unit of rv
        if (rv == UInt128.Zero)
            return ExtendedFloat.Pack(FloatParts.Zero(pa.Sign));
        var fl = FloatExceptions.None;
        return ExtendedFloat.Pack(FloatCore.NormalizeRoundPack(sign, rv, unitExp, FloatFormat.Extended, RoundingMode.NearestEven, true, false, ref fl, out _));
    }

    // A finite operand passed through: re-encoded, so that a pseudo-denormal comes out normalized as on hardware.
    private static ExtendedFloat Canonical(in FloatParts p)
    {
        var ignored = FloatExceptions.None;
        return ExtendedFloat.Pack(FloatCore.RoundPack(p.Sign, p.Exponent, (UInt128)p.Significand << 64, FloatFormat.Extended,
            RoundingMode.NearestEven, true, false, ref ignored, out _));
    }

    /// <summary>FBLD: 18 packed BCD digits and a sign byte, exactly. Digits above 9 are undefined by the SDM; they are taken at face value.</summary>
    public static ExtendedFloat FromPackedBcd(ReadOnlySpan<byte> tenBytes)
    {
        long v = 0;
        for (int i = 8; i >= 0; i--)
            v = v * 100 + (tenBytes[i] >> 4) * 10 + (tenBytes[i] & 15);
        var r = FromInt64(v);
        return (tenBytes[9] & 0x80) != 0 ? r.Negate() : r;
    }

    /// <summary>
    /// FBSTP: rounds per FCW.RC to an integer and writes 18 BCD digits and the sign; NaN, infinity or a magnitude above
    /// 10^18 - 1 raise IE and store the packed BCD indefinite (FFFF C000 0000 0000 0000h). Returns false if invalid.
    /// </summary>
    public static bool ToPackedBcd(ExtendedFloat a, ushort fcw, Span<byte> tenBytes, ref FloatExceptions flags, out bool c1)
    {
        c1 = false;
        var p = a.Unpack();
        long v = 0;
        bool ok = p.Class is FloatClass.Zero or FloatClass.Finite;
        if (ok && p.Class == FloatClass.Finite)
        {
            var local = FloatExceptions.None;
            v = FloatToInteger(p, 64, X87Control.Rounding(fcw), ref local, out c1);
            ok = (local & FloatExceptions.Invalid) == 0 && v is > -1_000_000_000_000_000_000 and < 1_000_000_000_000_000_000;
            if (ok)
                flags |= local;
        }
        if (!ok)
        {
            flags |= FloatExceptions.Invalid;
            c1 = false;
            tenBytes.Clear();
            tenBytes[7] = 0xC0;
            tenBytes[8] = 0xFF;
            tenBytes[9] = 0xFF;
            return false;
        }
        ulong m = (ulong)Math.Abs(v);
        for (int i = 0; i < 9; i++)
        {
            tenBytes[i] = (byte)((m % 10) | ((m / 10 % 10) << 4));
            m /= 100;
        }
        tenBytes[9] = p.Sign ? (byte)0x80 : (byte)0;
        return true;
    }
}
