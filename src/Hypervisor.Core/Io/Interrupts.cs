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

/// <summary>
/// The interrupt controller inside one vCPU (its local APIC), as the vCPU sees it: the maskable-interrupt output
/// (<see cref="IInterruptSource"/>), NMI, INIT and start-up requests, the IA32_APIC_BASE MSR and the task priority that
/// CR8 mirrors in 64-bit mode.
/// </summary>
/// <remarks>
/// <para>Set per vCPU with <see cref="Machine.VirtualMachineBuilder.LocalInterruptControllers"/>. A vCPU that has one
/// takes every external interrupt from it (the controller passes 8259 interrupts through itself, as the local APIC's
/// LINT0 does in virtual-wire mode), routes IA32_APIC_BASE and CR8 to it, and asks it for NMI and INIT/SIPI whenever it
/// is notified (<see cref="Machine.IMachineControl.NotifyVcpuInterruptPending"/>).</para>
/// <para>Thread-safe: implementations take the I/O lock themselves. Called from the vCPU's thread.</para>
/// </remarks>
public interface ILocalInterruptController : IInterruptSource
{
    /// <summary>The IA32_APIC_BASE MSR (0x1B): base address, enable bit 11, bootstrap-processor bit 8.</summary>
    ulong ApicBase { get; }

    /// <summary>Writes IA32_APIC_BASE; false if the value is invalid (the vCPU then raises #GP).</summary>
    bool TrySetApicBase(ulong value);

    /// <summary>CR8: the task-priority class, TPR bits 7:4 (0-15).</summary>
    int TaskPriorityClass { get; set; }

    /// <summary>Takes a pending NMI request, if any (true once per request).</summary>
    bool TakeNmi();

    /// <summary>Takes a pending INIT or start-up IPI, if any.</summary>
    StartupRequest TakeStartupRequest();
}

/// <summary>An INIT or start-up IPI for a vCPU (Intel SDM Vol. 3A, 9.4 and 11.6.1).</summary>
/// <param name="Kind">What was requested.</param>
/// <param name="Vector">For <see cref="StartupRequestKind.Startup"/>, the start page: the vCPU starts in real mode at
/// CS = vector &lt;&lt; 8 (base vector &lt;&lt; 12), IP = 0.</param>
public readonly record struct StartupRequest(StartupRequestKind Kind, byte Vector);

/// <summary>The kinds of <see cref="StartupRequest"/>.</summary>
public enum StartupRequestKind
{
    /// <summary>Nothing pending.</summary>
    None,

    /// <summary>INIT: the vCPU goes to its reset state and, if it is not the bootstrap processor, waits for a start-up IPI.</summary>
    Init,

    /// <summary>Start-up IPI: a vCPU waiting after INIT starts at the given page; ignored otherwise.</summary>
    Startup,
}
