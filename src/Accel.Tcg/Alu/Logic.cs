using System.Runtime.CompilerServices;

namespace Hypervisor.Accel.Tcg.Alu;

// Bitwise logic (Intel SDM Vol. 2: AND, OR, XOR, TEST, NOT, ANDN). CF and OF are cleared, SF ZF PF follow the
// result, AF is undefined: we clear it.
internal static partial class Alu
{
    /// <summary>AND: returns a &amp; b; CF=OF=0, SF ZF PF from the result, AF undefined (cleared).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong And(ulong a, ulong b, int bits, ref ulong rflags) => LogicFlags(a & b & Mask(bits), bits, ref rflags);

    /// <summary>OR: returns a | b; flags as AND.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Or(ulong a, ulong b, int bits, ref ulong rflags) => LogicFlags((a | b) & Mask(bits), bits, ref rflags);

    /// <summary>XOR: returns a ^ b; flags as AND.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Xor(ulong a, ulong b, int bits, ref ulong rflags) => LogicFlags((a ^ b) & Mask(bits), bits, ref rflags);

    /// <summary>TEST: flags of a &amp; b.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Test(ulong a, ulong b, int bits, ref ulong rflags) => LogicFlags(a & b & Mask(bits), bits, ref rflags);

    /// <summary>NOT: returns ~a; no flags change.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Not(ulong a, int bits) => ~a & Mask(bits);

    /// <summary>ANDN (BMI1, 32/64 bit): returns ~a &amp; b; SF ZF from the result, CF=OF=0, AF PF undefined (PF set from the result, AF cleared).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Andn(ulong a, ulong b, int bits, ref ulong rflags) => LogicFlags(~a & b & Mask(bits), bits, ref rflags);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong LogicFlags(ulong r, int bits, ref ulong rflags)
    {
        SetFlags(ref rflags, AluFlags.Status, SzpFlags(r, bits));
        return r;
    }
}
