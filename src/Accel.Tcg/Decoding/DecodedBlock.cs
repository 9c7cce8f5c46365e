using Iced.Intel;

namespace Hypervisor.Accel.Tcg.Decoding;

/// <summary>
/// A run of decoded instructions that starts at one guest-physical address and ends at a control transfer, a
/// serialising instruction, or the end of the page. Cached by the physical address, the linear RIP it was decoded at
/// and the code size; valid while the generation of its physical page is unchanged.
/// </summary>
internal sealed class DecodedBlock
{
    public const int MaxInstructions = 64;

    /// <summary>The decoded instructions, pinned (the micro-ops point into it: <see cref="MicroOp.Ins"/>).</summary>
    public readonly Instruction[] Instructions = GC.AllocateArray<Instruction>(MaxInstructions, pinned: true);

    /// <summary>The pre-decoded form of each instruction (same index as <see cref="Instructions"/>).</summary>
    public readonly MicroOp[] Ops = new MicroOp[MaxInstructions];
    public int Count;
    public ulong Rip;
    public ulong PhysicalAddress;
    public ulong Page;
    public uint Generation;
    public int Bitness;
    public bool Cached;

    // Direct links to up to two successor blocks (the run loop chains through them) and the context (code segment,
    // EFER.LMA, CPL, TLB epoch, numbered by TcgCpu._contextId) this block was last found valid in: a link is followed
    // only while that context is unchanged (TcgCpu.LinkValid).
    public DecodedBlock? Link0;
    public DecodedBlock? Link1;
    public bool LinkToggle;
    public uint ContextId;

    /// <summary>
    /// The JIT's cache entry last found for this block (owned by Jit.JitEngine, which checks it against the block's key
    /// before use), so that a block executed again skips the JIT's hash lookup.
    /// </summary>
    public object? JitEntry;

    /// <summary>
    /// Executions of this block the JIT's tiering skips before it looks the block up again, and how many executions
    /// that lookup then counts (owned by Jit.JitEngine; a stale value after the block is reused only delays tiering).
    /// </summary>
    public int JitCountdown, JitBatch;

    /// <summary>The fault to raise when the first instruction cannot be fetched (vector, or -1 for none).</summary>
    public int FetchFaultVector = -1;
    public uint FetchFaultError;
    public ulong FetchFaultAddress;
}
