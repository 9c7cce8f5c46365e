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
/// random inputs. Forms with more edge combinations than MaxEdgeInputs (three operands, exhaustive BCD) take an evenly
/// strided subset. The seed is printed on failure; set HV_ALU_SEED to rerun with it.
/// </summary>
[TestFixture]
public sealed class AluDifferentialTests
{
    private const int RandomIterations = 1500;
    private const int MaxEdgeInputs = 16_000;
    private const int MaxReportedMismatches = 12;

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
        var random = new Random(AluInputs.Seed ^ AluInputs.StableHash(formName));
        var mismatches = new List<string>();
        int total = 0, nativeRuns = 0;
        foreach (RegisterFile input in AluInputs.Edge(form, random, Cpu.ScratchAddress, MaxEdgeInputs).Concat(AluInputs.Randomized(form, random, Cpu.ScratchAddress, RandomIterations)))
        {
            total++;
            if (Check(form, stub, input, mismatches))
            {
                nativeRuns++;
            }
        }

        Assert.That(mismatches, Is.Empty,
            $"{form.Name}: {mismatches.Count} of {total} inputs differ (seed {AluInputs.Seed}; set HV_ALU_SEED={AluInputs.Seed} to reproduce)"
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
                mismatches.Add($"SDM says #DE but the ALU completed; in: {AluInputs.Describe(form, input)}");
            }

            return false;
        }

        if (!completes)
        {
            mismatches.Add($"the ALU reported #DE but the SDM says no fault; in: {AluInputs.Describe(form, input)}");
            return false;
        }

        RegisterFile actual = input;
        Cpu.Run(stub, ref actual);

        ulong compared = Status & ~form.UndefinedFlags(input);
        bool flagsDiffer = ((expected.Rflags ^ actual.Rflags) & compared) != 0;
        bool compareResults = form.ResultUndefined?.Invoke(input) != true;
        if (flagsDiffer || (compareResults && !SameResults(form, input, expected, actual)))
        {
            mismatches.Add($"in: {AluInputs.Describe(form, input)} =>{Differences(form, input, expected, actual, compared, compareResults)}");
        }

        return true;
    }

    private static bool SameResults(AluForm form, in RegisterFile input, in RegisterFile expected, in RegisterFile actual)
    {
        for (int i = 0; i < 16; i++)
        {
            if (i != 4 && ((expected[i] ^ actual[i]) & form.ComparedBits(input, i)) != 0)
            {
                return false;
            }
        }

        ReadOnlySpan<byte> expectedScratch = expected.Scratch, actualScratch = actual.Scratch;
        return expectedScratch.SequenceEqual(actualScratch);
    }

    private static string Differences(AluForm form, in RegisterFile input, in RegisterFile expected, in RegisterFile actual, ulong comparedFlags, bool compareResults)
    {
        var problems = new StringBuilder();
        if (((expected.Rflags ^ actual.Rflags) & comparedFlags) != 0)
        {
            problems.Append(CultureInfo.InvariantCulture, $" flags expected {AluInputs.FlagString(expected.Rflags & comparedFlags)} actual {AluInputs.FlagString(actual.Rflags & comparedFlags)};");
        }

        if (compareResults)
        {
            for (int i = 0; i < 16; i++)
            {
                if (i != 4 && ((expected[i] ^ actual[i]) & form.ComparedBits(input, i)) != 0)
                {
                    problems.Append(CultureInfo.InvariantCulture, $" {AluInputs.RegisterName(i)} expected {expected[i]:X16} actual {actual[i]:X16};");
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
}
