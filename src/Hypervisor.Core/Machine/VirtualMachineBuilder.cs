using Hypervisor.Core.Accelerators;
using Hypervisor.Core.Io;
using Hypervisor.Core.Memory;
using Hypervisor.Core.Timing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Hypervisor.Core.Machine;

/// <summary>
/// Assembles a machine: memory, devices on the buses, an interrupt controller; then picks an accelerator and creates
/// the vCPUs. A device layout (the PC layout in Hypervisor.Devices) fills the builder; users can add or replace devices
/// before <see cref="Build"/>.
/// </summary>
/// <remarks>Not thread-safe; use from one thread. A builder builds one machine.</remarks>
public sealed class VirtualMachineBuilder : IDisposable
{
    private readonly List<object> _devices = [];
    private bool _built;

    /// <summary>Creates an empty builder whose devices see <paramref name="clock"/> (default: host time).</summary>
    public VirtualMachineBuilder(IMachineClock? clock = null)
    {
        IoLock = new IoLock();
        Memory = new MemoryMap(IoLock);
        Ports = new PortIoBus(IoLock);
        Clock = clock ?? new HostClock();
        Timers = new TimerQueue(Clock, IoLock);
        Control = new MachineControl();
    }

    /// <summary>The lock every device access takes.</summary>
    public IoLock IoLock { get; }

    /// <summary>The guest-physical address space.</summary>
    public MemoryMap Memory { get; }

    /// <summary>The port I/O bus.</summary>
    public PortIoBus Ports { get; }

    /// <summary>The machine's clock.</summary>
    public IMachineClock Clock { get; }

    /// <summary>Device timers on <see cref="Clock"/>.</summary>
    public TimerQueue Timers { get; }

    /// <summary>What devices use to stop the machine or signal interrupts; valid before and after <see cref="Build"/>.</summary>
    public IMachineControl Control { get; }

    /// <summary>The interrupt controller output vCPUs take interrupts from (the PIC), or null for none.</summary>
    public IInterruptSource? InterruptSource { get; set; }

    /// <summary>
    /// The local interrupt controller (local APIC) of each vCPU by index, or null for none: a vCPU with one takes its
    /// interrupts from it instead of <see cref="InterruptSource"/> (see <see cref="ILocalInterruptController"/>).
    /// </summary>
    public Func<int, ILocalInterruptController?>? LocalInterruptControllers { get; set; }

    /// <summary>The number of vCPUs (default 1).</summary>
    public int VcpuCount { get; set; } = 1;

    /// <summary>The devices added with <see cref="AddDevice{T}"/>, in order.</summary>
    public IReadOnlyList<object> Devices => _devices;

    /// <summary>Keeps a device with the machine (so it can be found with <see cref="VirtualMachine.GetDevice{T}"/> and is disposed with it).</summary>
    public T AddDevice<T>(T device) where T : class
    {
        ArgumentNullException.ThrowIfNull(device);
        _devices.Add(device);
        return device;
    }

    /// <summary>
    /// Selects an accelerator from <paramref name="spec"/>, creates its VM over the memory and buses, and creates the vCPUs.
    /// </summary>
    /// <exception cref="AcceleratorUnavailableException">No candidate can run; carries every probe result.</exception>
    /// <exception cref="HypervisorConfigurationException">Nothing to run (no memory) or invalid options.</exception>
    public VirtualMachine Build(AcceleratorSelector selector, AcceleratorSpec spec, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(selector);
        ArgumentNullException.ThrowIfNull(spec);
        ObjectDisposedException.ThrowIf(_built, this);
        if (Memory.Regions.Count == 0)
        {
            throw new HypervisorConfigurationException("The machine has no memory: add RAM or firmware before building it.");
        }

        if (VcpuCount < 1)
        {
            throw new HypervisorConfigurationException($"A machine needs at least one vCPU; {VcpuCount} were asked for.");
        }

        loggerFactory ??= NullLoggerFactory.Instance;
        Memory.Freeze();
        AcceleratorSelection selection = selector.Select(spec,
            options => new VmCreationContext(Memory, Ports, InterruptSource, options, loggerFactory)
            {
                VcpuCount = VcpuCount,
                LocalInterruptControllers = LocalInterruptControllers,
            });
        var vcpus = new List<IVcpu>();
        try
        {
            for (int i = 0; i < VcpuCount; i++)
            {
                vcpus.Add(selection.Vm.CreateVcpu(i));
            }
        }
        catch
        {
            foreach (IVcpu v in vcpus)
            {
                v.Dispose();
            }

            selection.Vm.Dispose();
            throw;
        }

        _built = true;
        var machine = new VirtualMachine(this, selection, vcpus, (MachineControl)Control,
            loggerFactory.CreateLogger<VirtualMachine>());
        return machine;
    }

    /// <summary>Releases the memory if the machine was never built (a built machine owns it).</summary>
    public void Dispose()
    {
        if (!_built)
        {
            _built = true;
            Memory.Dispose();
        }
    }
}
