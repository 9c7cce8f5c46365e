namespace Hypervisor.Core.Io;

/// <summary>
/// The machine-wide lock that serialises every device access (port I/O, MMIO, timers, host input), so that devices
/// can be plain single-threaded state machines while vCPUs and timers run on their own threads.
/// </summary>
public sealed class IoLock
{
    /// <summary>The lock object. Hold it only for the duration of one device access.</summary>
    public Lock Sync { get; } = new();
}
