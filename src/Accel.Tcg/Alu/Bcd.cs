namespace Hypervisor.Accel.Tcg.Alu;

// Decimal adjust (Intel SDM Vol. 2: DAA, DAS, AAA, AAS, AAM, AAD). These are invalid in 64-bit mode (#UD) but valid in
// legacy and compatibility mode; the interpreter checks the mode, these only compute.
internal static partial class Alu
{
    /// <summary>DAA: decimal adjust AL after addition. CF AF SF ZF PF set per the SDM pseudocode; OF undefined (cleared).</summary>
    public static byte Daa(byte al, ref ulong rflags)
    {
        ulong oldCf = rflags & AluFlags.CF;
        bool adjustLow = (al & 0x0F) > 9 || (rflags & AluFlags.AF) != 0;
        bool adjustHigh = al > 0x99 || oldCf != 0;
        int r = al + (adjustLow ? 0x06 : 0) + (adjustHigh ? 0x60 : 0);
        // The carry of the +6 step only matters when AL > 0xF9, which also makes AL > 0x99, so CF is adjustHigh.
        ulong flags = (Bool(adjustHigh) << CfBit) | (Bool(adjustLow) << AfBit) | SzpFlags((byte)r, 8);
        SetFlags(ref rflags, AluFlags.Status, flags);
        return (byte)r;
    }

    /// <summary>DAS: decimal adjust AL after subtraction. CF AF SF ZF PF set per the SDM pseudocode; OF undefined (cleared).</summary>
    public static byte Das(byte al, ref ulong rflags)
    {
        ulong cf = rflags & AluFlags.CF;
        bool adjustLow = (al & 0x0F) > 9 || (rflags & AluFlags.AF) != 0;
        bool adjustHigh = al > 0x99 || cf != 0;
        int r = al;
        if (adjustLow)
        {
            // CF := old CF or the borrow of AL - 6.
            cf |= Bool(r < 6);
            r -= 6;
        }

        if (adjustHigh)
        {
            r -= 0x60;
            cf = 1;
        }

        ulong flags = (cf << CfBit) | (Bool(adjustLow) << AfBit) | SzpFlags((byte)r, 8);
        SetFlags(ref rflags, AluFlags.Status, flags);
        return (byte)r;
    }

    /// <summary>AAA: ASCII adjust after addition on AX. AF = CF = adjusted; OF SF ZF PF undefined (SF ZF PF from AL, OF cleared).</summary>
    public static ushort Aaa(ushort ax, ref ulong rflags)
    {
        bool adjust = (ax & 0x0F) > 9 || (rflags & AluFlags.AF) != 0;
        int r = ax + (adjust ? 0x106 : 0);
        r = (r & 0xFF00) | (r & 0x0F);
        ulong a = Bool(adjust);
        SetFlags(ref rflags, AluFlags.Status, (a << CfBit) | (a << AfBit) | SzpFlags((byte)r, 8));
        return (ushort)r;
    }

    /// <summary>AAS: ASCII adjust after subtraction on AX. AF = CF = adjusted; OF SF ZF PF undefined (SF ZF PF from AL, OF cleared).</summary>
    public static ushort Aas(ushort ax, ref ulong rflags)
    {
        bool adjust = (ax & 0x0F) > 9 || (rflags & AluFlags.AF) != 0;
        // AX := AX - 6; AH := AH - 1 (the borrow of AL - 6 propagates into AH).
        int r = ax - (adjust ? 0x106 : 0);
        r = (r & 0xFF00) | (r & 0x0F);
        ulong a = Bool(adjust);
        SetFlags(ref rflags, AluFlags.Status, (a << CfBit) | (a << AfBit) | SzpFlags((byte)r, 8));
        return (ushort)r;
    }

    /// <summary>
    /// AAM imm8: AH = AL / imm8, AL = AL % imm8; SF ZF PF from AL, OF AF CF undefined (cleared). Returns false when
    /// imm8 is 0 (the interpreter raises #DE).
    /// </summary>
    public static bool Aam(byte al, byte imm8, out ushort ax, ref ulong rflags)
    {
        if (imm8 == 0)
        {
            ax = 0;
            return false;
        }

        int q = al / imm8, r = al % imm8;
        ax = (ushort)((q << 8) | r);
        SetFlags(ref rflags, AluFlags.Status, SzpFlags((ulong)r, 8));
        return true;
    }

    /// <summary>
    /// AAD imm8: AL = (AL + AH * imm8) &amp; 0xFF, AH = 0; SF ZF PF from AL. OF AF CF are undefined; they are set as
    /// by the 8-bit addition AL + (AH * imm8), as hardware does.
    /// </summary>
    public static ushort Aad(ushort ax, byte imm8, ref ulong rflags)
    {
        ulong product = (ulong)((ax >> 8) * imm8) & 0xFF;
        ulong al = AddCore((ulong)(ax & 0xFF), product, 0, 8, ref rflags);
        return (ushort)al;
    }
}
