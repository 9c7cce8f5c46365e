using Hypervisor.Accel.Tcg.Fpu;

namespace Hypervisor.Accel.Tcg.Sse;

/// <summary>
/// SSE/SSE2 conversions on whole XMM values (<see cref="UInt128"/>, lane 0 in the low bits). Exceptions are ORed into
/// <c>flags</c> as in <see cref="SseFloat"/>. Scalar forms merge into the destination's other lanes as the legacy SSE
/// encodings do.
/// </summary>
internal static class SseConvert
{
    private static uint Lane32(UInt128 v, int i) => (uint)(v >> (32 * i));
    private static ulong Lane64(UInt128 v, int i) => (ulong)(v >> (64 * i));

    /// <summary>CVTPS2PD: the two low singles widened.</summary>
    public static UInt128 Ps2Pd(UInt128 src, uint mxcsr, ref FloatExceptions flags) =>
        SseFloat.ConvertFloat(Lane32(src, 0), true, mxcsr, ref flags) | ((UInt128)SseFloat.ConvertFloat(Lane32(src, 1), true, mxcsr, ref flags) << 64);

    /// <summary>CVTPD2PS: two doubles narrowed into the low half; the high half is zeroed.</summary>
    public static UInt128 Pd2Ps(UInt128 src, uint mxcsr, ref FloatExceptions flags) =>
        (UInt128)(uint)SseFloat.ConvertFloat(Lane64(src, 0), false, mxcsr, ref flags)
        | ((UInt128)(uint)SseFloat.ConvertFloat(Lane64(src, 1), false, mxcsr, ref flags) << 32);

    /// <summary>CVTSS2SD xmm1, xmm2/m32.</summary>
    public static UInt128 Ss2Sd(UInt128 dst, UInt128 src, uint mxcsr, ref FloatExceptions flags) =>
        (dst & ~(UInt128)ulong.MaxValue) | SseFloat.ConvertFloat(Lane32(src, 0), true, mxcsr, ref flags);

    /// <summary>CVTSD2SS xmm1, xmm2/m64.</summary>
    public static UInt128 Sd2Ss(UInt128 dst, UInt128 src, uint mxcsr, ref FloatExceptions flags) =>
        (dst & ~(UInt128)uint.MaxValue) | (uint)SseFloat.ConvertFloat(Lane64(src, 0), false, mxcsr, ref flags);

    /// <summary>CVTDQ2PS: four int32 rounded per MXCSR.</summary>
    public static UInt128 Dq2Ps(UInt128 src, uint mxcsr, ref FloatExceptions flags)
    {
        UInt128 r = 0;
        for (int i = 0; i < 4; i++)
            r |= (UInt128)(uint)SseFloat.FromInteger((int)Lane32(src, i), false, mxcsr, ref flags) << (32 * i);
        return r;
    }

    /// <summary>CVTDQ2PD: the two low int32, exactly.</summary>
    public static UInt128 Dq2Pd(UInt128 src, uint mxcsr, ref FloatExceptions flags) =>
        SseFloat.FromInteger((int)Lane32(src, 0), true, mxcsr, ref flags) | ((UInt128)SseFloat.FromInteger((int)Lane32(src, 1), true, mxcsr, ref flags) << 64);

    /// <summary>CVTPS2DQ / CVTTPS2DQ (<paramref name="truncate"/>): invalid lanes give 80000000h.</summary>
    public static UInt128 Ps2Dq(UInt128 src, bool truncate, uint mxcsr, ref FloatExceptions flags)
    {
        UInt128 r = 0;
        for (int i = 0; i < 4; i++)
            r |= (UInt128)(uint)SseFloat.ToInteger(Lane32(src, i), false, 32, truncate, mxcsr, ref flags) << (32 * i);
        return r;
    }

    /// <summary>CVTPD2DQ / CVTTPD2DQ: two int32 in the low half, high half zeroed.</summary>
    public static UInt128 Pd2Dq(UInt128 src, bool truncate, uint mxcsr, ref FloatExceptions flags) =>
        (UInt128)(uint)SseFloat.ToInteger(Lane64(src, 0), true, 32, truncate, mxcsr, ref flags)
        | ((UInt128)(uint)SseFloat.ToInteger(Lane64(src, 1), true, 32, truncate, mxcsr, ref flags) << 32);

    /// <summary>CVTSI2SS / CVTSI2SD with a 32-bit (sign-extend first) or 64-bit source, merged into <paramref name="dst"/>.</summary>
    public static UInt128 Si2Scalar(UInt128 dst, long value, bool isDouble, uint mxcsr, ref FloatExceptions flags)
    {
        ulong mask = isDouble ? ulong.MaxValue : uint.MaxValue;
        return (dst & ~(UInt128)mask) | (SseFloat.FromInteger(value, isDouble, mxcsr, ref flags) & mask);
    }

    /// <summary>CVTSS2SI / CVTSD2SI / CVTTSS2SI / CVTTSD2SI with a 32- or 64-bit destination (integer indefinite on invalid).</summary>
    public static long Scalar2Si(UInt128 src, bool isDouble, int bits, bool truncate, uint mxcsr, ref FloatExceptions flags) =>
        SseFloat.ToInteger(isDouble ? Lane64(src, 0) : Lane32(src, 0), isDouble, bits, truncate, mxcsr, ref flags);
}
