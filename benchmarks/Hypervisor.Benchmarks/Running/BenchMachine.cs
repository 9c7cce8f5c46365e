using Hypervisor.Core.Accelerators;
using Hypervisor.Core.Machine;
using Hypervisor.Hosting;
using Microsoft.Extensions.DependencyInjection;

namespace Hypervisor.Benchmarks.Running;

/// <summary>
/// Builds the machine a benchmark guest runs on exactly as a user of the library would: through
/// <see cref="IVirtualMachineFactory"/> from <c>AddHypervisor().AddAllAccelerators()</c>, so every run includes the
/// real PC device model (guest-contract.md) and 128 MiB of RAM, as QEMU is run with <c>-m 128</c>.
/// </summary>
public static class BenchMachine
{
    /// <summary>Guest RAM, as QEMU's <c>-m 128</c>.</summary>
    public const string Memory = "128M";

    private static readonly Lazy<ServiceProvider> s_services = new(() =>
    {
        var services = new ServiceCollection();
        services.AddHypervisor(o => o.Memory = Memory).AddAllAccelerators();
        return services.BuildServiceProvider();
    });

    /// <summary>The factory (one per process).</summary>
    public static IVirtualMachineFactory Factory => s_services.Value.GetRequiredService<IVirtualMachineFactory>();

    /// <summary>The selector the factory uses (every accelerator registered), for probing.</summary>
    public static AcceleratorSelector Selector => s_services.Value.GetRequiredService<AcceleratorSelector>();

    /// <summary>Builds the machine on the accelerator <paramref name="spec"/> names (a single candidate: no fallback).</summary>
    /// <exception cref="AcceleratorUnavailableException">The accelerator cannot run here; the message has the probe's reason.</exception>
    public static VirtualMachine Create(string spec, byte[] image, Stream serial) =>
        Factory.Create(new MachineRequest { Accelerator = spec, Firmware = image, SerialOutput = serial });
}
