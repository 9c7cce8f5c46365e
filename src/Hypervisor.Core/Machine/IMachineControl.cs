namespace Hypervisor.Core.Machine;

/// <summary>What devices may ask of the machine they are part of. Thread-safe.</summary>
public interface IMachineControl
{
    /// <summary>
    /// Asks the machine to stop: every vCPU is kicked and the run ends with <paramref name="reason"/>. The first
    /// request of a run wins; later ones are ignored.
    /// </summary>
    /// <param name="reason">Why.</param>
    /// <param name="exitStatus">The status the run reports (for debug-exit, (value &lt;&lt; 1) | 1).</param>
    /// <param name="detail">Optional description.</param>
    void RequestStop(MachineStopReason reason, int exitStatus, string? detail = null);

    /// <summary>Tells the vCPUs that the interrupt controller raised its output (wakes HLT, requests delivery).</summary>
    void NotifyInterruptPending();
}
