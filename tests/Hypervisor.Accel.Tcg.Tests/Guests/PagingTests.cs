using Hypervisor.Core.Machine;
using Hypervisor.Core.Registers;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Accel.Tcg.Tests.Guests;

/// <summary>
/// Paging (Intel SDM Vol. 3A, chapter 4): translation in every form and page-fault error codes and CR2 (4.7: bit 0
/// P = protection violation, bit 1 W/R, bit 2 U/S, bit 3 RSVD, bit 4 I/D).
/// </summary>
public class PagingTests
{
    private const ulong Handler = 0x9000, Record = 0x6000;

    /// <summary>A #PF handler that stores the error code, CR2 and the saved RIP at 0x6000, then halts (IF=0).</summary>
    private static void InstallPageFaultRecorder(TestMachine m)
    {
        m.Load(64, Handler, a =>
        {
            a.pop(rax);
            a.mov(__qword_ptr[Record], rax);
            a.mov(rax, cr2);
            a.mov(__qword_ptr[Record + 8], rax);
            a.mov(rax, __qword_ptr[rsp]);
            a.mov(__qword_ptr[Record + 16], rax);
            a.hlt();
        });
        m.SetGate64(14, Handler);
    }

    private static (ulong Error, ulong Cr2, ulong Rip) RunToFault(TestMachine m)
    {
        VcpuExit exit = m.Run();
        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), exit.Detail);
        return (m.ReadQword(Record), m.ReadQword(Record + 8), m.ReadQword(Record + 16));
    }

    [Test]
    public void NotPresentReadGivesErrorCode0AndCr2()
    {
        using var m = new TestMachine();
        m.StartLong64(0x8000);
        InstallPageFaultRecorder(m);
        m.WriteQword(TestMachine.Pt + 0x50 * 8, 0); // page 0x50000 not present
        m.Load(64, 0x8000, a =>
        {
            a.mov(rbx, 0x1234);
            a.mov(rbx, __qword_ptr[0x50008]);
            a.hlt();
        });

        var (error, cr2, rip) = RunToFault(m);

        Assert.That(error, Is.EqualTo(0UL), "P=0, read, supervisor");
        Assert.That(cr2, Is.EqualTo(0x50008UL));
        Assert.That(rip, Is.EqualTo(0x800AUL), "a fault saves the address of the faulting instruction");
        Assert.That(m.Vcpu.GetGeneralRegisters().Rbx, Is.EqualTo(0x1234UL), "the faulting MOV wrote nothing");
    }

    [Test]
    public void WriteToReadOnlyPageFaultsOnlyWhenCr0WpIsSet()
    {
        using var m = new TestMachine();
        m.StartLong64(0x8000);
        InstallPageFaultRecorder(m);
        m.WriteQword(TestMachine.Pt + 0x51 * 8, 0x51000 | 5); // present, user, read-only
        m.Load(64, 0x8000, a =>
        {
            a.mov(__byte_ptr[0x51010], 0x77);
            a.hlt();
        });

        // CR0.WP = 0: supervisor writes ignore R/W (SDM 4.6.1), and the write sets the dirty bit (4.8).
        VcpuExit exit = m.Run();
        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted));
        Assert.That(m.ReadQword(0x51010) & 0xFF, Is.EqualTo(0x77UL));
        Assert.That(m.ReadQword(TestMachine.Pt + 0x51 * 8) & 0x60, Is.EqualTo(0x60UL), "accessed and dirty set");

        m.StartLong64(0x8000);
        m.WriteQword(TestMachine.Pt + 0x51 * 8, 0x51000 | 5);
        SystemRegisters s = m.Vcpu.GetSystemRegisters();
        s.Cr0 |= 1UL << 16; // WP
        m.Vcpu.SetSystemRegisters(s);
        var (error, cr2, _) = RunToFault(m);
        Assert.That(error, Is.EqualTo(3UL), "P=1 (protection), W=1, supervisor");
        Assert.That(cr2, Is.EqualTo(0x51010UL));
    }

    [Test]
    public void FetchFromNoExecutePageSetsInstructionFetchBit()
    {
        using var m = new TestMachine();
        m.StartLong64(0x8000);
        InstallPageFaultRecorder(m);
        SystemRegisters s = m.Vcpu.GetSystemRegisters();
        s.Efer |= 1UL << 11; // NXE
        m.Vcpu.SetSystemRegisters(s);
        m.WriteQword(TestMachine.Pt + 0x52 * 8, 0x52000 | 7 | (1UL << 63));
        m.Load(64, 0x52000, a => a.hlt());
        m.Load(64, 0x8000, a =>
        {
            a.mov(rax, 0x52000);
            a.jmp(rax);
        });

        var (error, cr2, rip) = RunToFault(m);

        Assert.That(error, Is.EqualTo(0x11UL), "P=1 and I/D=1 (fetch with EFER.NXE)");
        Assert.That(cr2, Is.EqualTo(0x52000UL));
        Assert.That(rip, Is.EqualTo(0x52000UL));
    }

    [Test]
    public void ReservedBitInEntryGivesRsvdErrorCode()
    {
        using var m = new TestMachine();
        m.StartLong64(0x8000);
        InstallPageFaultRecorder(m);
        // Bit 45 is above the physical-address width (40, CPUID 0x80000008), so it is reserved.
        m.WriteQword(TestMachine.Pt + 0x53 * 8, 0x53000 | 7 | (1UL << 45));
        m.Load(64, 0x8000, a =>
        {
            a.mov(al, __byte_ptr[0x53000]);
            a.hlt();
        });

        var (error, cr2, _) = RunToFault(m);

        Assert.That(error, Is.EqualTo(9UL), "P=1 and RSVD=1");
        Assert.That(cr2, Is.EqualTo(0x53000UL));
    }

    [Test]
    public void UserAccessToSupervisorPageFaultsWithUserBit()
    {
        using var m = new TestMachine();
        m.StartLong64(0x8000);
        InstallPageFaultRecorder(m);
        m.WriteQword(TestMachine.Pt + 0x54 * 8, 0x54000 | 3); // supervisor page
        m.WriteQword(TestMachine.TssBase + 4, 0x7_0000); // RSP0
        // Ring 3 code reads the supervisor page.
        m.Load(64, 0xA000, a =>
        {
            a.mov(rax, __qword_ptr[0x54000]);
            a.hlt();
        });
        m.Load(64, 0x8000, a =>
        {
            // IRETQ frame: SS, RSP, RFLAGS, CS, RIP (SDM Vol. 3A, 6.14.3).
            a.push(0x2B);
            a.push(0x6_F000);
            a.push(2);
            a.push(0x33);
            a.push(0xA000);
            a.iretq();
        });

        var (error, cr2, rip) = RunToFault(m);

        Assert.That(error, Is.EqualTo(5UL), "P=1, read, U/S=1");
        Assert.That(cr2, Is.EqualTo(0x54000UL));
        Assert.That(rip, Is.EqualTo(0xA000UL));
    }

    [Test]
    public void AccessCrossingIntoMissingPageFaultsWithoutPartialWrite()
    {
        using var m = new TestMachine();
        m.StartLong64(0x8000);
        InstallPageFaultRecorder(m);
        m.WriteQword(TestMachine.Pt + 0x56 * 8, 0);
        m.WriteQword(0x55FF8, 0x1111_1111_1111_1111);
        m.Load(64, 0x8000, a =>
        {
            a.mov(rax, 0x2222_2222_2222_2222);
            a.mov(__qword_ptr[0x55FFC], rax);
            a.hlt();
        });

        var (error, cr2, _) = RunToFault(m);

        Assert.That(error, Is.EqualTo(2UL), "P=0, write");
        Assert.That(cr2 >> 12, Is.EqualTo(0x56UL), "CR2 lies in the page that is not present");
        Assert.That(m.ReadQword(0x55FF8), Is.EqualTo(0x1111_1111_1111_1111UL), "no byte of the faulting store was written");
    }

    [Test]
    public void LargePagesTranslate2MiBAnd1GiB()
    {
        using var m = new TestMachine();
        m.StartLong64(0x8000);
        // PDPT[1]: a 1 GiB page mapping linear 1 GiB..2 GiB to physical 0 (PS=1, SDM Table 4-16).
        m.WriteQword(TestMachine.Pdpt + 8, 0 | 0x87);
        m.WriteQword(0x6100, 0xAAAA_0000_0000_0001);
        m.WriteQword(0x20_0200, 0xBBBB_0000_0000_0002);
        m.Load(64, 0x8000, a =>
        {
            a.mov(rax, 0x4000_6100);
            a.mov(rbx, __qword_ptr[rax]);
            a.mov(rcx, __qword_ptr[0x20_0200]); // the 2 MiB page at PD[1] maps 2 MiB identity
            a.hlt();
        });

        VcpuExit exit = m.Run();

        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), exit.Detail);
        GeneralRegisters g = m.Vcpu.GetGeneralRegisters();
        Assert.That(g.Rbx, Is.EqualTo(0xAAAA_0000_0000_0001UL));
        Assert.That(g.Rcx, Is.EqualTo(0xBBBB_0000_0000_0002UL));
    }

    [Test]
    public void ThirtyTwoBitPagingWith4KiBAnd4MiBPages()
    {
        using var m = new TestMachine();
        // PD at 0x30000: PDE[0] -> PT at 0x31000 (identity for the first 4 MiB except page 0x40 -> physical 0x60000),
        // PDE[1] = 4 MiB page (PS with CR4.PSE) at physical 0.
        m.WriteDword(0x30000, 0x31000 | 3);
        m.WriteDword(0x30004, 0 | 0x83);
        for (uint i = 0; i < 1024; i++)
        {
            m.WriteDword(0x31000 + i * 4, (i << 12) | 3);
        }

        m.WriteDword(0x31000 + 0x40 * 4, 0x60000 | 3);
        m.WriteDword(0x60010, 0xCAFEF00D);
        m.WriteDword(0x2010, 0x600DD00D);
        m.Load(32, 0x8000, a =>
        {
            a.mov(eax, 0x30000);
            a.mov(cr3, eax);
            a.mov(eax, cr4);
            a.or(eax, 0x10); // PSE
            a.mov(cr4, eax);
            a.mov(eax, cr0);
            a.or(eax, 0x8000_0000);
            a.mov(cr0, eax);
            a.mov(ebx, __dword_ptr[0x40010]);
            a.mov(ecx, __dword_ptr[0x40_2010]);
            a.hlt();
        });
        m.StartProtected32(0x8000);

        VcpuExit exit = m.Run();

        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), exit.Detail);
        GeneralRegisters g = m.Vcpu.GetGeneralRegisters();
        Assert.That(g.Rbx, Is.EqualTo(0xCAFEF00DUL), "4 KiB PTE remaps linear 0x40000 to physical 0x60000");
        Assert.That(g.Rcx, Is.EqualTo(0x600DD00DUL), "4 MiB page maps linear 4 MiB to physical 0");
        Assert.That(m.ReadQword(0x30004) & 0x20, Is.EqualTo(0x20UL), "the 4 MiB PDE was marked accessed");
    }

    [Test]
    public void PaePagingWith2MiBPageOutsideLongMode()
    {
        using var m = new TestMachine();
        // PDPT at 0x30000 (32-byte aligned), PDPTE[0] -> PD at 0x31000; PD[0] = 2 MiB identity, PD[1] = 2 MiB page -> 0.
        m.WriteQword(0x30000, 0x31000 | 1);
        m.WriteQword(0x31000, 0 | 0x83);
        m.WriteQword(0x31008, 0 | 0x83);
        m.WriteDword(0x5010, 0x12345678);
        m.Load(32, 0x8000, a =>
        {
            a.mov(eax, 0x30000);
            a.mov(cr3, eax);
            a.mov(eax, cr4);
            a.or(eax, 0x20); // PAE
            a.mov(cr4, eax);
            a.mov(eax, cr0);
            a.or(eax, 0x8000_0000);
            a.mov(cr0, eax);
            a.mov(ebx, __dword_ptr[0x20_5010]);
            a.hlt();
        });
        m.StartProtected32(0x8000);

        VcpuExit exit = m.Run();

        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), exit.Detail);
        Assert.That(m.Vcpu.GetGeneralRegisters().Rbx, Is.EqualTo(0x12345678UL));
        Assert.That(m.Vcpu.GetSystemRegisters().Efer & 0x400, Is.EqualTo(0UL), "no LMA without EFER.LME");
    }
}
