using Hypervisor.Core.Memory;

namespace Hypervisor.Core.Machine;

/// <summary>
/// The PC's guest-physical layout, as QEMU's <c>pc</c> machine lays it out: RAM from 0 with the legacy hole at
/// 0xA0000-0xFFFFF, RAM above 3.5 GiB moved above 4 GiB, and firmware mapped to end at 4 GiB with its last 128 KiB
/// also below 1 MiB (guest-contract.md).
/// </summary>
public static class GuestMemoryLayout
{
    /// <summary>The end of RAM below 4 GiB (QEMU's <c>pc</c> machine keeps 0xE0000000-0xFFFFFFFF for MMIO and firmware).</summary>
    public const ulong LowMemoryEnd = 0xE000_0000;

    /// <summary>The smallest firmware image: 64 KiB.</summary>
    public const int MinFirmwareSize = 64 * 1024;

    /// <summary>The largest firmware image: 16 MiB.</summary>
    public const int MaxFirmwareSize = 16 * 1024 * 1024;

    /// <summary>The smallest RAM we accept: 2 MiB (room for the legacy area and a little above 1 MiB).</summary>
    public const ulong MinRamSize = 2 * 1024 * 1024;

    /// <summary>
    /// Adds guest RAM of <paramref name="sizeInBytes"/> bytes: [0, 0xA0000), [0xC0000, 0xE0000) for option ROMs and
    /// [1 MiB, end), with what exceeds <see cref="LowMemoryEnd"/> placed from 4 GiB up. The area 0xE0000-0xFFFFF is
    /// left to the firmware's low alias.
    /// </summary>
    /// <exception cref="HypervisorConfigurationException">The size is below 2 MiB or not a multiple of 4 KiB.</exception>
    public static void AddRam(IMemoryMap memory, ulong sizeInBytes)
    {
        ArgumentNullException.ThrowIfNull(memory);
        if (sizeInBytes < MinRamSize || sizeInBytes % NativeMemoryBlock.PageSize != 0)
        {
            throw new HypervisorConfigurationException(
                $"Guest memory of {sizeInBytes} bytes is invalid: it must be at least 2 MiB and a multiple of 4 KiB.");
        }

        memory.AddRam(GuestAddress.Zero, 0xA0000, "ram-low");
        memory.AddRam(new GuestAddress(0xC0000), 0x20000, "ram-option-roms");
        ulong below4G = Math.Min(sizeInBytes, LowMemoryEnd);
        memory.AddRam(new GuestAddress(0x100000), below4G - 0x100000, "ram");
        if (sizeInBytes > LowMemoryEnd)
        {
            memory.AddRam(new GuestAddress(0x1_0000_0000), sizeInBytes - LowMemoryEnd, "ram-above-4g");
        }
    }

    /// <summary>
    /// Maps a raw firmware image as <c>qemu-system-x86_64 -bios</c> does: read-only, ending at 0xFFFFFFFF, with its last
    /// 128 KiB (or all of it, if smaller) also ending at 0xFFFFF.
    /// </summary>
    /// <exception cref="GuestImageException">The image is not 64 KiB to 16 MiB in whole 64 KiB units.</exception>
    public static void AddFirmware(IMemoryMap memory, ReadOnlySpan<byte> image)
    {
        ArgumentNullException.ThrowIfNull(memory);
        ValidateFirmware(image.Length);
        var start = new GuestAddress(0x1_0000_0000UL - (ulong)image.Length);
        MemoryRegion rom = memory.AddRom(start, image, "firmware");
        ulong aliasSize = (ulong)Math.Min(image.Length, 128 * 1024);
        memory.AddAlias(new GuestAddress(0x100000 - aliasSize), rom, (ulong)image.Length - aliasSize, aliasSize, "firmware-low");
    }

    /// <summary>Checks a firmware image's size against the guest contract.</summary>
    /// <exception cref="GuestImageException">With a message saying what is wrong.</exception>
    public static void ValidateFirmware(long length)
    {
        if (length < MinFirmwareSize || length > MaxFirmwareSize || length % MinFirmwareSize != 0)
        {
            throw new GuestImageException(
                $"A firmware image must be 64 KiB to 16 MiB in whole 64 KiB units; this one has {length} bytes.");
        }
    }
}
