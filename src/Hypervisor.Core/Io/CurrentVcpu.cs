namespace Hypervisor.Core.Io;

/// <summary>
/// Which vCPU the calling thread runs, so that a device with per-vCPU registers at one address (the local APIC at
/// 0xFEE00000) can answer an MMIO access with the accessing vCPU's registers.
/// </summary>
/// <remarks>
/// The machine sets it on each vCPU thread before the first run; a host thread that runs a vCPU itself (tests) sets it
/// too. Threads that never set it read 0, the bootstrap processor.
/// </remarks>
public static class CurrentVcpu
{
    [ThreadStatic]
    private static int t_index;

    /// <summary>The index of the vCPU the calling thread runs (0 if never set on this thread).</summary>
    public static int Index
    {
        get => t_index;
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            t_index = value;
        }
    }
}
