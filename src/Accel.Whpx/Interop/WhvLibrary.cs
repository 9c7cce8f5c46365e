using System.Reflection;
using System.Runtime.InteropServices;

namespace Hypervisor.Accel.Whpx.Interop;

/// <summary>
/// Loads WinHvPlatform.dll and WinHvEmulation.dll from System32 on first use and checks that every export the
/// imports need is present, so that <see cref="WinHvPlatform"/> and <see cref="WinHvEmulation"/> are only called
/// once binding is known to succeed. Loading never throws; failures are reasons.
/// </summary>
internal static class WhvLibrary
{
    public const string PlatformDll = "WinHvPlatform.dll";
    public const string EmulationDll = "WinHvEmulation.dll";

    /// <summary>Every export of WinHvPlatform.dll that <see cref="WinHvPlatform"/> imports.</summary>
    public static readonly string[] PlatformExports =
    [
        "WHvGetCapability", "WHvCreatePartition", "WHvSetupPartition", "WHvDeletePartition", "WHvSetPartitionProperty",
        "WHvMapGpaRange", "WHvUnmapGpaRange", "WHvTranslateGva", "WHvCreateVirtualProcessor",
        "WHvDeleteVirtualProcessor", "WHvRunVirtualProcessor", "WHvCancelRunVirtualProcessor",
        "WHvGetVirtualProcessorRegisters", "WHvSetVirtualProcessorRegisters",
    ];

    /// <summary>Every export of WinHvEmulation.dll that <see cref="WinHvEmulation"/> imports.</summary>
    public static readonly string[] EmulationExports =
    [
        "WHvEmulatorCreateEmulator", "WHvEmulatorDestroyEmulator", "WHvEmulatorTryIoEmulation",
        "WHvEmulatorTryMmioEmulation",
    ];

    private static readonly Lock Gate = new();
    private static bool attempted;
    private static nint platform;
    private static nint emulation;
    private static string? failure;

    /// <summary>Loads both libraries (once) and returns null, or the reason they cannot be used.</summary>
    public static string? EnsureLoaded()
    {
        lock (Gate)
        {
            if (!attempted)
            {
                attempted = true;
                failure = Load();
            }

            return failure;
        }
    }

    /// <summary>Checks <paramref name="exports"/> against a loaded module; returns the missing names.</summary>
    public static IReadOnlyList<string> MissingExports(nint module, IEnumerable<string> exports) =>
        [.. exports.Where(name => !NativeLibrary.TryGetExport(module, name, out _))];

    private static string? Load()
    {
        if (!NativeLibrary.TryLoad(PlatformDll, typeof(WhvLibrary).Assembly, DllImportSearchPath.System32, out platform))
        {
            return "Windows Hypervisor Platform feature not enabled (WinHvPlatform.dll was not found in System32). " +
                "Enable it from an elevated PowerShell with 'Enable-WindowsOptionalFeature -Online -FeatureName HypervisorPlatform' and reboot.";
        }

        var missing = MissingExports(platform, PlatformExports);
        if (missing.Count > 0)
        {
            return $"WinHvPlatform.dll lacks {string.Join(", ", missing)}; whpx requires Windows 10 1803 or later.";
        }

        if (!NativeLibrary.TryLoad(EmulationDll, typeof(WhvLibrary).Assembly, DllImportSearchPath.System32, out emulation))
        {
            return "WinHvEmulation.dll was not found in System32 (it ships with the Windows Hypervisor Platform feature; " +
                "enable it with 'Enable-WindowsOptionalFeature -Online -FeatureName HypervisorPlatform').";
        }

        missing = MissingExports(emulation, EmulationExports);
        if (missing.Count > 0)
        {
            return $"WinHvEmulation.dll lacks {string.Join(", ", missing)}; whpx requires Windows 10 1803 or later.";
        }

        NativeLibrary.SetDllImportResolver(typeof(WhvLibrary).Assembly, Resolve);
        return null;
    }

    private static nint Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath) => libraryName switch
    {
        PlatformDll => platform,
        EmulationDll => emulation,
        _ => nint.Zero,
    };
}
