using Hypervisor.Core.Machine;
using Hypervisor.Core.Memory;
using Hypervisor.Core.Registers;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Accel.Tcg.Tests.Guests;

/// <summary>Segmentation (Intel SDM Vol. 3A, chapter 3 and 5): limits, rights, unreal mode, far transfers, LAR/LSL/VERR/VERW.</summary>
public class SegmentationTests
{
    private const ulong Record = 0x6000;

    [Test]
    public void AccessBeyondTheDataSegmentLimitRaisesGp0()
    {
        using var m = new TestMachine();
        m.StartProtected32(0x8000);
        // Selector 0x48: data segment, base 0, byte-granular limit 0xFFF, DPL 0, read/write.
        m.WriteQword(TestMachine.GdtBase + 0x48, 0x0040_9200_0000_0FFF);
        SystemRegisters s = m.Vcpu.GetSystemRegisters();
        s.Gdt = new DescriptorTableRegister(TestMachine.GdtBase, 0x4F);
        s.Idt = new DescriptorTableRegister(TestMachine.IdtBase, 0x7FF);
        m.Vcpu.SetSystemRegisters(s);
        m.SetGate32(13, 0x9000);
        m.Load(32, 0x9000, a =>
        {
            a.pop(eax);
            a.mov(__dword_ptr.ss[0x6000], eax);
            a.pop(eax);
            a.mov(__dword_ptr.ss[0x6004], eax);
            a.hlt();
        });
        m.Load(32, 0x8000, a =>
        {
            a.mov(ax, 0x48);
            a.mov(ds, ax);
            a.mov(ebx, __dword_ptr[0xFFC]); // the last 4 bytes inside the limit: fine
            a.mov(ecx, __dword_ptr[0xFFE]); // bytes 0xFFE..0x1001 cross the limit (SDM 5.3): #GP(0)
            a.hlt();
        });

        VcpuExit exit = m.Run();

        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), exit.Detail);
        Assert.That(m.ReadQword(Record) & 0xFFFF_FFFF, Is.EqualTo(0UL), "error code 0");
        Assert.That(m.ReadQword(Record) >> 32, Is.EqualTo(TestMachine.InstructionAddress(m, 32, 0x8000, 3)), "the faulting MOV");
    }

    [Test]
    public void UnrealModeKeepsTheCachedLimitAfterLeavingProtectedMode()
    {
        using var m = new TestMachine();
        m.WriteStandardGdt();
        m.Memory.Write(new GuestAddress(0x600), [0x37, 0x00, 0x00, 0x05, 0x00, 0x00]);
        m.WriteDword(0x20_0000, 0xB16B00B5);
        m.Load(16, 0x8000, a =>
        {
            a.cli();
            a.lgdt(__[0x600]);
            a.mov(eax, cr0);
            a.or(al, 1);
            a.mov(cr0, eax);
            a.mov(bx, 0x10); // 4 GiB flat data segment
            a.mov(ds, bx);
            a.and(al, 0xFE);
            a.mov(cr0, eax);
            a.xor(bx, bx);
            a.mov(ds, bx); // real-mode load: base = 0, the cached 4 GiB limit stays (SDM 20.1.1)
            a.mov(esi, 0x20_0000);
            a.mov(edx, __dword_ptr[esi]); // 67h: 32-bit address

            a.hlt();
        });
        m.StartReal(0x8000);

        VcpuExit exit = m.Run();

        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), exit.Detail);
        Assert.That(m.Vcpu.GetGeneralRegisters().Rdx, Is.EqualTo(0xB16B00B5UL));
        Assert.That(m.Vcpu.GetSystemRegisters().Ds.Limit, Is.EqualTo(0xFFFF_FFFFu));
    }

    [Test]
    public void RealModeAccessBeyond64KiBRaisesGp()
    {
        using var m = new TestMachine();
        // IVT[13] -> 0:0x9000, which records that #GP was delivered.
        m.WriteDword(13 * 4, 0x0000_9000);
        m.Load(16, 0x9000, a =>
        {
            a.mov(__word_ptr[0x6000], 0x0D0D);
            a.hlt();
        });
        m.Load(16, 0x8000, a =>
        {
            a.cli();
            a.mov(esi, 0xFFFF);
            a.mov(ax, __word_ptr[esi]); // bytes 0xFFFF..0x10000 exceed the 64 KiB real-mode limit
            a.hlt();
        });
        m.StartReal(0x8000);

        VcpuExit exit = m.Run();

        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted));
        Assert.That(m.ReadQword(Record) & 0xFFFF, Is.EqualTo(0x0D0DUL));
    }

    [Test]
    public void FarCallAndFarReturnBetweenCodeSegments()
    {
        using var m = new TestMachine();
        m.StartProtected32(0x8000);
        // Selector 0x48: a second 32-bit code segment with base 0x10000 (so offset 0 is linear 0x10000).
        m.WriteQword(TestMachine.GdtBase + 0x48, 0x00CF_9A01_0000_FFFF);
        SystemRegisters s = m.Vcpu.GetSystemRegisters();
        s.Gdt = new DescriptorTableRegister(TestMachine.GdtBase, 0x4F);
        m.Vcpu.SetSystemRegisters(s);
        m.Load(32, 0x10000, a =>
        {
            a.mov(ax, cs);
            a.movzx(ebx, ax);
            a.mov(ecx, __dword_ptr[esp]); // return EIP
            a.mov(edx, __dword_ptr[esp + 4]); // return CS
            a.retf();
        });
        m.Load(32, 0x8000, a =>
        {
            a.call(0x48, 0);
            a.mov(esi, 0x99);
            a.hlt();
        });

        VcpuExit exit = m.Run();

        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), exit.Detail);
        GeneralRegisters g = m.Vcpu.GetGeneralRegisters();
        Assert.That(g.Rbx, Is.EqualTo(0x48UL), "CS inside the callee");
        Assert.That(g.Rcx, Is.EqualTo(0x8007UL), "pushed EIP: after the 7-byte CALL ptr16:32");
        Assert.That(g.Rdx & 0xFFFF, Is.EqualTo(0x08UL), "pushed CS");
        Assert.That(g.Rsi, Is.EqualTo(0x99UL));
        Assert.That(m.Vcpu.GetSystemRegisters().Cs.Selector, Is.EqualTo((ushort)0x08));
    }

    [Test]
    public void CallGateToRing0SwitchesStacksAndCopiesParameters()
    {
        using var m = new TestMachine();
        m.StartProtected32(0x8000);
        // 32-bit call gate at 0x48 (SDM Vol. 3A, Figure 5-8): DPL 3, target 0x08:0x9000, one parameter.
        ulong gate = 0x9000UL | (0x08UL << 16) | (1UL << 32) | (0xCUL << 40) | (3UL << 45) | (1UL << 47);
        m.WriteQword(TestMachine.GdtBase + 0x48, gate);
        m.WriteDword(TestMachine.TssBase + 4, 0x7_0000); // ESP0
        m.WriteDword(TestMachine.TssBase + 8, 0x10); // SS0
        SystemRegisters s = m.Vcpu.GetSystemRegisters();
        s.Gdt = new DescriptorTableRegister(TestMachine.GdtBase, 0x4F);
        s.Idt = new DescriptorTableRegister(TestMachine.IdtBase, 0);
        s.Tr = new SegmentRegister(0x38, TestMachine.TssBase, 0x67, 0xB, true, 0, false, false, false, false, false, false);
        m.Vcpu.SetSystemRegisters(s);
        m.Load(32, 0x9000, a =>
        {
            a.mov(ax, 0x10); // the return to ring 3 nulled DS (DPL 0 < CPL 3): reload it
            a.mov(ds, ax);
            a.mov(__dword_ptr[0x6000], esp);
            for (int i = 0; i < 5; i++)
            {
                a.mov(eax, __dword_ptr[esp + i * 4]);
                a.mov(__dword_ptr[0x6004 + i * 4], eax);
            }

            a.retf(4);
        });
        m.Load(32, 0xA000, a =>
        {
            a.push(0x1234);
            a.call(0x4B, 0);
            a.mov(__dword_ptr.ss[0x6100], 0x77);
            a.hlt(); // CPL 3: #GP, no IDT: the run ends with a triple fault
        });
        m.Load(32, 0x8000, a =>
        {
            a.push(0x2B);
            a.push(0x6_F000);
            a.push(2);
            a.push(0x23);
            a.push(0xA000);
            a.iretd();
        });

        VcpuExit exit = m.Run();

        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Shutdown), exit.Detail);
        // SDM Vol. 2, CALL (call gate, more privilege): new stack SS0:ESP0 holds SS, ESP, parameters, CS, EIP.
        Assert.That(m.ReadQword(0x6000) & 0xFFFF_FFFF, Is.EqualTo(0x7_0000UL - 20), "ESP in the ring-0 procedure; " + exit.Detail);
        Assert.That(m.ReadQword(0x6004) & 0xFFFF_FFFF, Is.EqualTo(TestMachine.InstructionAddress(m, 32, 0xA000, 2)), "return EIP");
        Assert.That(m.ReadQword(0x6004) >> 32, Is.EqualTo(0x23UL), "caller CS");
        Assert.That(m.ReadQword(0x600C) & 0xFFFF_FFFF, Is.EqualTo(0x1234UL), "the copied parameter");
        Assert.That(m.ReadQword(0x600C) >> 32, Is.EqualTo(0x6_EFFCUL), "caller ESP");
        Assert.That(m.ReadQword(0x6014) & 0xFFFF, Is.EqualTo(0x2BUL), "caller SS");
        Assert.That(m.ReadQword(0x6100) & 0xFF, Is.EqualTo(0x77UL), "RETF 4 returned to ring 3");
        GeneralRegisters g = m.Vcpu.GetGeneralRegisters();
        Assert.That(g.Rsp, Is.EqualTo(0x6_F000UL), "RETF 4 released the parameter on the caller's stack");
        Assert.That(m.Vcpu.GetSystemRegisters().Cs.Selector, Is.EqualTo((ushort)0x23));
    }

    [Test]
    public void LarLslVerrVerwFollowTheDescriptorRules()
    {
        using var m = new TestMachine();
        m.StartProtected32(0x8000);
        m.Load(32, 0x8000, a =>
        {
            a.mov(ecx, 0x10);
            a.lar(eax, ecx); // data segment: access rights bytes (SDM Vol. 2, LAR: descriptor dword 2 & 0x00F0FF00)
            a.lsl(ebx, ecx); // limit scaled by G: 0xFFFFFFFF
            a.setz(dl);
            a.mov(ecx, 0x08);
            a.verw(cx); // code segments are never writable: ZF = 0
            a.setz(dh);
            a.verr(cx); // readable code: ZF = 1
            a.setz(ch);
            a.mov(esi, 0x400); // beyond the GDT limit: ZF = 0
            a.lsl(edi, esi);
            a.setz(cl);
            a.hlt();
        });

        VcpuExit exit = m.Run();

        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), exit.Detail);
        GeneralRegisters g = m.Vcpu.GetGeneralRegisters();
        // LAR loads dword 2 of the descriptor masked with 00FxFF00h; bits 19:16 are undefined (SDM Vol. 2, LAR).
        Assert.That(g.Rax & 0x00F0_FF00, Is.EqualTo(0x00C0_9200UL), "data descriptor 0x00CF9200 (not loaded, so still not accessed)");
        Assert.That(g.Rbx, Is.EqualTo(0xFFFF_FFFFUL));
        Assert.That(g.Rdx & 0xFFFF, Is.EqualTo(0x0001UL), "LSL ZF=1, VERW on code ZF=0");
        Assert.That((g.Rcx >> 8) & 0xFF, Is.EqualTo(1UL), "VERR on readable code");
        Assert.That(g.Rcx & 0xFF, Is.EqualTo(0UL), "selector beyond the GDT limit");
    }

    [Test]
    public void ResetStateAndRegisterAccessors()
    {
        using var m = new TestMachine();
        GeneralRegisters g = m.Vcpu.GetGeneralRegisters();
        SystemRegisters s = m.Vcpu.GetSystemRegisters();

        // SDM Vol. 3A, Table 10-1.
        Assert.That(g.Rip, Is.EqualTo(0xFFF0UL));
        Assert.That(g.Rflags, Is.EqualTo(2UL));
        Assert.That(g.Rdx, Is.EqualTo((ulong)ResetState.ProcessorSignature));
        Assert.That(s.Cs.Selector, Is.EqualTo((ushort)0xF000));
        Assert.That(s.Cs.Base, Is.EqualTo(0xFFFF_0000UL));
        Assert.That(s.Cr0, Is.EqualTo(0x6000_0010UL));
        Assert.That(m.Vcpu.TryGetMsr(0xC000_0080, out ulong efer) && efer == 0, Is.True);
        Assert.That(m.Vcpu.TrySetMsr(0xC000_0080, 1UL << 2), Is.False, "EFER bit 2 is reserved");
        Assert.That(m.Vcpu.TryGetMsr(0x12345, out _), Is.False, "an MSR this CPU does not have");
        Assert.That(m.Vcpu.TrySetMsr(0xC000_0100, 0x1234_5000), Is.True);
        Assert.That(m.Vcpu.GetSystemRegisters().Fs.Base, Is.EqualTo(0x1234_5000UL), "FS_BASE is FS's cached base");
    }
}
