using Hypervisor.Core.Timing;

namespace Hypervisor.Hosting;

/// <summary>What to build: the guest image, its console streams and overrides of the configured options.</summary>
public sealed class MachineRequest
{
    /// <summary>
    /// A raw firmware image (64 KiB to 16 MiB, as <c>qemu-system-x86_64 -bios</c> takes it); null runs the built-in
    /// demo guest (<see cref="Guests.DemoGuest"/>).
    /// </summary>
    public byte[]? Firmware { get; init; }

    /// <summary>
    /// A Linux bzImage to boot directly (as <c>qemu-system-x86_64 -kernel</c>), entered in 64-bit mode through the
    /// x86 boot protocol, with ACPI tables for power-off. Excludes <see cref="Firmware"/>.
    /// </summary>
    public byte[]? Kernel { get; init; }

    /// <summary>An initramfs for <see cref="Kernel"/> (as <c>-initrd</c>), or null for none.</summary>
    public byte[]? Initrd { get; init; }

    /// <summary>The kernel command line for <see cref="Kernel"/> (as <c>-append</c>), or null for none.</summary>
    public string? KernelCommandLine { get; init; }

    /// <summary>The accelerator specification; null uses <see cref="Core.Hosting.HypervisorOptions.Accelerator"/>.</summary>
    public string? Accelerator { get; init; }

    /// <summary>Guest RAM (<c>128M</c>, <c>1G</c>); null uses <see cref="Core.Hosting.HypervisorOptions.Memory"/>.</summary>
    public string? Memory { get; init; }

    /// <summary>Where the guest's COM1 output goes (byte for byte); null keeps none.</summary>
    public Stream? SerialOutput { get; init; }

    /// <summary>Where bytes written to the debugcon ports (0x402, 0xE9) go; null keeps them in memory.</summary>
    public Stream? DebugconOutput { get; init; }

    /// <summary>The machine clock; null for host time.</summary>
    public IMachineClock? Clock { get; init; }
}
