using Hypervisor.Core;
using Hypervisor.Core.Accelerators;

namespace Hypervisor.Accel.Whpx;

/// <summary>
/// whpx: runs guests on the Windows Hypervisor Platform (WinHvPlatform.dll), with port I/O and MMIO emulated by
/// WinHvEmulation.dll and answered by the machine's buses.
/// </summary>
/// <remarks>
/// On every host other than Windows 10 1803+ with the Hypervisor Platform feature, <see cref="Probe"/> reports why it
/// is unavailable and <see cref="CreateVm"/> throws an <see cref="AcceleratorException"/> with the same reason.
/// </remarks>
public sealed class WhpxAccelerator : IAccelerator
{
    /// <inheritdoc />
    public string Name => "whpx";

    /// <inheritdoc />
    public IReadOnlyDictionary<string, string> SupportedOptions { get; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <inheritdoc />
    public AcceleratorProbeResult Probe() => WhpxProbe.Probe();

    /// <inheritdoc />
    public IAcceleratorVm CreateVm(VmCreationContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        foreach (string key in context.Options.Values.Keys)
        {
            throw new HypervisorConfigurationException($"whpx has no option '{key}'.");
        }

        AcceleratorProbeResult probe = Probe();
        if (!probe.IsAvailable || !OperatingSystem.IsWindows())
        {
            throw new AcceleratorException($"whpx cannot run here: {probe.Reason}");
        }

        return new WhpxVm(this, context, (uint)probe.Capabilities.MaxVcpus);
    }
}
