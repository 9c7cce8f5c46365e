namespace Hypervisor.Accel.Tcg.Tests.Sse;

/// <summary>Edge and seeded random binary32/binary64 lane values and MXCSR settings.</summary>
internal static class SseValues
{
    public static readonly uint[] Edges32 =
    [
        0, 0x8000_0000, 1, 0x8000_0001, 0x007F_FFFF, 0x0040_0000, 0x0080_0000, 0x8080_0000, 0x0080_0001,
        0x7F7F_FFFF, 0xFF7F_FFFF, 0x7F00_0000, 0x3F80_0000, 0xBF80_0000, 0x3FC0_0000, 0x3F80_0001, 0x4B80_0000, 0x4F00_0000,
        0xCF00_0000, 0x4EFF_FFFF, 0x5F00_0000, 0xDF00_0000, 0x3F00_0000, 0x3EFF_FFFF, 0x4020_0000, 0x40C0_0000,
        0x7F80_0000, 0xFF80_0000, 0x7FC0_0000, 0xFFC0_0000, 0x7FC1_2345, 0x7F80_0001, 0xFFA0_0000, 0x7FBF_FFFF,
    ];

    public static readonly ulong[] Edges64 =
    [
        0, 1UL << 63, 1, 0x8000_0000_0000_0001, 0x000F_FFFF_FFFF_FFFF, 0x0008_0000_0000_0000, 0x0010_0000_0000_0000,
        0x8010_0000_0000_0000, 0x7FEF_FFFF_FFFF_FFFF, 0xFFEF_FFFF_FFFF_FFFF, 0x3FF0_0000_0000_0000, 0xBFF0_0000_0000_0000,
        0x3FF8_0000_0000_0000, 0x3FF0_0000_0000_0001, 0x41E0_0000_0000_0000, 0xC1E0_0000_0000_0000, 0x41DF_FFFF_FFC0_0000,
        0x41DF_FFFF_FFE0_0000, 0x43E0_0000_0000_0000, 0xC3E0_0000_0000_0000, 0x3FE0_0000_0000_0000, 0x4004_0000_0000_0000,
        0x47EF_FFFF_E000_0000, 0x47EF_FFFF_F000_0000, 0x3810_0000_0000_0000, 0x380F_FFFF_F000_0000, 0x36A0_0000_0000_0000,
        0x7FF0_0000_0000_0000, 0xFFF0_0000_0000_0000, 0x7FF8_0000_0000_0000, 0xFFF8_0000_0000_0000, 0x7FF8_0000_1234_5678,
        0x7FF0_0000_0000_0001, 0xFFF4_0000_0000_0000,
    ];

    public static ulong Random(Random r, bool isDouble)
    {
        int kind = r.Next(10);
        if (isDouble)
        {
            ulong frac = (ulong)r.NextInt64() & 0xF_FFFF_FFFF_FFFF;
            if (r.Next(3) == 0)
                frac &= ~((1UL << r.Next(1, 52)) - 1);
            ulong exp = kind switch
            {
                0 => (ulong)r.Next(0, 60),
                1 => (ulong)(0x7FE - r.Next(60)),
                2 => (ulong)r.Next(0, 0x7FF),
                3 => 0x36A + (ulong)r.Next(40), // results that land in the single-precision denormal range
                _ => (ulong)(1023 + r.Next(-70, 70)),
            };
            return ((ulong)r.Next(2) << 63) | (exp << 52) | frac;
        }
        else
        {
            uint frac = (uint)r.Next() & 0x7F_FFFF;
            if (r.Next(3) == 0)
                frac &= ~((1u << r.Next(1, 23)) - 1);
            uint exp = kind switch
            {
                0 => (uint)r.Next(0, 30),
                1 => (uint)(0xFE - r.Next(30)),
                2 => (uint)r.Next(0, 0xFF),
                _ => (uint)(127 + r.Next(-40, 40)),
            };
            return ((uint)r.Next(2) << 31) | (exp << 23) | frac;
        }
    }

    /// <summary>Pairs of lanes: all edge pairs, then random ones (some with equal exponents).</summary>
    public static IEnumerable<(ulong, ulong)> Pairs(bool isDouble, int seed, int randomCount)
    {
        ulong[] edges = isDouble ? Edges64 : Edges32.Select(x => (ulong)x).ToArray();
        foreach (var a in edges)
            foreach (var b in edges)
                yield return (a, b);
        var r = new Random(seed);
        for (int i = 0; i < randomCount; i++)
        {
            ulong a = Random(r, isDouble);
            ulong b = r.Next(8) == 0 ? edges[r.Next(edges.Length)] : Random(r, isDouble);
            if (r.Next(3) == 0)
            {
                ulong expMask = isDouble ? 0x7FF0_0000_0000_0000UL : 0x7F80_0000UL;
                b = (b & ~expMask) | (a & expMask);
            }
            yield return r.Next(2) == 0 ? (a, b) : (b, a);
        }
    }

    /// <summary>Every rounding mode with each DAZ/FTZ combination, all exceptions masked, flags clear.</summary>
    public static IEnumerable<uint> MaskedMxcsrs()
    {
        for (uint rc = 0; rc < 4; rc++)
            for (uint dazFtz = 0; dazFtz < 4; dazFtz++)
                yield return 0x1F80 | (rc << 13) | ((dazFtz & 1) << 6) | ((dazFtz >> 1) << 15);
    }

    /// <summary>Packs lane values into a 128-bit vector.</summary>
    public static UInt128 Lanes(bool isDouble, IReadOnlyList<ulong> lanes, int start)
    {
        UInt128 v = 0;
        int width = isDouble ? 64 : 32, n = 128 / width;
        for (int i = 0; i < n; i++)
        {
            ulong x = lanes[(start + i) % lanes.Count];
            v |= (UInt128)(isDouble ? x : (uint)x) << (i * width);
        }
        return v;
    }
}
