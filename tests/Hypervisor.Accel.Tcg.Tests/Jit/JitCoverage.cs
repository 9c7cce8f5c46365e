using Hypervisor.Accel.Tcg.Jit;
using Hypervisor.Accel.Tcg.Tests.Guests;
using Hypervisor.Core.Accelerators;
using Iced.Intel;

namespace Hypervisor.Accel.Tcg.Tests.Jit;

/// <summary>Shared settings of the JIT suites.</summary>
internal static class JitCoverage
{
    /// <summary>tcg with the JIT translating every block on its first execution (so that even straight-line tests run translated code).</summary>
    public static AcceleratorOptions Eager { get; } = new([new("jit", "on"), new("jit-threshold", "0")]);

    /// <summary>The interpreter alone.</summary>
    public static AcceleratorOptions Off { get; } = new([new("jit", "off")]);

    /// <summary>Whether the first instruction <paramref name="emit"/> assembles is translated natively (not through the interpreter).</summary>
    public static bool FirstIsNative(Action<Assembler> emit, int bitness)
    {
        byte[] code = TestMachine.Assemble(bitness, 0x1_0000, emit);
        Decoder d = Decoder.Create(bitness, new ByteArrayCodeReader(code), 0x1_0000);
        d.Decode(out Instruction ins);
        return JitTranslator.IsNative(ref ins, bitness);
    }
}

/// <summary>
/// The interpreter's differential suite against the host CPU (every ALU form, edge and random inputs) run with the
/// JIT translating each form on first execution: forms the JIT translates natively must match the host exactly as the
/// interpreter does, and must really have run as translated code.
/// </summary>
[TestFixture]
public sealed class JitAluDifferentialTests : Alu.AluDifferentialSuite
{
    public JitAluDifferentialTests()
        : base(JitCoverage.Eager)
    {
    }
}
