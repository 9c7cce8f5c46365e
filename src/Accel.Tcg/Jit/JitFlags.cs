using System.Runtime.CompilerServices;
using Iced.Intel;
using static Hypervisor.Accel.Tcg.Alu.Alu;

namespace Hypervisor.Accel.Tcg.Jit;

/// <summary>
/// Lazy flags of translated code. A translated region keeps the last flag-writing operation as a kind, its operand
/// size and up to three operands (<c>la</c>, <c>lb</c>, <c>lc</c>) in IL locals, and computes RFLAGS from them only
/// where something can observe the flags: a condition the fast paths cannot answer from the operands, a call into
/// the interpreter, a fault or a region exit. Materialising calls the interpreter's own <see cref="Alu.Alu"/>
/// routines, so both engines compute every flag with the same code.
/// </summary>
internal static class JitFlags
{
    /// <summary>Lazy operation kinds (shifted left by 2; the low two bits hold log2 of the operand size in bytes).</summary>
    public const int None = 0, Add = 1, Sub = 2, Adc = 3, Sbb = 4, Logic = 5, Inc = 6, Dec = 7, Shl = 8, Shr = 9, Sar = 10;

    /// <summary>Packs a kind and an operand width in bits into the value kept in the <c>lop</c> local.</summary>
    public static int Encode(int kind, int bits) => (kind << 2) | (bits switch { 8 => 0, 16 => 1, 32 => 2, _ => 3 });

    /// <summary>
    /// RFLAGS after the pending operation: <paramref name="rflags"/> holds every flag as it was before that operation
    /// (CF of ADC/SBB/INC/DEC is carried in <paramref name="c"/>). Operand meaning per kind: ADD/SUB/ADC/SBB a, b
    /// (and the carry in c); LOGIC the result in a; INC/DEC the operand in a and the preserved CF in c; SHL/SHR/SAR by
    /// an immediate the operand in a and the (non-zero, masked) count in b.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static ulong Materialize(ulong rflags, int op, ulong a, ulong b, ulong c)
    {
        int bits = 8 << (op & 3);
        switch (op >> 2)
        {
            case Add: _ = Alu.Alu.Add(a, b, bits, ref rflags); break;
            case Sub: Alu.Alu.Cmp(a, b, bits, ref rflags); break;
            case Adc: rflags = (rflags & ~1UL) | c; _ = Alu.Alu.Adc(a, b, bits, ref rflags); break;
            case Sbb: rflags = (rflags & ~1UL) | c; _ = Alu.Alu.Sbb(a, b, bits, ref rflags); break;
            case Logic: _ = Alu.Alu.Or(a, 0, bits, ref rflags); break;
            case Inc: rflags = (rflags & ~1UL) | c; _ = Alu.Alu.Inc(a, bits, ref rflags); break;
            case Dec: rflags = (rflags & ~1UL) | c; _ = Alu.Alu.Dec(a, bits, ref rflags); break;
            case Shl: _ = Alu.Alu.Shl(a, b, bits, ref rflags); break;
            case Shr: _ = Alu.Alu.Shr(a, b, bits, ref rflags); break;
            case Sar: _ = Alu.Alu.Sar(a, b, bits, ref rflags); break;
            default: break;
        }

        return rflags;
    }

    /// <summary>
    /// CF after the pending operation (0 or 1), without computing the other flags: what INC/DEC (which keep CF) and
    /// ADC/SBB need when the pending operation is known only at run time. Kinds whose carry rule is not a plain
    /// comparison take it from <see cref="Materialize"/>, so every case stays the ALU library's rule.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Carry(ulong rflags, int op, ulong a, ulong b, ulong c)
    {
        ulong mask = ulong.MaxValue >> (64 - (8 << (op & 3)));
        switch (op >> 2)
        {
            case None: return rflags & 1;
            case Add: return ((a + b) & mask) < (a & mask) ? 1UL : 0UL;
            case Sub: return (a & mask) < (b & mask) ? 1UL : 0UL;
            case Logic: return 0;
            case Inc:
            case Dec: return c;

            // Shifts by an immediate (the count in b, masked and non-zero): the last bit shifted out, by the rules of
            // Alu.Shl/Shr/Sar (a count beyond an 8/16-bit width shifts everything out).
            case Shr: return ((a & mask) >> ((int)b - 1)) & 1;
            case Sar: return (ulong)(Alu.Alu.SignExtend(a, 8 << (op & 3)) >> ((int)b - 1)) & 1;
            case Shl: return (op & 3) == 3 ? (a >> (64 - (int)b)) & 1 : (((a & mask) << (int)b) >> (8 << (op & 3))) & 1;
            default: return Materialize(rflags, op, a, b, c) & 1;
        }
    }

    /// <summary>Condition code <paramref name="cc"/> against materialised flags (SDM Vol. 1, Appendix B).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Condition(ulong f, int cc) => Alu.Alu.Condition(f, (ConditionCode)cc);

    /// <summary>Eager shifts and rotates (the count-0 and OF rules live in the ALU library): returns the result, updates <paramref name="rflags"/>.</summary>
    public static ulong Shift(int mnemonic, ulong a, ulong count, int bits, ref ulong rflags) => (Mnemonic)mnemonic switch
    {
        Mnemonic.Rol => Rol(a, count, bits, ref rflags),
        Mnemonic.Ror => Ror(a, count, bits, ref rflags),
        Mnemonic.Shr => Shr(a, count, bits, ref rflags),
        Mnemonic.Sar => Sar(a, count, bits, ref rflags),
        _ => Shl(a, count, bits, ref rflags),
    };

    /// <summary>Two- and three-operand IMUL: the low half, flags as the ALU library sets them.</summary>
    public static ulong Imul2(ulong a, ulong b, int bits, ref ulong rflags) => Imul(a, b, bits, out _, ref rflags);
}
