using System.Buffers.Binary;
using System.Numerics;

namespace Hypervisor.Accel.Tcg.Fpu;

/// <summary>
/// An x87 80-bit double-extended-precision value exactly as stored in a data register or in memory (SDM Vol. 1, 4.2.2):
/// a 64-bit significand with an explicit integer bit (bit 63) and a sign + 15-bit biased exponent word.
/// </summary>
internal readonly record struct ExtendedFloat(ulong Significand, ushort SignExponent)
{
    public const int Bias = 16383;

    public bool Sign => (SignExponent & 0x8000) != 0;
    public int BiasedExponent => SignExponent & 0x7FFF;

    public static ExtendedFloat PositiveZero => new(0, 0);
    public static ExtendedFloat NegativeZero => new(0, 0x8000);
    public static ExtendedFloat One => new(0x8000_0000_0000_0000, Bias);
    public static ExtendedFloat PositiveInfinity => new(0x8000_0000_0000_0000, 0x7FFF);
    public static ExtendedFloat NegativeInfinity => new(0x8000_0000_0000_0000, 0xFFFF);

    /// <summary>The QNaN floating-point indefinite: sign 1, exponent all ones, significand C000000000000000h (SDM Vol. 1, Table 4-3).</summary>
    public static ExtendedFloat Indefinite => new(0xC000_0000_0000_0000, 0xFFFF);

    public ExtendedFloat Negate() => new(Significand, (ushort)(SignExponent ^ 0x8000));
    public ExtendedFloat Abs() => new(Significand, (ushort)(SignExponent & 0x7FFF));

    /// <summary>Reads the 10-byte little-endian memory image (significand, then sign/exponent).</summary>
    public static ExtendedFloat Read(ReadOnlySpan<byte> tenBytes) =>
        new(BinaryPrimitives.ReadUInt64LittleEndian(tenBytes), BinaryPrimitives.ReadUInt16LittleEndian(tenBytes[8..]));

    /// <summary>Writes the 10-byte little-endian memory image.</summary>
    public void Write(Span<byte> tenBytes)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(tenBytes, Significand);
        BinaryPrimitives.WriteUInt16LittleEndian(tenBytes[8..], SignExponent);
    }

    /// <summary>Unpacks, classifying pseudo-NaNs, pseudo-infinities and unnormals as unsupported and pseudo-denormals as denormals.</summary>
    public FloatParts Unpack()
    {
        bool sign = Sign;
        int exp = BiasedExponent;
        ulong sig = Significand;
        if (exp == 0x7FFF)
        {
            if ((sig >> 63) == 0)
                return new FloatParts { Class = FloatClass.Unsupported, Sign = sign, Significand = sig };
            if ((sig << 1) == 0)
                return FloatParts.Infinity(sign);
            return new FloatParts
            {
                Class = (sig & 0x4000_0000_0000_0000) != 0 ? FloatClass.QuietNaN : FloatClass.SignalingNaN,
                Sign = sign,
                Significand = sig,
            };
        }
        if (exp == 0)
        {
            if (sig == 0)
                return FloatParts.Zero(sign);
            int lz = BitOperations.LeadingZeroCount(sig);
            return new FloatParts { Class = FloatClass.Finite, Sign = sign, Denormal = true, Exponent = 1 - Bias - lz, Significand = sig << lz };
        }
        if ((sig >> 63) == 0)
            return new FloatParts { Class = FloatClass.Unsupported, Sign = sign, Exponent = exp - Bias, Significand = sig };
        return FloatParts.Finite(sign, exp - Bias, sig);
    }

    /// <summary>Packs a value produced by the rounding core with an extended-range format, or a NaN, zero or infinity.</summary>
    public static ExtendedFloat Pack(in FloatParts v)
    {
        ushort sign = v.Sign ? (ushort)0x8000 : (ushort)0;
        return v.Class switch
        {
            FloatClass.Zero => new ExtendedFloat(0, sign),
            FloatClass.Infinity => new ExtendedFloat(0x8000_0000_0000_0000, (ushort)(sign | 0x7FFF)),
            FloatClass.Finite => new ExtendedFloat(v.Significand,
                (ushort)(sign | ((v.Significand >> 63) != 0 ? v.Exponent + Bias : 0))),
            FloatClass.Unsupported => Indefinite,
            _ => new ExtendedFloat(v.Significand, (ushort)(sign | 0x7FFF)),
        };
    }

    public override string ToString() => $"{SignExponent:X4}:{Significand:X16}";
}
