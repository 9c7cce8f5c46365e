using Hypervisor.Accel.Tcg.Fpu;

namespace Hypervisor.Accel.Tcg.Tests.Fpu;

/// <summary>Edge and seeded random 80-bit operands.</summary>
internal static class X87Values
{
    private static ExtendedFloat E(ushort se, ulong sig) => new(sig, se);

    /// <summary>Edge values: zeros, denormals, pseudo-denormals, extremes, infinities, NaNs and unsupported encodings.</summary>
    public static readonly ExtendedFloat[] Edges =
    [
        E(0x0000, 0), E(0x8000, 0),
        E(0x0000, 1), E(0x8000, 1), E(0x0000, 0x7FFF_FFFF_FFFF_FFFF), E(0x0000, 0x4000_0000_0000_0001),
        E(0x0000, 0x8000_0000_0000_0000), E(0x8000, 0xC000_0000_0000_0001), // pseudo-denormals
        E(0x0001, 0x8000_0000_0000_0000), E(0x8001, 0x8000_0000_0000_0001),  // smallest normals
        E(0x7FFE, 0xFFFF_FFFF_FFFF_FFFF), E(0xFFFE, 0xFFFF_FFFF_FFFF_FFFF),  // largest normals
        E(0x7FFE, 0x8000_0000_0000_0000),
        E(0x3FFF, 0x8000_0000_0000_0000), E(0xBFFF, 0x8000_0000_0000_0000), // ±1
        E(0x3FFF, 0xC000_0000_0000_0000), E(0x4000, 0xA000_0000_0000_0000), // 1.5, 2.5
        E(0x3FFF, 0x8000_0000_0000_0001), E(0x3FFF, 0xFFFF_FFFF_FFFF_FFFF),
        E(0x3FFF, 0x8000_0080_0000_0000), E(0x3FFF, 0x8000_0000_0000_0400), // ties at 24 and 53 bits
        E(0x3FFE, 0x8000_0000_0000_0000), E(0x403E, 0x8000_0000_0000_0000), // 0.5, 2^63
        E(0x403E, 0xFFFF_FFFF_FFFF_FFFF), E(0x401E, 0xFFFF_FFFF_0000_0000), E(0xC01E, 0x8000_0000_0000_0000),
        E(0x4003, 0xA000_0000_0000_0000), // 10
        E(0x3F80, 0x8000_0000_0000_0000), E(0x3C00, 0x8000_0000_0000_0000), E(0x407F, 0xFFFF_FF80_0000_0000),
        E(0x7FFF, 0x8000_0000_0000_0000), E(0xFFFF, 0x8000_0000_0000_0000), // ±inf
        E(0x7FFF, 0xC000_0000_0000_0000), E(0xFFFF, 0xC000_0000_0000_0001), E(0x7FFF, 0xE000_0000_1234_0000), // QNaNs
        E(0x7FFF, 0x8000_0000_0000_0001), E(0xFFFF, 0xA000_0000_0000_0000), // SNaNs
        E(0x7FFF, 0x4000_0000_0000_0000), E(0x7FFF, 0x0000_0000_0000_0000), // pseudo-NaN, pseudo-infinity
        E(0x3FFF, 0x4000_0000_0000_0000), // unnormal
    ];

    /// <summary>Random finite value: normal with a random significand, exponent near 1 or anywhere, occasionally denormal.</summary>
    public static ExtendedFloat Random(Random r)
    {
        ulong sig = (ulong)r.NextInt64() | ((ulong)r.Next(2) << 63) | (1UL << 63);
        int kind = r.Next(16);
        ushort exp = kind switch
        {
            0 => (ushort)r.Next(1, 70),             // near the bottom of the range
            1 => (ushort)(0x7FFE - r.Next(70)),      // near the top
            2 => (ushort)r.Next(1, 0x7FFF),
            3 => 0,                                  // denormal
            _ => (ushort)(0x3FFF + r.Next(-80, 80)),
        };
        if (exp == 0)
            sig &= 0x7FFF_FFFF_FFFF_FFFF;
        if (r.Next(4) == 0)
            sig &= ~((1UL << r.Next(1, 50)) - 1); // short significands give exact results and ties
        ushort se = (ushort)(exp | (r.Next(2) << 15));
        return new ExtendedFloat(sig, se);
    }

    /// <summary>Control words: every rounding mode and precision, all exceptions masked (bit 6 reads as one).</summary>
    public static IEnumerable<ushort> MaskedControlWords()
    {
        foreach (int rc in new[] { 0, 1, 2, 3 })
            foreach (int pc in new[] { 0, 2, 3 })
                yield return (ushort)(0x7F | (pc << 8) | (rc << 10));
    }

    public static IEnumerable<(ExtendedFloat, ExtendedFloat)> Pairs(int seed, int randomCount)
    {
        foreach (var a in Edges)
            foreach (var b in Edges)
                yield return (a, b);
        var r = new Random(seed);
        for (int i = 0; i < randomCount; i++)
        {
            var a = Random(r);
            var b = r.Next(8) == 0 ? Edges[r.Next(Edges.Length)] : Random(r);
            // Nearby exponents exercise cancellation and carries.
            if (r.Next(3) == 0)
                b = new ExtendedFloat(b.Significand, (ushort)((b.SignExponent & 0x8000) | (a.SignExponent & 0x7FFF)));
            yield return r.Next(2) == 0 ? (a, b) : (b, a);
        }
    }
}
