using Hypervisor.Core.Io;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Memory;
using Microsoft.Extensions.Logging;

namespace Hypervisor.Core.Accelerators;

/// <summary>A way to run guest code: tcg (software), kvm (Linux) or whpx (Windows).</summary>
public interface IAccelerator
{
    /// <summary>The name used in accelerator specifications: <c>tcg</c>, <c>kvm</c>, <c>whpx</c>.</summary>
    string Name { get; }

    /// <summary>The options this accelerator accepts in a specification (<c>tcg,jit=off</c>), with their meaning.</summary>
    IReadOnlyDictionary<string, string> SupportedOptions { get; }

    /// <summary>
    /// Says whether this accelerator can run on this host and, if not, why. Cheap, free of side effects, never throws.
    /// </summary>
    AcceleratorProbeResult Probe();

    /// <summary>Creates a virtual machine (KVM's VM, WHPX's partition, tcg's machine state) over the given memory and buses.</summary>
    /// <exception cref="AcceleratorException">The host refused (the selector then falls back to the next candidate).</exception>
    /// <exception cref="HypervisorConfigurationException">An option is invalid.</exception>
    IAcceleratorVm CreateVm(VmCreationContext context);
}

/// <summary>A virtual machine of one accelerator: it owns the accelerator's kernel objects and creates vCPUs.</summary>
/// <remarks>Dispose after every vCPU has stopped running; disposing it disposes its vCPUs.</remarks>
public interface IAcceleratorVm : IDisposable
{
    /// <summary>The accelerator that created this VM.</summary>
    IAccelerator Accelerator { get; }

    /// <summary>Creates vCPU number <paramref name="index"/> in the architectural reset state.</summary>
    IVcpu CreateVcpu(int index);
}

/// <summary>Everything an accelerator needs to create a virtual machine.</summary>
/// <param name="Memory">The guest-physical address space (frozen by the machine before the call).</param>
/// <param name="Ports">The port I/O bus every vCPU answers IN/OUT through.</param>
/// <param name="Interrupts">The interrupt controller output vCPUs take external interrupts from, or null for none.</param>
/// <param name="Options">The options given in the specification for this accelerator.</param>
/// <param name="LoggerFactory">Where the accelerator logs.</param>
public sealed record VmCreationContext(
    IMemoryMap Memory,
    PortIoBus Ports,
    IInterruptSource? Interrupts,
    AcceleratorOptions Options,
    ILoggerFactory LoggerFactory)
{
    /// <summary>How many vCPUs the machine will create (whpx sets the partition's processor count from it).</summary>
    public int VcpuCount { get; init; } = 1;

    /// <summary>The local interrupt controller of each vCPU by index, or null where vCPUs have none.</summary>
    public Func<int, ILocalInterruptController?>? LocalInterruptControllers { get; init; }

    /// <summary>vCPU <paramref name="vcpuIndex"/>'s local interrupt controller, or null.</summary>
    public ILocalInterruptController? LocalInterruptControllerFor(int vcpuIndex) => LocalInterruptControllers?.Invoke(vcpuIndex);

    /// <summary>
    /// Where vCPU <paramref name="vcpuIndex"/> takes external interrupts from: its local interrupt controller if it has
    /// one, otherwise <see cref="Interrupts"/> for the bootstrap processor (index 0) and nothing for the others.
    /// </summary>
    public IInterruptSource? InterruptSourceFor(int vcpuIndex) =>
        LocalInterruptControllerFor(vcpuIndex) ?? (vcpuIndex == 0 ? Interrupts : null);
}

/// <summary>An accelerator failed to do something the host should have allowed (an ioctl, an HRESULT).</summary>
public class AcceleratorException : HypervisorException
{
    /// <summary>Creates an exception with a message.</summary>
    public AcceleratorException(string message) : base(message) { }

    /// <summary>Creates an exception with a message and a cause.</summary>
    public AcceleratorException(string message, Exception? innerException) : base(message, innerException) { }
}
