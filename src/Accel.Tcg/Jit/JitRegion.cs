using Hypervisor.Accel.Tcg.Decoding;
using Hypervisor.Accel.Tcg.Interpreter;
using Iced.Intel;

namespace Hypervisor.Accel.Tcg.Jit;

/// <summary>
/// Compiled code of a region: runs from the region's first instruction until an exit and returns how many guest
/// instructions it retired (at most <paramref name="budget"/>; a region is entered only when one pass fits).
/// </summary>
internal delegate long JitRegionCode(JitRegion region, TcgCpu cpu, long budget);

/// <summary>One translated block: its code, the instructions it was built from and its links to successors.</summary>
internal sealed class JitRegion
{
    public JitRegion(Instruction[] instructions, DecodedBlock block, ulong ripMask, int blocks)
    {
        Blocks = blocks;
        Instructions = instructions;
        Count = instructions.Length;
        Rip = block.Rip;
        PhysicalAddress = block.PhysicalAddress;
        Page = block.Page;
        Generation = block.Generation;
        Bitness = block.Bitness;
        RipMask = ripMask;
        Rips = new long[Count];
        ulong maxTarget = 0;
        for (int i = 0; i < Count; i++)
        {
            Rips[i] = (long)(instructions[i].IP & ripMask);
            if (instructions[i].Op0Kind is OpKind.NearBranch16 or OpKind.NearBranch32 or OpKind.NearBranch64)
            {
                maxTarget = Math.Max(maxTarget, instructions[i].NearBranchTarget);
            }
        }

        MaxBranchTarget = maxTarget;
    }

    /// <summary>Copies of the decoded instructions of all blocks, block after block (the interpreter runs the ones without a native translation from here).</summary>
    public readonly Instruction[] Instructions;

    /// <summary>RIP of each instruction (read by the fault exit).</summary>
    public readonly long[] Rips;

    /// <summary>Successor regions by exit slot (one slot per direct exit of the region), linked lazily.</summary>
    public JitRegion?[] Successors = [];

    /// <summary>Number of direct exits (slots 0 to ExitSlots - 1).</summary>
    public int ExitSlots
    {
        get => Successors.Length;
        set => Successors = new JitRegion?[value];
    }

    /// <summary>Decoded blocks the region was built from (the entry block and same-page blocks it branches to).</summary>
    public readonly int Blocks;

    public readonly int Count;
    public readonly ulong Rip;
    public readonly ulong PhysicalAddress;
    public readonly ulong Page;
    public readonly uint Generation;
    public readonly int Bitness;
    public readonly ulong RipMask;

    /// <summary>The highest static branch target: outside 64-bit mode the region runs only while it is within the CS limit.</summary>
    public readonly ulong MaxBranchTarget;

    public JitRegionCode Code = null!;

    /// <summary>Estimated memory held by the translation (IL and generated code), for the cache bound.</summary>
    public int CostBytes;

    /// <summary>Outside 64-bit mode: the stack address size (16 or 32, SS.B) the region's native stack instructions assume; 0 when it has none.</summary>
    public int StackBits;

    public bool IsLoop;
    public int NativeCount;

    /// <summary>Set when the region left the cache; links to it are then dropped.</summary>
    public bool Dead;
}
