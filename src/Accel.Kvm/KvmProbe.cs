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

            return KvmSystem.ProbeLinux(path);
        }
#pragma warning disable CA1031 // probing must never throw: every failure becomes a reason
        catch (Exception e)
#pragma warning restore CA1031
        {
            return Unavailable($"probing {path} failed unexpectedly: {e.GetType().Name}: {e.Message}");
        }
    }

    private static KvmProbeResult Unavailable(string reason) => new(false, reason, null);
}
