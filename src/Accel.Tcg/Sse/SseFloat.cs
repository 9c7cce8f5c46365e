using Hypervisor.Accel.Tcg.Fpu;

namespace Hypervisor.Accel.Tcg.Sse;

/// <summary>Two-operand SSE floating-point operations.</summary>
internal enum SseBinaryOp : byte
{
    Add,
    Sub,
    Mul,
    Div,
    Min,
    Max,
}

/// <summary>
/// SSE/SSE2 floating-point arithmetic on raw lane bits (binary32 in the low 32 bits of a <see cref="ulong"/>, or binary64),
/// exact under MXCSR: rounding control, DAZ, FTZ, and the masked responses of SDM Vol. 1, 11.5. NaN results follow SDM
/// Vol. 1, Table 4-7 for SSE: the first source operand's NaN (quieted) if it is one, else the second's; an invalid
/// operation yields the default NaN (FFC00000h / FFF8000000000000h). Detected exceptions are ORed into <c>flags</c>; if
/// <see cref="Mxcsr.Unmasked"/> is non-zero the caller raises #XM and discards the result.
/// </summary>
internal static partial class SseFloat
{
    public const uint DefaultNaNSingle = 0xFFC0_0000;
    public const ulong DefaultNaNDouble = 0xFFF8_0000_0000_0000;

    public static FloatParts Unpack(ulong bits, bool isDouble, uint mxcsr) =>
        isDouble ? FloatCodec.UnpackDouble(bits, Mxcsr.Daz(mxcsr)) : FloatCodec.UnpackSingle((uint)bits, Mxcsr.Daz(mxcsr));

    public static ulong Pack(in FloatParts v, bool isDouble) => isDouble ? FloatCodec.PackDouble(v) : FloatCodec.PackSingle(v);

    private static ulong DefaultNaN(bool isDouble) => isDouble ? DefaultNaNDouble : DefaultNaNSingle;

    private static FloatFormat Format(bool isDouble) => isDouble ? FloatFormat.Double : FloatFormat.Single;

    /// <summary>One lane of ADD/SUB/MUL/DIV/MIN/MAX (PS, PD, SS, SD).</summary>
    public static ulong Binary(SseBinaryOp op, ulong a, ulong b, bool isDouble, uint mxcsr, ref FloatExceptions flags)
    {
        var pa = Unpack(a, isDouble, mxcsr);
        var pb = Unpack(b, isDouble, mxcsr);
        if (op is SseBinaryOp.Min or SseBinaryOp.Max)
            return MinMax(op == SseBinaryOp.Max, a, b, pa, pb, isDouble, ref flags);
        if (pa.IsNaN || pb.IsNaN)
            return PropagateNaN(pa, pb, isDouble, ref flags);
        if (op == SseBinaryOp.Sub)
            pb.Sign = !pb.Sign;
        var fmt = Format(isDouble);
        var rc = Mxcsr.Rounding(mxcsr);
        bool um = Mxcsr.UnderflowMasked(mxcsr), ftz = Mxcsr.Ftz(mxcsr);
        bool denormal = pa.Denormal || pb.Denormal;
        bool sign = pa.Sign ^ pb.Sign;
        FloatParts r;
        switch (op)
        {
            case SseBinaryOp.Add:
            case SseBinaryOp.Sub:
                if (pa.Class == FloatClass.Infinity || pb.Class == FloatClass.Infinity)
                {
                    if (pa.Class == FloatClass.Infinity && pb.Class == FloatClass.Infinity && pa.Sign != pb.Sign)
                        return Invalid(isDouble, ref flags);
                    r = pa.Class == FloatClass.Infinity ? pa : pb;
                    break;
                }
                if (pa.Class == FloatClass.Zero && pb.Class == FloatClass.Zero)
                {
                    r = FloatParts.Zero(pa.Sign == pb.Sign ? pa.Sign : rc == RoundingMode.Down);
                    break;
                }
                if (pa.Class == FloatClass.Zero || pb.Class == FloatClass.Zero)
                {
                    var x = pa.Class == FloatClass.Zero ? pb : pa;
                    r = FloatCore.RoundPack(x.Sign, x.Exponent, (UInt128)x.Significand << 64, fmt, rc, um, ftz, ref flags, out _);
                    break;
                }
                r = FloatCore.AddFinite(pa, pb, fmt, rc, um, ftz, ref flags, out _);
                break;
            case SseBinaryOp.Mul:
                if (pa.Class == FloatClass.Infinity || pb.Class == FloatClass.Infinity)
                {
                    if (pa.Class == FloatClass.Zero || pb.Class == FloatClass.Zero)
                        return Invalid(isDouble, ref flags);
                    r = FloatParts.Infinity(sign);
                    break;
                }
                if (pa.Class == FloatClass.Zero || pb.Class == FloatClass.Zero)
                {
                    r = FloatParts.Zero(sign);
                    break;
                }
                r = FloatCore.MulFinite(pa, pb, fmt, rc, um, ftz, ref flags, out _);
                break;
            default: // Div
                if (pa.Class == FloatClass.Infinity)
                {
                    if (pb.Class == FloatClass.Infinity)
                        return Invalid(isDouble, ref flags);
                    r = FloatParts.Infinity(sign);
                    break;
                }
                if (pb.Class == FloatClass.Infinity)
                {
                    r = FloatParts.Zero(sign);
                    break;
                }
                if (pb.Class == FloatClass.Zero)
                {
                    if (pa.Class == FloatClass.Zero)
                        return Invalid(isDouble, ref flags);
                    flags |= FloatExceptions.ZeroDivide;
                    return Pack(FloatParts.Infinity(sign), isDouble);
                }
                if (pa.Class == FloatClass.Zero)
                {
                    r = FloatParts.Zero(sign);
                    break;
                }
                r = FloatCore.DivFinite(pa, pb, fmt, rc, um, ftz, ref flags, out _);
                break;
        }
        if (denormal)
            flags |= FloatExceptions.Denormal;
        return Pack(r, isDouble);
    }

    /// <summary>
    /// MIN/MAX (SDM Vol. 2B, MINPS/MAXPS): returns the second operand if either is a NaN (IE for QNaN too) or both are zeros;
    /// the returned operand is passed through unchanged (not quieted, not rounded).
    /// </summary>
    private static ulong MinMax(bool max, ulong a, ulong b, in FloatParts pa, in FloatParts pb, bool isDouble, ref FloatExceptions flags)
    {
        if (pa.IsNaN || pb.IsNaN)
        {
            flags |= FloatExceptions.Invalid;
            return pb.Class == FloatClass.Zero ? Pack(pb, isDouble) : b;
        }
        if (pa.Denormal || pb.Denormal)
            flags |= FloatExceptions.Denormal;
        int c = FloatCore.CompareOrdered(pa, pb);
        bool pickA = max ? c > 0 : c < 0;
        // The chosen source is returned as encoded, except that under DAZ a denormal has already become a signed zero.
        return pickA ? (pa.Class == FloatClass.Zero ? Pack(pa, isDouble) : a) : (pb.Class == FloatClass.Zero ? Pack(pb, isDouble) : b);
    }

    /// <summary>One lane of SQRTPS/SQRTPD/SQRTSS/SQRTSD.</summary>
    public static ulong Sqrt(ulong a, bool isDouble, uint mxcsr, ref FloatExceptions flags)
    {
        var pa = Unpack(a, isDouble, mxcsr);
        if (pa.IsNaN)
        {
            if (pa.Class == FloatClass.SignalingNaN)
                flags |= FloatExceptions.Invalid;
            return Pack(pa.Quieted(), isDouble);
        }
        if (pa.Class == FloatClass.Zero)
            return Pack(pa, isDouble);
        if (pa.Sign)
            return Invalid(isDouble, ref flags);
        if (pa.Class == FloatClass.Infinity)
            return a;
        if (pa.Denormal)
            flags |= FloatExceptions.Denormal;
        var r = FloatCore.SqrtFinite(pa, Format(isDouble), Mxcsr.Rounding(mxcsr), Mxcsr.UnderflowMasked(mxcsr), Mxcsr.Ftz(mxcsr), ref flags, out _);
        return Pack(r, isDouble);
    }

    /// <summary>
    /// One lane of CMPPS/CMPPD/CMPSS/CMPSD with an SSE predicate 0-7 (EQ, LT, LE, UNORD, NEQ, NLT, NLE, ORD): all ones or
    /// zero. LT, LE, NLT and NLE signal IE on a QNaN too; the others only on an SNaN (SDM Vol. 2A, CMPPS Table 3-1).
    /// Predicates 8-31 (AVX) are reduced modulo 8 with their signalling behaviour; callers decoding legacy SSE pass 0-7.
    /// </summary>
    public static bool Compare(int predicate, ulong a, ulong b, bool isDouble, uint mxcsr, ref FloatExceptions flags)
    {
        var pa = Unpack(a, isDouble, mxcsr);
        var pb = Unpack(b, isDouble, mxcsr);
        int p = predicate & 7;
        bool signalling = p is 1 or 2 or 5 or 6;
        if (pa.IsNaN || pb.IsNaN)
        {
            if (signalling || pa.Class == FloatClass.SignalingNaN || pb.Class == FloatClass.SignalingNaN)
                flags |= FloatExceptions.Invalid;
            return p is 3 or 4 or 5 or 6;
        }
        if (pa.Denormal || pb.Denormal)
            flags |= FloatExceptions.Denormal;
        int c = FloatCore.CompareOrdered(pa, pb);
        return p switch
        {
            0 => c == 0,
            1 => c < 0,
            2 => c <= 0,
            3 => false,
            4 => c != 0,
            5 => c >= 0,
            6 => c > 0,
            _ => true,
        };
    }

    /// <summary>COMISS/COMISD (<paramref name="quiet"/> false: IE on any NaN) and UCOMISS/UCOMISD (IE only on an SNaN).
    /// Map the result to EFLAGS with <see cref="X87Arithmetic.EflagsBits"/> (ZF PF CF; OF SF AF cleared).</summary>
    public static FloatComparison CompareScalar(ulong a, ulong b, bool isDouble, bool quiet, uint mxcsr, ref FloatExceptions flags)
    {
        var pa = Unpack(a, isDouble, mxcsr);
        var pb = Unpack(b, isDouble, mxcsr);
        if (pa.IsNaN || pb.IsNaN)
        {
            if (!quiet || pa.Class == FloatClass.SignalingNaN || pb.Class == FloatClass.SignalingNaN)
                flags |= FloatExceptions.Invalid;
            return FloatComparison.Unordered;
        }
        if (pa.Denormal || pb.Denormal)
            flags |= FloatExceptions.Denormal;
        int c = FloatCore.CompareOrdered(pa, pb);
        return c < 0 ? FloatComparison.Less : c > 0 ? FloatComparison.Greater : FloatComparison.Equal;
    }

    /// <summary>CVTSS2SD/CVTPS2PD (<paramref name="toDouble"/>) and CVTSD2SS/CVTPD2PS: SNaN quieted with IE, NaN payloads
    /// widened or truncated, narrowing rounded per MXCSR.</summary>
    public static ulong ConvertFloat(ulong a, bool toDouble, uint mxcsr, ref FloatExceptions flags)
    {
        var pa = Unpack(a, !toDouble, mxcsr);
        if (pa.IsNaN)
        {
            if (pa.Class == FloatClass.SignalingNaN)
                flags |= FloatExceptions.Invalid;
            return Pack(pa.Quieted(), toDouble);
        }
        if (pa.Denormal)
            flags |= FloatExceptions.Denormal;
        if (pa.Class != FloatClass.Finite)
            return Pack(pa, toDouble);
        var r = FloatCore.RoundPack(pa.Sign, pa.Exponent, (UInt128)pa.Significand << 64, Format(toDouble), Mxcsr.Rounding(mxcsr),
            Mxcsr.UnderflowMasked(mxcsr), Mxcsr.Ftz(mxcsr), ref flags, out _);
        return Pack(r, toDouble);
    }

    /// <summary>CVTSI2SS/CVTSI2SD/CVTDQ2PS/CVTDQ2PD: a signed integer rounded per MXCSR (PE if inexact).</summary>
    public static ulong FromInteger(long value, bool isDouble, uint mxcsr, ref FloatExceptions flags)
    {
        if (value == 0)
            return 0;
        bool sign = value < 0;
        ulong mag = sign ? (ulong)-value : (ulong)value;
        var r = FloatCore.NormalizeRoundPack(sign, mag, 0, Format(isDouble), Mxcsr.Rounding(mxcsr), Mxcsr.UnderflowMasked(mxcsr),
            Mxcsr.Ftz(mxcsr), ref flags, out _);
        return Pack(r, isDouble);
    }

    /// <summary>
    /// CVTSS2SI/CVTSD2SI/CVTPS2DQ/CVTPD2DQ (rounding per MXCSR) and the CVTT forms (<paramref name="truncate"/>): a NaN or an
    /// out-of-range value raises IE and gives the integer indefinite (80000000h or 8000000000000000h).
    /// </summary>
    public static long ToInteger(ulong a, bool isDouble, int bits, bool truncate, uint mxcsr, ref FloatExceptions flags)
    {
        var pa = Unpack(a, isDouble, mxcsr);
        var rc = truncate ? RoundingMode.TowardZero : Mxcsr.Rounding(mxcsr);
        return X87Arithmetic.FloatToInteger(pa, bits, rc, ref flags, out _);
    }

    /// <summary>Packed form of <see cref="Binary"/> over 4 singles or 2 doubles.</summary>
    public static UInt128 PackedBinary(SseBinaryOp op, UInt128 a, UInt128 b, bool isDouble, uint mxcsr, ref FloatExceptions flags)
    {
        UInt128 r = 0;
        int width = isDouble ? 64 : 32;
        ulong mask = isDouble ? ulong.MaxValue : uint.MaxValue;
        for (int i = 0; i < 128; i += width)
            r |= (UInt128)(Binary(op, (ulong)(a >> i) & mask, (ulong)(b >> i) & mask, isDouble, mxcsr, ref flags) & mask) << i;
        return r;
    }

    /// <summary>Scalar form of <see cref="Binary"/>: the low lane computed, the rest of <paramref name="a"/> kept.</summary>
    public static UInt128 ScalarBinary(SseBinaryOp op, UInt128 a, UInt128 b, bool isDouble, uint mxcsr, ref FloatExceptions flags)
    {
        ulong mask = isDouble ? ulong.MaxValue : uint.MaxValue;
        ulong r = Binary(op, (ulong)a & mask, (ulong)b & mask, isDouble, mxcsr, ref flags) & mask;
        return (a & ~(UInt128)mask) | r;
    }

    /// <summary>Packed SQRT.</summary>
    public static UInt128 PackedSqrt(UInt128 a, bool isDouble, uint mxcsr, ref FloatExceptions flags)
    {
        UInt128 r = 0;
        int width = isDouble ? 64 : 32;
        ulong mask = isDouble ? ulong.MaxValue : uint.MaxValue;
        for (int i = 0; i < 128; i += width)
            r |= (UInt128)(Sqrt((ulong)(a >> i) & mask, isDouble, mxcsr, ref flags) & mask) << i;
        return r;
    }

    /// <summary>Packed CMP with a predicate 0-7.</summary>
    public static UInt128 PackedCompare(int predicate, UInt128 a, UInt128 b, bool isDouble, uint mxcsr, ref FloatExceptions flags)
    {
        UInt128 r = 0;
        int width = isDouble ? 64 : 32;
        ulong mask = isDouble ? ulong.MaxValue : uint.MaxValue;
        for (int i = 0; i < 128; i += width)
            if (Compare(predicate, (ulong)(a >> i) & mask, (ulong)(b >> i) & mask, isDouble, mxcsr, ref flags))
                r |= (UInt128)mask << i;
        return r;
    }

    private static ulong PropagateNaN(in FloatParts a, in FloatParts b, bool isDouble, ref FloatExceptions flags)
    {
        if (a.Class == FloatClass.SignalingNaN || b.Class == FloatClass.SignalingNaN)
            flags |= FloatExceptions.Invalid;
        return Pack(a.IsNaN ? a.Quieted() : b.Quieted(), isDouble);
    }

    private static ulong Invalid(bool isDouble, ref FloatExceptions flags)
    {
        flags |= FloatExceptions.Invalid;
        return DefaultNaN(isDouble);
    }
}
