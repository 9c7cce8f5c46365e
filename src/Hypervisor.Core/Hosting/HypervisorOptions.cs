namespace Hypervisor.Core.Hosting;

/// <summary>Options of the Hypervisor services, bindable from the configuration section <c>Hypervisor</c>.</summary>
/// <example><code>"Hypervisor": { "Accelerator": "kvm:tcg", "Memory": "256M" }</code></example>
public sealed class HypervisorOptions
{
    /// <summary>The configuration section name.</summary>
    public const string SectionName = "Hypervisor";

    /// <summary>The accelerator specification: <c>auto</c>, a name, or an ordered list such as <c>kvm:tcg,jit=off</c>.</summary>
    public string Accelerator { get; set; } = "auto";

    /// <summary>Guest RAM as QEMU's <c>-m</c> takes it: MiB, or a number with a K, M or G suffix (default 128M).</summary>
    public string Memory { get; set; } = "128M";

    /// <summary>The number of vCPUs (default 1).</summary>
    public int Vcpus { get; set; } = 1;
}
