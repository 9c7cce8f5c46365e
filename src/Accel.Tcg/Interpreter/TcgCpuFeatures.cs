using Hypervisor.Core.Cpu;

namespace Hypervisor.Accel.Tcg.Interpreter;

/// <summary>
/// The CPU features the tcg interpreter implements. CPUID on tcg shows <see cref="CpuModel.Default"/> intersected with
/// this set, so a feature reaches guests only once it is both in the model and marked implemented here. One line per
/// feature of the model: flip its flag when the instruction family is wired and tested.
/// </summary>
internal static class TcgCpuFeatures
{
    internal static readonly CpuFeatureSet Implemented = CpuFeatureSet.Empty
        // Leaf 1 EDX
        .With(CpuFeatures.Fpu, true)            // x87: complete, compared with the host (FpuWiring/X87*)
        .With(CpuFeatures.Vme, true)            // CR4.VME/PVI, VIF/VIP, the redirection bitmap (TcgCpu.V86.cs, SystemGuests/VirtualModeExtensionTests)
        .With(CpuFeatures.De, true)
        .With(CpuFeatures.Pse, true)
        .With(CpuFeatures.Tsc, true)
        .With(CpuFeatures.Msr, true)
        .With(CpuFeatures.Pae, true)
        .With(CpuFeatures.Cx8, true)
        .With(CpuFeatures.Apic, true)           // Devices/Apic; TcgCpu.Cpuid clears it on a vCPU without one
        .With(CpuFeatures.Sep, true)
        .With(CpuFeatures.Pge, true)
        .With(CpuFeatures.Cmov, true)
        .With(CpuFeatures.Pat, true)
        .With(CpuFeatures.Pse36, true)
        .With(CpuFeatures.Clfsh, false)
        .With(CpuFeatures.Mmx, false)
        .With(CpuFeatures.Fxsr, true)           // FXSAVE/FXRSTOR (FxsaveDifferentialTests)
        .With(CpuFeatures.Sse, true)            // every non-MMX form (FpuWiring/SseDifferentialTests, SseApproximationTests)
        .With(CpuFeatures.Sse2, true)           // every non-MMX form; MOVQ2DQ/MOVDQ2Q and the MMX forms wait for MMX
        // Leaf 1 ECX
        .With(CpuFeatures.Sse3, true)
        .With(CpuFeatures.Ssse3, true)           // XMM forms; the MMX forms wait for MMX
        .With(CpuFeatures.Cx16, true)
        .With(CpuFeatures.Sse41, true)
        .With(CpuFeatures.Sse42, true)           // PCMPxSTRx, PCMPGTQ, CRC32
        .With(CpuFeatures.Movbe, true)
        .With(CpuFeatures.Popcnt, true)
        .With(CpuFeatures.Xsave, true)           // XSAVE/XRSTOR, XGETBV/XSETBV (TcgCpu.Xsave.cs)
        .With(CpuFeatures.Osxsave, true)         // cleared by TcgCpu.Cpuid while CR4.OSXSAVE is clear
        // Leaf 7 EBX
        .With(CpuFeatures.Bmi1, true)
        .With(CpuFeatures.Bmi2, true)
        .With(CpuFeatures.Adx, true)
        .With(CpuFeatures.Smep, true)           // SMEP/SMAP/UMIP: Mmu checks and Guests/SmepSmapTests.cs
        .With(CpuFeatures.Smap, true)
        .With(CpuFeatures.Umip, true)           // (leaf 7 ECX)
        // Leaf 0DH: XSAVE state components (need XSAVE)
        .With(CpuFeatures.XsaveX87State, true)
        .With(CpuFeatures.XsaveSseState, true)
        .With(CpuFeatures.XsaveOpt, true)        // XSAVEOPT (no XSAVEC/XSAVES: they stay #UD)
        // Leaf 80000001H ECX and EDX
        .With(CpuFeatures.LahfLm, true)
        .With(CpuFeatures.Lzcnt, true)
        .With(CpuFeatures.Syscall, true)
        .With(CpuFeatures.Nx, true)
        .With(CpuFeatures.Page1Gb, true)
        .With(CpuFeatures.Rdtscp, true)
        .With(CpuFeatures.LongMode, true);

    /// <summary>What CPUID returns on tcg.</summary>
    internal static readonly CpuidTable Cpuid = CpuModel.Default.Present(Implemented, TcgCpu.MaxPhysAddrBits);
}
