using System.Globalization;
using System.Runtime.Versioning;
using Hypervisor.Core;
using Hypervisor.Core.Accelerators;
using Hypervisor.Core.Hosting;

namespace Hypervisor.Accel.Kvm;

/// <summary>
/// kvm: runs guests on the host CPU through Linux's <c>/dev/kvm</c>. Port I/O and MMIO exits are completed through
/// the machine's buses inside <see cref="Core.Machine.IVcpu.Run"/>; interrupts come from the machine's interrupt
/// source (the PIC) and are injected with <c>KVM_INTERRUPT</c> when the guest opens its interrupt window.
/// </summary>
/// <remarks>
/// Options: <c>path=DEVICE</c> (default <c>/dev/kvm</c>). Requires Linux on x86-64, KVM API version 12 and the
/// extensions <c>KVM_CAP_USER_MEMORY</c>, <c>KVM_CAP_EXT_CPUID</c> and <c>KVM_CAP_IMMEDIATE_EXIT</c>; the user must be
/// able to open the device read-write (usually: be in group <c>kvm</c>).
/// </remarks>
public sealed class KvmAccelerator : IAccelerator
{
    private readonly string _path;

    /// <summary>Creates the accelerator for <c>/dev/kvm</c>.</summary>
    public KvmAccelerator()
        : this("/dev/kvm")
    {
    }

    /// <summary>Creates the accelerator for the KVM device at <paramref name="devicePath"/>.</summary>
    public KvmAccelerator(string devicePath)
    {
        ArgumentException.ThrowIfNullOrEmpty(devicePath);
        _path = devicePath;
    }

    /// <inheritdoc />
    public string Name => "kvm";

    /// <inheritdoc />
    public IReadOnlyDictionary<string, string> SupportedOptions { get; } = new Dictionary<string, string>
    {
        ["path"] = "The KVM device to open (default /dev/kvm).",
    };

    /// <inheritdoc />
    public AcceleratorProbeResult Probe() => ToCore(KvmProbe.Probe(_path));

    /// <inheritdoc />
    public IAcceleratorVm CreateVm(VmCreationContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        foreach (string key in context.Options.Values.Keys)
        {
            if (!SupportedOptions.ContainsKey(key))
            {
                throw new HypervisorConfigurationException($"kvm has no option '{key}'; it accepts: {string.Join(", ", SupportedOptions.Keys)}.");
            }
        }

        string path = context.Options.Get("path") ?? _path;
        KvmProbeResult probe = KvmProbe.Probe(path);
        if (!probe.IsAvailable || !OperatingSystem.IsLinux())
        {
            throw new AcceleratorException("kvm is unavailable: " + probe.Reason);
        }

        return CreateLinuxVm(context, path);
    }

    [SupportedOSPlatform("linux")]
    private KvmAcceleratorVm CreateLinuxVm(VmCreationContext context, string path) => new(this, context, path);

    internal static AcceleratorProbeResult ToCore(KvmProbeResult result)
    {
        if (!result.IsAvailable || result.Capabilities is null)
        {
            return AcceleratorProbeResult.Unavailable(result.Reason);
        }

        KvmCapabilities c = result.Capabilities;
        var details = new Dictionary<string, string>
        {
            ["api-version"] = c.ApiVersion.ToString(CultureInfo.InvariantCulture),
            ["max-vcpus"] = c.MaxVcpus.ToString(CultureInfo.InvariantCulture),
            ["recommended-vcpus"] = c.RecommendedVcpus.ToString(CultureInfo.InvariantCulture),
            ["memory-slots"] = c.MaxMemorySlots.ToString(CultureInfo.InvariantCulture),
            ["readonly-memory"] = c.ReadOnlyMemory ? "yes" : "no",
            ["immediate-exit"] = c.ImmediateExit ? "yes" : "no",
            ["irqchip"] = c.InKernelIrqChip ? "yes" : "no",
            ["set-tss-addr"] = c.SetTssAddress ? "yes" : "no",
        };
        return AcceleratorProbeResult.Available(result.Reason,
            new AcceleratorCapabilities(c.MaxVcpus, CountsInstructions: false, HardwareAccelerated: true, details));
    }
}

/// <summary>Registers the kvm accelerator.</summary>
public static class KvmHypervisorBuilderExtensions
{
    /// <summary>Adds kvm to the accelerators the selector can choose from.</summary>
    public static IHypervisorBuilder AddKvm(this IHypervisorBuilder builder) => builder.AddAccelerator<KvmAccelerator>();
}
