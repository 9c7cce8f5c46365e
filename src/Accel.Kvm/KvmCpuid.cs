using Hypervisor.Accel.Kvm.Interop;
using Hypervisor.Core.Cpu;
using static Hypervisor.Accel.Kvm.Interop.KvmConstants;

namespace Hypervisor.Accel.Kvm;

/// <summary>
/// The CPUID a kvm guest sees: <see cref="CpuModel.Default"/> intersected with <c>KVM_GET_SUPPORTED_CPUID</c> and with
/// what this adapter itself can back.
/// </summary>
/// <remarks>
/// No host leaf passes through unchanged. From KVM's list only the feature registers of leaves 1, 7.0, 0DH.0, 0DH.1 and
/// 80000001H (masked bit by bit) and the physical address width of 80000008H (the smaller of KVM's and the model's) are
/// used; identity, sizes and every other leaf come from the model. The kernel's own uses stay consistent: leaf 0DH
/// lists the XSAVE components the guest may enable (x87 and SSE, so <c>KVM_SET_XSAVE</c> of those is accepted and
/// KVM's guest XCR0 follows it), 80000008H gives MAXPHYADDR and a 48-bit linear width, and KVM keeps updating the
/// dynamic bits (CPUID.1:ECX.OSXSAVE from CR4, CPUID.0DH.0:EBX from XCR0) as it does for any table. Leaves KVM would
/// add (4 cache topology, 0BH/1FH topology, 0AH PMU, 40000000H paravirtual, AMD's 8000000AH and up) are absent, so
/// they read as zero; leaves above the highest ones answer as the highest basic leaf, which is what KVM emulates for a
/// GenuineIntel guest. KVM also derives CPUID.1:EDX.APIC from IA32_APIC_BASE, so the adapter keeps
/// <see cref="ApicBaseEnable"/> clear.
/// </remarks>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
internal static class KvmCpuid
{
    /// <summary>
    /// What this adapter can do on this host: KVM's supported feature bits limited to what the machine's userspace local
    /// APIC backs (<see cref="CpuFeatureSet.LimitedToDeviceModelApic"/>). Without a local APIC the adapter creates no
    /// in-kernel irqchip either: interrupts then come with <c>KVM_INTERRUPT</c> from the machine's PIC and nothing
    /// answers at the APIC's MMIO page, so the APIC is not offered.
    /// </summary>
    internal static CpuFeatureSet Available(ReadOnlySpan<kvm_cpuid_entry2> supported, bool localApic = false)
    {
        kvm_cpuid_entry2[] copy = supported.ToArray();
        return CpuFeatureSet.FromCpuid((leaf, subleaf) => Find(copy, leaf, subleaf)).LimitedToDeviceModelApic(localApic);
    }

    /// <summary>The model's table for this host's KVM (with the APIC if <paramref name="localApic"/>).</summary>
    internal static CpuidTable Present(ReadOnlySpan<kvm_cpuid_entry2> supported, bool localApic = false)
    {
        CpuidResult? sizes = Find(supported, 0x8000_0008, 0);
        int physicalBits = sizes is CpuidResult s && (s.Eax & 0xFF) != 0 ? (int)(s.Eax & 0xFF) : 52;
        return CpuModel.Default.Present(Available(supported, localApic), physicalBits);
    }

    /// <summary>The entries for <c>KVM_SET_CPUID2</c> of the vCPU with initial APIC ID <paramref name="apicId"/>.</summary>
    internal static kvm_cpuid_entry2[] Entries(CpuidTable table, uint apicId)
    {
        CpuidTableEntry[] entries = table.GetEntries(apicId);
        var result = new kvm_cpuid_entry2[entries.Length];
        for (int i = 0; i < entries.Length; i++)
        {
            CpuidTableEntry e = entries[i];
            result[i] = new kvm_cpuid_entry2
            {
                function = e.Leaf,
                index = e.Subleaf,
                flags = e.HasSubleaves ? KVM_CPUID_FLAG_SIGNIFCANT_INDEX : 0,
                eax = e.Result.Eax,
                ebx = e.Result.Ebx,
                ecx = e.Result.Ecx,
                edx = e.Result.Edx,
            };
        }

        return result;
    }

    /// <summary>
    /// IA32_APIC_BASE's global enable bit (MSR 1BH bit 11; Intel SDM Vol. 3A, 11.4.4). KVM recomputes CPUID.1:EDX.APIC
    /// from it whatever <c>KVM_SET_CPUID2</c> said (as real CPUs do), so on a machine without a local APIC the adapter
    /// keeps it clear in every <c>KVM_SET_SREGS</c>.
    /// </summary>
    internal const ulong ApicBaseEnable = 1UL << 11;

    /// <summary>KVM's entry for a leaf and sub-leaf (the sub-leaf matters only where KVM flags the index significant).</summary>
    internal static CpuidResult? Find(ReadOnlySpan<kvm_cpuid_entry2> entries, uint leaf, uint subleaf)
    {
        foreach (ref readonly kvm_cpuid_entry2 e in entries)
        {
            if (e.function == leaf && ((e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) == 0 || e.index == subleaf))
            {
                return new CpuidResult(e.eax, e.ebx, e.ecx, e.edx);
            }
        }

        return null;
    }
}
