namespace Hypervisor.Core.Boot;

/// <summary>What to boot directly: a bzImage, an optional initramfs and the kernel command line.</summary>
public sealed record LinuxBootOptions
{
    /// <summary>The bzImage (as <c>qemu-system-x86_64 -kernel</c> takes it).</summary>
    public required ReadOnlyMemory<byte> Kernel { get; init; }

    /// <summary>An initramfs (newc cpio, optionally compressed), or null for none.</summary>
    public ReadOnlyMemory<byte>? Initrd { get; init; }

    /// <summary>The kernel command line (ASCII); empty for none.</summary>
    public string CommandLine { get; init; } = string.Empty;
}
