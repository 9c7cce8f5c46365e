using System.Numerics;

namespace Hypervisor.Accel.Tcg.Fpu;

/// <summary>
/// F2XM1, FYL2X, FYL2XP1 and FPATAN computed with a 128-bit-significand software float (no <c>double</c>) and rounded once
/// per FCW.RC at 64 bits. The results are correctly rounded (to the precision of the 128-bit evaluation); real x87
/// hardware is only specified to within one unit in the last place, so they match the host bit for bit in most but not
/// all cases (see the tests). FSIN, FCOS, FSINCOS and FPTAN are not implemented yet.
/// </summary>
internal static class X87Transcendental
{
    /// <summary>A positive or negative value mant * 2^(exp - 127), mant normalized (bit 127 set) unless zero.</summary>
    private readonly record struct Wide(bool Neg, int Exp, UInt128 Mant)
    {
        public bool IsZero => Mant == UInt128.Zero;
    }

    // ln 2 and log2 e to 128 bits (see X87Arithmetic.Constant for how they were derived).
    private static readonly Wide Ln2 = new(false, -1, ((UInt128)0xB172_17F7_D1CF_79ABUL << 64) | 0xC9E3_B398_03F2_F6AFUL);
    private static readonly Wide Log2E = new(false, 0, ((UInt128)0xB8AA_3B29_5C17_F0BBUL << 64) | 0xBE87_FED0_691D_3E88UL);

    private static readonly Wide Pi = new(false, 1, ((UInt128)0xC90F_DAA2_2168_C234UL << 64) | 0xC4C6_628B_80DC_1CD1UL);

    // pi rounded to 66 bits: the x87's reduction constant.
    private static readonly Wide Pi66 = new(false, 1, ((UInt128)0xC90F_DAA2_2168_C234UL << 64) | 0xC000_0000_0000_0000UL);

    private static Wide Normalize(bool neg, int exp, UInt128 mant)
    {
        if (mant == UInt128.Zero)
            return new Wide(false, 0, 0);
        int lz = (int)UInt128.LeadingZeroCount(mant);
        return new Wide(neg, exp - lz, mant << lz);
    }

    private static Wide FromParts(in FloatParts p) => new(p.Sign, p.Exponent, (UInt128)p.Significand << 64);

    private static Wide Mul(Wide a, Wide b)
    {
        if (a.IsZero || b.IsZero)
            return new Wide(false, 0, 0);
        UInt128 hi = MulHigh(a.Mant, b.Mant, out _);
        // product = hi * 2^128 * 2^(ea-127) * 2^(eb-127) -> exponent of bit 127 of hi is ea + eb + 1
        return Normalize(a.Neg ^ b.Neg, a.Exp + b.Exp + 1, hi);
    }

    private static UInt128 MulHigh(UInt128 a, UInt128 b, out UInt128 low)
    {
        ulong a0 = (ulong)a, a1 = (ulong)(a >> 64), b0 = (ulong)b, b1 = (ulong)(b >> 64);
        UInt128 p00 = (UInt128)a0 * b0, p01 = (UInt128)a0 * b1, p10 = (UInt128)a1 * b0, p11 = (UInt128)a1 * b1;
        UInt128 mid = (p00 >> 64) + (ulong)p01 + (ulong)p10;
        low = (mid << 64) | (ulong)p00;
        return p11 + (p01 >> 64) + (p10 >> 64) + (mid >> 64);
    }

    private static Wide Add(Wide a, Wide b)
    {
        if (a.IsZero)
            return b;
        if (b.IsZero)
            return a;
        if (b.Exp > a.Exp || (b.Exp == a.Exp && b.Mant > a.Mant))
            (a, b) = (b, a);
        int d = a.Exp - b.Exp;
        UInt128 ma = a.Mant >> 1, mb = d >= 127 ? 0 : (b.Mant >> 1) >> d;
        return a.Neg == b.Neg ? Normalize(a.Neg, a.Exp + 1, ma + mb) : Normalize(a.Neg, a.Exp + 1, ma - mb);
    }

    private static Wide DivSmall(Wide a, uint k)
    {
        UInt128 q = a.Mant / k;
        return Normalize(a.Neg, a.Exp, q);
    }

    // a / b by restoring division, 128 quotient bits.
    private static Wide Div(Wide a, Wide b)
    {
        UInt128 rem = a.Mant, div = b.Mant, q = 0;
        int exp = a.Exp - b.Exp;
        if (rem >= div)
        {
            q = 1;
            rem -= div;
        }
        for (int i = 0; i < 127; i++)
        {
            bool top = (rem >> 127) != 0;
            rem <<= 1;
            q <<= 1;
            if (top || rem >= div)
            {
                rem -= div;
                q |= 1;
            }
        }
        return Normalize(a.Neg ^ b.Neg, exp, q);
    }

    private static bool Negligible(Wide term, Wide sum) => term.IsZero || (!sum.IsZero && term.Exp < sum.Exp - 132);

    /// <summary>ln(m) for m in [1/sqrt2, sqrt2] as 2 atanh(s), s = (m - 1) / (m + 1) given.</summary>
    private static Wide TwoAtanh(Wide s)
    {
        Wide s2 = Mul(s, s), power = s, sum = s;
        for (uint k = 3; k < 400; k += 2)
        {
            power = Mul(power, s2);
            var term = DivSmall(power, k);
            if (Negligible(term, sum))
                break;
            sum = Add(sum, term);
        }
        return new Wide(sum.Neg, sum.Exp + 1, sum.Mant);
    }

    // `shrink`: the neglected tail of a series points towards zero, so the value lies just below |v| (matters when |v|
    // falls exactly on a rounding boundary, e.g. sin(x) = x - x^3/6 for tiny x).
    private static ExtendedFloat Round(Wide v, bool exact, ushort fcw, ref FloatExceptions flags, out bool c1, bool shrink = false)
    {
        c1 = false;
        if (v.IsZero)
            return ExtendedFloat.PositiveZero;
        var fmt = FloatFormat.ExtendedWithPrecision(64, (fcw & 0x08) == 0, (fcw & 0x10) == 0);
        if (shrink && !exact)
            v = Normalize(v.Neg, v.Exp, v.Mant - 1);
        UInt128 sig = exact ? v.Mant : v.Mant | 1;
        var r = ExtendedFloat.Pack(FloatCore.RoundPack(v.Neg, v.Exp, sig, fmt, X87Control.Rounding(fcw), X87Control.UnderflowMasked(fcw), false, ref flags, out c1));
        // The host reports UE for a tiny result of these instructions even when it happens to be exact.
        if (r.BiasedExponent == 0)
            flags |= FloatExceptions.Underflow;
        return r;
    }

    /// <summary>F2XM1: 2^x - 1 for -1 &lt;= x &lt;= 1 (outside that range the SDM leaves the result undefined).</summary>
    public static ExtendedFloat TwoToXMinusOne(ExtendedFloat x, ushort fcw, ref FloatExceptions flags, out bool c1)
    {
        c1 = false;
        var p = x.Unpack();
        switch (p.Class)
        {
            case FloatClass.Unsupported:
                flags |= FloatExceptions.Invalid;
                return ExtendedFloat.Indefinite;
            case FloatClass.SignalingNaN:
                flags |= FloatExceptions.Invalid;
                return ExtendedFloat.Pack(p.Quieted());
            case FloatClass.QuietNaN:
            case FloatClass.Zero:
                return x;
            case FloatClass.Infinity:
                return p.Sign ? ExtendedFloat.One.Negate() : x;
        }
        if (p.Denormal)
            flags |= FloatExceptions.Denormal;
        // e^t - 1 = t + t^2/2! + ...; t = x ln 2.
        Wide t = Mul(FromParts(p), Ln2), term = t, sum = t;
        for (uint k = 2; k < 200; k++) // bounded: outside [-1, 1] the result is undefined but the loop must end
        {
            term = DivSmall(Mul(term, t), k);
            if (Negligible(term, sum))
                break;
            sum = Add(sum, term);
        }
        return Round(sum, false, fcw, ref flags, out c1);
    }

    /// <summary>FYL2X: ST(1) * log2(ST(0)) with the special cases of SDM Vol. 2A, FYL2X Table 3-53. <paramref name="x"/> is ST(0).</summary>
    public static ExtendedFloat YLog2X(ExtendedFloat x, ExtendedFloat y, ushort fcw, ref FloatExceptions flags, out bool c1) =>
        YLog(x, y, plusOne: false, fcw, ref flags, out c1);

    /// <summary>FYL2XP1: ST(1) * log2(ST(0) + 1), for |ST(0)| &lt; 1 - sqrt(2)/2 (other inputs: undefined per the SDM).</summary>
    public static ExtendedFloat YLog2XPlusOne(ExtendedFloat x, ExtendedFloat y, ushort fcw, ref FloatExceptions flags, out bool c1) =>
        YLog(x, y, plusOne: true, fcw, ref flags, out c1);

    private static ExtendedFloat YLog(ExtendedFloat x, ExtendedFloat y, bool plusOne, ushort fcw, ref FloatExceptions flags, out bool c1)
    {
        c1 = false;
        var px = x.Unpack();
        var py = y.Unpack();
        if (px.Class == FloatClass.Unsupported || py.Class == FloatClass.Unsupported)
        {
            flags |= FloatExceptions.Invalid;
            return ExtendedFloat.Indefinite;
        }
        if (px.IsNaN || py.IsNaN)
        {
            // Same NaN rule as the two-operand arithmetic instructions.
            var dummy = FloatExceptions.None;
            var r = X87Arithmetic.Add(x, y, fcw, ref dummy, out _);
            flags |= dummy & FloatExceptions.Invalid;
            return r;
        }
        // log2(x) (or log2(1 + x)) as a class: -inf, 0 (exact), finite, +inf.
        bool logNegInf = false, logPosInf = false, logZero = false;
        if (!plusOne)
        {
            if (px.Sign && px.Class != FloatClass.Zero)
            {
                flags |= FloatExceptions.Invalid;
                return ExtendedFloat.Indefinite;
            }
            logNegInf = px.Class == FloatClass.Zero;
            logPosInf = px.Class == FloatClass.Infinity;
            logZero = px.Class == FloatClass.Finite && px.Significand == 1UL << 63 && px.Exponent == 0;
        }
        else
        {
            if (px.Class == FloatClass.Infinity)
            {
                if (px.Sign)
                {
                    flags |= FloatExceptions.Invalid;
                    return ExtendedFloat.Indefinite;
                }
                logPosInf = true;
            }
            logZero = px.Class == FloatClass.Zero;
        }
        // log2(1 + x) has the sign of x, including -0 for x = -0; log2(x) is +0 at x = 1.
        bool logNeg = plusOne ? px.Sign : logNegInf || (!logZero && !logPosInf && px.Exponent < 0);
        // Zero times infinity is invalid; a zero log times finite y is a zero with the product's sign.
        if ((logNegInf || logPosInf) && py.Class == FloatClass.Zero)
        {
            flags |= FloatExceptions.Invalid;
            return ExtendedFloat.Indefinite;
        }
        if (logZero && py.Class == FloatClass.Infinity)
        {
            flags |= FloatExceptions.Invalid;
            return ExtendedFloat.Indefinite;
        }
        bool sign = py.Sign ^ logNeg;
        if (logNegInf && py.Class == FloatClass.Finite)
        {
            flags |= FloatExceptions.ZeroDivide; // ZE takes priority over DE, as for division
            return ExtendedFloat.Pack(FloatParts.Infinity(sign));
        }
        if (px.Denormal || py.Denormal)
            flags |= FloatExceptions.Denormal;
        if (logNegInf || logPosInf)
            return ExtendedFloat.Pack(FloatParts.Infinity(sign));
        if (logZero || py.Class == FloatClass.Zero)
            return ExtendedFloat.Pack(FloatParts.Zero(sign));
        if (py.Class == FloatClass.Infinity)
            return ExtendedFloat.Pack(FloatParts.Infinity(sign));

        Wide log2;
        bool exact = false;
        if (!plusOne)
        {
            // x = m * 2^e with m in [1/sqrt2, sqrt2).
            int e = px.Exponent;
            Wide m = new(false, 0, (UInt128)px.Significand << 64);
            if (px.Significand > 0xB504_F333_F9DE_6484UL)
            {
                m = m with { Exp = -1 };
                e++;
            }
            Wide one = new(false, 0, UInt128.One << 127);
            Wide s = Div(Add(m, one with { Neg = true }), Add(m, one));
            Wide ln = s.IsZero ? s : TwoAtanh(s);
            Wide frac = Mul(ln, Log2E);
            Wide ew = e == 0 ? new Wide(false, 0, 0) : Normalize(e < 0, 127, (UInt128)(ulong)Math.Abs((long)e));
            log2 = Add(ew, frac);
            exact = s.IsZero;
        }
        else
        {
            // log2(1 + x) = 2 atanh(x / (2 + x)) / ln 2.
            Wide wx = FromParts(px);
            Wide two = new(false, 1, UInt128.One << 127);
            log2 = Mul(TwoAtanh(Div(wx, Add(two, wx))), Log2E);
        }
        Wide result = Mul(FromParts(py), log2);
        var rounded = Round(result, exact, fcw, ref flags, out c1);
        if (exact)
            flags |= FloatExceptions.Precision; // the host reports PE for FYL2X even when log2(x) is an exact integer
        return rounded;
    }

    /// <summary>atan(t) for 0 &lt;= t &lt;= 1 by Euler's series: sum of T_n, T_0 = t / (1 + t^2), T_n = T_(n-1) * z * 2n / (2n + 1), z = t^2 / (1 + t^2) &lt;= 1/2.</summary>
    private static Wide Atan(Wide t)
    {
        if (t.IsZero)
            return t;
        Wide one = new(false, 0, UInt128.One << 127);
        Wide t2 = Mul(t, t), den = Add(one, t2);
        Wide term = Div(t, den), z = Div(t2, den), sum = term;
        for (uint n = 1; n < 400; n++)
        {
            term = DivSmall(Mul(Mul(term, z), new Wide(false, 127 - (int)UInt128.LeadingZeroCount((UInt128)(2 * n)), (UInt128)(2 * n) << (int)UInt128.LeadingZeroCount((UInt128)(2 * n)))), 2 * n + 1);
            if (Negligible(term, sum))
                break;
            sum = Add(sum, term);
        }
        return sum;
    }

    /// <summary>FPATAN: atan2(ST(1), ST(0)) with the signed-zero and infinity cases of SDM Vol. 2A, FPATAN Table 3-30 (those of C's atan2).</summary>
    public static ExtendedFloat PartialArctangent(ExtendedFloat x, ExtendedFloat y, ushort fcw, ref FloatExceptions flags, out bool c1)
    {
        c1 = false;
        var px = x.Unpack();
        var py = y.Unpack();
        if (px.Class == FloatClass.Unsupported || py.Class == FloatClass.Unsupported)
        {
            flags |= FloatExceptions.Invalid;
            return ExtendedFloat.Indefinite;
        }
        if (px.IsNaN || py.IsNaN)
        {
            var dummy = FloatExceptions.None;
            var r = X87Arithmetic.Add(x, y, fcw, ref dummy, out _);
            flags |= dummy & FloatExceptions.Invalid;
            return r;
        }
        if (px.Denormal || py.Denormal)
            flags |= FloatExceptions.Denormal;
        bool sign = py.Sign;
        Wide half = Pi with { Exp = 0 }, quarter = Pi with { Exp = -1 };
        Wide angle;
        if (py.Class == FloatClass.Zero)
        {
            if (!px.Sign)
                return ExtendedFloat.Pack(FloatParts.Zero(sign));
            angle = Pi;
        }
        else if (px.Class == FloatClass.Zero)
        {
            angle = half;
        }
        else if (py.Class == FloatClass.Infinity)
        {
            angle = px.Class == FloatClass.Infinity ? (px.Sign ? Add(Pi, quarter with { Neg = true }) : quarter) : half;
        }
        else if (px.Class == FloatClass.Infinity)
        {
            if (!px.Sign)
                return ExtendedFloat.Pack(FloatParts.Zero(sign));
            angle = Pi;
        }
        else
        {
            Wide ax = FromParts(px) with { Neg = false }, ay = FromParts(py) with { Neg = false };
            bool swap = ay.Exp > ax.Exp || (ay.Exp == ax.Exp && ay.Mant > ax.Mant);
            angle = swap ? Add(half, Atan(Div(ax, ay)) with { Neg = true }) : Atan(Div(ay, ax));
            if (px.Sign)
                angle = Add(Pi, angle with { Neg = true });
        }
        return Round(angle with { Neg = sign }, false, fcw, ref flags, out c1);
    }

    /// <summary>sin(r) and cos(r) for |r| &lt;= pi/4 by their Taylor series.</summary>
    private static (Wide Sin, Wide Cos, bool SinShrinks, bool CosShrinks) SinCosSmall(Wide r)
    {
        Wide one = new(false, 0, UInt128.One << 127);
        Wide r2 = Mul(r, r) with { Neg = true };
        Wide sTerm = r, sSum = r, cTerm = one, cSum = one;
        bool sDone = false, cDone = false, sShrink = false, cShrink = false;
        for (uint k = 1; k < 60 && !(sDone && cDone); k++)
        {
            sTerm = DivSmall(Mul(sTerm, r2), (2 * k) * (2 * k + 1));
            cTerm = DivSmall(Mul(cTerm, r2), (2 * k - 1) * (2 * k));
            if (!sDone && Negligible(sTerm, sSum))
            {
                sDone = true;
                sShrink = !sTerm.IsZero && sTerm.Neg != sSum.Neg;
            }
            if (!cDone && Negligible(cTerm, cSum))
            {
                cDone = true;
                cShrink = !cTerm.IsZero && cTerm.Neg != cSum.Neg;
            }
            if (!sDone)
                sSum = Add(sSum, sTerm);
            if (!cDone)
                cSum = Add(cSum, cTerm);
        }
        return (sSum, cSum, sShrink, cShrink);
    }

    /// <summary>
    /// FSIN/FCOS/FSINCOS/FPTAN core: returns false (C2 = 1, operand unchanged) when |x| &gt;= 2^63. The reduction modulo
    /// pi/2 uses the 66-bit approximation of pi that the SDM documents for the x87 (Vol. 1, 8.3.10), as hardware does;
    /// results for arguments close to multiples of pi/2 or very large still depend on the host's internal precision.
    /// </summary>
    public static bool SinCos(ExtendedFloat x, ushort fcw, ref FloatExceptions sinFlags, ref FloatExceptions cosFlags, out ExtendedFloat sin, out ExtendedFloat cos) =>
        SinCos(x, fcw, ref sinFlags, ref cosFlags, out sin, out cos, out _, out _);

    /// <summary>SinCos with each result's C1 (set when the result was rounded away from zero).</summary>
    public static bool SinCos(ExtendedFloat x, ushort fcw, ref FloatExceptions sinFlags, ref FloatExceptions cosFlags, out ExtendedFloat sin, out ExtendedFloat cos, out bool sinC1, out bool cosC1)
    {
        var flags = FloatExceptions.None;
        bool done = SinCosCore(x, fcw, ref flags, ref sinFlags, ref cosFlags, out sin, out cos, out sinC1, out cosC1);
        sinFlags |= flags;
        cosFlags |= flags;
        return done;
    }

    private static bool SinCosCore(ExtendedFloat x, ushort fcw, ref FloatExceptions flags, ref FloatExceptions sinFlags, ref FloatExceptions cosFlags, out ExtendedFloat sin, out ExtendedFloat cos, out bool sinC1, out bool cosC1)
    {
        sin = cos = ExtendedFloat.Indefinite;
        sinC1 = cosC1 = false;
        var p = x.Unpack();
        switch (p.Class)
        {
            case FloatClass.Unsupported:
            case FloatClass.Infinity:
                flags |= FloatExceptions.Invalid;
                return true;
            case FloatClass.SignalingNaN:
            case FloatClass.QuietNaN:
                if (p.Class == FloatClass.SignalingNaN)
                    flags |= FloatExceptions.Invalid;
                sin = cos = ExtendedFloat.Pack(p.Quieted());
                return true;
            case FloatClass.Zero:
                sin = x;
                cos = ExtendedFloat.One;
                return true;
        }
        if (p.Exponent >= 63)
            return false;
        if (p.Denormal)
            flags |= FloatExceptions.Denormal;
        // q = nearest integer to |x| / (pi/2); r = |x| - q pi/2.
        Wide ax = FromParts(p) with { Neg = false };
        Wide halfPi = Pi66 with { Exp = 0 };
        Wide ratio = Div(ax, halfPi);
        ulong q = 0;
        if (ratio.Exp >= -1)
        {
            UInt128 scaled = ratio.Mant >> (126 - ratio.Exp); // twice the ratio, as an integer
            q = (ulong)((scaled + 1) >> 1);
        }
        Wide r = q == 0 ? ax : Add(ax, Mul(halfPi, Normalize(false, 127, q)) with { Neg = true });
        var (s, c, sShrink, cShrink) = SinCosSmall(r);
        (Wide rs, Wide rc, bool rsShrink, bool rcShrink) = (q & 3) switch
        {
            0 => (s, c, sShrink, cShrink),
            1 => (c, s with { Neg = !s.Neg }, cShrink, sShrink),
            2 => (s with { Neg = !s.Neg }, c with { Neg = !c.Neg }, sShrink, cShrink),
            _ => (c with { Neg = !c.Neg }, s, cShrink, sShrink),
        };
        if (p.Sign)
            rs = rs with { Neg = !rs.Neg };
        sin = Round(rs, false, fcw, ref sinFlags, out sinC1, rsShrink);
        cos = Round(rc, false, fcw, ref cosFlags, out cosC1, rcShrink);
        return true;
    }

    /// <summary>
    /// FPTAN core: tan(x) (the caller then pushes +1.0); false (C2 = 1, operand unchanged) when |x| &gt;= 2^63. Same
    /// reduction as SinCos.
    /// </summary>
    public static bool Tan(ExtendedFloat x, ushort fcw, ref FloatExceptions flags, out ExtendedFloat tan) => Tan(x, fcw, ref flags, out tan, out _);

    /// <summary>Tan with C1 (set when the result was rounded away from zero).</summary>
    public static bool Tan(ExtendedFloat x, ushort fcw, ref FloatExceptions flags, out ExtendedFloat tan, out bool c1)
    {
        tan = ExtendedFloat.Indefinite;
        c1 = false;
        var p = x.Unpack();
        switch (p.Class)
        {
            case FloatClass.Unsupported:
            case FloatClass.Infinity:
                flags |= FloatExceptions.Invalid;
                return true;
            case FloatClass.SignalingNaN:
            case FloatClass.QuietNaN:
                if (p.Class == FloatClass.SignalingNaN)
                    flags |= FloatExceptions.Invalid;
                tan = ExtendedFloat.Pack(p.Quieted());
                return true;
            case FloatClass.Zero:
                tan = x;
                return true;
        }
        if (p.Exponent >= 63)
            return false;
        if (p.Denormal)
            flags |= FloatExceptions.Denormal;
        Wide ax = FromParts(p) with { Neg = false };
        Wide halfPi = Pi66 with { Exp = 0 };
        Wide ratio = Div(ax, halfPi);
        ulong q = 0;
        if (ratio.Exp >= -1)
            q = (ulong)(((ratio.Mant >> (126 - ratio.Exp)) + 1) >> 1);
        Wide r = q == 0 ? ax : Add(ax, Mul(halfPi, Normalize(false, 127, q)) with { Neg = true });
        var (s, c, sShrink, _) = SinCosSmall(r);
        // tan(r + q pi/2) = tan(r) for even q, -cot(r) for odd q. tan(r) = r + r^3/3 + ...: its tail grows |r|.
        Wide t = (q & 1) == 0 ? Div(s, c) : Div(c, s) with { Neg = !(c.Neg ^ s.Neg) };
        if (p.Sign)
            t = t with { Neg = !t.Neg };
        _ = sShrink;
        tan = Round(t, false, fcw, ref flags, out c1);
        return true;
    }
}
