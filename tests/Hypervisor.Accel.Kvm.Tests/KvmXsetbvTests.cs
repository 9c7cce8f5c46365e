using System.Runtime.Versioning;
using Hypervisor.Accel.Kvm.Interop;
using Hypervisor.Core.Cpu;
using static Hypervisor.Accel.Kvm.Interop.KvmConstants;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Accel.Kvm.Tests;

/// <summary>
/// Whether a guest's XSETBV reaches KVM, seen from both sides: <see cref="KvmXsetbvCheck"/> asks KVM
/// (<c>KVM_GET_XCRS</c>), and a guest reads XCR0 back with XGETBV after an exit to user space and a re-entry, which is
/// when KVM loads its own copy into the CPU. The two must agree; on hardware both say the write arrived, under the CI's
/// emulated AMD-V (QEMU 7.2 TCG) both say it was lost, which is the cause of issue 10's "bad frame in rt_sigreturn".
/// </summary>
[TestFixture]
[Category("Kvm")]
[NonParallelizable]
[SupportedOSPlatform("linux")]
public sealed unsafe class KvmXsetbvTests
{
    private const int RamSize = 0x10000;
    private const ushort CodeAddress = 0x1000;

    [SetUp]
    public void RequireKvm() => KvmHost.RequireKvm();

    [Test]
    public void CheckAgreesWithWhatTheGuestReadsBackAfterAnExit()
    {
        using KvmSystem system = KvmSystem.Open();
        CpuidTable table = KvmCpuid.Present(system.GetSupportedCpuid());
        ulong components = KvmXsetbvCheck.Components(table);
        if (components == 0 || system.CheckExtension(KVM_CAP_XCRS) <= 0)
        {
            Assert.Ignore("this host's KVM offers no XSAVE or no KVM_CAP_XCRS");
        }

        Assert.That(components & 3, Is.EqualTo(3UL), "the model offers x87 and SSE state");
        ulong? kvmXcr0 = KvmXsetbvCheck.Run(system, table, components);
        Assert.That(kvmXcr0, Is.Not.Null, "the check's guest ran to its OUT");

        (ulong beforeExit, ulong afterExit, ulong kvmAfterGuestWrite) = GuestReadsXcr0(system, table, components);
        TestContext.Out.WriteLine($"XSETBV 0x{components:X}: XGETBV before an exit 0x{beforeExit:X}, after 0x{afterExit:X}; KVM's XCR0 0x{kvmAfterGuestWrite:X}; check: KVM 0x{kvmXcr0:X}");
        Assert.Multiple(() =>
        {
            Assert.That(beforeExit, Is.EqualTo(components), "XGETBV right after XSETBV, before any exit");
            Assert.That(kvmAfterGuestWrite, Is.EqualTo(kvmXcr0), "KVM_GET_XCRS in this guest and in the check");
            // KVM loads its copy at every entry; the guest sees its own write survive the exit exactly when KVM had it.
            Assert.That(afterExit == components, Is.EqualTo(kvmXcr0 == components), "the guest's XCR0 after an exit follows KVM's copy");
            Assert.That(KvmXsetbvCheck.IsXsetbvLost(system, table, components), Is.EqualTo(afterExit != components));
        });
    }

    [Test]
    public void PinnedXcr0IsWhatTheGuestSeesAfterExits()
    {
        using KvmSystem system = KvmSystem.Open();
        CpuidTable table = KvmCpuid.Present(system.GetSupportedCpuid());
        ulong components = KvmXsetbvCheck.Components(table);
        if (components == 0 || system.CheckExtension(KVM_CAP_XCRS) <= 0)
        {
            Assert.Ignore("this host's KVM offers no XSAVE or no KVM_CAP_XCRS");
        }

        // What the adapter does where the check fails: KVM_SET_XCRS before the guest runs. The guest then reads the
        // value at every re-entry whether or not its own XSETBV reached KVM.
        (_, ulong afterExit, ulong kvm) = GuestReadsXcr0(system, table, components, pin: components);
        Assert.Multiple(() =>
        {
            Assert.That(kvm, Is.EqualTo(components));
            Assert.That(afterExit, Is.EqualTo(components));
        });
    }

    /// <summary>
    /// A real-mode guest with CR4.OSXSAVE: XSETBV(<paramref name="xcr0"/>), XGETBV, OUT 0x10 (exit), XGETBV, OUT 0x11.
    /// </summary>
    private static (ulong BeforeExit, ulong AfterExit, ulong KvmXcr0) GuestReadsXcr0(KvmSystem system, CpuidTable table, ulong xcr0, ulong? pin = null)
    {
        byte[] code = Guest.Assemble16(CodeAddress, a =>
        {
            a.mov(eax, (uint)xcr0);
            a.mov(edx, (uint)(xcr0 >> 32));
            a.xor(ecx, ecx);
            a.xsetbv();
            a.xgetbv();
            a.mov(ebx, eax);
            a.mov(dx, 0x10);
            a.@out(dx, eax);
            a.xor(ecx, ecx);
            a.xgetbv();
            a.mov(dx, 0x11);
            a.@out(dx, eax);
            a.hlt();
        });
        using var ram = new NativePages(RamSize);
        code.CopyTo(ram.Span[CodeAddress..]);
        using KvmVm vm = system.CreateVm();
        if (vm.CheckExtension(KVM_CAP_SET_TSS_ADDR) > 0)
        {
            vm.SetTssAddress(0xFFFB_D000);
        }

        vm.SetUserMemoryRegion(0, 0, RamSize, ram.Address, readOnly: false);
        using KvmVcpu vcpu = vm.CreateVcpu(0);
        vcpu.SetCpuid(KvmCpuid.Entries(table, 0));
        kvm_sregs sregs = vcpu.GetSregs();
        sregs.cs.@base = 0;
        sregs.cs.selector = 0;
        sregs.cr4 |= 1UL << 18; // OSXSAVE
        vcpu.SetSregs(sregs);
        kvm_regs regs = vcpu.GetRegs();
        regs.rip = CodeAddress;
        regs.rflags = 2;
        vcpu.SetRegs(regs);
        if (pin is ulong value)
        {
            vcpu.SetXcr0(value);
        }

        ulong before = ReadOut(vcpu.Run(), 0x10);
        ulong kvm = vcpu.GetXcr0();
        ulong after = ReadOut(vcpu.Run(), 0x11);
        return (before, after, kvm);
    }

    private static uint ReadOut(KvmExit exit, ushort port)
    {
        Assert.That(exit.Reason, Is.EqualTo(KVM_EXIT_IO), KvmWrapperTests.Describe(exit));
        Assert.That(exit.Io.port, Is.EqualTo(port));
        Span<byte> data = exit.IoData;
        return BitConverter.ToUInt32(data[..4]);
    }
}
