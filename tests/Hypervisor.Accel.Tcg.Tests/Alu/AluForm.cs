using Hypervisor.Accel.Tcg.Tests.Native;
using Iced.Intel;

namespace Hypervisor.Accel.Tcg.Tests.Alu;

/// <summary>Computes what an instruction does to a register file with our ALU; returns false when it raises #DE.</summary>
internal delegate bool Emulator(ref RegisterFile registers);

/// <summary>Changes an input before it is run (for example points RSI at the scratch block, or keeps a bit offset in range).</summary>
internal delegate void InputShaper(Random random, ref RegisterFile registers, ulong scratchAddress);

/// <summary>An operand the test varies: a register and the width of the value in it.</summary>
internal readonly record struct Operand(int Register, int Bits);

/// <summary>
/// One instruction form (mnemonic, operand size, encoding) with everything a differential test needs: how to emit it
/// natively, how to compute it with <c>Alu</c>, which operands to vary, which flags matter as inputs, which results the
/// SDM leaves undefined, and when the instruction faults.
/// </summary>
internal sealed class AluForm
{
    public required string Name { get; init; }

    /// <summary>Emits the instruction (the native stub loads the register file around it).</summary>
    public required Action<Assembler> Emit { get; init; }

    public required Emulator Emulate { get; init; }

    /// <summary>Operands crossed over edge values; every other register is random.</summary>
    public required Operand[] Operands { get; init; }

    /// <summary>Input flags the result depends on (each combination is tried with every edge input).</summary>
    public ulong FlagsIn { get; init; }

    /// <summary>Flags the SDM leaves undefined for this input (not compared).</summary>
    public Func<RegisterFile, ulong> UndefinedFlags { get; init; } = static _ => 0;

    /// <summary>True when the SDM leaves the register results undefined for this input (only defined flags are compared).</summary>
    public Func<RegisterFile, bool>? ResultUndefined { get; init; }

    /// <summary>
    /// Bits of one register that are not compared for this input because the SDM or the vendors leave them open (for
    /// example whether a 32-bit destination that is not written is zero-extended). Null: compare everything.
    /// </summary>
    public Func<RegisterFile, (int Register, ulong Bits)>? UnspecifiedBits { get; init; }

    /// <summary>The mask of register <paramref name="register"/> that is compared for <paramref name="input"/>.</summary>
    public ulong ComparedBits(RegisterFile input, int register) =>
        UnspecifiedBits?.Invoke(input) is { } open && open.Register == register ? ~open.Bits : ulong.MaxValue;

    /// <summary>The SDM's fault rule, computed independently of the ALU: such inputs never reach the host CPU.</summary>
    public Func<RegisterFile, bool>? Faults { get; init; }

    /// <summary>Applied to every input after its operands are chosen.</summary>
    public InputShaper? Shape { get; init; }

    /// <summary>Applied to random inputs only (for example to make most divisions not overflow).</summary>
    public InputShaper? ShapeRandom { get; init; }

    /// <summary>Runs in compatibility mode (instructions that are #UD in 64-bit mode).</summary>
    public bool Compat32 { get; init; }

    /// <summary>Null when the host can run this form, else why not.</summary>
    public Func<string?> MissingFeature { get; init; } = static () => null;

    /// <summary>Exhaustive inputs instead of edge values (all values of the operands), for small forms.</summary>
    public bool Exhaustive { get; init; }

    public override string ToString() => Name;
}
