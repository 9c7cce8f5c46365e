using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace Hypervisor.Accel.Tcg.Alu;

// Bit instructions (Intel SDM Vol. 2: BT, BTS, BTR, BTC, BSF, BSR, POPCNT, LZCNT, TZCNT, BSWAP, and the BMI1/BMI2
// groups). Where the SDM leaves a flag undefined these methods keep its old value unless the summary says otherwise.
internal static partial class Alu
{
    /// <summary>BT (register bit offset): CF = bit (offset mod bits) of value; ZF unchanged, OF SF AF PF undefined (unchanged).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Bt(ulong value, ulong bitOffset, int bits, ref ulong rflags) =>
        rflags = (rflags & ~AluFlags.CF) | ((value >> (int)(bitOffset & (ulong)(bits - 1))) & 1);

    /// <summary>BTS: as BT, and returns value with the bit set.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Bts(ulong value, ulong bitOffset, int bits, ref ulong rflags)
    {
        Bt(value, bitOffset, bits, ref rflags);
        return (value | (1UL << (int)(bitOffset & (ulong)(bits - 1)))) & Mask(bits);
    }

    /// <summary>BTR: as BT, and returns value with the bit cleared.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Btr(ulong value, ulong bitOffset, int bits, ref ulong rflags)
    {
        Bt(value, bitOffset, bits, ref rflags);
        return value & ~(1UL << (int)(bitOffset & (ulong)(bits - 1))) & Mask(bits);
    }

    /// <summary>BTC: as BT, and returns value with the bit complemented.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Btc(ulong value, ulong bitOffset, int bits, ref ulong rflags)
    {
        Bt(value, bitOffset, bits, ref rflags);
        return (value ^ (1UL << (int)(bitOffset & (ulong)(bits - 1)))) & Mask(bits);
    }

    /// <summary>
    /// For BT/BTS/BTR/BTC with a memory operand and a register bit offset: the signed byte displacement from the operand's
    /// address to the aligned operand that holds the bit (the register offset is a signed bit-string index). The bit in
    /// that operand is then bitOffset mod bits, as for the register form.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long BitStringByteOffset(ulong bitOffset, int bits) =>
        (SignExtend(bitOffset, bits) >> BitOperations.TrailingZeroCount(bits)) * (bits >> 3);

    /// <summary>
    /// BSF: when the source is non-zero returns true with the index of its lowest set bit and ZF = 0. When it is zero
    /// returns false and sets ZF = 1: the caller must then leave the destination register entirely unwritten (AMD
    /// documents "unchanged"; for a 32-bit destination even the upper half stays, as the native tests check; Intel calls
    /// the destination undefined). CF OF SF AF PF are undefined (unchanged).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Bsf(ulong src, int bits, out ulong index, ref ulong rflags)
    {
        src &= Mask(bits);
        bool zero = src == 0;
        rflags = (rflags & ~AluFlags.ZF) | (Bool(zero) << ZfBit);
        index = (ulong)BitOperations.TrailingZeroCount(src) & 63;
        return !zero;
    }

    /// <summary>BSR: as <see cref="Bsf(ulong, int, out ulong, ref ulong)"/>, with the index of the highest set bit.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Bsr(ulong src, int bits, out ulong index, ref ulong rflags)
    {
        src &= Mask(bits);
        bool zero = src == 0;
        rflags = (rflags & ~AluFlags.ZF) | (Bool(zero) << ZfBit);
        index = (ulong)(63 - BitOperations.LeadingZeroCount(src)) & 63;
        return !zero;
    }

    /// <summary>
    /// BSF in "value" form: the index of the lowest set bit, or <paramref name="dest"/> (masked to the operand size) when
    /// the source is 0. Prefer <see cref="Bsf(ulong, int, out ulong, ref ulong)"/>: writing this result back to a 32-bit
    /// register zero-extends it, while the hardware leaves the whole register untouched for a zero source.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Bsf(ulong dest, ulong src, int bits, ref ulong rflags) =>
        Bsf(src, bits, out ulong index, ref rflags) ? index : dest & Mask(bits);

    /// <summary>BSR in "value" form; see <see cref="Bsf(ulong, ulong, int, ref ulong)"/> for the zero-source caveat.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Bsr(ulong dest, ulong src, int bits, ref ulong rflags) =>
        Bsr(src, bits, out ulong index, ref rflags) ? index : dest & Mask(bits);

    /// <summary>POPCNT: number of set bits; ZF = (src == 0), OF SF AF CF PF cleared.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Popcnt(ulong src, int bits, ref ulong rflags)
    {
        src &= Mask(bits);
        SetFlags(ref rflags, AluFlags.Status, Bool(src == 0) << ZfBit);
        return (ulong)BitOperations.PopCount(src);
    }

    /// <summary>LZCNT: leading zero count within the operand size (bits when src is 0); CF = (src == 0), ZF = (result == 0), OF SF AF PF undefined (unchanged).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Lzcnt(ulong src, int bits, ref ulong rflags)
    {
        src &= Mask(bits);
        ulong r = (ulong)(BitOperations.LeadingZeroCount(src) - (64 - bits));
        SetFlags(ref rflags, AluFlags.CF | AluFlags.ZF, (Bool(src == 0) << CfBit) | (Bool(r == 0) << ZfBit));
        return r;
    }

    /// <summary>TZCNT: trailing zero count within the operand size (bits when src is 0); CF = (src == 0), ZF = (result == 0), OF SF AF PF undefined (unchanged).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Tzcnt(ulong src, int bits, ref ulong rflags)
    {
        src &= Mask(bits);
        ulong r = src == 0 ? (ulong)bits : (ulong)BitOperations.TrailingZeroCount(src);
        SetFlags(ref rflags, AluFlags.CF | AluFlags.ZF, (Bool(src == 0) << CfBit) | (Bool(r == 0) << ZfBit));
        return r;
    }

    /// <summary>BSWAP (32/64 bit): reverses the byte order. With a 16-bit operand the SDM leaves the result undefined; this returns 0 (to be merged into the low 16 bits), which the native tests confirm on the host CPU.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Bswap(ulong value, int bits) => bits switch
    {
        64 => BinaryPrimitivesReverse(value),
        32 => BinaryPrimitivesReverse((uint)value),
        _ => 0,
    };

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong BinaryPrimitivesReverse(ulong value) => System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong BinaryPrimitivesReverse(uint value) => System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(value);

    /// <summary>BEXTR (BMI1): extracts control[15:8] bits of src starting at control[7:0]. ZF from the result, CF = OF = 0, AF SF PF undefined (unchanged).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Bextr(ulong src, ulong control, int bits, ref ulong rflags)
    {
        int start = (int)(control & 0xFF);
        int length = (int)((control >> 8) & 0xFF);
        ulong r = start >= bits ? 0 : (src & Mask(bits)) >> start;
        if (length < bits)
        {
            r &= (1UL << length) - 1;
        }

        SetFlags(ref rflags, AluFlags.CF | AluFlags.ZF | AluFlags.OF, Bool(r == 0) << ZfBit);
        return r;
    }

    /// <summary>BLSI (BMI1): isolates the lowest set bit. ZF SF from the result, CF = (src != 0), OF = 0, AF PF undefined (unchanged).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Blsi(ulong src, int bits, ref ulong rflags)
    {
        src &= Mask(bits);
        ulong r = src & (0 - src);
        SetFlags(ref rflags, AluFlags.CF | AluFlags.ZF | AluFlags.SF | AluFlags.OF,
            (Bool(src != 0) << CfBit) | (Bool(r == 0) << ZfBit) | (((r >> (bits - 1)) & 1) << SfBit));
        return r;
    }

    /// <summary>BLSMSK (BMI1): mask up to and including the lowest set bit. SF from the result, ZF = 0, CF = (src == 0), OF = 0, AF PF undefined (unchanged).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Blsmsk(ulong src, int bits, ref ulong rflags)
    {
        ulong m = Mask(bits);
        src &= m;
        ulong r = (src ^ (src - 1)) & m;
        SetFlags(ref rflags, AluFlags.CF | AluFlags.ZF | AluFlags.SF | AluFlags.OF,
            (Bool(src == 0) << CfBit) | (((r >> (bits - 1)) & 1) << SfBit));
        return r;
    }

    /// <summary>BLSR (BMI1): clears the lowest set bit. ZF SF from the result, CF = (src == 0), OF = 0, AF PF undefined (unchanged).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Blsr(ulong src, int bits, ref ulong rflags)
    {
        ulong m = Mask(bits);
        src &= m;
        ulong r = src & (src - 1) & m;
        SetFlags(ref rflags, AluFlags.CF | AluFlags.ZF | AluFlags.SF | AluFlags.OF,
            (Bool(src == 0) << CfBit) | (Bool(r == 0) << ZfBit) | (((r >> (bits - 1)) & 1) << SfBit));
        return r;
    }

    /// <summary>BZHI (BMI2): clears the bits of src from index[7:0] up. ZF SF from the result, CF = (index &gt; bits - 1), OF = 0, AF PF undefined (unchanged).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Bzhi(ulong src, ulong index, int bits, ref ulong rflags)
    {
        int n = (int)(index & 0xFF);
        ulong r = src & Mask(bits);
        bool beyond = n > bits - 1;
        if (!beyond)
        {
            r &= (1UL << n) - 1;
        }

        SetFlags(ref rflags, AluFlags.CF | AluFlags.ZF | AluFlags.SF | AluFlags.OF,
            (Bool(beyond) << CfBit) | (Bool(r == 0) << ZfBit) | (((r >> (bits - 1)) & 1) << SfBit));
        return r;
    }

    /// <summary>PDEP (BMI2): deposits the low bits of src at the set bits of mask. No flags.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Pdep(ulong src, ulong mask, int bits) =>
        Bmi2.X64.IsSupported ? Bmi2.X64.ParallelBitDeposit(src, mask & Mask(bits)) : PdepPortable(src, mask & Mask(bits));

    /// <summary>PEXT (BMI2): gathers the bits of src at the set bits of mask into the low bits. No flags.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Pext(ulong src, ulong mask, int bits) =>
        Bmi2.X64.IsSupported ? Bmi2.X64.ParallelBitExtract(src, mask & Mask(bits)) : PextPortable(src, mask & Mask(bits));

    /// <summary>PDEP without BMI2 (one step per set mask bit); internal so the tests can check it where the host has BMI2.</summary>
    internal static ulong PdepPortable(ulong src, ulong mask)
    {
        ulong r = 0;
        for (ulong bit = 1; mask != 0; bit <<= 1)
        {
            ulong lowest = mask & (0 - mask);
            r |= (src & bit) != 0 ? lowest : 0;
            mask ^= lowest;
        }

        return r;
    }

    /// <summary>PEXT without BMI2 (one step per set mask bit); internal so the tests can check it where the host has BMI2.</summary>
    internal static ulong PextPortable(ulong src, ulong mask)
    {
        ulong r = 0;
        for (ulong bit = 1; mask != 0; bit <<= 1)
        {
            ulong lowest = mask & (0 - mask);
            r |= (src & lowest) != 0 ? bit : 0;
            mask ^= lowest;
        }

        return r;
    }

    /// <summary>RORX (BMI2): rotate right by imm8 (masked to 5/6 bits) without touching flags.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Rorx(ulong src, ulong count, int bits)
    {
        ulong m = Mask(bits);
        src &= m;
        int k = (int)count & (bits - 1);
        return ((src >> k) | (src << ((bits - k) & (bits - 1)))) & m;
    }

    /// <summary>SHLX (BMI2): logical shift left, count masked to 5/6 bits, no flags.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Shlx(ulong src, ulong count, int bits) => (src << ((int)count & (bits - 1))) & Mask(bits);

    /// <summary>SHRX (BMI2): logical shift right, count masked to 5/6 bits, no flags.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Shrx(ulong src, ulong count, int bits) => (src & Mask(bits)) >> ((int)count & (bits - 1));

    /// <summary>SARX (BMI2): arithmetic shift right, count masked to 5/6 bits, no flags.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Sarx(ulong src, ulong count, int bits) => (ulong)(SignExtend(src, bits) >> ((int)count & (bits - 1))) & Mask(bits);
}
