using Hypervisor.Core;
using Hypervisor.Core.Accelerators;
using Hypervisor.Core.Hosting;
using Hypervisor.Core.Machine;
using Hypervisor.Devices;
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
    /// <exception cref="GuestImageException">The firmware image is malformed.</exception>
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
        byte[] firmware = request.Firmware ?? DemoGuest.Build();
        GuestMemoryLayout.ValidateFirmware(firmware.Length);
        if (options.Vcpus < 1)
        {
            throw new HypervisorConfigurationException($"Hypervisor:Vcpus must be at least 1; it is {options.Vcpus}.");
        }

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
}
