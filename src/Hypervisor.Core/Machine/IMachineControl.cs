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

    /// <summary>
    /// Tells vCPU <paramref name="vcpuIndex"/> that its local interrupt controller has something for it (an interrupt,
    /// NMI, INIT or start-up IPI): wakes it from HLT or from waiting for a start-up IPI, and requests delivery.
    /// </summary>
    /// <remarks>The default forwards to <see cref="NotifyInterruptPending()"/> (the bootstrap processor).</remarks>
    void NotifyVcpuInterruptPending(int vcpuIndex) => NotifyInterruptPending();
}
