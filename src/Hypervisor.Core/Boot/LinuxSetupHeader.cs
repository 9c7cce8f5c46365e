// The setup header of a Linux x86 bzImage (Documentation/arch/x86/boot.rst, "THE REAL-MODE KERNEL HEADER").
//
//   offset  size  field                 offset  size  field
//   0x1F1   1     setup_sects           0x22C   4     initrd_addr_max
//   0x1FE   2     boot_flag (0xAA55)    0x230   4     kernel_alignment
//   0x202   4     header ("HdrS")       0x234   1     relocatable_kernel
//   0x206   2     version               0x236   2     xloadflags
//   0x211   1     loadflags             0x238   4     cmdline_size
//   0x214   4     code32_start          0x258   8     pref_address
//   0x201   1     jump offset: the header ends at 0x202 + this byte
//   0x260   4     init_size
using System.Buffers.Binary;

namespace Hypervisor.Core.Boot;

/// <summary>
/// The fields of a bzImage's setup header that a 64-bit boot loader needs, parsed and validated against the Linux x86
/// boot protocol (2.12 or later, 64-bit entry).
/// </summary>
public sealed record LinuxSetupHeader
{
    /// <summary>The lowest boot protocol version accepted: 2.12 introduced <c>xloadflags</c> (XLF_KERNEL_64).</summary>
    public const ushort MinimumProtocolVersion = 0x020C;

    /// <summary><c>loadflags</c> bit 0: the protected-mode code is loaded high (at 1 MiB or above).</summary>
    public const byte LoadedHigh = 0x01;

    /// <summary><c>xloadflags</c> bit 0: the kernel has the legacy 64-bit entry point at load address + 0x200.</summary>
    public const ushort XlfKernel64 = 0x0001;

    /// <summary><c>xloadflags</c> bit 1: the kernel, boot_params, command line and initramfs may live above 4 GiB.</summary>
    public const ushort XlfCanBeLoadedAbove4G = 0x0002;

    internal const int HeaderOffset = 0x1F1;

    /// <summary>Sectors of real-mode setup code after the boot sector (0 means 4, as the protocol says).</summary>
    public required int SetupSectors { get; init; }

    /// <summary>The boot protocol version (major &lt;&lt; 8 | minor).</summary>
    public required ushort ProtocolVersion { get; init; }

    /// <summary>The <c>loadflags</c> byte.</summary>
    public required byte LoadFlags { get; init; }

    /// <summary>The <c>xloadflags</c> field.</summary>
    public required ushort XLoadFlags { get; init; }

    /// <summary>The highest address the initramfs may occupy (its last byte).</summary>
    public required uint InitrdAddressMax { get; init; }

    /// <summary>The physical alignment a relocatable kernel needs.</summary>
    public required uint KernelAlignment { get; init; }

    /// <summary>Whether the kernel may be loaded at any address aligned to <see cref="KernelAlignment"/>.</summary>
    public required bool Relocatable { get; init; }

    /// <summary>The longest command line, without its terminating zero.</summary>
    public required uint CommandLineSize { get; init; }

    /// <summary>The address the kernel prefers to be loaded at.</summary>
    public required ulong PreferredAddress { get; init; }

    /// <summary>The memory the kernel needs from its load address until it has relocated itself.</summary>
    public required uint InitSize { get; init; }

    /// <summary>The offset in the file of the protected-mode (64-bit) kernel: (setup sectors + 1) × 512.</summary>
    public int KernelOffset => (SetupSectors + 1) * 512;

    /// <summary>The size of the header to copy into boot_params: from 0x1F1 to 0x202 + the byte at 0x201.</summary>
    public required int HeaderLength { get; init; }

    /// <summary>
    /// Parses and validates the header of <paramref name="image"/>.
    /// </summary>
    /// <exception cref="GuestImageException">
    /// The file is not a bzImage (too short, no 0xAA55 boot flag, no "HdrS"), its protocol is older than 2.12, it is not
    /// loaded high, it has no 64-bit entry point, or its sizes are inconsistent.
    /// </exception>
    public static LinuxSetupHeader Parse(ReadOnlySpan<byte> image)
    {
        if (image.Length < 0x400)
        {
            throw new GuestImageException($"Not a Linux bzImage: the file has only {image.Length} bytes.");
        }

        if (BinaryPrimitives.ReadUInt16LittleEndian(image[0x1FE..]) != 0xAA55 || !image.Slice(0x202, 4).SequenceEqual("HdrS"u8))
        {
            throw new GuestImageException("Not a Linux bzImage: no boot flag 0xAA55 at 0x1FE or no \"HdrS\" signature at 0x202.");
        }

        ushort version = BinaryPrimitives.ReadUInt16LittleEndian(image[0x206..]);
        if (version < MinimumProtocolVersion)
        {
            throw new GuestImageException(
                $"The kernel speaks boot protocol {version >> 8}.{version & 0xFF}; 64-bit direct boot needs 2.12 or later.");
        }

        int setupSectors = image[0x1F1] == 0 ? 4 : image[0x1F1];
        byte loadFlags = image[0x211];
        if ((loadFlags & LoadedHigh) == 0)
        {
            throw new GuestImageException("The kernel is a zImage (loadflags LOADED_HIGH clear), not a bzImage.");
        }

        ushort xloadFlags = BinaryPrimitives.ReadUInt16LittleEndian(image[0x236..]);
        if ((xloadFlags & XlfKernel64) == 0)
        {
            throw new GuestImageException("The kernel has no 64-bit entry point (xloadflags XLF_KERNEL_64 clear): is it a 32-bit kernel?");
        }

        var header = new LinuxSetupHeader
        {
            SetupSectors = setupSectors,
            ProtocolVersion = version,
            LoadFlags = loadFlags,
            XLoadFlags = xloadFlags,
            InitrdAddressMax = BinaryPrimitives.ReadUInt32LittleEndian(image[0x22C..]),
            KernelAlignment = BinaryPrimitives.ReadUInt32LittleEndian(image[0x230..]),
            Relocatable = image[0x234] != 0,
            CommandLineSize = BinaryPrimitives.ReadUInt32LittleEndian(image[0x238..]),
            PreferredAddress = BinaryPrimitives.ReadUInt64LittleEndian(image[0x258..]),
            InitSize = BinaryPrimitives.ReadUInt32LittleEndian(image[0x260..]),
            HeaderLength = 0x202 + image[0x201] - HeaderOffset,
        };

        if (header.KernelOffset >= image.Length)
        {
            throw new GuestImageException(
                $"The bzImage is truncated: its {setupSectors} setup sectors end at {header.KernelOffset}, past the file's {image.Length} bytes.");
        }

        if (header.KernelAlignment == 0 || (header.KernelAlignment & (header.KernelAlignment - 1)) != 0)
        {
            throw new GuestImageException($"The kernel's kernel_alignment 0x{header.KernelAlignment:X} is not a power of two.");
        }

        if (HeaderOffset + header.HeaderLength > 0x290)
        {
            throw new GuestImageException($"The setup header claims {header.HeaderLength} bytes, more than boot_params holds.");
        }

        if (header.InitSize < (uint)(image.Length - header.KernelOffset))
        {
            throw new GuestImageException(
                $"The kernel's init_size 0x{header.InitSize:X} is smaller than its own payload of 0x{image.Length - header.KernelOffset:X} bytes.");
        }

        return header;
    }
}
