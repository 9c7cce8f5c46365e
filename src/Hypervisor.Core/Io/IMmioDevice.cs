namespace Hypervisor.Core.Memory;

/// <summary>A device that answers accesses to a memory-mapped I/O region.</summary>
/// <remarks>
/// Called with the machine's I/O lock held, from whichever vCPU thread made the access. Offsets are relative to the
/// start of the region; sizes are 1, 2, 4 or 8 bytes. Values are little-endian and zero-extended.
/// </remarks>
public interface IMmioDevice
{
    /// <summary>Reads <paramref name="size"/> bytes at <paramref name="offset"/>.</summary>
    ulong Read(ulong offset, int size);

    /// <summary>Writes the low <paramref name="size"/> bytes of <paramref name="value"/> at <paramref name="offset"/>.</summary>
    void Write(ulong offset, int size, ulong value);
}
