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

    public readonly Instruction[] Instructions = new Instruction[MaxInstructions];
    public int Count;
    public ulong Rip;
    public ulong PhysicalAddress;
    public ulong Page;
    public uint Generation;
    public int Bitness;
    public bool Cached;

    /// <summary>The fault to raise when the first instruction cannot be fetched (vector, or -1 for none).</summary>
    public int FetchFaultVector = -1;
    public uint FetchFaultError;
    public ulong FetchFaultAddress;
}
