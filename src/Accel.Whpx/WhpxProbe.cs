using System.Globalization;
using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using Hypervisor.Accel.Whpx.Interop;
using Hypervisor.Core.Accelerators;

namespace Hypervisor.Accel.Whpx;

/// <summary>Decides whether whpx can run here, and why not. Never throws.</summary>
internal static unsafe class WhpxProbe
{
    public const string EnableFeatureHint =
        "Enable it from an elevated PowerShell with 'Enable-WindowsOptionalFeature -Online -FeatureName HypervisorPlatform' and reboot.";

    public static string NotWindowsReason =>
        $"whpx requires Windows 10 1803+ with the Windows Hypervisor Platform feature; this host runs {RuntimeInformation.OSDescription}.";

    public static string HypervisorAbsentReason =>
        "The Windows hypervisor is not present (WHvGetCapability(WHvCapabilityCodeHypervisorPresent) returned FALSE): " +
        "turn on hardware virtualization (VT-x/AMD-V) in the firmware and the Windows Hypervisor Platform feature. " + EnableFeatureHint;

    /// <summary>The number of virtual processors a whpx partition is created for.</summary>
    public static int MaxVcpus => Math.Max(1, Environment.ProcessorCount);

    public static AcceleratorProbeResult Probe()
    {
        try
        {
            if (!OperatingSystem.IsWindows())
            {
                return AcceleratorProbeResult.Unavailable(NotWindowsReason);
            }

            if (!OperatingSystem.IsWindowsVersionAtLeast(10, 0, 17134))
            {
                return AcceleratorProbeResult.Unavailable(
                    $"whpx requires Windows 10 1803 (build 17134) or later; this is {Environment.OSVersion}.");
            }

            if (RuntimeInformation.ProcessArchitecture != Architecture.X64)
            {
                return AcceleratorProbeResult.Unavailable(
                    $"whpx runs x86-64 guests on x64 hosts only; this process is {RuntimeInformation.ProcessArchitecture}.");
            }

            string? failure = WhvLibrary.EnsureLoaded();
            return failure is not null ? AcceleratorProbeResult.Unavailable(failure) : ProbeCapabilities();
        }
#pragma warning disable CA1031 // a probe reports, it does not throw
        catch (Exception e)
#pragma warning restore CA1031
        {
            return AcceleratorProbeResult.Unavailable($"Probing whpx failed: {e.GetType().Name}: {e.Message}");
        }
    }

    /// <summary>The verdict from the hypervisor-present query (separate so the wording is testable anywhere).</summary>
    public static AcceleratorProbeResult? EvaluatePresence(int hresult, int hypervisorPresent)
    {
        if (hresult < 0)
        {
            return AcceleratorProbeResult.Unavailable(string.Create(CultureInfo.InvariantCulture,
                $"WHvGetCapability(WHvCapabilityCodeHypervisorPresent) failed with HRESULT 0x{hresult:X8}. {EnableFeatureHint}"));
        }

        return hypervisorPresent == 0 ? AcceleratorProbeResult.Unavailable(HypervisorAbsentReason) : null;
    }

    [SupportedOSPlatform("windows")]
    private static AcceleratorProbeResult ProbeCapabilities()
    {
        WHV_CAPABILITY capability = default;
        uint written;
        int hr = WinHvPlatform.WHvGetCapability(WHV_CAPABILITY_CODE.WHvCapabilityCodeHypervisorPresent, &capability, (uint)sizeof(WHV_CAPABILITY), &written);
        AcceleratorProbeResult? verdict = EvaluatePresence(hr, capability.HypervisorPresent);
        if (verdict is not null)
        {
            return verdict;
        }

        var details = new Dictionary<string, string>(StringComparer.Ordinal);
        void Read(WHV_CAPABILITY_CODE code, string key, Func<WHV_CAPABILITY, string> format)
        {
            WHV_CAPABILITY value = default;
            uint size;
            if (WinHvPlatform.WHvGetCapability(code, &value, (uint)sizeof(WHV_CAPABILITY), &size) >= 0)
            {
                details[key] = format(value);
            }
        }

        Read(WHV_CAPABILITY_CODE.WHvCapabilityCodeFeatures, "features", c => Hex(c.Features));
        Read(WHV_CAPABILITY_CODE.WHvCapabilityCodeExtendedVmExits, "extended-vm-exits", c => Hex(c.ExtendedVmExits));
        Read(WHV_CAPABILITY_CODE.WHvCapabilityCodeProcessorVendor, "processor-vendor", c => c.ProcessorVendor switch
        {
            WHV_PROCESSOR_VENDOR.WHvProcessorVendorAmd => "AMD",
            WHV_PROCESSOR_VENDOR.WHvProcessorVendorIntel => "Intel",
            WHV_PROCESSOR_VENDOR.WHvProcessorVendorHygon => "Hygon",
            var other => ((uint)other).ToString(CultureInfo.InvariantCulture),
        });
        Read(WHV_CAPABILITY_CODE.WHvCapabilityCodeProcessorFeatures, "processor-features", c => Hex(c.ProcessorFeatures));
        Read(WHV_CAPABILITY_CODE.WHvCapabilityCodeProcessorXsaveFeatures, "xsave-features", c => Hex(c.ProcessorXsaveFeatures));
        Read(WHV_CAPABILITY_CODE.WHvCapabilityCodeProcessorClockFrequency, "processor-clock-hz", c => c.ProcessorClockFrequency.ToString(CultureInfo.InvariantCulture));

        return AcceleratorProbeResult.Available(
            "Windows Hypervisor Platform present",
            new AcceleratorCapabilities(MaxVcpus, CountsInstructions: false, HardwareAccelerated: true, details));
    }

    private static string Hex(ulong value) => "0x" + value.ToString("X", CultureInfo.InvariantCulture);
}
