using System.Numerics;
using System.Runtime.InteropServices;

namespace Hypervisor.Accel.Tcg.Sse;

/// <summary>
/// Integer SIMD of SSE2, SSSE3, SSE4.1 and SSE4.2 on 128-bit values (lane 0 in the low bits). Methods are named after the
/// instruction; <c>a</c> is the destination/first source and <c>b</c> the second source, as in <c>OP xmm1, xmm2/m128</c>.
/// Semantics follow the SDM Vol. 2 pseudocode for each instruction. Pure and allocation-free.
/// </summary>
internal static class SseInteger
{
    private static Span<T> L<T>(ref UInt128 v) where T : struct => MemoryMarshal.Cast<UInt128, T>(MemoryMarshal.CreateSpan(ref v, 1));

    // ---- add / subtract ----

    /// <summary>PADDB/W/D/Q (<paramref name="laneBytes"/> 1, 2, 4, 8): wrapping add.</summary>
    public static UInt128 Padd(UInt128 a, UInt128 b, int laneBytes) => AddSub(a, b, laneBytes, false);

    /// <summary>PSUBB/W/D/Q: wrapping subtract.</summary>
    public static UInt128 Psub(UInt128 a, UInt128 b, int laneBytes) => AddSub(a, b, laneBytes, true);

    private static UInt128 AddSub(UInt128 a, UInt128 b, int laneBytes, bool sub)
    {
        UInt128 r = 0;
        int bits = laneBytes * 8;
        ulong mask = bits == 64 ? ulong.MaxValue : (1UL << bits) - 1;
        for (int i = 0; i < 128; i += bits)
        {
            ulong x = (ulong)(a >> i) & mask, y = (ulong)(b >> i) & mask;
            r |= (UInt128)((sub ? x - y : x + y) & mask) << i;
        }
        return r;
    }

    /// <summary>PADDSB/PADDSW/PSUBSB/PSUBSW (signed) and PADDUSB/PADDUSW/PSUBUSB/PSUBUSW (unsigned) saturating arithmetic on 8- or 16-bit lanes.</summary>
    public static UInt128 AddSubSaturate(UInt128 a, UInt128 b, int laneBytes, bool subtract, bool signed)
    {
        UInt128 r = 0;
        int bits = laneBytes * 8;
        long max = signed ? (1L << (bits - 1)) - 1 : (1L << bits) - 1, min = signed ? -(1L << (bits - 1)) : 0;
        for (int i = 0; i < 128; i += bits)
        {
            long x = Lane(a, i, bits, signed), y = Lane(b, i, bits, signed);
            long v = Math.Clamp(subtract ? x - y : x + y, min, max);
            r |= (UInt128)((ulong)v & ((1UL << bits) - 1)) << i;
        }
        return r;
    }

    private static long Lane(UInt128 v, int bitOffset, int bits, bool signed)
    {
        ulong raw = (ulong)(v >> bitOffset);
        if (bits == 64)
            return (long)raw;
        raw &= (1UL << bits) - 1;
        return signed ? (long)(raw << (64 - bits)) >> (64 - bits) : (long)raw;
    }

    // ---- multiply ----

    /// <summary>PMULLW.</summary>
    public static UInt128 Pmullw(UInt128 a, UInt128 b) => Mul16(a, b, 0);
    /// <summary>PMULHW (signed high half).</summary>
    public static UInt128 Pmulhw(UInt128 a, UInt128 b) => Mul16(a, b, 1);
    /// <summary>PMULHUW (unsigned high half).</summary>
    public static UInt128 Pmulhuw(UInt128 a, UInt128 b) => Mul16(a, b, 2);
    /// <summary>PMULHRSW (SSSE3): ((a*b >> 14) + 1) >> 1, signed.</summary>
    public static UInt128 Pmulhrsw(UInt128 a, UInt128 b) => Mul16(a, b, 3);

    private static UInt128 Mul16(UInt128 a, UInt128 b, int kind)
    {
        var ra = L<short>(ref a); var rb = L<short>(ref b);
        UInt128 r = 0; var rr = L<short>(ref r);
        for (int i = 0; i < 8; i++)
        {
            int p = kind == 2 ? (ushort)ra[i] * (ushort)rb[i] : ra[i] * rb[i];
            rr[i] = kind switch
            {
                0 => (short)p,
                1 or 2 => (short)(p >> 16),
                _ => (short)(((p >> 14) + 1) >> 1),
            };
        }
        return r;
    }

    /// <summary>PMULLD (SSE4.1): low 32 bits of each product.</summary>
    public static UInt128 Pmulld(UInt128 a, UInt128 b)
    {
        var ra = L<int>(ref a); var rb = L<int>(ref b);
        UInt128 r = 0; var rr = L<int>(ref r);
        for (int i = 0; i < 4; i++)
            rr[i] = ra[i] * rb[i];
        return r;
    }

    /// <summary>PMULUDQ (unsigned) / PMULDQ (SSE4.1, signed): dwords 0 and 2 multiplied into two 64-bit products.</summary>
    public static UInt128 Pmuldq(UInt128 a, UInt128 b, bool signed)
    {
        var ra = L<uint>(ref a); var rb = L<uint>(ref b);
        UInt128 r = 0; var rr = L<ulong>(ref r);
        for (int i = 0; i < 2; i++)
            rr[i] = signed ? (ulong)((long)(int)ra[2 * i] * (int)rb[2 * i]) : (ulong)ra[2 * i] * rb[2 * i];
        return r;
    }

    /// <summary>PMADDWD: pairs of signed word products summed into dwords (wrapping only for 8000h*8000h twice).</summary>
    public static UInt128 Pmaddwd(UInt128 a, UInt128 b)
    {
        var ra = L<short>(ref a); var rb = L<short>(ref b);
        UInt128 r = 0; var rr = L<int>(ref r);
        for (int i = 0; i < 4; i++)
            rr[i] = (int)((long)ra[2 * i] * rb[2 * i] + (long)ra[2 * i + 1] * rb[2 * i + 1]);
        return r;
    }

    /// <summary>PMADDUBSW (SSSE3): unsigned bytes of a times signed bytes of b, adjacent pairs summed with signed word saturation.</summary>
    public static UInt128 Pmaddubsw(UInt128 a, UInt128 b)
    {
        var ra = L<byte>(ref a); var rb = L<sbyte>(ref b);
        UInt128 r = 0; var rr = L<short>(ref r);
        for (int i = 0; i < 8; i++)
            rr[i] = (short)Math.Clamp(ra[2 * i] * rb[2 * i] + ra[2 * i + 1] * rb[2 * i + 1], short.MinValue, short.MaxValue);
        return r;
    }

    // ---- compare, min, max, average, absolute, sign ----

    /// <summary>PCMPEQB/W/D/Q.</summary>
    public static UInt128 Pcmpeq(UInt128 a, UInt128 b, int laneBytes) => CompareLanes(a, b, laneBytes, false);

    /// <summary>PCMPGTB/W/D/Q (signed greater than).</summary>
    public static UInt128 Pcmpgt(UInt128 a, UInt128 b, int laneBytes) => CompareLanes(a, b, laneBytes, true);

    private static UInt128 CompareLanes(UInt128 a, UInt128 b, int laneBytes, bool greater)
    {
        UInt128 r = 0;
        int bits = laneBytes * 8;
        ulong ones = bits == 64 ? ulong.MaxValue : (1UL << bits) - 1;
        for (int i = 0; i < 128; i += bits)
        {
            long x = Lane(a, i, bits, true), y = Lane(b, i, bits, true);
            if (greater ? x > y : x == y)
                r |= (UInt128)ones << i;
        }
        return r;
    }

    /// <summary>PMINSB/PMINUB/PMINSW/PMINUW/PMINSD/PMINUD and the PMAX forms.</summary>
    public static UInt128 MinMax(UInt128 a, UInt128 b, int laneBytes, bool signed, bool max)
    {
        UInt128 r = 0;
        int bits = laneBytes * 8;
        for (int i = 0; i < 128; i += bits)
        {
            long x = Lane(a, i, bits, signed), y = Lane(b, i, bits, signed);
            long v = max ? Math.Max(x, y) : Math.Min(x, y);
            r |= (UInt128)((ulong)v & ((1UL << bits) - 1)) << i;
        }
        return r;
    }

    /// <summary>PAVGB/PAVGW: unsigned (a + b + 1) >> 1.</summary>
    public static UInt128 Pavg(UInt128 a, UInt128 b, int laneBytes)
    {
        UInt128 r = 0;
        int bits = laneBytes * 8;
        for (int i = 0; i < 128; i += bits)
            r |= (UInt128)(ulong)((Lane(a, i, bits, false) + Lane(b, i, bits, false) + 1) >> 1) << i;
        return r;
    }

    /// <summary>PABSB/W/D (SSSE3): absolute value; the most negative value stays itself (as unsigned, 80h etc.).</summary>
    public static UInt128 Pabs(UInt128 b, int laneBytes)
    {
        UInt128 r = 0;
        int bits = laneBytes * 8;
        for (int i = 0; i < 128; i += bits)
            r |= (UInt128)((ulong)Math.Abs(Lane(b, i, bits, true)) & ((1UL << bits) - 1)) << i;
        return r;
    }

    /// <summary>PSIGNB/W/D (SSSE3): a negated, kept or zeroed by the sign of b.</summary>
    public static UInt128 Psign(UInt128 a, UInt128 b, int laneBytes)
    {
        UInt128 r = 0;
        int bits = laneBytes * 8;
        for (int i = 0; i < 128; i += bits)
        {
            long x = Lane(a, i, bits, true), y = Lane(b, i, bits, true);
            long v = y < 0 ? -x : y == 0 ? 0 : x;
            r |= (UInt128)((ulong)v & ((1UL << bits) - 1)) << i;
        }
        return r;
    }

    /// <summary>PSADBW: sums of absolute byte differences, one per 64-bit half, in the low word of each half.</summary>
    public static UInt128 Psadbw(UInt128 a, UInt128 b)
    {
        var ra = L<byte>(ref a); var rb = L<byte>(ref b);
        UInt128 r = 0; var rr = L<ulong>(ref r);
        for (int h = 0; h < 2; h++)
        {
            int s = 0;
            for (int i = 0; i < 8; i++)
                s += Math.Abs(ra[8 * h + i] - rb[8 * h + i]);
            rr[h] = (ulong)s;
        }
        return r;
    }

    /// <summary>MPSADBW (SSE4.1): eight sums of absolute differences of 4-byte groups, offsets from imm8.</summary>
    public static UInt128 Mpsadbw(UInt128 a, UInt128 b, byte imm)
    {
        var ra = L<byte>(ref a); var rb = L<byte>(ref b);
        UInt128 r = 0; var rr = L<ushort>(ref r);
        int aOff = ((imm >> 2) & 1) * 4, bOff = (imm & 3) * 4;
        for (int j = 0; j < 8; j++)
        {
            int s = 0;
            for (int k = 0; k < 4; k++)
                s += Math.Abs(ra[aOff + j + k] - rb[bOff + k]);
            rr[j] = (ushort)s;
        }
        return r;
    }

    /// <summary>PHMINPOSUW (SSE4.1): the minimum unsigned word and its (lowest) index; other bits zero.</summary>
    public static UInt128 Phminposuw(UInt128 b)
    {
        var rb = L<ushort>(ref b);
        int idx = 0;
        for (int i = 1; i < 8; i++)
            if (rb[i] < rb[idx])
                idx = i;
        return (UInt128)((uint)rb[idx] | ((uint)idx << 16));
    }

    // ---- horizontal ----

    /// <summary>PHADDW/PHADDD/PHSUBW/PHSUBD and the saturating PHADDSW/PHSUBSW (SSSE3): pairs from a fill the low half, pairs from b the high half.</summary>
    public static UInt128 Horizontal(UInt128 a, UInt128 b, int laneBytes, bool subtract, bool saturate)
    {
        int bits = laneBytes * 8, n = 128 / bits;
        UInt128 r = 0;
        for (int k = 0; k < n; k++)
        {
            UInt128 src = k < n / 2 ? a : b;
            int j = (k % (n / 2)) * 2;
            long x = Lane(src, j * bits, bits, true), y = Lane(src, (j + 1) * bits, bits, true);
            long v = subtract ? x - y : x + y;
            if (saturate)
                v = Math.Clamp(v, short.MinValue, short.MaxValue);
            r |= (UInt128)((ulong)v & ((1UL << bits) - 1)) << (k * bits);
        }
        return r;
    }

    // ---- shifts ----

    /// <summary>PSLLW/D/Q (logical left): a count above the lane width clears the lanes. <paramref name="count"/> is the full 64-bit count (register form) or imm8.</summary>
    public static UInt128 Psll(UInt128 a, ulong count, int laneBytes) => Shift(a, count, laneBytes, 0);
    /// <summary>PSRLW/D/Q (logical right).</summary>
    public static UInt128 Psrl(UInt128 a, ulong count, int laneBytes) => Shift(a, count, laneBytes, 1);
    /// <summary>PSRAW/D (arithmetic right): a count above the width fills with the sign.</summary>
    public static UInt128 Psra(UInt128 a, ulong count, int laneBytes) => Shift(a, count, laneBytes, 2);

    private static UInt128 Shift(UInt128 a, ulong count, int laneBytes, int kind)
    {
        int bits = laneBytes * 8;
        ulong mask = bits == 64 ? ulong.MaxValue : (1UL << bits) - 1;
        UInt128 r = 0;
        for (int i = 0; i < 128; i += bits)
        {
            ulong v;
            if (kind == 2)
            {
                long x = Lane(a, i, bits, true);
                v = (ulong)(x >> (int)Math.Min(count, (ulong)bits - 1)) & mask;
            }
            else if (count >= (ulong)bits)
                v = 0;
            else
            {
                ulong x = (ulong)(a >> i) & mask;
                v = (kind == 0 ? x << (int)count : x >> (int)count) & mask;
            }
            r |= (UInt128)v << i;
        }
        return r;
    }

    /// <summary>PSLLDQ: byte shift left of the whole register (imm8 above 15 clears it).</summary>
    public static UInt128 Pslldq(UInt128 a, byte imm) => imm > 15 ? 0 : a << (imm * 8);

    /// <summary>PSRLDQ: byte shift right of the whole register.</summary>
    public static UInt128 Psrldq(UInt128 a, byte imm) => imm > 15 ? 0 : a >> (imm * 8);

    /// <summary>PALIGNR (SSSE3): the 32-byte concatenation a:b shifted right by imm8 bytes, low 16 bytes.</summary>
    public static UInt128 Palignr(UInt128 a, UInt128 b, byte imm)
    {
        int s = imm * 8;
        if (s >= 256)
            return 0;
        if (s >= 128)
            return a >> (s - 128);
        if (s == 0)
            return b;
        return (b >> s) | (a << (128 - s));
    }

    // ---- pack / unpack ----

    /// <summary>PACKSSWB/PACKUSWB (<paramref name="laneBytes"/> 2) and PACKSSDW/PACKUSDW (4): narrow a then b with saturation.</summary>
    public static UInt128 Pack(UInt128 a, UInt128 b, int laneBytes, bool unsignedSaturation)
    {
        int bits = laneBytes * 8, half = bits / 2, n = 128 / bits;
        long min = unsignedSaturation ? 0 : -(1L << (half - 1)), max = unsignedSaturation ? (1L << half) - 1 : (1L << (half - 1)) - 1;
        UInt128 r = 0;
        for (int k = 0; k < 2 * n; k++)
        {
            UInt128 src = k < n ? a : b;
            long v = Math.Clamp(Lane(src, (k % n) * bits, bits, true), min, max);
            r |= (UInt128)((ulong)v & ((1UL << half) - 1)) << (k * half);
        }
        return r;
    }

    /// <summary>PUNPCKL/PUNPCKH BW, WD, DQ, QDQ: interleave the low (or high) halves of a and b, a first.</summary>
    public static UInt128 Unpack(UInt128 a, UInt128 b, int laneBytes, bool high)
    {
        int bits = laneBytes * 8, n = 64 / bits;
        UInt128 r = 0;
        ulong mask = bits == 64 ? ulong.MaxValue : (1UL << bits) - 1;
        int start = high ? 64 : 0;
        for (int k = 0; k < n; k++)
        {
            r |= (UInt128)((ulong)(a >> (start + k * bits)) & mask) << (2 * k * bits);
            r |= (UInt128)((ulong)(b >> (start + k * bits)) & mask) << ((2 * k + 1) * bits);
        }
        return r;
    }

    // ---- shuffles, blends, moves ----

    /// <summary>PSHUFD.</summary>
    public static UInt128 Pshufd(UInt128 b, byte imm)
    {
        var rb = L<uint>(ref b);
        UInt128 r = 0; var rr = L<uint>(ref r);
        for (int i = 0; i < 4; i++)
            rr[i] = rb[(imm >> (2 * i)) & 3];
        return r;
    }

    /// <summary>PSHUFLW (<paramref name="high"/> false) / PSHUFHW: shuffles the words of one half, copies the other.</summary>
    public static UInt128 Pshufw(UInt128 b, byte imm, bool high)
    {
        var rb = L<ushort>(ref b);
        UInt128 r = b; var rr = L<ushort>(ref r);
        int o = high ? 4 : 0;
        for (int i = 0; i < 4; i++)
            rr[o + i] = rb[o + ((imm >> (2 * i)) & 3)];
        return r;
    }

    /// <summary>PSHUFB (SSSE3): byte table lookup; an index byte with bit 7 set gives zero.</summary>
    public static UInt128 Pshufb(UInt128 a, UInt128 b)
    {
        var ra = L<byte>(ref a); var rb = L<byte>(ref b);
        UInt128 r = 0; var rr = L<byte>(ref r);
        for (int i = 0; i < 16; i++)
            rr[i] = (rb[i] & 0x80) != 0 ? (byte)0 : ra[rb[i] & 15];
        return r;
    }

    /// <summary>SHUFPS: two singles from a, two from b.</summary>
    public static UInt128 Shufps(UInt128 a, UInt128 b, byte imm)
    {
        var ra = L<uint>(ref a); var rb = L<uint>(ref b);
        UInt128 r = 0; var rr = L<uint>(ref r);
        rr[0] = ra[imm & 3];
        rr[1] = ra[(imm >> 2) & 3];
        rr[2] = rb[(imm >> 4) & 3];
        rr[3] = rb[(imm >> 6) & 3];
        return r;
    }

    /// <summary>SHUFPD.</summary>
    public static UInt128 Shufpd(UInt128 a, UInt128 b, byte imm) =>
        (ulong)(a >> ((imm & 1) * 64)) | ((UInt128)(ulong)(b >> (((imm >> 1) & 1) * 64)) << 64);

    /// <summary>PBLENDW (2-byte lanes), BLENDPS (4), BLENDPD (8) with an immediate lane mask.</summary>
    public static UInt128 BlendImmediate(UInt128 a, UInt128 b, byte imm, int laneBytes)
    {
        int bits = laneBytes * 8;
        UInt128 laneMask = bits == 64 ? ulong.MaxValue : (UInt128)((1UL << bits) - 1);
        UInt128 sel = 0;
        for (int i = 0; i < 128 / bits; i++)
            if (((imm >> i) & 1) != 0)
                sel |= laneMask << (i * bits);
        return (a & ~sel) | (b & sel);
    }

    /// <summary>PBLENDVB (1), BLENDVPS (4), BLENDVPD (8): lanes whose mask (XMM0) top bit is set come from b.</summary>
    public static UInt128 BlendVariable(UInt128 a, UInt128 b, UInt128 mask, int laneBytes)
    {
        int bits = laneBytes * 8;
        UInt128 laneMask = bits == 64 ? ulong.MaxValue : (UInt128)((1UL << bits) - 1);
        UInt128 sel = 0;
        for (int i = 0; i < 128; i += bits)
            if (((mask >> (i + bits - 1)) & 1) != 0)
                sel |= laneMask << i;
        return (a & ~sel) | (b & sel);
    }

    /// <summary>PMOVMSKB (1), MOVMSKPS (4), MOVMSKPD (8): the top bit of each lane.</summary>
    public static uint MoveMask(UInt128 a, int laneBytes)
    {
        int bits = laneBytes * 8;
        uint r = 0;
        for (int i = 0, k = 0; i < 128; i += bits, k++)
            r |= (uint)((a >> (i + bits - 1)) & 1) << k;
        return r;
    }

    /// <summary>PTEST (SSE4.1): ZF (bit 6) if (a AND b) is zero, CF (bit 0) if (NOT a AND b) is zero; AF OF PF SF cleared.</summary>
    public static uint PtestFlags(UInt128 a, UInt128 b) =>
        ((a & b) == 0 ? 0x40u : 0) | ((~a & b) == 0 ? 1u : 0);

    /// <summary>PMOVSX/PMOVZX (SSE4.1): widen the low lanes of b from <paramref name="fromBytes"/> to <paramref name="toBytes"/>.</summary>
    public static UInt128 Pmovx(UInt128 b, int fromBytes, int toBytes, bool signExtend)
    {
        int fb = fromBytes * 8, tb = toBytes * 8;
        ulong mask = tb == 64 ? ulong.MaxValue : (1UL << tb) - 1;
        UInt128 r = 0;
        for (int k = 0; k < 128 / tb; k++)
            r |= (UInt128)((ulong)Lane(b, k * fb, fb, signExtend) & mask) << (k * tb);
        return r;
    }

    // ---- SSE4.2 ----

    /// <summary>PCMPGTQ is <see cref="Pcmpgt"/> with 8-byte lanes; CRC32 (SSE4.2): CRC-32C (Castagnoli, reflected polynomial 82F63B78h) over the low <paramref name="sizeBytes"/> of <paramref name="data"/>.</summary>
    public static uint Crc32(uint crc, ulong data, int sizeBytes)
    {
        for (int i = 0; i < sizeBytes; i++)
        {
            crc ^= (byte)(data >> (8 * i));
            for (int k = 0; k < 8; k++)
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F6_3B78u : crc >> 1;
        }
        return crc;
    }

    /// <summary>POPCNT.</summary>
    public static int Popcnt(ulong value) => BitOperations.PopCount(value);
}
