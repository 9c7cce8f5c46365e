using System.Runtime.CompilerServices;

namespace Hypervisor.Accel.Tcg.Alu;

// Shifts and rotates (Intel SDM Vol. 2: SAL/SAR/SHL/SHR, RCL/RCR/ROL/ROR, SHLD, SHRD).
// The count is masked to 5 bits (6 for 64-bit operands); a masked count of 0 changes neither the value nor the
// flags. Undefined results are computed deterministically: OF for counts above 1 uses the count-1 formula, AF after
// a shift is cleared.
internal static partial class Alu
{
    /// <summary>The count mask of shifts and rotates: 0x3F for 64-bit operands, else 0x1F.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int CountMask(int bits) => (bits >> 1) | 31;

    /// <summary>SHL/SAL: returns a &lt;&lt; count. CF = last bit out, OF (count 1) = MSB(result) ^ CF, SF ZF PF from the result.</summary>
    public static ulong Shl(ulong a, ulong count, int bits, ref ulong rflags)
    {
        int n = (int)count & CountMask(bits);
        ulong m = Mask(bits);
        a &= m;
        if (n == 0)
        {
            return a;
        }

        ulong r = (a << n) & m;
        // For 8/16/32-bit operands the count (<= 31) never shifts the last bit out of 64 bits, so bit `bits` of the
        // wide shift is the last bit shifted out (0 when count > bits); 64-bit counts are at most 63.
        ulong cf = bits == 64 ? (a >> (64 - n)) & 1 : ((a << n) >> bits) & 1;
        ulong of = ((r >> (bits - 1)) & 1) ^ cf;
        SetFlags(ref rflags, AluFlags.Status, (cf << CfBit) | (of << OfBit) | SzpFlags(r, bits));
        return r;
    }

    /// <summary>SHR: returns a &gt;&gt; count (logical). CF = last bit out, OF (count 1) = MSB(original), SF ZF PF from the result.</summary>
    public static ulong Shr(ulong a, ulong count, int bits, ref ulong rflags)
    {
        int n = (int)count & CountMask(bits);
        a &= Mask(bits);
        if (n == 0)
        {
            return a;
        }

        ulong r = a >> n;
        ulong cf = (a >> (n - 1)) & 1;
        ulong of = (a >> (bits - 1)) & 1;
        SetFlags(ref rflags, AluFlags.Status, (cf << CfBit) | (of << OfBit) | SzpFlags(r, bits));
        return r;
    }

    /// <summary>SAR: returns a &gt;&gt; count (arithmetic). CF = last bit out, OF = 0, SF ZF PF from the result.</summary>
    public static ulong Sar(ulong a, ulong count, int bits, ref ulong rflags)
    {
        int n = (int)count & CountMask(bits);
        ulong m = Mask(bits);
        if (n == 0)
        {
            return a & m;
        }

        long s = SignExtend(a, bits);
        ulong r = (ulong)(s >> n) & m;
        ulong cf = (ulong)(s >> (n - 1)) & 1;
        SetFlags(ref rflags, AluFlags.Status, (cf << CfBit) | SzpFlags(r, bits));
        return r;
    }

    /// <summary>ROL: rotate left. Only CF (= LSB of the result) and OF (count 1: MSB(result) ^ CF) change.</summary>
    public static ulong Rol(ulong a, ulong count, int bits, ref ulong rflags)
    {
        int n = (int)count & CountMask(bits);
        ulong m = Mask(bits);
        a &= m;
        if (n == 0)
        {
            return a;
        }

        int k = n & (bits - 1);
        ulong r = ((a << k) | (a >> ((bits - k) & (bits - 1)))) & m;
        ulong cf = r & 1;
        ulong of = ((r >> (bits - 1)) & 1) ^ cf;
        SetFlags(ref rflags, AluFlags.CF | AluFlags.OF, (cf << CfBit) | (of << OfBit));
        return r;
    }

    /// <summary>ROR: rotate right. Only CF (= MSB of the result) and OF (count 1: XOR of the two top bits of the result) change.</summary>
    public static ulong Ror(ulong a, ulong count, int bits, ref ulong rflags)
    {
        int n = (int)count & CountMask(bits);
        ulong m = Mask(bits);
        a &= m;
        if (n == 0)
        {
            return a;
        }

        int k = n & (bits - 1);
        ulong r = ((a >> k) | (a << ((bits - k) & (bits - 1)))) & m;
        ulong cf = (r >> (bits - 1)) & 1;
        ulong of = cf ^ ((r >> (bits - 2)) & 1);
        SetFlags(ref rflags, AluFlags.CF | AluFlags.OF, (cf << CfBit) | (of << OfBit));
        return r;
    }

    /// <summary>
    /// RCL: rotate left through CF (a bits+1 wide rotation; for 8/16-bit the masked count is taken mod 9/17).
    /// Only CF and OF (count 1: MSB(result) ^ new CF) change; a count that reduces to 0 leaves CF as it was.
    /// </summary>
    public static ulong Rcl(ulong a, ulong count, int bits, ref ulong rflags)
    {
        int n = (int)count & CountMask(bits);
        ulong m = Mask(bits);
        a &= m;
        if (n == 0)
        {
            return a;
        }

        int t = bits < 32 ? n % (bits + 1) : n;
        ulong cfIn = rflags & AluFlags.CF;
        ulong r = a, cf = cfIn;
        if (t != 0)
        {
            // (a >> 1) >> (bits - t) is a >> (bits + 1 - t) without a shift by 64.
            r = ((a << t) | (cfIn << (t - 1)) | ((a >> 1) >> (bits - t))) & m;
            cf = (a >> (bits - t)) & 1;
        }

        ulong of = ((r >> (bits - 1)) & 1) ^ cf;
        SetFlags(ref rflags, AluFlags.CF | AluFlags.OF, (cf << CfBit) | (of << OfBit));
        return r;
    }

    /// <summary>
    /// RCR: rotate right through CF (a bits+1 wide rotation; for 8/16-bit the masked count is taken mod 9/17).
    /// Only CF and OF (count 1: MSB(original) ^ original CF) change; a count that reduces to 0 leaves CF as it was.
    /// </summary>
    public static ulong Rcr(ulong a, ulong count, int bits, ref ulong rflags)
    {
        int n = (int)count & CountMask(bits);
        ulong m = Mask(bits);
        a &= m;
        if (n == 0)
        {
            return a;
        }

        int t = bits < 32 ? n % (bits + 1) : n;
        ulong cfIn = rflags & AluFlags.CF;
        // OF is computed before the rotation (SDM pseudocode), which equals the XOR of the two top result bits.
        ulong of = ((a >> (bits - 1)) & 1) ^ cfIn;
        ulong r = a, cf = cfIn;
        if (t != 0)
        {
            r = ((a >> t) | (cfIn << (bits - t)) | ((a << 1) << (bits - t))) & m;
            cf = (a >> (t - 1)) & 1;
        }

        SetFlags(ref rflags, AluFlags.CF | AluFlags.OF, (cf << CfBit) | (of << OfBit));
        return r;
    }

    /// <summary>
    /// SHLD: shifts <paramref name="dest"/> left, filling from the top of <paramref name="src"/>. CF = last bit out of
    /// dest, OF (count 1) = sign change, SF ZF PF from the result, AF undefined (cleared). For 16-bit operands a
    /// masked count above 16 gives an undefined result and flags (computed as a 32-bit shift of dest:src:dest, like
    /// common hardware).
    /// </summary>
    public static ulong Shld(ulong dest, ulong src, ulong count, int bits, ref ulong rflags)
    {
        int n = (int)count & CountMask(bits);
        ulong m = Mask(bits);
        dest &= m;
        src &= m;
        if (n == 0)
        {
            return dest;
        }

        ulong r, cf;
        if (n < bits)
        {
            r = ((dest << n) | (src >> (bits - n))) & m;
            cf = (dest >> (bits - n)) & 1;
        }
        else if (n == bits)
        {
            r = src;
            cf = dest & 1;
        }
        else
        {
            // Only reachable for 16-bit operands (count 17..31): shift the 48-bit value dest:src:dest.
            ulong wide = (dest << 32) | (src << 16) | dest;
            r = (wide << n >> 32) & m;
            cf = (wide >> (48 - n)) & 1;
        }

        ulong of = ((r ^ dest) >> (bits - 1)) & 1;
        SetFlags(ref rflags, AluFlags.Status, (cf << CfBit) | (of << OfBit) | SzpFlags(r, bits));
        return r;
    }

    /// <summary>
    /// SHRD: shifts <paramref name="dest"/> right, filling from the bottom of <paramref name="src"/>. CF = last bit
    /// out of dest, OF (count 1) = sign change, SF ZF PF from the result, AF undefined (cleared). 16-bit counts above 16
    /// are undefined (computed as a shift of src:dest:src).
    /// </summary>
    public static ulong Shrd(ulong dest, ulong src, ulong count, int bits, ref ulong rflags)
    {
        int n = (int)count & CountMask(bits);
        ulong m = Mask(bits);
        dest &= m;
        src &= m;
        if (n == 0)
        {
            return dest;
        }

        ulong r, cf;
        if (n < bits)
        {
            r = ((dest >> n) | (src << (bits - n))) & m;
            cf = (dest >> (n - 1)) & 1;
        }
        else if (n == bits)
        {
            r = src;
            cf = (dest >> (n - 1)) & 1;
        }
        else
        {
            ulong wide = (src << 32) | (dest << 16) | src;
            r = (wide >> (n - 16)) & m;
            cf = (wide >> (n - 16 - 1)) & 1;
        }

        ulong of = ((r ^ dest) >> (bits - 1)) & 1;
        SetFlags(ref rflags, AluFlags.Status, (cf << CfBit) | (of << OfBit) | SzpFlags(r, bits));
        return r;
    }
}
