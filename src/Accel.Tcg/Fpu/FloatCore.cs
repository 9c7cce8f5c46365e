using System.Numerics;
using System.Runtime.CompilerServices;

namespace Hypervisor.Accel.Tcg.Fpu;

/// <summary>
/// Floating-point exception flags. The bit positions are the same in the x87 status word (FSW bits 0-5), the x87 control
/// word masks (FCW bits 0-5), the MXCSR flags (bits 0-5) and the MXCSR masks (bits 7-12, shifted by 7).
/// Intel SDM Vol. 1, 8.1.3 and 10.2.3.
/// </summary>
[Flags]
internal enum FloatExceptions : byte
{
    None = 0,
    /// <summary>IE: invalid operation.</summary>
    Invalid = 1,
    /// <summary>DE: denormal operand.</summary>
    Denormal = 2,
    /// <summary>ZE: divide by zero.</summary>
    ZeroDivide = 4,
    /// <summary>OE: overflow.</summary>
    Overflow = 8,
    /// <summary>UE: underflow.</summary>
    Underflow = 16,
    /// <summary>PE: precision (inexact result).</summary>
    Precision = 32,
    /// <summary>All six exceptions.</summary>
    All = 63,
}

/// <summary>Rounding control, encoded as in FCW.RC (bits 10-11) and MXCSR.RC (bits 13-14).</summary>
internal enum RoundingMode : byte
{
    NearestEven = 0,
    Down = 1,
    Up = 2,
    TowardZero = 3,
}

/// <summary>Class of an unpacked floating-point value.</summary>
internal enum FloatClass : byte
{
    Zero,
    Finite,
    Infinity,
    QuietNaN,
    SignalingNaN,
    /// <summary>x87 only: pseudo-NaN, pseudo-infinity, unnormal (SDM Vol. 1, 8.2.2); invalid as an operand.</summary>
    Unsupported,
}

/// <summary>
/// A binary format as the rounding core sees it: the precision in bits (including the integer bit), the exponent range
/// of normal numbers, and the exponent of the smallest denormal's unit (the quantum floor).
/// </summary>
internal readonly struct FloatFormat(int precision, int minExponent, int maxExponent, int minQuantumExponent,
    bool wrapOverflow = false, bool wrapUnderflow = false)
{
    public readonly int Precision = precision;
    public readonly int MinExponent = minExponent;
    public readonly int MaxExponent = maxExponent;
    public readonly int MinQuantumExponent = minQuantumExponent;

    /// <summary>
    /// x87 with OE unmasked and a register destination: an overflowing result is delivered rounded with its exponent
    /// reduced by 24576 (SDM Vol. 1, 8.5.3); likewise <see cref="WrapUnderflow"/> (UE unmasked) adds 24576 to a tiny
    /// result rounded as if the exponent range were unbounded (8.5.4).
    /// </summary>
    public readonly bool WrapOverflow = wrapOverflow;
    public readonly bool WrapUnderflow = wrapUnderflow;

    public const int X87WrapBias = 24576;

    public static FloatFormat Single => new(24, -126, 127, -149);
    public static FloatFormat Double => new(53, -1022, 1023, -1074);
    public static FloatFormat Extended => new(64, -16382, 16383, -16445);

    /// <summary>
    /// The x87 destination format under FCW.PC: the significand is rounded to 24, 53 or 64 bits but the exponent range
    /// stays the extended one (SDM Vol. 1, 8.1.5.2); a tiny result is denormalized at that precision too, so its unit
    /// is 2^(-16382 - (precision - 1)) (observed on hardware: 0 + smallest denormal under PC=24 gives 0 with UE PE).
    /// </summary>
    public static FloatFormat ExtendedWithPrecision(int precision, bool wrapOverflow = false, bool wrapUnderflow = false) =>
        new(precision, -16382, 16383, -16382 - (precision - 1), wrapOverflow, wrapUnderflow);
}

/// <summary>
/// An unpacked value. For <see cref="FloatClass.Finite"/> the significand is normalized (bit 63 set) and the value is
/// <c>Significand * 2^(Exponent - 63)</c>; for NaNs the significand holds the fraction left-aligned with the integer bit
/// at 63 and the quiet bit at 62, so that NaN payloads convert between formats by truncation.
/// </summary>
internal struct FloatParts
{
    public FloatClass Class;
    public bool Sign;
    /// <summary>The encoded operand was a denormal (or x87 pseudo-denormal).</summary>
    public bool Denormal;
    public int Exponent;
    public ulong Significand;

    public readonly bool IsNaN => Class is FloatClass.QuietNaN or FloatClass.SignalingNaN;

    public static FloatParts Zero(bool sign) => new() { Class = FloatClass.Zero, Sign = sign };
    public static FloatParts Infinity(bool sign) => new() { Class = FloatClass.Infinity, Sign = sign };

    /// <summary>The default QNaN ("real indefinite"): negative, quiet bit only (SDM Vol. 1, 4.8.3.7).</summary>
    public static FloatParts DefaultNaN => new() { Class = FloatClass.QuietNaN, Sign = true, Significand = 0xC000_0000_0000_0000 };

    public static FloatParts Finite(bool sign, int exponent, ulong significand) =>
        new() { Class = FloatClass.Finite, Sign = sign, Exponent = exponent, Significand = significand };

    public readonly FloatParts Quieted()
    {
        var r = this;
        if (r.Class == FloatClass.SignalingNaN)
        {
            r.Class = FloatClass.QuietNaN;
            r.Significand |= 0x4000_0000_0000_0000;
        }
        return r;
    }
}

/// <summary>The exact rounding core shared by the x87 and SSE implementations.</summary>
internal static class FloatCore
{
    /// <summary>
    /// Rounds <c>sig * 2^(exp - 127)</c> (sig normalized: bit 127 set; any inexact tail already jammed into bit 0) to
    /// <paramref name="format"/> under <paramref name="mode"/>, producing the masked responses of SDM Vol. 1, 4.9.1.4-4.9.1.6
    /// (overflow to infinity or the largest finite number, gradual underflow, tininess detected after rounding).
    /// </summary>
    /// <remarks>
    /// <c>underflowMasked</c>: whether UE is masked (a masked underflow is only signalled when also inexact).
    /// <c>flushToZero</c>: SSE MXCSR.FTZ (a tiny result with UE masked becomes a signed zero with UE and PE).
    /// <c>roundedUp</c>: the magnitude was increased by rounding (the x87 C1 bit).
    /// </remarks>
    public static FloatParts RoundPack(bool sign, int exp, UInt128 sig, in FloatFormat format, RoundingMode mode,
        bool underflowMasked, bool flushToZero, ref FloatExceptions flags, out bool roundedUp)
    {
        int p = format.Precision;
        bool tiny = false;
        if (exp < format.MinExponent)
        {
            tiny = true;
            if (exp == format.MinExponent - 1)
            {
                // Tininess after rounding: would rounding with an unbounded exponent reach 2^MinExponent?
                var m = RoundInteger(sig, 128 - p, sign, mode, out _, out _);
                if ((m >> p) != 0)
                    tiny = false;
            }
        }

        if (tiny && format.WrapUnderflow)
        {
            var m = RoundInteger(sig, 128 - p, sign, mode, out bool inex, out roundedUp);
            flags |= FloatExceptions.Underflow | (inex ? FloatExceptions.Precision : 0);
            return Wrapped(sign, m, exp - (p - 1), p, FloatFormat.X87WrapBias);
        }

        int q = Math.Max(exp - (p - 1), format.MinQuantumExponent);
        int drop = q - exp + 127;
        UInt128 n = RoundInteger(sig, drop, sign, mode, out bool inexact, out roundedUp);

        if (tiny && underflowMasked && flushToZero)
        {
            flags |= FloatExceptions.Underflow | FloatExceptions.Precision;
            roundedUp = false;
            return FloatParts.Zero(sign);
        }
        if (inexact)
            flags |= FloatExceptions.Precision;
        if (tiny && (inexact || !underflowMasked))
            flags |= FloatExceptions.Underflow;

        if (n == UInt128.Zero)
            return FloatParts.Zero(sign);
        if ((n >> p) != 0)
        {
            n >>= 1;
            q++;
        }
        int msb = 127 - (int)UInt128.LeadingZeroCount(n);
        int e = q + msb;
        if (e > format.MaxExponent && format.WrapOverflow)
        {
            flags |= FloatExceptions.Overflow | (inexact ? FloatExceptions.Precision : 0);
            return Wrapped(sign, n, q, p, -FloatFormat.X87WrapBias);
        }
        if (e > format.MaxExponent)
        {
            flags |= FloatExceptions.Overflow | FloatExceptions.Precision;
            bool toInfinity = mode switch
            {
                RoundingMode.NearestEven => true,
                RoundingMode.Up => !sign,
                RoundingMode.Down => sign,
                _ => false,
            };
            roundedUp = toInfinity;
            if (toInfinity)
                return FloatParts.Infinity(sign);
            return FloatParts.Finite(sign, format.MaxExponent, ulong.MaxValue << (64 - p));
        }
        int field = Math.Max(e, format.MinExponent);
        int shift = q - (field - 63);
        ulong s = (ulong)(n << shift);
        return new FloatParts { Class = FloatClass.Finite, Sign = sign, Exponent = field, Significand = s };
    }

    // n * 2^q (n below 2^(p+1)), normalized, with the exponent moved by `bias` (x87 unmasked OE/UE responses).
    private static FloatParts Wrapped(bool sign, UInt128 n, int q, int p, int bias)
    {
        if ((n >> p) != 0)
        {
            n >>= 1;
            q++;
        }
        int msb = 127 - (int)UInt128.LeadingZeroCount(n);
        return FloatParts.Finite(sign, q + msb + bias, (ulong)(n << (63 - msb)));
    }

    /// <summary>Rounds <c>sig / 2^drop</c> to an integer under the given mode.</summary>
    public static UInt128 RoundInteger(UInt128 sig, int drop, bool sign, RoundingMode mode, out bool inexact, out bool incremented)
    {
        UInt128 n, rem, half;
        if (drop <= 0)
        {
            inexact = false;
            incremented = false;
            return sig << -drop;
        }
        if (drop < 128)
        {
            n = sig >> drop;
            rem = sig & ((UInt128.One << drop) - 1);
            half = UInt128.One << (drop - 1);
        }
        else
        {
            n = UInt128.Zero;
            rem = sig;
            half = drop == 128 ? UInt128.One << 127 : UInt128.Zero;
        }
        inexact = rem != UInt128.Zero;
        bool inc = false;
        if (inexact)
        {
            inc = mode switch
            {
                RoundingMode.NearestEven => drop <= 128 && (rem > half || (rem == half && (n & 1) != 0)),
                RoundingMode.Up => !sign,
                RoundingMode.Down => sign,
                _ => false,
            };
        }
        incremented = inc;
        return inc ? n + 1 : n;
    }

    /// <summary>Normalizes a nonzero magnitude <c>mag * 2^exp2</c> and rounds it (see <see cref="RoundPack"/>).</summary>
    public static FloatParts NormalizeRoundPack(bool sign, UInt128 mag, int exp2, in FloatFormat format, RoundingMode mode,
        bool underflowMasked, bool flushToZero, ref FloatExceptions flags, out bool roundedUp)
    {
        int lz = (int)UInt128.LeadingZeroCount(mag);
        return RoundPack(sign, exp2 + 127 - lz, mag << lz, format, mode, underflowMasked, flushToZero, ref flags, out roundedUp);
    }

    /// <summary>Exact sum of two finite nonzero values, rounded.</summary>
    public static FloatParts AddFinite(in FloatParts a, in FloatParts b, in FloatFormat format, RoundingMode mode,
        bool underflowMasked, bool flushToZero, ref FloatExceptions flags, out bool roundedUp)
    {
        // Put the larger exponent first; significands sit at bits 126..63 so a carry fits in bit 127.
        ref readonly FloatParts x = ref a, y = ref b;
        if (b.Exponent > a.Exponent || (b.Exponent == a.Exponent && b.Significand > a.Significand))
        {
            x = ref b;
            y = ref a;
        }
        UInt128 mx = (UInt128)x.Significand << 63;
        UInt128 my = (UInt128)y.Significand << 63;
        int d = x.Exponent - y.Exponent;
        my = ShiftRightJam(my, d);
        UInt128 r;
        bool sign = x.Sign;
        if (x.Sign == y.Sign)
        {
            r = mx + my;
        }
        else
        {
            r = mx - my;
            if (r == UInt128.Zero)
            {
                roundedUp = false;
                return FloatParts.Zero(mode == RoundingMode.Down);
            }
        }
        // value = r * 2^(x.Exponent - 126)
        return NormalizeRoundPack(sign, r, x.Exponent - 126, format, mode, underflowMasked, flushToZero, ref flags, out roundedUp);
    }

    public static FloatParts MulFinite(in FloatParts a, in FloatParts b, in FloatFormat format, RoundingMode mode,
        bool underflowMasked, bool flushToZero, ref FloatExceptions flags, out bool roundedUp)
    {
        UInt128 prod = (UInt128)a.Significand * b.Significand;
        // value = prod * 2^(ea - 63 + eb - 63)
        return NormalizeRoundPack(a.Sign ^ b.Sign, prod, a.Exponent + b.Exponent - 126, format, mode, underflowMasked,
            flushToZero, ref flags, out roundedUp);
    }

    public static FloatParts DivFinite(in FloatParts a, in FloatParts b, in FloatFormat format, RoundingMode mode,
        bool underflowMasked, bool flushToZero, ref FloatExceptions flags, out bool roundedUp)
    {
        ulong ma = a.Significand, mb = b.Significand;
        // q1 = floor(ma * 2^63 / mb) < 2^64, then 64 more quotient bits from the remainder.
        UInt128 n1 = (UInt128)ma << 63;
        ulong q1 = (ulong)(n1 / mb);
        ulong r1 = (ulong)(n1 % mb);
        UInt128 n2 = (UInt128)r1 << 64;
        ulong q2 = (ulong)(n2 / mb);
        ulong r2 = (ulong)(n2 % mb);
        UInt128 q = ((UInt128)q1 << 64) | q2;
        if (r2 != 0)
            q |= 1;
        // value = q * 2^-127 * 2^(ea - eb)
        return NormalizeRoundPack(a.Sign ^ b.Sign, q, a.Exponent - b.Exponent - 127, format, mode, underflowMasked,
            flushToZero, ref flags, out roundedUp);
    }

    public static FloatParts SqrtFinite(in FloatParts a, in FloatFormat format, RoundingMode mode,
        bool underflowMasked, bool flushToZero, ref FloatExceptions flags, out bool roundedUp)
    {
        // value = m * 2^E with E = Exponent - 63; make E even.
        int e = a.Exponent - 63;
        UInt128 m = a.Significand;
        if ((e & 1) != 0)
        {
            m <<= 1;
            e -= 1;
        }
        // Restoring square root, two input bits per result bit: the 66-bit input then zero pairs, 68 result bits,
        // so that the root is floor(sqrt(m * 2^70)) = sqrt(m) * 2^35 and the remainder gives the sticky bit.
        UInt128 rem = 0, root = 0;
        for (int i = 0; i < 68; i++)
        {
            int pair = 32 - i;
            ulong bits = pair >= 0 ? (ulong)(m >> (2 * pair)) & 3 : 0;
            rem = (rem << 2) | bits;
            UInt128 t = (root << 2) | 1;
            if (rem >= t)
            {
                rem -= t;
                root = (root << 1) | 1;
            }
            else
            {
                root <<= 1;
            }
        }
        if (rem != UInt128.Zero)
            root = (root << 1) | 1;
        else
            root <<= 1;
        // root (with the sticky bit appended) = sqrt(m) * 2^36
        return NormalizeRoundPack(false, root, e / 2 - 36, format, mode, underflowMasked, flushToZero, ref flags, out roundedUp);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static UInt128 ShiftRightJam(UInt128 v, int count)
    {
        if (count <= 0)
            return v;
        if (count >= 128)
            return v != UInt128.Zero ? UInt128.One : UInt128.Zero;
        UInt128 r = v >> count;
        if ((v & ((UInt128.One << count) - 1)) != UInt128.Zero)
            r |= 1;
        return r;
    }

    /// <summary>Compares two non-NaN values: -1, 0 or 1 (zeros of either sign are equal).</summary>
    public static int CompareOrdered(in FloatParts a, in FloatParts b)
    {
        int sa = a.Class == FloatClass.Zero ? 0 : (a.Sign ? -1 : 1);
        int sb = b.Class == FloatClass.Zero ? 0 : (b.Sign ? -1 : 1);
        if (sa != sb)
            return sa < sb ? -1 : 1;
        if (sa == 0)
            return 0;
        int c = CompareMagnitude(a, b);
        return sa > 0 ? c : -c;
    }

    private static int CompareMagnitude(in FloatParts a, in FloatParts b)
    {
        if (a.Class == FloatClass.Infinity)
            return b.Class == FloatClass.Infinity ? 0 : 1;
        if (b.Class == FloatClass.Infinity)
            return -1;
        if (a.Class == FloatClass.Zero)
            return b.Class == FloatClass.Zero ? 0 : -1;
        if (b.Class == FloatClass.Zero)
            return 1;
        if (a.Exponent != b.Exponent)
            return a.Exponent < b.Exponent ? -1 : 1;
        return a.Significand.CompareTo(b.Significand);
    }
}
