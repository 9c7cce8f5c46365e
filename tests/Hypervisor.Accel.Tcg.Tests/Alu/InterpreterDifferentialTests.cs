using System.Globalization;
using System.Text;
using Hypervisor.Accel.Tcg.Tests.Native;
using Hypervisor.Accel.Tcg.Tests.Guests;
using Hypervisor.Core.Accelerators;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Memory;
using Hypervisor.Core.Registers;
using static Hypervisor.Accel.Tcg.Alu.AluFlags;

namespace Hypervisor.Accel.Tcg.Tests.Alu;

/// <summary>
/// The whole path of a guest instruction, decoding and operand plumbing included: each form of <see cref="AluForms"/>
/// runs in the tcg interpreter (64-bit mode, or flat 32-bit protected mode for the forms that are invalid in 64-bit
/// mode) and on the host CPU with the same inputs, and registers, scratch memory and defined flags must agree. Inputs
/// that raise #DE by the SDM's rule must make the interpreter deliver #DE with the registers unchanged.
/// </summary>
[TestFixture]
public sealed class InterpreterDifferentialTests() : AluDifferentialSuite(new AcceleratorOptions([new("jit", "off")]));

/// <summary>The driver of <see cref="InterpreterDifferentialTests"/>, parameterised by the tcg options (the JIT's suite passes <c>jit=on</c>).</summary>
public abstract class AluDifferentialSuite
{
    private readonly AcceleratorOptions _options;

    /// <summary>The suite on a tcg configured by <paramref name="options"/>.</summary>
    protected AluDifferentialSuite(AcceleratorOptions options) => _options = options;

    private const int RandomIterations = 200;
    private const int MaxEdgeInputs = 800;
    private const ulong CodeBase = 0x1_0000;
    private const ulong GuestScratch = 0x9_0000;
    private const ulong DivideErrorHandler = 0x9_1000;
    private const ulong GuestStack = 0x7_F000;

    private NativeCpu? _cpu;
    private TestMachine? _long64;
    private TestMachine? _protected32;

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
        _long64 = new TestMachine(options: _options);
        _long64.StartLong64(CodeBase, GuestStack);
        _long64.SetGate64(0, DivideErrorHandler);
        _long64.Load(64, DivideErrorHandler, a => a.hlt());
        _protected32 = new TestMachine(options: _options);
        _protected32.StartProtected32((uint)CodeBase);
    }

    [OneTimeTearDown]
    public void TearDown()
    {
        _cpu?.Dispose();
        _long64?.Dispose();
        _protected32?.Dispose();
    }

    [TestCaseSource(nameof(FormNames))]
    public void InterpreterMatchesHostCpu(string formName)
    {
        AluForm form = AluForms.ByName[formName];
        if (form.MissingFeature() is { } missing)
        {
            Assert.Ignore(missing);
        }

        TestMachine machine = (form.Compat32 ? _protected32 : _long64) ?? throw new InvalidOperationException("not set up");
        ulong code = CodeBase + ((ulong)IndexOf(form) * 64);
        ulong haltedAt = machine.Load(form.Compat32 ? 32 : 64, code, a =>
        {
            form.Emit(a);
            a.hlt();
        });
        NativeStub stub = form.Compat32 ? Cpu.CompileCompat32(form.Emit) : Cpu.Compile64(form.Emit);

        var random = new Random(AluInputs.Seed ^ AluInputs.StableHash("interpreter " + formName));
        var mismatches = new List<string>();
        int total = 0;
        long jitBefore = machine.Cpu.Jit?.Statistics.JitInstructions ?? 0;
        IEnumerable<RegisterFile> inputs = AluInputs.Edge(form, random, Cpu.ScratchAddress, MaxEdgeInputs)
            .Concat(AluInputs.Randomized(form, random, Cpu.ScratchAddress, RandomIterations));
        foreach (RegisterFile generated in inputs)
        {
            total++;
            RegisterFile input = generated;
            input.Rflags = (input.Rflags & Status) | 2;
            if (form.Compat32)
            {
                for (int i = 0; i < 8; i++)
                {
                    input[i] &= 0xFFFF_FFFF;
                }
            }

            string? problem = form.Faults?.Invoke(input) == true
                ? CheckDivideError(machine, code, input)
                : Compare(form, machine, code, haltedAt, stub, input);
            if (problem is not null)
            {
                mismatches.Add($"in: {AluInputs.Describe(form, input)} =>{problem}");
            }
        }

        if (machine.Cpu.Jit is { } jit && Jit.JitCoverage.FirstIsNative(form.Emit, form.Compat32 ? 32 : 64))
        {
            Assert.That(jit.Statistics.JitInstructions, Is.GreaterThan(jitBefore), $"{form.Name}: the JIT did not run the form");
        }

        Assert.That(mismatches, Is.Empty,
            $"{form.Name}: {mismatches.Count} of {total} inputs differ between the interpreter and the host CPU (seed {AluInputs.Seed}; set HV_ALU_SEED={AluInputs.Seed} to reproduce)"
            + Environment.NewLine + string.Join(Environment.NewLine, mismatches.Take(12)));
    }

    private string? Compare(AluForm form, TestMachine machine, ulong code, ulong haltedAt, NativeStub stub, RegisterFile input)
    {
        RegisterFile native = input;
        Cpu.Run(stub, ref native);

        (VcpuExit exit, GeneralRegisters guest, byte[] scratch) = RunGuest(machine, code, input);
        if (exit.Reason != VcpuExitReason.Halted || guest.Rip != haltedAt)
        {
            return $" the interpreter stopped with {exit.Reason} at RIP {guest.Rip:X} ({exit})";
        }

        var problems = new StringBuilder();
        ulong compared = Status & ~form.UndefinedFlags(input);
        if (((native.Rflags ^ guest.Rflags) & compared) != 0)
        {
            problems.Append(CultureInfo.InvariantCulture, $" flags host {AluInputs.FlagString(native.Rflags & compared)} interpreter {AluInputs.FlagString(guest.Rflags & compared)};");
        }

        if (form.ResultUndefined?.Invoke(input) != true)
        {
            int registers = form.Compat32 ? 8 : 16;
            ulong width = form.Compat32 ? 0xFFFF_FFFF : ulong.MaxValue;
            for (int i = 0; i < registers; i++)
            {
                ulong interpreted = i == 6 ? ToHostScratch(guest.Rsi) : guest[i];
                if (i != 4 && ((native[i] ^ interpreted) & width & form.ComparedBits(input, i)) != 0)
                {
                    problems.Append(CultureInfo.InvariantCulture, $" {AluInputs.RegisterName(i)} host {native[i]:X16} interpreter {interpreted:X16};");
                }
            }

            ReadOnlySpan<byte> hostScratch = native.Scratch;
            if (!hostScratch.SequenceEqual(scratch))
            {
                problems.Append(CultureInfo.InvariantCulture, $" scratch host {Convert.ToHexString(hostScratch)} interpreter {Convert.ToHexString(scratch)};");
            }
        }

        return problems.Length == 0 ? null : problems.ToString();
    }

    /// <summary>#DE is a fault: the handler runs with the DIV's address pushed and no register changed.</summary>
    private string? CheckDivideError(TestMachine machine, ulong code, RegisterFile input)
    {
        (VcpuExit exit, GeneralRegisters guest, _) = RunGuest(machine, code, input);
        if (exit.Reason != VcpuExitReason.Halted || guest.Rip != DivideErrorHandler + 1)
        {
            return $" expected #DE, the interpreter stopped with {exit.Reason} at RIP {guest.Rip:X}";
        }

        ulong pushedRip = machine.ReadQword(guest.Rsp);
        if (pushedRip != code)
        {
            return $" #DE pushed RIP {pushedRip:X}, expected the DIV at {code:X}";
        }

        for (int i = 0; i < 16; i++)
        {
            ulong interpreted = i == 6 ? ToHostScratch(guest.Rsi) : guest[i];
            if (i != 4 && interpreted != input[i])
            {
                return $" #DE changed {AluInputs.RegisterName(i)} to {interpreted:X16}";
            }
        }

        return null;
    }

    private (VcpuExit Exit, GeneralRegisters Registers, byte[] Scratch) RunGuest(TestMachine machine, ulong code, RegisterFile input)
    {
        GeneralRegisters g = default;
        for (int i = 0; i < 16; i++)
        {
            g[i] = input[i];
        }

        g.Rsi = ToGuestScratch(input.Rsi);
        g.Rsp = GuestStack;
        g.Rip = code;
        g.Rflags = input.Rflags;
        machine.Memory.Write(new GuestAddress(GuestScratch), input.Scratch);
        machine.Vcpu.SetGeneralRegisters(g);
        VcpuExit exit = machine.Run(16);
        var scratch = new byte[64];
        machine.Memory.Read(new GuestAddress(GuestScratch), scratch);
        return (exit, machine.Vcpu.GetGeneralRegisters(), scratch);
    }

    // Memory forms point RSI into the host scratch block; the guest sees the same offset in its own scratch block.
    private ulong ToGuestScratch(ulong rsi) =>
        rsi - Cpu.ScratchAddress <= 64 ? rsi - Cpu.ScratchAddress + GuestScratch : rsi;

    private ulong ToHostScratch(ulong rsi) =>
        rsi - GuestScratch <= 64 ? rsi - GuestScratch + Cpu.ScratchAddress : rsi;

    private static int IndexOf(AluForm form)
    {
        for (int i = 0; i < AluForms.All.Count; i++)
        {
            if (ReferenceEquals(AluForms.All[i], form))
            {
                return i;
            }
        }

        throw new ArgumentException("not in the catalogue", nameof(form));
    }
}
