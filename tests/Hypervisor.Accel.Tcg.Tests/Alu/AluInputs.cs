using System.Globalization;
using System.Text;
using Hypervisor.Accel.Tcg.Tests.Native;
using static Hypervisor.Accel.Tcg.Alu.AluFlags;
using AluOps = Hypervisor.Accel.Tcg.Alu.Alu;

namespace Hypervisor.Accel.Tcg.Tests.Alu;

/// <summary>
/// Inputs for the differential tests (edge values crossed with the flags that matter, and seeded random values) and
/// the text that describes a mismatch. The seed is random per run unless HV_ALU_SEED is set.
/// </summary>
internal static class AluInputs
{
    public static readonly int Seed = Environment.GetEnvironmentVariable("HV_ALU_SEED") is { Length: > 0 } text
        ? int.Parse(text, CultureInfo.InvariantCulture)
        : global::System.Random.Shared.Next();

    /// <summary>
    /// Edge values of every operand crossed with each other and with <see cref="FlagCombinations"/>; when there are more
    /// than <paramref name="maxInputs"/> combinations an evenly spread subset is taken.
    /// </summary>
    public static IEnumerable<RegisterFile> Edge(AluForm form, Random random, ulong scratchAddress, long maxInputs = long.MaxValue)
    {
        ulong[][] values = form.Operands
            .Select(o => form.Exhaustive ? AllValues(o.Bits) : EdgeValues(o.Bits))
            .ToArray();
        ulong[] flagInputs = FlagCombinations(form.FlagsIn);
        long combinations = values.Aggregate(1L, (n, v) => n * v.Length);
        long stride = Math.Max(1, combinations * flagInputs.Length / maxInputs);
        // A stride that shares a factor with an operand's number of values would only ever pick some of its values.
        while (values.Any(v => Gcd(stride, v.Length) != 1))
        {
            stride++;
        }

        for (long index = 0; index < combinations; index += stride)
        {
            long rest = index;
            foreach (ulong flags in flagInputs)
            {
                RegisterFile r = RandomRegisters(random);
                rest = index;
                for (int k = 0; k < form.Operands.Length; k++)
                {
                    ulong[] choices = values[k];
                    SetOperand(ref r, form.Operands[k], choices[rest % choices.Length], random);
                    rest /= choices.Length;
                }

                r.Rflags = flags;
                form.Shape?.Invoke(random, ref r, scratchAddress);
                yield return r;
            }
        }
    }

    /// <summary>Random register files with operand values biased toward edges and small numbers.</summary>
    public static IEnumerable<RegisterFile> Randomized(AluForm form, Random random, ulong scratchAddress, int count)
    {
        for (int n = 0; n < count; n++)
        {
            RegisterFile r = RandomRegisters(random);
            foreach (Operand operand in form.Operands)
            {
                SetOperand(ref r, operand, RandomValue(operand.Bits, random), random);
            }

            form.ShapeRandom?.Invoke(random, ref r, scratchAddress);
            form.Shape?.Invoke(random, ref r, scratchAddress);
            yield return r;
        }
    }

    internal static void SetOperand(ref RegisterFile r, Operand operand, ulong value, Random random)
    {
        ulong mask = AluOps.Mask(operand.Bits);
        if (operand.Register == AluForms.Memory)
        {
            AluForms.WriteLittleEndian(r.Scratch[..(operand.Bits / 8)], value);
        }
        else
        {
            // Random bits above the operand: the instruction must ignore (and, for 8/16 bits, preserve) them.
            r[operand.Register] = ((ulong)random.NextInt64() & ~mask) | (value & mask);
        }
    }

    /// <summary>
    /// Interesting values for an operand: 0, 1, small numbers and counts around the operand size and the shift-count
    /// masks, the sign boundaries, the maximum, alternating bit patterns and BCD digits.
    /// </summary>
    internal static ulong[] EdgeValues(int bits)
    {
        ulong m = AluOps.Mask(bits), s = AluOps.SignBit(bits), b = (ulong)bits;
        ulong[] candidates =
        [
            0, 1, 2, 3, 6, 7, 8, 9, 0xA, 0xF, 0x10, 0x11, 0x1F, 0x20, 0x21, 0x3F, 0x40, 0x41, 0x7F, 0x80, 0x99, 0x9A, 0xFF,
            b - 1, b, b + 1, s - 1, s, s + 1, m - 1, m, 0x5555_5555_5555_5555, 0xAAAA_AAAA_AAAA_AAAA, 0x8000_0001,
        ];
        return candidates.Select(v => v & m).Distinct().ToArray();
    }

    internal static ulong[] AllValues(int bits)
    {
        var all = new ulong[1 << bits];
        for (int i = 0; i < all.Length; i++)
        {
            all[i] = (ulong)i;
        }

        return all;
    }

    /// <summary>Every subset of the flags that matter, each once with the other status flags clear and once set.</summary>
    internal static ulong[] FlagCombinations(ulong flagsIn)
    {
        var bits = Enumerable.Range(0, 12).Where(i => (flagsIn & (1UL << i)) != 0).ToArray();
        var result = new List<ulong>();
        for (int subset = 0; subset < 1 << bits.Length; subset++)
        {
            ulong f = 0;
            for (int k = 0; k < bits.Length; k++)
            {
                if ((subset & (1 << k)) != 0)
                {
                    f |= 1UL << bits[k];
                }
            }

            result.Add(f);
            result.Add(f | (Status & ~flagsIn));
        }

        return [.. result];
    }

    internal static ulong RandomValue(int bits, Random random)
    {
        ulong v = random.Next(5) switch
        {
            0 or 1 => (ulong)random.NextInt64() ^ ((ulong)random.Next(2) << 63),
            2 => (ulong)random.Next(0, (2 * bits) + 3),
            3 => EdgeValues(bits)[random.Next(EdgeValues(bits).Length)],
            _ => ((ulong)random.NextInt64() >> random.Next(64)) ^ (random.Next(2) == 0 ? 0 : ulong.MaxValue),
        };
        return v;
    }

    internal static RegisterFile RandomRegisters(Random random)
    {
        RegisterFile r = NativeCpuTests.RandomRegisters(random);
        random.NextBytes(r.Scratch);
        return r;
    }

    internal static string Describe(AluForm form, RegisterFile r)
    {
        var text = new StringBuilder();
        foreach (Operand operand in form.Operands)
        {
            if (operand.Register == AluForms.Memory)
            {
                text.Append(CultureInfo.InvariantCulture, $"m{operand.Bits}={AluForms.ReadLittleEndian(r.Scratch[..(operand.Bits / 8)]):X} ");
            }
            else
            {
                text.Append(CultureInfo.InvariantCulture, $"{RegisterName(operand.Register)}={r[operand.Register]:X16} ");
            }
        }

        text.Append(CultureInfo.InvariantCulture, $"flags {FlagString(r.Rflags)}");
        return text.ToString();
    }

    internal static string FlagString(ulong flags)
    {
        var text = new StringBuilder("[");
        foreach ((string name, ulong bit) in new[] { ("OF", OF), ("SF", SF), ("ZF", ZF), ("AF", AF), ("PF", PF), ("CF", CF) })
        {
            text.Append((flags & bit) != 0 ? name : "--").Append(' ');
        }

        return text.ToString().TrimEnd() + "]";
    }

    internal static string RegisterName(int i) =>
        new[] { "RAX", "RCX", "RDX", "RBX", "RSP", "RBP", "RSI", "RDI", "R8", "R9", "R10", "R11", "R12", "R13", "R14", "R15" }[i];

    internal static int StableHash(string text)
    {
        uint h = 2166136261;
        foreach (char c in text)
        {
            h = (h ^ c) * 16777619;
        }

        return (int)h;
    }

    private static long Gcd(long a, long b)
    {
        while (b != 0)
        {
            (a, b) = (b, a % b);
        }

        return a;
    }
}
