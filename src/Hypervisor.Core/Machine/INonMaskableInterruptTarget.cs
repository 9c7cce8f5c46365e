namespace Hypervisor.Core.Machine;

/// <summary>
/// A vCPU that accepts non-maskable interrupts (an NMI button, a watchdog, LINT1 of a local APIC): delivered through
/// vector 2 whatever the guest's interrupt flag says, and held while the guest is still handling the previous one
/// (until its IRET), as the Intel SDM (Vol. 3A, 6.7) describes.
/// </summary>
/// <remarks>
/// Optional: test with <c>vcpu is INonMaskableInterruptTarget</c>. Accelerators that cannot inject NMIs do not
/// implement it.
/// </remarks>
public interface INonMaskableInterruptTarget
{
    /// <summary>
    /// Makes an NMI pending: a running vCPU takes it at the next instruction boundary, a halted one wakes up.
    /// Several NMIs raised while one is pending count as one. Thread-safe.
    /// </summary>
    void RaiseNonMaskableInterrupt();
}
