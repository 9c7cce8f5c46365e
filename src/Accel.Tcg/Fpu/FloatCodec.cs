using System.Numerics;

namespace Hypervisor.Accel.Tcg.Fpu;

/// <summary>Unpacks and packs IEEE binary32/binary64 encodings to and from <see cref="FloatParts"/>.</summary>
internal static class FloatCodec
{
    /// <summary>Unpacks a binary32 value. With <paramref name="denormalsAreZero"/> (MXCSR.DAZ) a denormal reads as a signed zero.</summary>
    public static FloatParts UnpackSingle(uint bits, bool denormalsAreZero = false)
    {
        bool sign = (bits >> 31) != 0;
        int exp = (int)((bits >> 23) & 0xFF);
        ulong frac = bits & 0x7F_FFFF;
        if (exp == 0xFF)
        {
            if (frac == 0)
                return FloatParts.Infinity(sign);
            return new FloatParts
            {
                Class = (frac & 0x40_0000) != 0 ? FloatClass.QuietNaN : FloatClass.SignalingNaN,
                Sign = sign,
                Significand = (1UL << 63) | (frac << 40),
            };
        }
        if (exp == 0)
        {
            if (frac == 0 || denormalsAreZero)
                return FloatParts.Zero(sign);
            int lz = BitOperations.LeadingZeroCount(frac);
            return new FloatParts { Class = FloatClass.Finite, Sign = sign, Denormal = true, Exponent = -86 - lz, Significand = frac << lz };
        }
        return FloatParts.Finite(sign, exp - 127, (1UL << 63) | (frac << 40));
    }

    /// <summary>Unpacks a binary64 value. With <paramref name="denormalsAreZero"/> (MXCSR.DAZ) a denormal reads as a signed zero.</summary>
    public static FloatParts UnpackDouble(ulong bits, bool denormalsAreZero = false)
    {
        bool sign = (bits >> 63) != 0;
        int exp = (int)((bits >> 52) & 0x7FF);
        ulong frac = bits & 0xF_FFFF_FFFF_FFFF;
        if (exp == 0x7FF)
        {
            if (frac == 0)
                return FloatParts.Infinity(sign);
            return new FloatParts
            {
                Class = (frac & 0x8_0000_0000_0000) != 0 ? FloatClass.QuietNaN : FloatClass.SignalingNaN,
                Sign = sign,
                Significand = (1UL << 63) | (frac << 11),
            };
        }
        if (exp == 0)
        {
            if (frac == 0 || denormalsAreZero)
                return FloatParts.Zero(sign);
            int lz = BitOperations.LeadingZeroCount(frac);
            // value = frac * 2^-1074 = (frac << lz) * 2^(E - 63)
            return new FloatParts { Class = FloatClass.Finite, Sign = sign, Denormal = true, Exponent = -1011 - lz, Significand = frac << lz };
        }
        return FloatParts.Finite(sign, exp - 1023, (1UL << 63) | (frac << 11));
    }

    /// <summary>Packs a value produced by <see cref="FloatCore.RoundPack"/> with <see cref="FloatFormat.Single"/>, or a NaN (payload truncated).</summary>
    public static uint PackSingle(in FloatParts v)
    {
        uint sign = v.Sign ? 0x8000_0000u : 0;
        switch (v.Class)
        {
            case FloatClass.Zero:
                return sign;
            case FloatClass.Infinity:
                return sign | 0x7F80_0000;
            case FloatClass.Finite:
            {
                uint field = (v.Significand >> 63) != 0 ? (uint)(v.Exponent + 127) : 0;
                return sign | (field << 23) | (uint)((v.Significand >> 40) & 0x7F_FFFF);
            }
            default:
                return sign | 0x7F80_0000 | (uint)((v.Significand >> 40) & 0x7F_FFFF);
        }
    }

    /// <summary>Packs a value produced by <see cref="FloatCore.RoundPack"/> with <see cref="FloatFormat.Double"/>, or a NaN (payload truncated).</summary>
    public static ulong PackDouble(in FloatParts v)
    {
        ulong sign = v.Sign ? 0x8000_0000_0000_0000UL : 0;
        switch (v.Class)
        {
            case FloatClass.Zero:
                return sign;
            case FloatClass.Infinity:
                return sign | 0x7FF0_0000_0000_0000UL;
            case FloatClass.Finite:
            {
                ulong field = (v.Significand >> 63) != 0 ? (ulong)(v.Exponent + 1023) : 0;
                return sign | (field << 52) | ((v.Significand >> 11) & 0xF_FFFF_FFFF_FFFF);
            }
            default:
                return sign | 0x7FF0_0000_0000_0000UL | ((v.Significand >> 11) & 0xF_FFFF_FFFF_FFFF);
        }
    }
}
