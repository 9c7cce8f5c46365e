using Hypervisor.Core.Machine;
using Hypervisor.Core.Memory;
using Hypervisor.Core.Registers;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Accel.Tcg.Tests.Guests;

/// <summary>
/// Exception and interrupt delivery (Intel SDM Vol. 3A, chapter 6): IVT in real mode (20.1.4), IDT gates in protected
/// mode (6.12) and IA-32e mode (6.14), privilege changes through the TSS, IST, double and triple faults (6.15).
/// </summary>
public class InterruptTests
{
    private const ulong Record = 0x6000;

    [Test]
    public void RealModeIntUsesIvtAndIretReturns()
    {
        using var m = new TestMachine();
        // IVT[0x10] = 0000:0x9000 (offset, then segment).
        m.WriteDword(0x10 * 4, 0x0000_9000);
        m.Load(16, 0x9000, a =>
        {
            a.mov(bx, sp); // DS = SS = 0 here
            a.mov(ax, __word_ptr[bx]); // saved IP
            a.mov(__word_ptr[0x6000], ax);
            a.mov(ax, __word_ptr[bx + 2]); // saved CS
            a.mov(__word_ptr[0x6002], ax);
            a.mov(ax, __word_ptr[bx + 4]); // saved FLAGS
            a.mov(__word_ptr[0x6004], ax);
            a.pushf();
            a.pop(ax);
            a.mov(__word_ptr[0x6006], ax); // FLAGS inside the handler
            a.iret();
        });
        m.Load(16, 0x8000, a =>
        {
            a.sti();
            a.@int(0x10);
            a.mov(cx, 0x4321);
            a.cli();
            a.hlt();
        });
        m.StartReal(0x8000);

        VcpuExit exit = m.Run();

        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), exit.Detail);
        Assert.That(m.ReadQword(Record) & 0xFFFF, Is.EqualTo(0x8003UL), "IP after INT 0x10 (STI is 1 byte, INT imm8 2)");
        Assert.That((m.ReadQword(Record) >> 16) & 0xFFFF, Is.EqualTo(0UL), "saved CS");
        Assert.That((m.ReadQword(Record) >> 32) & 0x200, Is.EqualTo(0x200UL), "saved FLAGS has IF");
        Assert.That((m.ReadQword(Record) >> 48) & 0x200, Is.EqualTo(0UL), "IF is cleared in the handler");
        Assert.That(m.Vcpu.GetGeneralRegisters().Rcx & 0xFFFF, Is.EqualTo(0x4321UL), "IRET returned after the INT");
        Assert.That(m.Vcpu.GetGeneralRegisters().Rsp, Is.EqualTo(0x7000UL), "IRET popped the 6-byte frame");
    }

    [Test]
    public void ProtectedModeInterruptGatePushesEipCsEflags()
    {
        using var m = new TestMachine();
        m.StartProtected32(0x8000);
        SystemRegisters s = m.Vcpu.GetSystemRegisters();
        s.Idt = new DescriptorTableRegister(TestMachine.IdtBase, 0x7FF);
        m.Vcpu.SetSystemRegisters(s);
        m.SetGate32(0x30, 0x9000);
        m.Load(32, 0x9000, a =>
        {
            a.mov(eax, __dword_ptr[esp]);
            a.mov(__dword_ptr[0x6000], eax);
            a.mov(eax, __dword_ptr[esp + 4]);
            a.mov(__dword_ptr[0x6004], eax);
            a.mov(eax, __dword_ptr[esp + 8]);
            a.mov(__dword_ptr[0x6008], eax);
            a.iretd();
        });
        m.Load(32, 0x8000, a =>
        {
            a.@int(0x30);
            a.mov(ecx, 0x55);
            a.hlt();
        });

        VcpuExit exit = m.Run();

        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), exit.Detail);
        Assert.That(m.ReadQword(Record) & 0xFFFF_FFFF, Is.EqualTo(0x8002UL), "EIP after INT");
        Assert.That(m.ReadQword(Record) >> 32, Is.EqualTo(0x08UL), "CS");
        Assert.That(m.ReadQword(Record + 8) & 0xFFFF_FFFF, Is.EqualTo(2UL), "EFLAGS (only the fixed bit)");
        Assert.That(m.Vcpu.GetGeneralRegisters().Rcx, Is.EqualTo(0x55UL));
        Assert.That(m.Vcpu.GetGeneralRegisters().Rsp, Is.EqualTo(0x9_0000UL));
    }

    [Test]
    public void DivideErrorIsAFaultWithTheDivAddress()
    {
        using var m = new TestMachine();
        m.StartLong64(0x8000);
        m.SetGate64(0, 0x9000);
        m.Load(64, 0x9000, a =>
        {
            a.mov(rdx, __qword_ptr[rsp]);
            a.mov(__qword_ptr[Record], rdx);
            a.hlt();
        });
        m.Load(64, 0x8000, a =>
        {
            a.mov(eax, 100); // B8 id: 5 bytes
            a.xor(ecx, ecx); // 2 bytes
            a.div(rcx);
            a.hlt();
        });

        VcpuExit exit = m.Run();

        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted));
        Assert.That(m.ReadQword(Record), Is.EqualTo(0x8007UL), "#DE is a fault: the saved RIP is the DIV");
        Assert.That(m.Vcpu.GetGeneralRegisters().Rax, Is.EqualTo(100UL), "RAX unchanged");
    }

    [Test]
    public void GeneralProtectionPushesTheSelectorAsErrorCode()
    {
        using var m = new TestMachine();
        m.StartLong64(0x8000);
        m.SetGate64(13, 0x9000);
        m.Load(64, 0x9000, a =>
        {
            a.pop(rax);
            a.mov(__qword_ptr[Record], rax);
            a.hlt();
        });
        m.Load(64, 0x8000, a =>
        {
            a.mov(ax, 0x50); // index 10: beyond the GDT limit 0x47
            a.mov(ds, ax);
            a.hlt();
        });

        VcpuExit exit = m.Run();

        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted));
        Assert.That(m.ReadQword(Record), Is.EqualTo(0x50UL), "#GP(selector) for a selector past the GDT limit (SDM Vol. 2, MOV)");
    }

    [Test]
    public void UserInterruptSwitchesToRsp0AndIstStacks()
    {
        using var m = new TestMachine();
        m.StartLong64(0x8000);
        m.WriteQword(TestMachine.TssBase + 4, 0x7_0000); // RSP0
        m.WriteQword(TestMachine.TssBase + 0x24, 0x6_8008); // IST1 (misaligned on purpose: aligned down to 16)
        m.SetGate64(0x80, 0x9000, dpl: 3);
        m.SetGate64(0x81, 0x9100, dpl: 3, ist: 1);
        m.SetGate64(13, 0x9200);
        // Each handler records RSP and the saved frame (RIP, CS, RFLAGS, RSP, SS) and returns.
        foreach ((ulong at, ulong slot) in new[] { (0x9000UL, 0x6000UL), (0x9100UL, 0x6040UL) })
        {
            m.Load(64, at, a =>
            {
                a.mov(__qword_ptr[slot], rsp);
                a.mov(rax, __qword_ptr[rsp]);
                a.mov(__qword_ptr[slot + 8], rax);
                a.mov(rax, __qword_ptr[rsp + 8]);
                a.mov(__qword_ptr[slot + 16], rax);
                a.mov(rax, __qword_ptr[rsp + 24]);
                a.mov(__qword_ptr[slot + 24], rax);
                a.mov(rax, __qword_ptr[rsp + 32]);
                a.mov(__qword_ptr[slot + 32], rax);
                a.iretq();
            });
        }

        m.Load(64, 0x9200, a =>
        {
            a.pop(rax);
            a.mov(__qword_ptr[0x6080], rax);
            a.hlt();
        });
        m.Load(64, 0xA000, a =>
        {
            a.@int(0x80);
            a.@int(0x81);
            a.@int(0x82); // gate DPL 0 < CPL 3: #GP(vector * 8 + 2)
        });
        m.Load(64, 0x8000, a =>
        {
            a.push(0x2B);
            a.push(0x6_F000);
            a.push(2);
            a.push(0x33);
            a.push(0xA000);
            a.iretq();
        });
        m.SetGate64(0x82, 0x9000, dpl: 0);

        VcpuExit exit = m.Run();

        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), exit.Detail);
        // CPL 3 -> 0: the new stack is RSP0, and 5 qwords are pushed (SDM 6.14.2, Figure 6-9).
        Assert.That(m.ReadQword(0x6000), Is.EqualTo(0x7_0000UL - 40));
        Assert.That(m.ReadQword(0x6008), Is.EqualTo(0xA002UL), "return RIP");
        Assert.That(m.ReadQword(0x6010), Is.EqualTo(0x33UL), "user CS");
        Assert.That(m.ReadQword(0x6018), Is.EqualTo(0x6_F000UL), "user RSP");
        Assert.That(m.ReadQword(0x6020), Is.EqualTo(0x2BUL), "user SS");
        // IST1: RSP = IST1 aligned down to 16 (SDM 6.14.4), then 5 qwords.
        Assert.That(m.ReadQword(0x6040), Is.EqualTo(0x6_8000UL - 40));
        Assert.That(m.ReadQword(0x6048), Is.EqualTo(0xA004UL));
        Assert.That(m.ReadQword(0x6080), Is.EqualTo(0x82UL * 8 + 2), "IDT-referenced #GP error code");
    }

    [Test]
    public void FaultWhileDeliveringGpBecomesDoubleFault()
    {
        using var m = new TestMachine();
        m.StartLong64(0x8000);
        m.SetGate64(8, 0x9000);
        m.Load(64, 0x9000, a =>
        {
            a.pop(rax);
            a.mov(__qword_ptr[Record], rax);
            a.mov(rax, __qword_ptr[rsp]);
            a.mov(__qword_ptr[Record + 8], rax);
            a.hlt();
        });
        // Vector 13's gate is not present: delivering #GP raises #NP, contributory after contributory -> #DF.
        m.Load(64, 0x8000, a =>
        {
            a.mov(ax, 0x50);
            a.mov(ds, ax);
        });

        VcpuExit exit = m.Run();

        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), exit.Detail);
        Assert.That(m.ReadQword(Record), Is.EqualTo(0UL), "#DF pushes error code 0");
        Assert.That(m.ReadQword(Record + 8), Is.EqualTo(0x8004UL), "saved RIP: the instruction that faulted first");
    }

    [Test]
    public void TripleFaultEndsTheRunWithShutdown()
    {
        using var m = new TestMachine();
        m.StartLong64(0x8000);
        SystemRegisters s = m.Vcpu.GetSystemRegisters();
        s.Idt = new DescriptorTableRegister(TestMachine.IdtBase, 0);
        m.Vcpu.SetSystemRegisters(s);
        m.Load(64, 0x8000, a => a.ud2());

        VcpuExit exit = m.Run();

        // #UD cannot be delivered (IDT limit 0) -> #GP; #GP cannot be delivered -> #DF; #DF cannot -> shutdown.
        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Shutdown));
        Assert.That(exit.Detail, Does.Contain("triple fault"));
        Assert.That(exit.Detail, Does.Contain("#UD"));
    }

    [Test]
    public void ExternalInterruptWakesHltAndHonoursStiShadow()
    {
        var source = new TestInterruptSource();
        using var m = new TestMachine(interrupts: source);
        m.StartLong64(0x8000);
        m.SetGate64(0x20, 0x9000);
        m.Load(64, 0x9000, a =>
        {
            a.mov(__qword_ptr[Record], rbx);
            a.mov(rax, __qword_ptr[rsp]);
            a.mov(__qword_ptr[Record + 8], rax);
            a.hlt(); // IF=0 inside an interrupt gate handler: ends the run
        });
        m.Load(64, 0x8000, a =>
        {
            a.sti();
            a.hlt();
        });

        var done = new ManualResetEventSlim();
        VcpuExit exit = default;
        var thread = new Thread(() =>
        {
            exit = m.Run(long.MaxValue);
            done.Set();
        });
        thread.Start();
        Assert.That(done.Wait(200), Is.False, "HLT with IF=1 waits for an interrupt");
        source.Raise(0x20);
        m.Vcpu.NotifyInterruptPending();
        Assert.That(done.Wait(5000), Is.True, "the interrupt woke the halted vCPU");
        thread.Join();

        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted));
        Assert.That(m.ReadQword(Record + 8), Is.EqualTo(0x8002UL), "return address: after the HLT");

        // STI shadow: with an interrupt already pending, STI; MOV RBX,1 runs the MOV before the interrupt.
        m.StartLong64(0x8000);
        m.Load(64, 0x8000, a =>
        {
            a.xor(ebx, ebx);
            a.sti();
            a.mov(ebx, 1);
            a.mov(ebx, 2);
            a.hlt();
        });
        source.Raise(0x20);
        m.Vcpu.NotifyInterruptPending();
        exit = m.Run();
        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted));
        Assert.That(m.ReadQword(Record), Is.EqualTo(1UL), "the instruction after STI completes before the interrupt");
    }

    [Test]
    public void TrapFlagRaisesDebugTrapAfterEachInstruction()
    {
        using var m = new TestMachine();
        m.StartLong64(0x8000);
        m.SetGate64(1, 0x9000);
        m.Load(64, 0x9000, a =>
        {
            a.mov(rax, __qword_ptr[0x6000]);
            a.mov(rdx, __qword_ptr[rsp]);
            a.mov(__qword_ptr[rax * 8 + 0x6100], rdx);
            a.inc(__qword_ptr[0x6000]);
            a.iretq();
        });
        m.Load(64, 0x8000, a =>
        {
            a.pushfq();
            a.or(__qword_ptr[rsp], 0x100);
            a.popfq(); // TF was clear when POPFQ began: no trap after it
            a.nop();
            a.nop();
            a.nop();
            a.pushfq();
            a.and(__qword_ptr[rsp], -0x101);
            a.popfq();
            a.hlt();
        });

        VcpuExit exit = m.Run();

        // SDM Vol. 3A, 18.3.1.4: with TF set, a #DB trap follows each instruction; the saved RIP is the next one.
        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), exit.Detail);
        ulong firstNop = TestMachine.InstructionAddress(m, 64, 0x8000, 3);
        Assert.That(m.ReadQword(0x6100), Is.EqualTo(firstNop + 1));
        Assert.That(m.ReadQword(0x6108), Is.EqualTo(firstNop + 2));
        Assert.That(m.ReadQword(0x6110), Is.EqualTo(firstNop + 3));
        Assert.That(m.ReadQword(0x6118), Is.EqualTo(TestMachine.InstructionAddress(m, 64, 0x8000, 7)), "trap after PUSHFQ");
        Assert.That(m.ReadQword(0x6120), Is.EqualTo(TestMachine.InstructionAddress(m, 64, 0x8000, 8)), "trap after AND");
    }

    /// <summary>An interrupt controller output with one latched vector.</summary>
    private sealed class TestInterruptSource : Hypervisor.Core.Io.IInterruptSource
    {
        private int _vector = -1;

        public bool HasPendingInterrupt => Volatile.Read(ref _vector) >= 0;

        public void Raise(int vector) => Volatile.Write(ref _vector, vector);

        public int AcknowledgeInterrupt() => Interlocked.Exchange(ref _vector, -1);
    }
}
