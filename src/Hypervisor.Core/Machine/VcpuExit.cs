namespace Hypervisor.Core.Machine;

/// <summary>Why <see cref="IVcpu.Run"/> returned. Port I/O and MMIO never appear here: the vCPU answers them itself.</summary>
public enum VcpuExitReason
{
    /// <summary>The guest executed HLT with interrupts disabled (nothing but an NMI or a reset can wake it).</summary>
    Halted,

    /// <summary>Triple fault: the processor entered shutdown.</summary>
    Shutdown,

    /// <summary>Another thread called <see cref="IVcpu.Kick"/> (a device asked the machine to stop, a timeout, cancellation).</summary>
    Interrupted,

    /// <summary>The instruction budget given to <see cref="IVcpu.Run"/> was used up (accelerators that count instructions).</summary>
    InstructionLimit,

    /// <summary>A breakpoint or single-step trap requested by the host debugger or trace hook.</summary>
    Debug,

    /// <summary>The guest reached a state the accelerator cannot continue from; <see cref="VcpuExit.Detail"/> says why.</summary>
    GuestError,
}

/// <summary>A control exit of a vCPU, as a value.</summary>
/// <param name="Reason">Why the vCPU stopped.</param>
/// <param name="InstructionPointer">The guest RIP at the exit (the next instruction to execute).</param>
/// <param name="Detail">For <see cref="VcpuExitReason.GuestError"/> and <see cref="VcpuExitReason.Shutdown"/>: a description a person can act on.</param>
public readonly record struct VcpuExit(VcpuExitReason Reason, ulong InstructionPointer, string? Detail = null);
