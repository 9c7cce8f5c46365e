namespace Hypervisor.Accel.Kvm;

/// <summary>What the host's KVM offers, as reported by <c>KVM_CHECK_EXTENSION</c> on <c>/dev/kvm</c>.</summary>
/// <param name="ApiVersion">The KVM API version (always 12 when available).</param>
/// <param name="MaxVcpus">The maximum number of vCPUs per VM (<c>KVM_CAP_MAX_VCPUS</c>, else <c>KVM_CAP_NR_VCPUS</c>).</param>
/// <param name="RecommendedVcpus">The recommended maximum number of vCPUs (<c>KVM_CAP_NR_VCPUS</c>).</param>
/// <param name="MaxMemorySlots">The number of user memory slots per VM (<c>KVM_CAP_NR_MEMSLOTS</c>).</param>
/// <param name="ReadOnlyMemory">Whether slots can be read-only (<c>KVM_CAP_READONLY_MEM</c>): guest writes then exit as MMIO.</param>
/// <param name="ImmediateExit">Whether <c>kvm_run.immediate_exit</c> works (<c>KVM_CAP_IMMEDIATE_EXIT</c>), used for kicks.</param>
/// <param name="InKernelIrqChip">Whether an in-kernel PIC/IOAPIC/LAPIC can be created (<c>KVM_CAP_IRQCHIP</c>).</param>
/// <param name="SetTssAddress">Whether <c>KVM_SET_TSS_ADDR</c> exists (needed by Intel VMX without unrestricted guest).</param>
/// <param name="InternalErrorData">Whether internal-error exits carry data (<c>KVM_CAP_INTERNAL_ERROR_DATA</c>).</param>
/// <param name="VcpuMmapSizeInBytes">The size of the per-vCPU shared <c>kvm_run</c> mapping.</param>
public sealed record KvmCapabilities(
    int ApiVersion,
    int MaxVcpus,
    int RecommendedVcpus,
    int MaxMemorySlots,
    bool ReadOnlyMemory,
    bool ImmediateExit,
    bool InKernelIrqChip,
    bool SetTssAddress,
    bool InternalErrorData,
    int VcpuMmapSizeInBytes);

/// <summary>The result of probing for KVM: available with capabilities, or unavailable with a reason a person can act on.</summary>
/// <param name="IsAvailable">Whether a VM can be created here.</param>
/// <param name="Reason">Why KVM is unavailable, or a short description of what was found.</param>
/// <param name="Capabilities">The capabilities, when available.</param>
public sealed record KvmProbeResult(bool IsAvailable, string Reason, KvmCapabilities? Capabilities);
