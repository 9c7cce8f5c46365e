using System.Runtime.InteropServices;

namespace Hypervisor.Accel.Kvm;

/// <summary>Checks whether KVM can run here, on any operating system.</summary>
internal static class KvmProbe
{
    /// <summary>Probes <paramref name="path"/> (default <c>/dev/kvm</c>). Never throws; side-effect free apart from opening and closing the device.</summary>
    internal static KvmProbeResult Probe(string path = "/dev/kvm")
    {
        try
        {
            if (!OperatingSystem.IsLinux())
            {
                return Unavailable($"kvm needs Linux; this is {RuntimeInformation.OSDescription}");
            }

            // The device first: a path that does not exist or cannot be opened is the reason, whatever module is loaded.
            KvmProbeResult device = KvmSystem.ProbeLinux(path);
            if (!device.IsAvailable)
            {
                return device;
            }

            string? module = UnsupportedKvmModule("/sys/module", path);
            return module is null ? device : Unavailable(module);
        }
#pragma warning disable CA1031 // probing must never throw: every failure becomes a reason
        catch (Exception e)
#pragma warning restore CA1031
        {
            return Unavailable($"probing {path} failed unexpectedly: {e.GetType().Name}: {e.Message}");
        }
    }

    /// <summary>
    /// Returns why the loaded KVM module cannot run our guests, or null when a hardware module (kvm_intel, kvm_amd) is
    /// loaded or nothing can be told. Some cloud sandboxes expose <c>/dev/kvm</c> through <c>kvm_pvm</c> (Pagetable-based
    /// Virtual Machine, nested virtualization without VT-x/AMD-V): it answers every ioctl, but runs only PVM-aware Linux
    /// guest kernels and fails with internal errors on firmware that starts in real mode. <paramref name="path"/> is the
    /// device the reason names.
    /// </summary>
    internal static string? UnsupportedKvmModule(string sysModule, string path)
    {
        bool hardware = Directory.Exists(Path.Combine(sysModule, "kvm_intel")) || Directory.Exists(Path.Combine(sysModule, "kvm_amd"));
        if (!hardware && Directory.Exists(Path.Combine(sysModule, "kvm_pvm")))
        {
            return $"{path} is provided by kvm_pvm (Pagetable-based Virtual Machine: nested virtualization without VT-x/AMD-V), "
                + "which runs only PVM-aware Linux guest kernels, not firmware from the reset vector; "
                + "use a host with VT-x/AMD-V and kvm_intel or kvm_amd loaded";
        }

        return null;
    }

    private static KvmProbeResult Unavailable(string reason) => new(false, reason, null);
}
