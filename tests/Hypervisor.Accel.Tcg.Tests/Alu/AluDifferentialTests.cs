using System.Globalization;
using System.Text;
using Hypervisor.Accel.Tcg.Tests.Native;
using static Hypervisor.Accel.Tcg.Alu.AluFlags;
using AluOps = Hypervisor.Accel.Tcg.Alu.Alu;
using Hypervisor.Accel.Tcg.Alu;

namespace Hypervisor.Accel.Tcg.Tests.Alu;

/// <summary>
/// Runs every form of <see cref="AluForms"/> on the host CPU and through <c>Alu</c> and compares all general registers,
/// the scratch block and the defined status flags: edge values crossed with the input flags that matter, then seeded
/// random inputs. The seed is printed on failure; set HV_ALU_SEED to rerun with it.
/// </summary>
[TestFixture]
public sealed class AluDifferentialTests
{
    private const int RandomIterations = 3000;
    private const int MaxReportedMismatches = 12;

    private static readonly int Seed = Environment.GetEnvironmentVariable("HV_ALU_SEED") is { Length: > 0 } text
        ? int.Parse(text, CultureInfo.InvariantCulture)
        : Random.Shared.Next();

    private NativeCpu? _cpu;

    public static IEnumerable<string> FormNames => AluForms.All.Select(f => f.Name);

    private NativeCpu Cpu => _cpu ?? throw new InvalidOperationException("not set up");

    [OneTimeSetUp]
    public void SetUp()
    {
        if (NativeCpu.UnsupportedReason is { } reason)
        {
            Assert.Ignore(reason);
        }

        _cpu = new NativeCpu();
    }

    [OneTimeTearDown]
    public void TearDown() => _cpu?.Dispose();

    [TestCaseSource(nameof(FormNames))]
    public void MatchesHostCpu(string formName)
    {
        AluForm form = AluForms.ByName[formName];
        if (form.MissingFeature() is { } missing)
        {
            Assert.Ignore(missing);
        }

        NativeStub stub = form.Compat32 ? Cpu.CompileCompat32(form.Emit) : Cpu.Compile64(form.Emit);
        var random = new Random(Seed ^ StableHash(formName));
        var mismatches = new List<string>();
        int total = 0, nativeRuns = 0;
        foreach (RegisterFile input in EdgeInputs(form, random).Concat(RandomInputs(form, random)))
        {
            total++;
            if (Check(form, stub, input, mismatches))
            {
                nativeRuns++;
            }
        }

        Assert.That(mismatches, Is.Empty,
            $"{form.Name}: {mismatches.Count} of {total} inputs differ (seed {Seed}; set HV_ALU_SEED={Seed} to reproduce)"
            + Environment.NewLine + string.Join(Environment.NewLine, mismatches.Take(MaxReportedMismatches)));
        // Every form must really reach the host CPU for most inputs, or the comparison proves nothing.
        Assert.That(nativeRuns, Is.GreaterThan(total / 4), $"{form.Name}: only {nativeRuns} of {total} inputs ran natively");
    }

    /// <summary>Returns true when the input ran natively (it did not fault by the SDM's rule).</summary>
    private bool Check(AluForm form, NativeStub stub, RegisterFile input, List<string> mismatches)
    {
        input.Rflags = (input.Rflags & Status) | 2;
        if (form.Compat32)
        {
            // Compatibility-mode stubs load and store only the low halves of RAX..RDI.
            for (int i = 0; i < 8; i++)
            {
                input[i] &= 0xFFFF_FFFF;
            }
        }

        RegisterFile expected = input;
        bool completes = form.Emulate(ref expected);
        if (form.Faults?.Invoke(input) == true)
        {
            if (completes)
            {
                mismatches.Add($"SDM says #DE but the ALU completed; in: {Describe(form, input)}");
            }

            return false;
        }

        if (!completes)
        {
            mismatches.Add($"the ALU reported #DE but the SDM says no fault; in: {Describe(form, input)}");
            return false;
        }

        RegisterFile actual = input;
        Cpu.Run(stub, ref actual);

        ulong compared = Status & ~form.UndefinedFlags(input);
        bool flagsDiffer = ((expected.Rflags ^ actual.Rflags) & compared) != 0;
        bool compareResults = form.ResultUndefined?.Invoke(input) != true;
        if (flagsDiffer || (compareResults && !SameResults(expected, actual)))
        {
            mismatches.Add($"in: {Describe(form, input)} =>{Differences(expected, actual, compared, compareResults)}");
        }

        return true;
    }

    private static bool SameResults(in RegisterFile expected, in RegisterFile actual)
    {
        for (int i = 0; i < 16; i++)
        {
            if (i != 4 && expected[i] != actual[i])
            {
                return false;
            }
        }

        ReadOnlySpan<byte> expectedScratch = expected.Scratch, actualScratch = actual.Scratch;
        return expectedScratch.SequenceEqual(actualScratch);
    }

    private static string Differences(in RegisterFile expected, in RegisterFile actual, ulong comparedFlags, bool compareResults)
    {
        var problems = new StringBuilder();
        if (((expected.Rflags ^ actual.Rflags) & comparedFlags) != 0)
        {
            problems.Append(CultureInfo.InvariantCulture, $" flags expected {FlagString(expected.Rflags & comparedFlags)} actual {FlagString(actual.Rflags & comparedFlags)};");
        }

        if (compareResults)
        {
            for (int i = 0; i < 16; i++)
            {
                if (i != 4 && expected[i] != actual[i])
                {
                    problems.Append(CultureInfo.InvariantCulture, $" {RegisterName(i)} expected {expected[i]:X16} actual {actual[i]:X16};");
                }
            }

            ReadOnlySpan<byte> expectedScratch = expected.Scratch, actualScratch = actual.Scratch;
            if (!expectedScratch.SequenceEqual(actualScratch))
            {
                problems.Append(CultureInfo.InvariantCulture, $" scratch expected {Convert.ToHexString(expectedScratch)} actual {Convert.ToHexString(actualScratch)};");
            }
        }

        return problems.ToString();
    }

    private IEnumerable<RegisterFile> EdgeInputs(AluForm form, Random random)
    {
        ulong[][] values = form.Operands
            .Select(o => form.Exhaustive ? AllValues(o.Bits) : EdgeValues(o.Bits))
            .ToArray();
        ulong[] flagInputs = FlagCombinations(form.FlagsIn);
        long combinations = values.Aggregate(1L, (n, v) => n * v.Length);
        for (long index = 0; index < combinations; index++)
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
                form.Shape?.Invoke(random, ref r, Cpu.ScratchAddress);
                yield return r;
            }
        }
    }

    private IEnumerable<RegisterFile> RandomInputs(AluForm form, Random random)
    {
        for (int n = 0; n < RandomIterations; n++)
        {
            RegisterFile r = RandomRegisters(random);
            foreach (Operand operand in form.Operands)
            {
                SetOperand(ref r, operand, RandomValue(operand.Bits, random), random);
            }

            form.ShapeRandom?.Invoke(random, ref r, Cpu.ScratchAddress);
            form.Shape?.Invoke(random, ref r, Cpu.ScratchAddress);
            yield return r;
        }
    }

    private static void SetOperand(ref RegisterFile r, Operand operand, ulong value, Random random)
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
    private static ulong[] EdgeValues(int bits)
    {
        ulong m = AluOps.Mask(bits), s = AluOps.SignBit(bits), b = (ulong)bits;
        ulong[] candidates =
        [
            0, 1, 2, 3, 6, 7, 8, 9, 0xA, 0xF, 0x10, 0x11, 0x1F, 0x20, 0x21, 0x3F, 0x40, 0x41, 0x7F, 0x80, 0x99, 0x9A, 0xFF,
            b - 1, b, b + 1, s - 1, s, s + 1, m - 1, m, 0x5555_5555_5555_5555, 0xAAAA_AAAA_AAAA_AAAA, 0x8000_0001,
        ];
        return candidates.Select(v => v & m).Distinct().ToArray();
    }

    private static ulong[] AllValues(int bits)
    {
        var all = new ulong[1 << bits];
        for (int i = 0; i < all.Length; i++)
        {
            all[i] = (ulong)i;
        }

        return all;
    }

    /// <summary>Every subset of the flags that matter, each once with the other status flags clear and once set.</summary>
    private static ulong[] FlagCombinations(ulong flagsIn)
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

    private static ulong RandomValue(int bits, Random random)
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

    private static RegisterFile RandomRegisters(Random random)
    {
        RegisterFile r = NativeCpuTests.RandomRegisters(random);
        random.NextBytes(r.Scratch);
        return r;
    }

    private static string Describe(AluForm form, RegisterFile r)
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

    private static string FlagString(ulong flags)
    {
        var text = new StringBuilder("[");
        foreach ((string name, ulong bit) in new[] { ("OF", OF), ("SF", SF), ("ZF", ZF), ("AF", AF), ("PF", PF), ("CF", CF) })
        {
            text.Append((flags & bit) != 0 ? name : "--").Append(' ');
        }

        return text.ToString().TrimEnd() + "]";
    }

    private static string RegisterName(int i) =>
        new[] { "RAX", "RCX", "RDX", "RBX", "RSP", "RBP", "RSI", "RDI", "R8", "R9", "R10", "R11", "R12", "R13", "R14", "R15" }[i];

    private static int StableHash(string text)
    {
        uint h = 2166136261;
        foreach (char c in text)
        {
            h = (h ^ c) * 16777619;
        }

        return (int)h;
    }
}
