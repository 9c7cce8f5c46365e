using Hypervisor.Core.Registers;

namespace Hypervisor.Core.Machine;

/// <summary>A virtual processor.</summary>
/// <remarks>
/// <para>Created by <see cref="Accelerators.IAcceleratorVm.CreateVcpu"/> with the buses it answers I/O through.
/// <see cref="Run"/> and the register accessors must be called from one thread at a time (the vCPU's thread);
/// <see cref="Kick"/>, <see cref="NotifyInterruptPending"/> and <see cref="Statistics"/> may be called from any
/// thread.</para>
/// <para>The vCPU starts in the architectural reset state (<see cref="ResetState"/>).</para>
/// </remarks>
public interface IVcpu : IDisposable
{
    /// <summary>The index of this vCPU in its machine (the APIC ID of the bootstrap processor is 0).</summary>
    int Index { get; }

    /// <summary>Reads the general registers, RIP and RFLAGS.</summary>
    GeneralRegisters GetGeneralRegisters();

    /// <summary>Writes the general registers, RIP and RFLAGS.</summary>
    void SetGeneralRegisters(in GeneralRegisters registers);

    /// <summary>Reads segment, descriptor-table and control registers, EFER and the APIC base.</summary>
    SystemRegisters GetSystemRegisters();

    /// <summary>Writes segment, descriptor-table and control registers, EFER and the APIC base.</summary>
    void SetSystemRegisters(in SystemRegisters registers);

    /// <summary>Reads the x87/MMX/SSE state.</summary>
    FpuRegisters GetFpuRegisters();

    /// <summary>Writes the x87/MMX/SSE state.</summary>
    void SetFpuRegisters(in FpuRegisters registers);

    /// <summary>Reads a model-specific register; false if the vCPU does not implement it.</summary>
    bool TryGetMsr(uint index, out ulong value);

    /// <summary>Writes a model-specific register; false if the vCPU does not implement it or rejects the value.</summary>
    bool TrySetMsr(uint index, ulong value);

    /// <summary>
    /// Runs the guest until a control exit. Port I/O and MMIO are answered through the buses inside the call.
    /// </summary>
    /// <param name="instructionLimit">
    /// The most instructions to execute before returning <see cref="VcpuExitReason.InstructionLimit"/>, or
    /// <see cref="long.MaxValue"/> for no limit. Accelerators that cannot count instructions ignore it
    /// (<see cref="Accelerators.AcceleratorCapabilities.CountsInstructions"/>).
    /// </param>
    VcpuExit Run(long instructionLimit = long.MaxValue);

    /// <summary>
    /// Makes a running <see cref="Run"/> return <see cref="VcpuExitReason.Interrupted"/> soon (or the next one, if
    /// none is running). Thread-safe.
    /// </summary>
    void Kick();

    /// <summary>
    /// Tells the vCPU that its interrupt source may have an interrupt for it: a halted vCPU wakes, a running one
    /// delivers it at the next point the guest accepts interrupts. Thread-safe.
    /// </summary>
    void NotifyInterruptPending();

    /// <summary>Counters since creation. Thread-safe; values may lag a running vCPU slightly.</summary>
    VcpuStatistics Statistics { get; }
}

/// <summary>Counters of a vCPU.</summary>
/// <param name="Instructions">Guest instructions retired, or -1 where the accelerator cannot count them.</param>
/// <param name="Exits">Exits to the host (I/O, MMIO, control): for tcg, accesses that reached a bus.</param>
public readonly record struct VcpuStatistics(long Instructions, long Exits)
{
    /// <summary>
    /// Accelerator-specific counters by name, or null where the accelerator has none (tcg with <c>jit=on</c>: the JIT's
    /// translations, invalidations, evictions, cache size and time spent translating).
    /// </summary>
    public IReadOnlyDictionary<string, long>? Details { get; init; }
}
