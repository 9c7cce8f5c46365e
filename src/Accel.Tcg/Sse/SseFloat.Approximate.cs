namespace Hypervisor.Accel.Tcg.Sse;

internal static partial class SseFloat
{
    /// <summary>
    /// RCPPS/RCPSS lane (SDM Vol. 2, RCPPS): an approximation of 1/x with relative error at most 1.5 * 2^-12. The exact
    /// bits are implementation-specific (Intel and AMD differ); this CPU returns 1/x rounded to 12 significant bits.
    /// Zero and denormal inputs give infinity of the same sign, results below the normal range flush to signed zero,
    /// infinities give signed zero, NaNs come back quieted. No exceptions, MXCSR (DAZ, FTZ, RC) is ignored.
    /// </summary>
    public static uint ReciprocalApprox(uint x)
    {
        uint sign = x & 0x8000_0000;
        uint magnitude = x & 0x7FFF_FFFF;
        if (magnitude > 0x7F80_0000)
        {
            return x | 0x0040_0000;
        }

        if (magnitude == 0x7F80_0000)
        {
            return sign;
        }

        if (magnitude < 0x0080_0000)
        {
            return sign | 0x7F80_0000;
        }

        double r = 1.0 / BitConverter.UInt32BitsToSingle(magnitude);
        return sign | Round12(r);
    }

    /// <summary>
    /// RSQRTPS/RSQRTSS lane (SDM Vol. 2, RSQRTPS): 1/sqrt(x) with relative error at most 1.5 * 2^-12, rounded to 12
    /// significant bits here. +-0 and denormals give infinity of the same sign, +inf gives +0, negative numbers
    /// (including -inf) give the QNaN floating-point indefinite, NaNs come back quieted. No exceptions.
    /// </summary>
    public static uint ReciprocalSqrtApprox(uint x)
    {
        uint sign = x & 0x8000_0000;
        uint magnitude = x & 0x7FFF_FFFF;
        if (magnitude > 0x7F80_0000)
        {
            return x | 0x0040_0000;
        }

        if (magnitude < 0x0080_0000)
        {
            return sign | 0x7F80_0000;
        }

        if (sign != 0)
        {
            return DefaultNaNSingle;
        }

        if (magnitude == 0x7F80_0000)
        {
            return 0;
        }

        double r = 1.0 / Math.Sqrt(BitConverter.UInt32BitsToSingle(magnitude));
        return Round12(r);
    }

    /// <summary>A positive double as a single with 11 fraction bits (round to nearest), or +0 below the normal range.</summary>
    private static uint Round12(double r)
    {
        ulong bits = BitConverter.DoubleToUInt64Bits(r);
        bits = (bits + (1UL << 40)) & ~((1UL << 41) - 1); // keep 11 of the 52 fraction bits, rounding half up
        float f = (float)BitConverter.UInt64BitsToDouble(bits); // exact: 12 significant bits fit a single
        uint u = BitConverter.SingleToUInt32Bits(f);
        return u < 0x0080_0000 ? 0 : u;
    }

    /// <summary>RCPPS/RSQRTPS on four lanes.</summary>
    public static UInt128 PackedApprox(UInt128 b, bool sqrt)
    {
        UInt128 r = 0;
        for (int i = 0; i < 4; i++)
        {
            uint lane = (uint)(b >> (32 * i));
            r |= (UInt128)(sqrt ? ReciprocalSqrtApprox(lane) : ReciprocalApprox(lane)) << (32 * i);
        }

        return r;
    }
}
