namespace Hypervisor.Core.Boot;

/// <summary>
/// Recognizes the initramfs formats the kernel unpacks (Documentation/driver-api/early-userspace/buffer-format.rst):
/// a newc cpio archive ("070701", or "070702" with checksums), or one compressed with gzip, bzip2, LZMA, XZ, LZO, LZ4
/// or zstd.
/// </summary>
public static class InitramfsFormat
{
    /// <summary>Returns the format's name, or null if the data starts like none of them.</summary>
    public static string? Identify(ReadOnlySpan<byte> data)
    {
        if (data.StartsWith("070701"u8) || data.StartsWith("070702"u8))
        {
            return "cpio (newc)";
        }

        if (data.StartsWith((ReadOnlySpan<byte>)[0x1F, 0x8B]) || data.StartsWith((ReadOnlySpan<byte>)[0x1F, 0x9E]))
        {
            return "gzip";
        }

        if (data.StartsWith("BZh"u8))
        {
            return "bzip2";
        }

        if (data.StartsWith((ReadOnlySpan<byte>)[0x5D, 0x00, 0x00]))
        {
            return "lzma";
        }

        if (data.StartsWith((ReadOnlySpan<byte>)[0xFD, (byte)'7', (byte)'z', (byte)'X', (byte)'Z', 0x00]))
        {
            return "xz";
        }

        if (data.StartsWith((ReadOnlySpan<byte>)[0x89, 0x4C, 0x5A, 0x4F, 0x00, 0x0D, 0x0A, 0x1A, 0x0A]))
        {
            return "lzo";
        }

        if (data.StartsWith((ReadOnlySpan<byte>)[0x02, 0x21, 0x4C, 0x18]))
        {
            return "lz4";
        }

        if (data.StartsWith((ReadOnlySpan<byte>)[0x28, 0xB5, 0x2F, 0xFD]))
        {
            return "zstd";
        }

        return null;
    }

    /// <summary>Throws unless <paramref name="data"/> is a non-empty initramfs in a format the kernel unpacks.</summary>
    /// <exception cref="GuestImageException">Empty, or not a cpio archive nor a compressed one.</exception>
    public static void Validate(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty)
        {
            throw new GuestImageException("The initramfs is empty.");
        }

        if (Identify(data) is null)
        {
            throw new GuestImageException(
                "The initramfs is corrupt or of an unknown format: it is neither a newc cpio archive (\"070701\") nor " +
                "compressed with gzip, bzip2, lzma, xz, lzo, lz4 or zstd.");
        }
    }
}
