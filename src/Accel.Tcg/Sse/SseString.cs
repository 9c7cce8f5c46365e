namespace Hypervisor.Accel.Tcg.Sse;

/// <summary>The outputs of PCMPESTRI/PCMPESTRM/PCMPISTRI/PCMPISTRM.</summary>
internal readonly record struct StringCompareResult(ushort IntRes2, int ElementCount, uint Eflags);

/// <summary>
/// SSE4.2 packed string compares (SDM Vol. 2B, 4.1 "Imm8 Control Byte Operation for PCMPESTRI / PCMPESTRM /
/// PCMPISTRI / PCMPISTRM"): element format, aggregation (equal any, ranges, equal each, equal ordered) with the
/// invalid-element overrides of Table 4-7, polarity, and the index/mask outputs and flags.
/// </summary>
internal static class SseString
{
    /// <summary>
    /// Computes IntRes2 and EFLAGS (CF = IntRes2 != 0, ZF = b shorter than the element count, SF = a shorter, OF =
    /// IntRes2 bit 0, AF = PF = 0). <paramref name="a"/> is xmm1, <paramref name="b"/> xmm2/m128. Explicit lengths
    /// (PCMPESTRx) come from RAX/RDX (EAX/EDX sign-extended without REX.W); pass null for implicit (null-terminated) lengths.
    /// </summary>
    public static StringCompareResult Compare(UInt128 a, UInt128 b, byte imm, long? lengthA, long? lengthB)
    {
        bool words = (imm & 1) != 0, signed = (imm & 2) != 0;
        int n = words ? 8 : 16;
        int la = lengthA is long ea ? Saturate(ea, n) : Implicit(a, words, n);
        int lb = lengthB is long eb ? Saturate(eb, n) : Implicit(b, words, n);
        int agg = (imm >> 2) & 3;
        uint res1 = 0;
        switch (agg)
        {
            case 0: // equal any
                for (int j = 0; j < lb; j++)
                    for (int i = 0; i < la; i++)
                        if (Element(a, i, words, signed) == Element(b, j, words, signed))
                            res1 |= 1u << j;
                break;
            case 1: // ranges: pairs (a[i], a[i+1]) as [low, high]
                for (int j = 0; j < lb; j++)
                {
                    long v = Element(b, j, words, signed);
                    for (int i = 0; i + 1 < n; i += 2)
                    {
                        bool ge = i < la && Element(a, i, words, signed) <= v;
                        bool le = i + 1 < la && Element(a, i + 1, words, signed) >= v;
                        if (ge && le)
                            res1 |= 1u << j;
                    }
                }
                break;
            case 2: // equal each
                for (int i = 0; i < n; i++)
                {
                    bool va = i < la, vb = i < lb;
                    bool r = va && vb ? Element(a, i, words, signed) == Element(b, i, words, signed) : !va && !vb;
                    if (r)
                        res1 |= 1u << i;
                }
                break;
            default: // equal ordered: substring a found at position j of b
                for (int j = 0; j < n; j++)
                {
                    bool all = true;
                    for (int i = 0, k = j; i < n - j && all; i++, k++)
                    {
                        bool va = i < la, vb = k < lb;
                        bool r = va && vb ? Element(a, i, words, signed) == Element(b, k, words, signed) : !va;
                        all &= r;
                    }
                    if (all)
                        res1 |= 1u << j;
                }
                break;
        }
        uint full = (1u << n) - 1;
        uint validB = (1u << lb) - 1;
        uint res2 = ((imm >> 4) & 3) switch
        {
            1 => ~res1 & full,
            3 => (res1 ^ validB) & full,
            _ => res1,
        };
        uint flags = (res2 != 0 ? 0x01u : 0) | (lb < n ? 0x40u : 0) | (la < n ? 0x80u : 0) | ((res2 & 1) != 0 ? 0x800u : 0);
        return new StringCompareResult((ushort)res2, n, flags);
    }

    /// <summary>PCMPESTRI/PCMPISTRI: ECX = index of the least (imm8 bit 6 clear) or most significant set bit of IntRes2, or the element count if none.</summary>
    public static uint Index(in StringCompareResult r, byte imm)
    {
        if (r.IntRes2 == 0)
            return (uint)r.ElementCount;
        return (imm & 0x40) != 0 ? (uint)(31 - System.Numerics.BitOperations.LeadingZeroCount(r.IntRes2)) : (uint)System.Numerics.BitOperations.TrailingZeroCount(r.IntRes2);
    }

    /// <summary>PCMPESTRM/PCMPISTRM: XMM0 = IntRes2 zero-extended (imm8 bit 6 clear) or expanded to all-ones elements.</summary>
    public static UInt128 Mask(in StringCompareResult r, byte imm)
    {
        if ((imm & 0x40) == 0)
            return r.IntRes2;
        int width = 128 / r.ElementCount;
        UInt128 ones = width == 8 ? (UInt128)0xFF : (UInt128)0xFFFF;
        UInt128 m = 0;
        for (int i = 0; i < r.ElementCount; i++)
            if (((r.IntRes2 >> i) & 1) != 0)
                m |= ones << (i * width);
        return m;
    }

    private static int Saturate(long length, int n)
    {
        if (length == long.MinValue)
            return n;
        long abs = Math.Abs(length);
        return abs > n ? n : (int)abs;
    }

    private static int Implicit(UInt128 v, bool words, int n)
    {
        for (int i = 0; i < n; i++)
            if (Element(v, i, words, false) == 0)
                return i;
        return n;
    }

    private static long Element(UInt128 v, int i, bool words, bool signed)
    {
        if (words)
        {
            ushort w = (ushort)(v >> (16 * i));
            return signed ? (short)w : w;
        }
        byte b = (byte)(v >> (8 * i));
        return signed ? (sbyte)b : b;
    }
}
