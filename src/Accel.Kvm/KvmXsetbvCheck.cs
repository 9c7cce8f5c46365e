using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using Hypervisor.Accel.Kvm.Interop;
using Hypervisor.Core.Cpu;
using static Hypervisor.Accel.Kvm.Interop.KvmConstants;

namespace Hypervisor.Accel.Kvm;

/// <summary>
/// Finds out whether a guest's <c>XSETBV</c> reaches KVM, by running one: a scratch VM sets XCR0 to the model's XSAVE
/// components and exits with an OUT, and <c>KVM_GET_XCRS</c> then says whether KVM saw the write.
/// </summary>
/// <remarks>
/// <para>
/// On SVM and VMX hardware XSETBV in a guest always exits to KVM (AMD APM Vol. 2, 15.9 "Instruction Intercepts", the
/// XSETBV intercept; Intel SDM Vol. 3C, 26.1.2: XSETBV causes a VM exit unconditionally). KVM keeps the value as the
/// guest's XCR0 and loads it into the CPU before every entry while the guest has CR4.OSXSAVE set
/// (arch/x86/kvm/x86.c, <c>kvm_load_guest_xsave_state</c>).
/// </para>
/// <para>
/// Under QEMU 7.2's software emulation of AMD-V (the kvm-guest tool of our CI, <c>-accel tcg -cpu max</c>) the XSETBV
/// intercept is not delivered: the nested guest's XSETBV writes the emulated CPU's XCR0 directly and KVM never hears
/// of it. KVM's copy stays at its reset value (x87 only) and is loaded again at the next entry after any exit, so the
/// guest silently loses SSE from XCR0. Linux then saves signal frames with <c>XSAVE</c> under XCR0 = x87, marks x87
/// and SSE present in XSTATE_BV, and the <c>XRSTOR</c> in rt_sigreturn faults (#GP: XSTATE_BV has a bit that is clear
/// in XCR0; Intel SDM Vol. 1, 13.8): "bad frame in rt_sigreturn" and init is killed. QEMU itself, running the same
/// Debian kernel under that KVM with <c>-cpu qemu64,+xsave,+xsaveopt</c>, fails the same way; with AVX or PKU added it
/// only boots because the kernel notices CPUID.0DH:EBX stuck at 576 bytes ("XSAVE consistency problem") and turns
/// XSAVE off. The same kernel boots with XSAVE under QEMU TCG without nesting. See src/Accel.Kvm/README.md.
/// </para>
/// <para>
/// Where the check finds the write lost, the adapter sets KVM's XCR0 (<c>KVM_SET_XCRS</c>) to all components the
/// model offers, which is what Linux and Windows enable, so that the value KVM reloads is the one the guest would
/// have set. Elsewhere nothing changes: XCR0 resets to 1 and follows the guest's XSETBV.
/// </para>
/// </remarks>
[SupportedOSPlatform("linux")]
internal static unsafe class KvmXsetbvCheck
{
    private const int RamSize = 0x2000;
    private const ushort CodeAddress = 0x1000;
    private const ushort FaultHandler = 0x0FF0; // every real-mode vector points at a HLT here
    private const ushort DonePort = 0x10;
    private const ulong Cr4OsXsave = 1UL << 18; // Intel SDM Vol. 3A, 2.5

    private static readonly Lock s_lock = new();
    private static bool s_done;
    private static bool s_lost;

    /// <summary>
    /// Whether a guest's XSETBV of <paramref name="xcr0"/> fails to reach KVM on this host (checked once per process;
    /// false when it cannot be checked: no <c>KVM_CAP_XCRS</c> or no XSAVE in the table).
    /// </summary>
    internal static bool IsXsetbvLost(KvmSystem system, CpuidTable cpuid, ulong xcr0)
    {
        lock (s_lock)
        {
            if (!s_done)
            {
                s_lost = Run(system, cpuid, xcr0) is ulong seen && seen != xcr0;
                s_done = true;
            }

            return s_lost;
        }
    }

    /// <summary>The XSAVE components the table offers (CPUID.0DH.0:EDX:EAX), or 0 without XSAVE.</summary>
    internal static ulong Components(CpuidTable cpuid)
    {
        if ((cpuid.Query(1, 0, 0).Ecx & CpuFeatures.Xsave.Mask) == 0)
        {
            return 0;
        }

        CpuidResult leaf = cpuid.Query(0xD, 0, 0);
        return leaf.Eax | ((ulong)leaf.Edx << 32);
    }

    /// <summary>
    /// Runs the scratch guest: <c>XSETBV</c> with <paramref name="xcr0"/>, then <c>OUT</c>. Returns KVM's XCR0 after
    /// the exit, or null if the check cannot be made (no <c>KVM_CAP_XCRS</c>, XSAVE absent, or the guest faulted).
    /// </summary>
    internal static ulong? Run(KvmSystem system, CpuidTable cpuid, ulong xcr0)
    {
        if (xcr0 == 0 || system.CheckExtension(KVM_CAP_XCRS) <= 0)
        {
            return null;
        }

        byte* ram = (byte*)NativeMemory.AlignedAlloc(RamSize, 4096);
        try
        {
            var memory = new Span<byte>(ram, RamSize);
            memory.Clear();
            for (int vector = 0; vector < 32; vector++)
            {
                // Real-mode interrupt vector table (Intel SDM Vol. 3A, 20.1.4): offset, then segment 0.
                memory[vector * 4] = FaultHandler & 0xFF;
                memory[(vector * 4) + 1] = FaultHandler >> 8;
            }

            memory[FaultHandler] = 0xF4; // HLT
            ReadOnlySpan<byte> code =
            [
                0x66, 0xB8, (byte)xcr0, (byte)(xcr0 >> 8), (byte)(xcr0 >> 16), (byte)(xcr0 >> 24), // mov eax, low half
                0x66, 0xBA, (byte)(xcr0 >> 32), (byte)(xcr0 >> 40), (byte)(xcr0 >> 48), (byte)(xcr0 >> 56), // mov edx, high half
                0x66, 0x31, 0xC9, // xor ecx, ecx: XCR0
                0x0F, 0x01, 0xD1, // xsetbv
                0xE6, (byte)DonePort, // out DonePort, al
                0xF4, // hlt
            ];
            code.CopyTo(memory[CodeAddress..]);

            using KvmVm vm = system.CreateVm();
            if (vm.CheckExtension(KVM_CAP_SET_TSS_ADDR) > 0)
            {
                vm.SetTssAddress(KvmAcceleratorVm.TssAddress);
            }

            vm.SetUserMemoryRegion(0, 0, RamSize, (nint)ram, readOnly: false);
            KvmVcpu vcpu = vm.CreateVcpu(0);
            try
            {
                vcpu.SetCpuid(KvmCpuid.Entries(cpuid, 0));
                kvm_sregs sregs = vcpu.GetSregs();
                sregs.cs.@base = 0;
                sregs.cs.selector = 0;
                sregs.cr4 |= Cr4OsXsave;
                vcpu.SetSregs(sregs);
                kvm_regs regs = vcpu.GetRegs();
                regs.rip = CodeAddress;
                regs.rflags = 2;
                vcpu.SetRegs(regs);
                KvmExit exit = vcpu.Run();
                if (exit.Reason != KVM_EXIT_IO || exit.Io.port != DonePort)
                {
                    return null;
                }

                return vcpu.GetXcr0();
            }
            finally
            {
                vcpu.Dispose();
            }
        }
        catch (KvmException)
        {
            return null;
        }
        finally
        {
            NativeMemory.AlignedFree(ram);
        }
    }
}
