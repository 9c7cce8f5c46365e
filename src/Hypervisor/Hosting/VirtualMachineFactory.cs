using Hypervisor.Core;
using Hypervisor.Core.Accelerators;
using Hypervisor.Core.Boot;
using Hypervisor.Core.Hosting;
using Hypervisor.Core.Machine;
using Hypervisor.Devices;
using Hypervisor.Devices.Acpi;
using Hypervisor.Devices.Hpet;
using Hypervisor.Guests;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Hypervisor.Hosting;

/// <summary>Builds PC virtual machines on the accelerator the configuration selects.</summary>
public interface IVirtualMachineFactory
{
    /// <summary>
    /// Builds a PC (the default devices of guest-contract.md) with the requested image, selects the accelerator and
    /// creates the vCPUs. The caller owns the machine.
    /// </summary>
    /// <exception cref="AcceleratorUnavailableException">No candidate accelerator can run here; carries every probe result.</exception>
    /// <exception cref="HypervisorConfigurationException">Invalid specification, memory size or options.</exception>
    /// <exception cref="GuestImageException">The firmware image, kernel or initramfs is malformed or does not fit.</exception>
    VirtualMachine Create(MachineRequest request);
}

/// <summary>The standard <see cref="IVirtualMachineFactory"/>.</summary>
public sealed class VirtualMachineFactory : IVirtualMachineFactory
{
    private readonly AcceleratorSelector _selector;
    private readonly IOptions<HypervisorOptions> _options;
    private readonly ILoggerFactory _loggerFactory;

    /// <summary>Creates the factory (normally resolved from dependency injection).</summary>
    public VirtualMachineFactory(AcceleratorSelector selector, IOptions<HypervisorOptions> options, ILoggerFactory? loggerFactory = null)
    {
        _selector = selector ?? throw new ArgumentNullException(nameof(selector));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        _loggerFactory = loggerFactory ?? NullLoggerFactory.Instance;
    }

    /// <inheritdoc />
    public VirtualMachine Create(MachineRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        HypervisorOptions options = _options.Value;
        AcceleratorSpec spec = _selector.Parse(request.Accelerator ?? options.Accelerator);
        ulong memory = MemorySize.Parse(request.Memory ?? options.Memory);
        if (options.Vcpus < 1)
        {
            throw new HypervisorConfigurationException($"Hypervisor:Vcpus must be at least 1; it is {options.Vcpus}.");
        }

        if (request.Kernel is not null)
        {
            return CreateLinux(request, spec, memory, options);
        }

        if (request.Initrd is not null || request.KernelCommandLine is not null)
        {
            throw new HypervisorConfigurationException("An initramfs or kernel command line needs a kernel.");
        }

        byte[] firmware = request.Firmware ?? DemoGuest.Build();
        GuestMemoryLayout.ValidateFirmware(firmware.Length);
        var builder = new VirtualMachineBuilder(request.Clock);
        try
        {
            PcDevices devices = builder.AddPcDevices(new PcOptions
            {
                MemorySizeInBytes = memory,
                Firmware = firmware,
                SerialOutput = request.SerialOutput,
                DebugConsoleOutput = request.DebugconOutput,
                VcpuCount = options.Vcpus,
            });
            builder.AddDevice(devices);
            return builder.Build(_selector, spec, _loggerFactory);
        }
        catch
        {
            builder.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A PC without firmware: ACPI tables in the BIOS area, the kernel, initramfs and command line loaded by
    /// <see cref="LinuxLoader"/>, and the bootstrap vCPU at the 64-bit entry point.
    /// </summary>
    private VirtualMachine CreateLinux(MachineRequest request, AcceleratorSpec spec, ulong memory, HypervisorOptions options)
    {
        if (request.Firmware is not null)
        {
            throw new HypervisorConfigurationException("A kernel is booted without firmware: give either a firmware image or a kernel, not both.");
        }

        // Fail on a bad image before anything is allocated.
        LinuxSetupHeader.Parse(request.Kernel);
        if (request.Initrd is not null)
        {
            InitramfsFormat.Validate(request.Initrd);
        }

        var builder = new VirtualMachineBuilder(request.Clock);
        VirtualMachine? machine = null;
        try
        {
            PcDevices devices = builder.AddPcDevices(new PcOptions
            {
                MemorySizeInBytes = memory,
                SerialOutput = request.SerialOutput,
                DebugConsoleOutput = request.DebugconOutput,
                VcpuCount = options.Vcpus,
            });
            builder.AddDevice(devices);
            // The MADT describes the local APIC and the I/O APIC when the PC has them; without it Linux uses the 8259s.
            // The HPET table lets the kernel find the HPET (QEMU's pc has one): its clocksource watchdog then keeps
            // time with it instead of PIT jiffies, which a slow host loses.
            builder.AddAcpi(new AcpiTableOptions
            {
                IncludeMadt = devices.Apic is not null,
                ProcessorCount = options.Vcpus,
                Hpet = devices.Hpet is null ? null : new AcpiHpetDescription((uint)HpetTimerBlock.Capabilities, HpetTimerBlock.DefaultBase),
            });
            machine = builder.Build(_selector, spec, _loggerFactory);
            LinuxBootInfo boot = LinuxLoader.Load(machine.Memory, new LinuxBootOptions
            {
                Kernel = request.Kernel,
                Initrd = request.Initrd is null ? (ReadOnlyMemory<byte>?)null : request.Initrd,
                CommandLine = request.KernelCommandLine ?? string.Empty,
            });
            LinuxLoader.SetEntryState(machine.Vcpus[0], boot);
            return machine;
        }
        catch
        {
            if (machine is not null)
            {
                machine.Dispose();
            }
            else
            {
                builder.Dispose();
            }

            throw;
        }
    }
}
