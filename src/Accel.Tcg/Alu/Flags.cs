using System.Runtime.CompilerServices;
using Iced.Intel;

namespace Hypervisor.Accel.Tcg.Alu;

/// <summary>RFLAGS bit masks for the arithmetic status flags (Intel SDM Vol. 1, 3.4.3.1).</summary>
internal static class AluFlags
{
    /// <summary>Carry flag, bit 0.</summary>
    public const ulong CF = 1UL << 0;
    /// <summary>Parity flag, bit 2: set when the low byte of the result has an even number of 1 bits.</summary>
    public const ulong PF = 1UL << 2;
    /// <summary>Auxiliary carry flag, bit 4: carry or borrow out of bit 3.</summary>
    public const ulong AF = 1UL << 4;
    /// <summary>Zero flag, bit 6.</summary>
    public const ulong ZF = 1UL << 6;
    /// <summary>Sign flag, bit 7.</summary>
    public const ulong SF = 1UL << 7;
    /// <summary>Direction flag, bit 10 (never changed by the ALU).</summary>
    public const ulong DF = 1UL << 10;
    /// <summary>Overflow flag, bit 11.</summary>
    public const ulong OF = 1UL << 11;

    /// <summary>All six arithmetic status flags.</summary>
    public const ulong Status = CF | PF | AF | ZF | SF | OF;

    /// <summary>SF, ZF and PF: the flags every "result" flag update sets from the value.</summary>
    public const ulong SignZeroParity = SF | ZF | PF;
}

/// <summary>Shared helpers for the ALU: operand masks, parity and the flags computed from a result.</summary>
internal static partial class Alu
{
    /// <summary>Bit positions of the flags, so a 0/1 value can be shifted into place without a branch.</summary>
    private const int CfBit = 0, PfBit = 2, AfBit = 4, ZfBit = 6, SfBit = 7, OfBit = 11;

    /// <summary>
    /// 1 when the byte has an even number of set bits. 256 entries indexed by the low byte of a result
    /// (PF looks at the least significant byte only, Intel SDM Vol. 1, 3.4.3.1).
    /// </summary>
    private static ReadOnlySpan<byte> ParityTable =>
    [
        1, 0, 0, 1, 0, 1, 1, 0, 0, 1, 1, 0, 1, 0, 0, 1, 0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 0, 1, 0, 1, 1, 0,
        0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 0, 1, 0, 1, 1, 0, 1, 0, 0, 1, 0, 1, 1, 0, 0, 1, 1, 0, 1, 0, 0, 1,
        0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 0, 1, 0, 1, 1, 0, 1, 0, 0, 1, 0, 1, 1, 0, 0, 1, 1, 0, 1, 0, 0, 1,
        1, 0, 0, 1, 0, 1, 1, 0, 0, 1, 1, 0, 1, 0, 0, 1, 0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 0, 1, 0, 1, 1, 0,
        0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 0, 1, 0, 1, 1, 0, 1, 0, 0, 1, 0, 1, 1, 0, 0, 1, 1, 0, 1, 0, 0, 1,
        1, 0, 0, 1, 0, 1, 1, 0, 0, 1, 1, 0, 1, 0, 0, 1, 0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 0, 1, 0, 1, 1, 0,
        1, 0, 0, 1, 0, 1, 1, 0, 0, 1, 1, 0, 1, 0, 0, 1, 0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 0, 1, 0, 1, 1, 0,
        0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 0, 1, 0, 1, 1, 0, 1, 0, 0, 1, 0, 1, 1, 0, 0, 1, 1, 0, 1, 0, 0, 1,
    ];

    /// <summary>Evaluates condition code <paramref name="cc"/> against <paramref name="rflags"/> (SDM Vol. 1, Appendix B).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Condition(ulong rflags, ConditionCode cc)
    {
        bool cf = (rflags & 0x1) != 0, pf = (rflags & 0x4) != 0, zf = (rflags & 0x40) != 0, sf = (rflags & 0x80) != 0,
            of = (rflags & 0x800) != 0;
        return cc switch
        {
            ConditionCode.o => of,
            ConditionCode.no => !of,
            ConditionCode.b => cf,
            ConditionCode.ae => !cf,
            ConditionCode.e => zf,
            ConditionCode.ne => !zf,
            ConditionCode.be => cf || zf,
            ConditionCode.a => !cf && !zf,
            ConditionCode.s => sf,
            ConditionCode.ns => !sf,
            ConditionCode.p => pf,
            ConditionCode.np => !pf,
            ConditionCode.l => sf != of,
            ConditionCode.ge => sf == of,
            ConditionCode.le => zf || sf != of,
            ConditionCode.g => !zf && sf == of,
            _ => true,
        };
    }

    /// <summary>1 when the low byte of <paramref name="value"/> has even parity, else 0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Parity(ulong value) => ParityTable[(int)(value & 0xFF)];

    /// <summary>All ones in the low <paramref name="bits"/> bits (bits is 8, 16, 32 or 64).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Mask(int bits) => ulong.MaxValue >> (64 - bits);

    /// <summary>The sign bit of an operand of <paramref name="bits"/> bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong SignBit(int bits) => 1UL << (bits - 1);

    /// <summary>Sign-extends the low <paramref name="bits"/> bits of <paramref name="value"/> to 64 bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long SignExtend(ulong value, int bits) => (long)(value << (64 - bits)) >> (64 - bits);

    /// <summary>SF, ZF and PF for a result already masked to <paramref name="bits"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong SzpFlags(ulong result, int bits) =>
        (((result >> (bits - 1)) & 1) << SfBit)
        | ((result == 0 ? 1UL : 0UL) << ZfBit)
        | (Parity(result) << PfBit);

    /// <summary>Replaces the flags in <paramref name="affected"/> with <paramref name="newFlags"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SetFlags(ref ulong rflags, ulong affected, ulong newFlags) =>
        rflags = (rflags & ~affected) | (newFlags & affected);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Bool(bool value) => value ? 1UL : 0UL;
}
