namespace Hypervisor.Accel.Tcg.Decoding;

/// <summary>
/// The form of a pre-decoded instruction the interpreter executes without looking at Iced's
/// <see cref="Iced.Intel.Instruction"/> again. <see cref="Generic"/> means "run the full dispatcher".
/// Suffixes: R = general-purpose register (never AH/CH/DH/BH), M = memory, I = immediate.
/// </summary>
internal enum MicroKind : byte
{
    Generic = 0,
    Nop,
    MovRR,
    MovRI,
    MovRM,
    MovMR,
    MovMI,
    AluRR,
    AluRI,
    AluRM,
    AluMR,
    AluMI,
    IncR,
    DecR,
    IncM,
    DecM,
    ShiftRI,
    ShiftRCl,
    Lea,
    MovzxRR,
    MovzxRM,
    MovsxRR,
    MovsxRM,
    Jcc,
    Jmp,
    CallRel,
    Ret,
    PushR,
    PushI,
    PopR,
    Cmov,
    SetccR,
    ImulRR,
    ImulRM,
    ImulRRI,
}

/// <summary>The operation of an <see cref="MicroKind.AluRR"/>-style or shift micro-op.</summary>
internal enum MicroAlu : byte
{
    Add,
    Or,
    Adc,
    Sbb,
    And,
    Sub,
    Xor,
    Cmp,
    Test,
    Rol,
    Ror,
    Shl,
    Shr,
    Sar,
}

/// <summary>
/// A compact, pre-decoded form of one instruction, built once when its block is decoded and cached with it: operand
/// size, register numbers, the memory operand's parts and the immediate, so that executing it reads no Iced state.
/// </summary>
internal unsafe struct MicroOp
{
    /// <summary>
    /// The handler that executes this instruction (direct-threaded dispatch: chosen once at decode time for the form,
    /// operation and operand size, so executing it takes one indirect call and no switch).
    /// </summary>
    public delegate*<Interpreter.TcgCpu, ref MicroOp, void> Run;

    /// <summary>
    /// The handler of this instruction alone. Differs from <see cref="Run"/> when the block's closing Jcc is fused into
    /// this flag-setting instruction; runs that step one instruction at a time (trace, single-step, budget) use this.
    /// </summary>
    public delegate*<Interpreter.TcgCpu, ref MicroOp, void> Single;

    /// <summary>RIP of the next instruction, already wrapped to the code size.</summary>
    public ulong NextIp;

    /// <summary>Immediate (masked to the operand size), branch target, or RET's stack adjustment.</summary>
    public ulong Imm;

    /// <summary>Memory displacement (the absolute address for RIP-relative operands).</summary>
    public ulong Disp;

    /// <summary>Mask of the address size applied to the effective address.</summary>
    public ulong AddrMask;

    public MicroKind Kind;

    /// <summary>The <see cref="MicroAlu"/> operation, or the condition code for Jcc/CMOVcc/SETcc.</summary>
    public byte Sub;

    /// <summary>Operand size in bits (8, 16, 32, 64).</summary>
    public byte Bits;

    /// <summary>Source size in bits for MOVZX/MOVSX.</summary>
    public byte SrcBits;

    /// <summary>Destination (or only) register number 0-15.</summary>
    public byte R0;

    /// <summary>Source register number 0-15.</summary>
    public byte R1;

    /// <summary>Memory base register 0-15, or <see cref="NoReg"/>.</summary>
    public byte Base;

    /// <summary>Memory index register 0-15, or <see cref="NoReg"/>.</summary>
    public byte Index;

    /// <summary>log2 of the index scale.</summary>
    public byte Shift;

    /// <summary>Segment register number of the memory operand (ES=0 ... GS=5).</summary>
    public byte Seg;

    /// <summary>
    /// The decoded instruction in its block's pinned <see cref="DecodedBlock.Instructions"/> array (the generic handler
    /// runs it; a pointer, so that starting a block stores no object reference).
    /// </summary>
    public Iced.Intel.Instruction* Ins;

    public const byte NoReg = 0xFF;
}
