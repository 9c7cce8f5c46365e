using System.Runtime.CompilerServices;

namespace Hypervisor.Accel.Tcg.Alu;

// Integer add/subtract family (Intel SDM Vol. 2: ADD, ADC, SUB, SBB, CMP, NEG, INC, DEC, CMPXCHG, XADD, ADCX, ADOX).
// Operands may carry garbage above `bits`; results are zero-extended to 64 bits.
internal static partial class Alu
{
    /// <summary>ADD: returns a + b; sets CF PF AF ZF SF OF. Also the flag update of XADD.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Add(ulong a, ulong b, int bits, ref ulong rflags) => AddCore(a, b, 0, bits, ref rflags);

    /// <summary>ADC: returns a + b + CF; sets CF PF AF ZF SF OF.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Adc(ulong a, ulong b, int bits, ref ulong rflags) => AddCore(a, b, rflags & AluFlags.CF, bits, ref rflags);

    /// <summary>SUB: returns a - b; sets CF PF AF ZF SF OF.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Sub(ulong a, ulong b, int bits, ref ulong rflags) => SubCore(a, b, 0, bits, ref rflags);

    /// <summary>SBB: returns a - (b + CF); sets CF PF AF ZF SF OF.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Sbb(ulong a, ulong b, int bits, ref ulong rflags) => SubCore(a, b, rflags & AluFlags.CF, bits, ref rflags);

    /// <summary>CMP (and the flag update of CMPXCHG, which compares the accumulator with the destination): flags of a - b.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Cmp(ulong a, ulong b, int bits, ref ulong rflags) => SubCore(a, b, 0, bits, ref rflags);

    /// <summary>NEG: returns 0 - a; CF = (a != 0), the other flags as for SUB.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Neg(ulong a, int bits, ref ulong rflags) => SubCore(0, a, 0, bits, ref rflags);

    /// <summary>INC: returns a + 1; CF is preserved, PF AF ZF SF OF are set.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Inc(ulong a, int bits, ref ulong rflags)
    {
        ulong cf = rflags & AluFlags.CF;
        ulong r = AddCore(a, 1, 0, bits, ref rflags);
        rflags = (rflags & ~AluFlags.CF) | cf;
        return r;
    }

    /// <summary>DEC: returns a - 1; CF is preserved, PF AF ZF SF OF are set.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Dec(ulong a, int bits, ref ulong rflags)
    {
        ulong cf = rflags & AluFlags.CF;
        ulong r = SubCore(a, 1, 0, bits, ref rflags);
        rflags = (rflags & ~AluFlags.CF) | cf;
        return r;
    }

    /// <summary>
    /// CMPXCHG flags and outcome: compares <paramref name="accumulator"/> with <paramref name="destination"/> (flags as CMP).
    /// Returns true when they are equal (the caller then writes the source to the destination, otherwise it loads the
    /// destination into the accumulator).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool CmpXchg(ulong accumulator, ulong destination, int bits, ref ulong rflags)
    {
        SubCore(accumulator, destination, 0, bits, ref rflags);
        return (rflags & AluFlags.ZF) != 0;
    }

    /// <summary>ADCX (32/64 bit): returns a + b + CF; only CF is written.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Adcx(ulong a, ulong b, int bits, ref ulong rflags)
    {
        ulong r = AddWithCarryOut(a, b, rflags & AluFlags.CF, bits, out ulong carry);
        rflags = (rflags & ~AluFlags.CF) | carry;
        return r;
    }

    /// <summary>ADOX (32/64 bit): returns a + b + OF; only OF is written (with the carry out).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Adox(ulong a, ulong b, int bits, ref ulong rflags)
    {
        ulong r = AddWithCarryOut(a, b, (rflags >> OfBit) & 1, bits, out ulong carry);
        rflags = (rflags & ~AluFlags.OF) | (carry << OfBit);
        return r;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong AddWithCarryOut(ulong a, ulong b, ulong carryIn, int bits, out ulong carryOut)
    {
        ulong m = Mask(bits);
        a &= m;
        b &= m;
        ulong r = (a + b + carryIn) & m;
        // Carry out of each bit position: majority(a, b, carry-in), written with the result bit.
        ulong carries = (a & b) | ((a | b) & ~r);
        carryOut = (carries >> (bits - 1)) & 1;
        return r;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong AddCore(ulong a, ulong b, ulong carryIn, int bits, ref ulong rflags)
    {
        ulong m = Mask(bits);
        a &= m;
        b &= m;
        ulong r = (a + b + carryIn) & m;
        ulong carries = (a & b) | ((a | b) & ~r);
        ulong cf = (carries >> (bits - 1)) & 1;
        ulong af = ((a ^ b ^ r) >> 4) & 1;
        // Signed overflow: both operands have the same sign and the result's sign differs.
        ulong of = (((a ^ r) & (b ^ r)) >> (bits - 1)) & 1;
        SetFlags(ref rflags, AluFlags.Status, (cf << CfBit) | (af << AfBit) | (of << OfBit) | SzpFlags(r, bits));
        return r;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong SubCore(ulong a, ulong b, ulong borrowIn, int bits, ref ulong rflags)
    {
        ulong m = Mask(bits);
        a &= m;
        b &= m;
        ulong r = (a - b - borrowIn) & m;
        // Borrow out of each bit position.
        ulong borrows = (~a & b) | ((~a | b) & r);
        ulong cf = (borrows >> (bits - 1)) & 1;
        ulong af = ((a ^ b ^ r) >> 4) & 1;
        // Signed overflow: operands of different sign and the result's sign differs from the minuend's.
        ulong of = (((a ^ b) & (a ^ r)) >> (bits - 1)) & 1;
        SetFlags(ref rflags, AluFlags.Status, (cf << CfBit) | (af << AfBit) | (of << OfBit) | SzpFlags(r, bits));
        return r;
    }
}
