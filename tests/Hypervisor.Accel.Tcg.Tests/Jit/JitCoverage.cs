using Hypervisor.Accel.Tcg.Jit;
using Hypervisor.Accel.Tcg.Tests.Guests;
using Hypervisor.Core.Accelerators;
using Iced.Intel;

namespace Hypervisor.Accel.Tcg.Tests.Jit;

/// <summary>Shared settings of the JIT suites.</summary>
internal static class JitCoverage
{
    /// <summary>
    /// tcg with the JIT translating every block on its first execution, on the vCPU thread, even a block without a
    /// natively translated instruction (so that straight-line tests and x87/SSE code run as translated code too).
    /// </summary>
    public static AcceleratorOptions Eager { get; } = new([new("jit", "on"), new("jit-threshold", "0"), new("jit-background", "off")]);

    /// <summary>The interpreter alone.</summary>
    public static AcceleratorOptions Off { get; } = new([new("jit", "off")]);

    /// <summary>Fixture argument of a suite run on the interpreter alone (see <see cref="For"/>).</summary>
    public const string Interpreter = "interpreter";

    /// <summary>Fixture argument of a suite run with every block translated on its first execution (see <see cref="For"/>).</summary>
    public const string Jit = "jit";

    /// <summary>
    /// The tcg options of a suite parameterised by engine (<c>[TestFixture(JitCoverage.Interpreter)]</c> and
    /// <c>[TestFixture(JitCoverage.Jit)]</c>): the same driver then checks the interpreter and the JIT path.
    /// </summary>
    public static AcceleratorOptions For(string engine) => engine switch
    {
        Interpreter => Off,
        Jit => Eager,
        _ => throw new ArgumentOutOfRangeException(nameof(engine), engine, "expected interpreter or jit"),
    };

    /// <summary>
    /// Whether the first instruction <paramref name="emit"/> assembles is translated natively (not through the
    /// interpreter), with a stack as wide as the code (as in the test machines' protected and long modes).
    /// </summary>
    public static bool FirstIsNative(Action<Assembler> emit, int bitness)
    {
        byte[] code = TestMachine.Assemble(bitness, 0x1_0000, emit);
        Decoder d = Decoder.Create(bitness, new ByteArrayCodeReader(code), 0x1_0000);
        d.Decode(out Instruction ins);
        return JitTranslator.IsNative(ref ins, bitness, bitness); // the test machines' stacks have the code's width
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
