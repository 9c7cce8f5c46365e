using Hypervisor.Core.Cpu;

namespace Hypervisor.Accel.Whpx;

/// <summary>
/// The CPUID a whpx guest sees: <see cref="CpuModel.Default"/>, answered at <c>WHvRunVpExitReasonX64Cpuid</c> exits for
/// the leaves in <see cref="ExitLeaves"/>, with every feature bit also limited to what the platform itself would have
/// answered (its default result in the exit context).
/// </summary>
/// <remarks>
/// The partition enables CPUID exits (<c>WHvPartitionPropertyCodeExtendedVmExits</c>, bit X64CpuidExit) for the leaves
/// of <c>WHvPartitionPropertyCodeCpuidExitList</c>; each exit carries the platform's default result
/// (WHV_X64_CPUID_ACCESS_CONTEXT.DefaultResultRax..Rdx, Microsoft's WHPX documentation, "Exit Contexts"). Using the
/// default result as the "available" set keeps what the platform cannot do hidden and keeps the platform's dynamic bits:
/// CPUID.1:ECX.OSXSAVE follows CR4.OSXSAVE, and CPUID.0DH.0:EBX is the XSAVE size for the current XCR0. The local APIC
/// bit is the model's when the machine has a userspace local APIC (the partition emulates none), clear otherwise;
/// x2APIC and the TSC-deadline timer are withheld as on kvm (our local APIC implements neither). Leaves outside the
/// list keep the platform's answer; the list holds every leaf the model defines and the hypervisor leaves 40000000H and
/// 40000001H, so a guest that probes for a hypervisor signature sees the model's out-of-range answer there.
/// </remarks>
internal static class WhpxCpuid
{
    private const uint HypervisorLeaves = 0x4000_0000;

    /// <summary>The table the partition's vCPUs answer from: the model minus what the adapter cannot back.</summary>
    internal static CpuidTable Table(bool localApic)
    {
        CpuModel model = CpuModel.Default;
        return model.Present(model.Features.LimitedToDeviceModelApic(localApic));
    }

    /// <summary>The leaves that exit: all basic and extended leaves up to the model's highest, and 40000000H-40000001H.</summary>
    internal static uint[] ExitLeaves(CpuModel model)
    {
        var leaves = new List<uint>();
        for (uint leaf = 0; leaf <= model.MaxBasicLeaf; leaf++)
        {
            leaves.Add(leaf);
        }

        leaves.Add(HypervisorLeaves);
        leaves.Add(HypervisorLeaves + 1);
        for (uint leaf = 0x8000_0000; leaf <= model.MaxExtendedLeaf; leaf++)
        {
            leaves.Add(leaf);
        }

        return [.. leaves];
    }

    /// <summary>
    /// The answer to <c>CPUID</c> with <paramref name="leaf"/> and <paramref name="subleaf"/> on the vCPU with initial APIC
    /// ID <paramref name="apicId"/>, given the platform's own answer <paramref name="platform"/>.
    /// </summary>
    internal static CpuidResult Answer(CpuidTable table, uint leaf, uint subleaf, uint apicId, CpuidResult platform)
    {
        CpuidResult result = table.Query(leaf, subleaf, apicId);
        CpuModel model = table.Model;
        bool inRange = leaf <= model.MaxBasicLeaf || (leaf >= 0x8000_0000 && leaf <= model.MaxExtendedLeaf);
        if (!inRange)
        {
            return result; // the model's answer for an out-of-range leaf; the platform's is for another leaf
        }

        uint effectiveSubleaf = CpuidRegisterLocation.HasSubleaves(leaf) ? subleaf : 0;
        foreach (CpuidRegisterLocation location in CpuFeatures.FeatureRegisters)
        {
            if (location.Leaf != leaf || location.Subleaf != effectiveSubleaf)
            {
                continue;
            }

            uint mask = result[location.Register] & platform[location.Register];
            if (location == CpuFeatures.Apic.Location)
            {
                // The partition has no local APIC of its own; ours (if any) is what the table says.
                mask = (mask & ~CpuFeatures.Apic.Mask) | (result[location.Register] & CpuFeatures.Apic.Mask);
            }

            result = result.With(location.Register, mask);
        }

        if (leaf == 0xD && effectiveSubleaf == 0 && result.Eax != 0)
        {
            result = result with { Ebx = platform.Ebx }; // the XSAVE area size for the XCR0 the guest has set now
        }

        if (leaf == 0x8000_0008 && (platform.Eax & 0xFF) != 0)
        {
            uint physical = Math.Min(result.Eax & 0xFF, platform.Eax & 0xFF); // never wider than the host's MAXPHYADDR
            result = result with { Eax = (result.Eax & ~0xFFu) | physical };
        }

        return result;
    }
}
