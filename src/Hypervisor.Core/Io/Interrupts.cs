namespace Hypervisor.Core.Io;

/// <summary>An interrupt request line from a device into an interrupt controller (ISA IRQ semantics).</summary>
/// <remarks>Call with the machine's I/O lock held (device code always is).</remarks>
public interface IInterruptLine
{
    /// <summary>Drives the line high (true) or low (false). Edge-triggered inputs latch on a low-to-high change.</summary>
    void SetLevel(bool high);
}

/// <summary>
/// What a vCPU asks at an instruction boundary (tcg) or when the guest is ready for an interrupt (kvm, whpx):
/// the interrupt controller's output, as the INTR pin and the INTA cycle.
/// </summary>
/// <remarks>Thread-safe: implementations take the I/O lock themselves.</remarks>
public interface IInterruptSource
{
    /// <summary>True while the controller asserts INTR.</summary>
    bool HasPendingInterrupt { get; }

    /// <summary>The interrupt-acknowledge cycle: returns the vector to deliver, or -1 if the request went away.</summary>
    int AcknowledgeInterrupt();
}
