using Hypervisor.Accel.Tcg.Fpu;

namespace Hypervisor.Accel.Tcg.Sse;

internal static partial class SseFloat
{
    private static ulong LaneOf(UInt128 v, int i, bool isDouble) => isDouble ? (ulong)(v >> (64 * i)) : (uint)(v >> (32 * i));

    private static UInt128 WithLane(UInt128 v, int i, ulong x, bool isDouble) => isDouble
        ? (v & ~((UInt128)ulong.MaxValue << (64 * i))) | ((UInt128)x << (64 * i))
        : (v & ~((UInt128)uint.MaxValue << (32 * i))) | ((UInt128)(uint)x << (32 * i));

    /// <summary>SQRTSS/SQRTSD: the low lane of <paramref name="b"/>, merged into <paramref name="a"/>.</summary>
    public static UInt128 ScalarSqrt(UInt128 a, UInt128 b, bool isDouble, uint mxcsr, ref FloatExceptions flags) =>
        WithLane(a, 0, Sqrt(LaneOf(b, 0, isDouble), isDouble, mxcsr, ref flags), isDouble);

    /// <summary>ADDSUBPS/ADDSUBPD (SSE3): even lanes subtract, odd lanes add.</summary>
    public static UInt128 AddSub(UInt128 a, UInt128 b, bool isDouble, uint mxcsr, ref FloatExceptions flags)
    {
        int n = isDouble ? 2 : 4;
        UInt128 r = 0;
        for (int i = 0; i < n; i++)
            r = WithLane(r, i, Binary((i & 1) == 0 ? SseBinaryOp.Sub : SseBinaryOp.Add, LaneOf(a, i, isDouble), LaneOf(b, i, isDouble), isDouble, mxcsr, ref flags), isDouble);
        return r;
    }

    /// <summary>HADDPS/HADDPD/HSUBPS/HSUBPD (SSE3): adjacent pairs of a fill the low half, pairs of b the high half.</summary>
    public static UInt128 Horizontal(UInt128 a, UInt128 b, bool isDouble, bool subtract, uint mxcsr, ref FloatExceptions flags)
    {
        int n = isDouble ? 2 : 4;
        var op = subtract ? SseBinaryOp.Sub : SseBinaryOp.Add;
        UInt128 r = 0;
        for (int k = 0; k < n; k++)
        {
            UInt128 src = k < n / 2 ? a : b;
            int j = (k % (n / 2)) * 2;
            r = WithLane(r, k, Binary(op, LaneOf(src, j, isDouble), LaneOf(src, j + 1, isDouble), isDouble, mxcsr, ref flags), isDouble);
        }
        return r;
    }

    /// <summary>
    /// One lane of ROUNDPS/ROUNDPD/ROUNDSS/ROUNDSD (SSE4.1): imm8 bits 1:0 give the rounding mode unless bit 2 selects
    /// MXCSR.RC; bit 3 suppresses PE. IE only for an SNaN (quieted); no DE.
    /// </summary>
    public static ulong RoundLane(ulong bits, bool isDouble, byte imm, uint mxcsr, ref FloatExceptions flags)
    {
        var p = Unpack(bits, isDouble, mxcsr);
        if (p.IsNaN)
        {
            if (p.Class == FloatClass.SignalingNaN)
                flags |= FloatExceptions.Invalid;
            return Pack(p.Quieted(), isDouble);
        }
        if (p.Class != FloatClass.Finite)
            return Pack(p, isDouble);
        int fractionBits = (isDouble ? 52 : 23);
        if (p.Exponent >= fractionBits)
            return bits;
        var rc = (imm & 4) != 0 ? Mxcsr.Rounding(mxcsr) : (RoundingMode)(imm & 3);
        UInt128 n = FloatCore.RoundInteger(p.Significand, 63 - p.Exponent, p.Sign, rc, out bool inexact, out _);
        if (inexact && (imm & 8) == 0)
            flags |= FloatExceptions.Precision;
        if (n == UInt128.Zero)
            return Pack(FloatParts.Zero(p.Sign), isDouble);
        int lz = (int)UInt128.LeadingZeroCount(n);
        return Pack(FloatParts.Finite(p.Sign, 127 - lz, (ulong)(n << (lz - 64))), isDouble);
    }

    /// <summary>ROUNDPS/ROUNDPD.</summary>
    public static UInt128 PackedRound(UInt128 b, bool isDouble, byte imm, uint mxcsr, ref FloatExceptions flags)
    {
        int n = isDouble ? 2 : 4;
        UInt128 r = 0;
        for (int i = 0; i < n; i++)
            r = WithLane(r, i, RoundLane(LaneOf(b, i, isDouble), isDouble, imm, mxcsr, ref flags), isDouble);
        return r;
    }

    /// <summary>ROUNDSS/ROUNDSD: merged into <paramref name="a"/>.</summary>
    public static UInt128 ScalarRound(UInt128 a, UInt128 b, bool isDouble, byte imm, uint mxcsr, ref FloatExceptions flags) =>
        WithLane(a, 0, RoundLane(LaneOf(b, 0, isDouble), isDouble, imm, mxcsr, ref flags), isDouble);

    /// <summary>
    /// DPPS/DPPD (SSE4.1) following the SDM pseudocode: selected products (imm8 bits 7:4), then the pairwise sums, each
    /// rounded per MXCSR with its own exceptions; the sum goes to the lanes selected by imm8 bits 3:0, others +0.0.
    /// </summary>
    public static UInt128 DotProduct(UInt128 a, UInt128 b, bool isDouble, byte imm, uint mxcsr, ref FloatExceptions flags)
    {
        int n = isDouble ? 2 : 4;
        Span<ulong> t = stackalloc ulong[4];
        for (int i = 0; i < n; i++)
            t[i] = ((imm >> (4 + i)) & 1) != 0 ? Binary(SseBinaryOp.Mul, LaneOf(a, i, isDouble), LaneOf(b, i, isDouble), isDouble, mxcsr, ref flags) : 0;
        ulong sum;
        if (isDouble)
        {
            sum = Binary(SseBinaryOp.Add, t[0], t[1], true, mxcsr, ref flags);
        }
        else
        {
            ulong t2 = Binary(SseBinaryOp.Add, t[0], t[1], false, mxcsr, ref flags);
            ulong t3 = Binary(SseBinaryOp.Add, t[2], t[3], false, mxcsr, ref flags);
            sum = Binary(SseBinaryOp.Add, t2, t3, false, mxcsr, ref flags);
        }
        UInt128 r = 0;
        for (int i = 0; i < n; i++)
            if (((imm >> i) & 1) != 0)
                r = WithLane(r, i, sum, isDouble);
        return r;
    }

    /// <summary>INSERTPS xmm1, xmm2, imm8 (register form): lane imm[7:6] of b into lane imm[5:4] of a, then zero the lanes in imm[3:0].</summary>
    public static UInt128 InsertPs(UInt128 a, UInt128 b, byte imm)
    {
        var r = WithLane(a, (imm >> 4) & 3, LaneOf(b, imm >> 6, false), false);
        for (int i = 0; i < 4; i++)
            if (((imm >> i) & 1) != 0)
                r = WithLane(r, i, 0, false);
        return r;
    }
}
