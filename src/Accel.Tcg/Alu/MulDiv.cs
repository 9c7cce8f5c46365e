using System.Runtime.CompilerServices;

namespace Hypervisor.Accel.Tcg.Alu;

// Multiply and divide (Intel SDM Vol. 2: MUL, IMUL, DIV, IDIV, MULX).
internal static partial class Alu
{
    /// <summary>
    /// MUL (unsigned): returns the low half of a * b and the high half in <paramref name="high"/> (AH, DX, EDX, RDX).
    /// CF = OF = (high != 0). SF ZF AF PF are undefined: SF ZF PF are set from the low half, AF is cleared.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Mul(ulong a, ulong b, int bits, out ulong high, ref ulong rflags)
    {
        ulong m = Mask(bits);
        a &= m;
        b &= m;
        ulong low;
        if (bits == 64)
        {
            high = Math.BigMul(a, b, out low);
        }
        else
        {
            ulong p = a * b;
            low = p & m;
            high = p >> bits;
        }

        ulong overflow = Bool(high != 0);
        SetFlags(ref rflags, AluFlags.Status, (overflow << CfBit) | (overflow << OfBit) | SzpFlags(low, bits));
        return low;
    }

    /// <summary>
    /// IMUL (signed), all three forms: returns the low half of a * b (the 2- and 3-operand forms keep only this) and the
    /// high half in <paramref name="high"/> for the 1-operand form. CF = OF = (the product does not fit in
    /// <paramref name="bits"/> signed bits). SF ZF AF PF are undefined: SF ZF PF are set from the low half, AF is cleared.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Imul(ulong a, ulong b, int bits, out ulong high, ref ulong rflags)
    {
        ulong m = Mask(bits);
        ulong low;
        bool overflow;
        if (bits == 64)
        {
            high = (ulong)Math.BigMul((long)a, (long)b, out long lowSigned);
            low = (ulong)lowSigned;
            overflow = (long)high != (lowSigned >> 63);
        }
        else
        {
            long p = SignExtend(a, bits) * SignExtend(b, bits);
            low = (ulong)p & m;
            high = (ulong)(p >> bits) & m;
            overflow = p != SignExtend(low, bits);
        }

        ulong of = Bool(overflow);
        SetFlags(ref rflags, AluFlags.Status, (of << CfBit) | (of << OfBit) | SzpFlags(low, bits));
        return low;
    }

    /// <summary>
    /// DIV (unsigned): divides high:low (AH:AL, DX:AX, EDX:EAX, RDX:RAX) by <paramref name="divisor"/>. Returns false
    /// (the interpreter raises #DE and changes nothing) when the divisor is 0 or the quotient does not fit in
    /// <paramref name="bits"/>. Flags are undefined after DIV; this method leaves them unchanged.
    /// </summary>
    public static bool Div(ulong high, ulong low, ulong divisor, int bits, out ulong quotient, out ulong remainder)
    {
        ulong m = Mask(bits);
        high &= m;
        low &= m;
        divisor &= m;
        // The quotient fits exactly when high < divisor (this also rejects divisor == 0).
        if (high >= divisor)
        {
            quotient = 0;
            remainder = 0;
            return false;
        }

        if (bits == 64)
        {
            if (high == 0)
            {
                (quotient, remainder) = Math.DivRem(low, divisor);
            }
            else
            {
                UInt128 dividend = new(high, low);
                (UInt128 q, UInt128 r) = UInt128.DivRem(dividend, divisor);
                quotient = (ulong)q;
                remainder = (ulong)r;
            }
        }
        else
        {
            (quotient, remainder) = Math.DivRem((high << bits) | low, divisor);
        }

        return true;
    }

    /// <summary>
    /// IDIV (signed): divides the signed high:low by the signed <paramref name="divisor"/>, truncating toward zero; the
    /// remainder has the dividend's sign. Returns false (#DE) when the divisor is 0 or the quotient does not fit in
    /// <paramref name="bits"/> signed bits. Flags are undefined after IDIV; this method leaves them unchanged.
    /// Quotient and remainder are returned masked to <paramref name="bits"/>.
    /// </summary>
    public static bool Idiv(ulong high, ulong low, ulong divisor, int bits, out ulong quotient, out ulong remainder)
    {
        ulong m = Mask(bits);
        long d = SignExtend(divisor, bits);
        quotient = 0;
        remainder = 0;
        if (d == 0)
        {
            return false;
        }

        long q, r;
        if (bits == 64)
        {
            if ((long)high == (long)low >> 63)
            {
                // The dividend fits in 64 bits; long.MinValue / -1 is the one quotient that does not.
                if (d == -1)
                {
                    if (low == 1UL << 63)
                    {
                        return false;
                    }

                    q = -(long)low;
                    r = 0;
                }
                else
                {
                    (q, r) = Math.DivRem((long)low, d);
                }
            }
            else
            {
                Int128 dividend = (Int128)new UInt128(high, low);
                // Negation wraps for Int128.MinValue, which the range check then rejects; DivRem would throw.
                (Int128 q128, Int128 r128) = d == -1 ? (-dividend, Int128.Zero) : Int128.DivRem(dividend, d);
                if (q128 < long.MinValue || q128 > long.MaxValue)
                {
                    return false;
                }

                q = (long)q128;
                r = (long)r128;
            }
        }
        else
        {
            long dividend = SignExtend(((high & m) << bits) | (low & m), 2 * bits);
            if (d == -1)
            {
                q = unchecked(-dividend);
                r = 0;
            }
            else
            {
                (q, r) = Math.DivRem(dividend, d);
            }

            long limit = 1L << (bits - 1);
            if (q < -limit || q >= limit)
            {
                return false;
            }
        }

        quotient = (ulong)q & m;
        remainder = (ulong)r & m;
        return true;
    }

    /// <summary>MULX (BMI2, 32/64 bit): unsigned a * b without touching flags; returns the low half, high half in <paramref name="high"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Mulx(ulong a, ulong b, int bits, out ulong high)
    {
        ulong m = Mask(bits);
        a &= m;
        b &= m;
        if (bits == 64)
        {
            high = Math.BigMul(a, b, out ulong low);
            return low;
        }

        ulong p = a * b;
        high = p >> bits;
        return p & m;
    }
}
