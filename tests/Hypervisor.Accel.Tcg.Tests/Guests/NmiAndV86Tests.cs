using Hypervisor.Core.Machine;
using Hypervisor.Core.Registers;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Accel.Tcg.Tests.Guests;

/// <summary>
/// NMI (Intel SDM Vol. 3A, 6.7 and 6.7.1): delivered through vector 2 regardless of EFLAGS.IF, wakes a halted CPU, and
/// further NMIs are held pending until the handler's IRET. Entering virtual-8086 mode with IRETD (more in
/// SystemGuests/Virtual8086Tests).
/// </summary>
public class NmiAndV86Tests
{
    private const ulong Counter = 0x6000, SavedRip = 0x6008;

    /// <summary>An NMI handler (vector 2, 64-bit) that counts, records the interrupted RIP, spins 50 iterations and returns with IRETQ.</summary>
    private static void InstallNmiHandler64(TestMachine m)
    {
        m.Load(64, 0x9000, a =>
        {
            a.inc(__qword_ptr[Counter]);
            a.mov(rax, __qword_ptr[rsp]);
            a.mov(__qword_ptr[SavedRip], rax);
            a.mov(ecx, 50);
            var spin = a.CreateLabel();
            a.Label(ref spin);
            a.dec(ecx);
            a.jnz(spin);
            a.iretq();
        });
        m.SetGate64(2, 0x9000);
    }

    [Test]
    public void NmiIsDeliveredWithInterruptsDisabledAndWakesHlt()
    {
        using var m = new TestMachine();
        m.StartLong64(0x8000);
        InstallNmiHandler64(m);
        m.Load(64, 0x8000, a =>
        {
            a.mov(ebx, 0x11);
            a.hlt();
            a.mov(ebx, 0x22);
            a.hlt();
        });

        VcpuExit first = m.Run();
        Assert.That(first.Reason, Is.EqualTo(VcpuExitReason.Halted), "HLT with IF=0 and nothing pending");
        Assert.That(m.ReadQword(Counter), Is.EqualTo(0UL));

        ((INonMaskableInterruptTarget)m.Vcpu).RaiseNonMaskableInterrupt();
        VcpuExit second = m.Run();

        Assert.That(second.Reason, Is.EqualTo(VcpuExitReason.Halted), second.Detail);
        Assert.That(m.ReadQword(Counter), Is.EqualTo(1UL), "the NMI ran its handler although IF=0");
        Assert.That(m.ReadQword(SavedRip), Is.EqualTo(0x8006UL), "it interrupted the halted CPU after the first HLT");
        Assert.That(m.Vcpu.GetGeneralRegisters().Rbx, Is.EqualTo(0x22UL), "IRETQ resumed after the HLT");
    }

    [Test]
    public void SecondNmiWaitsForTheHandlersIret()
    {
        using var m = new TestMachine();
        m.StartLong64(0x8000);
        InstallNmiHandler64(m);
        m.Load(64, 0x8000, a =>
        {
            var loop = a.CreateLabel();
            a.Label(ref loop);
            a.inc(rbx);
            a.cmp(rbx, 1000);
            a.jb(loop);
            a.hlt();
        });

        ((INonMaskableInterruptTarget)m.Vcpu).RaiseNonMaskableInterrupt();
        Assert.That(m.Run(20).Reason, Is.EqualTo(VcpuExitReason.InstructionLimit));
        Assert.That(m.ReadQword(Counter), Is.EqualTo(1UL), "first NMI taken at once");

        ((INonMaskableInterruptTarget)m.Vcpu).RaiseNonMaskableInterrupt(); // arrives inside the handler: blocked until IRETQ (50 spins later)
        Assert.That(m.Run(40).Reason, Is.EqualTo(VcpuExitReason.InstructionLimit));
        Assert.That(m.ReadQword(Counter), Is.EqualTo(1UL), "NMIs are blocked inside the NMI handler");

        VcpuExit exit = m.Run();

        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), exit.Detail);
        Assert.That(m.ReadQword(Counter), Is.EqualTo(2UL), "the held NMI was delivered after IRETQ");
        Assert.That(m.Vcpu.GetGeneralRegisters().Rbx, Is.EqualTo(1000UL), "the interrupted loop completed");
    }

    [Test]
    public void NmiInRealModeUsesIvtEntry2()
    {
        using var m = new TestMachine();
        m.StartReal(0x7C00);
        m.WriteDword(2 * 4, 0x0000_0500); // IVT[2] = 0000:0500
        m.Load(16, 0x500, a =>
        {
            a.mov(__word_ptr[0x600], 0x4E4D); // "NM"
            a.iret();
        });
        m.Load(16, 0x7C00, a =>
        {
            a.cli();
            a.hlt();
            a.mov(bx, 0x77);
            a.hlt();
        });

        Assert.That(m.Run().Reason, Is.EqualTo(VcpuExitReason.Halted));
        ((INonMaskableInterruptTarget)m.Vcpu).RaiseNonMaskableInterrupt();
        VcpuExit exit = m.Run();

        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), exit.Detail);
        Assert.That(m.ReadQword(0x600) & 0xFFFF, Is.EqualTo(0x4E4DUL));
        Assert.That(m.Vcpu.GetGeneralRegisters().Rbx & 0xFFFF, Is.EqualTo(0x77UL));
    }

    [Test]
    public void IretIntoVirtual8086ModeRunsEightySixCode()
    {
        using var m = new TestMachine();
        m.StartProtected32(0x8000);
        m.Load(16, 0x1100, a =>
        {
            a.mov(ax, cs);
            a.mov(__word_ptr[0x20], ax); // DS = 0x0100: linear 0x1020
            a.mov(ax, 0x1234);
        });
        m.Load(32, 0x8000, a =>
        {
            // IRETD at CPL 0 with VM=1 in the popped EFLAGS: the 9-dword frame of a return to virtual-8086 mode.
            a.push(0); // GS
            a.push(0); // FS
            a.push(0x100); // DS
            a.push(0); // ES
            a.push(0); // SS
            a.push(0x1000); // ESP
            a.push((int)((1u << 17) | 2)); // EFLAGS with VM
            a.push(0x100); // CS
            a.push(0x100); // EIP: linear 0x1100
            a.iretd();
        });

        VcpuExit exit = m.Run(13);

        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.InstructionLimit), exit.Detail);
        Assert.That(m.ReadQword(0x1020) & 0xFFFF, Is.EqualTo(0x100UL), "CS read in virtual-8086 mode, stored through DS × 16");
        GeneralRegisters g = m.Vcpu.GetGeneralRegisters();
        SystemRegisters s = m.Vcpu.GetSystemRegisters();
        Assert.That(g.Rax & 0xFFFF, Is.EqualTo(0x1234UL));
        Assert.That(g.Rflags & (1UL << 17), Is.Not.Zero, "still in virtual-8086 mode");
        Assert.That(s.Cs.Base, Is.EqualTo(0x1000UL));
        Assert.That(s.Cs.Limit, Is.EqualTo(0xFFFFu));
        Assert.That(s.Cs.Dpl, Is.EqualTo((byte)3));
        Assert.That(m.Cpu.Cpl, Is.EqualTo(3));
    }
}
