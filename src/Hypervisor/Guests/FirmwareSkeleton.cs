namespace Hypervisor.Guests;

/// <summary>
/// The fixed parts of a 64 KiB flat firmware image that starts at the reset vector: a flat GDT and the reset jump.
/// Shared by the demo guest, the test guests and the benchmark workloads.
/// </summary>
internal static class FirmwareSkeleton
{
    /// <summary>
    /// Flat descriptors: null, 0x08 32-bit code, 0x10 data, 0x18 64-bit code, all base 0 and limit 4 GiB (Intel SDM
    /// Vol. 3A, 3.4.5). The accessed bits are preset (types 0xB and 0x3): the table lives in ROM, and a CPU that loads a
    /// descriptor with the bit clear writes it back (SDM 3.4.5.1), which hardware virtualization cannot complete into
    /// read-only memory.
    /// </summary>
    private static readonly ulong[] s_flatGdt = [0, 0x00CF_9B00_0000_FFFF, 0x00CF_9300_0000_FFFF, 0x00AF_9B00_0000_FFFF];

    /// <summary>
    /// Writes the flat GDT at <paramref name="gdtOffset"/> and its 6-byte LGDT operand (limit, then the 32-bit base as
    /// the image is seen below 1 MiB, <paramref name="lowBase"/> + offset) at <paramref name="pointerOffset"/>.
    /// </summary>
    internal static void WriteFlatGdt(Span<byte> image, int gdtOffset, int pointerOffset, uint lowBase)
    {
        for (int i = 0; i < s_flatGdt.Length; i++)
        {
            BitConverter.TryWriteBytes(image[(gdtOffset + (i * 8))..], s_flatGdt[i]);
        }

        BitConverter.TryWriteBytes(image[pointerOffset..], (ushort)((s_flatGdt.Length * 8) - 1));
        BitConverter.TryWriteBytes(image[(pointerOffset + 2)..], lowBase + (uint)gdtOffset);
    }

    /// <summary>
    /// Writes the reset vector's instruction, 16 bytes before the image's end (CS base 0xFFFF0000, IP 0xFFF0): a far
    /// jump to F000:0000, the image's first byte as seen below 1 MiB.
    /// </summary>
    internal static void WriteResetJump(Span<byte> image)
    {
        ReadOnlySpan<byte> jump = [0xEA, 0x00, 0x00, 0x00, 0xF0];
        jump.CopyTo(image[^16..]);
    }
}
