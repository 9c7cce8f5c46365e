using Hypervisor.Core.Machine;
using Hypervisor.Core.Registers;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Accel.Tcg.Tests.Guests;

/// <summary>
/// Supervisor-mode execution and access prevention and user-mode instruction prevention (Intel SDM Vol. 3A, 4.6:
/// CR4.SMEP bit 20 forbids supervisor instruction fetches from user pages; CR4.SMAP bit 21 forbids supervisor data
/// accesses to user pages unless EFLAGS.AC (bit 18) is set, and always for implicit supervisor accesses; 2.5: CR4.UMIP
/// bit 11 makes SGDT/SIDT/SLDT/SMSW/STR raise #GP(0) at CPL &gt; 0). STAC/CLAC (SDM Vol. 2) set and clear AC and raise
/// #UD at CPL &gt; 0. CPUID.(EAX=7,ECX=0): EBX bit 7 SMEP, EBX bit 20 SMAP, ECX bit 2 UMIP.
/// </summary>
/// <remarks>Runs on the interpreter and, with every block translated, on the JIT (its inline memory path applies SMAP too).</remarks>
[TestFixture(Jit.JitCoverage.Interpreter)]
[TestFixture(Jit.JitCoverage.Jit)]
public class SmepSmapTests(string engine)
{
    private const ulong Record = 0x6000;
    private const ulong Smep = 1UL << 20, Smap = 1UL << 21, Umip = 1UL << 11, Ac = 1UL << 18;

    /// <summary>Handlers for #UD, #GP and #PF that store vector, error code, CR2 and the saved RIP at 0x6000, then halt.</summary>
    private static void InstallRecorders(TestMachine m)
    {
        foreach (var (vector, address, hasError) in new[] { (6, 0x9000UL, false), (13, 0x9100UL, true), (14, 0x9200UL, true) })
        {
            m.Load(64, address, a =>
            {
                if (hasError)
                {
                    a.pop(rax);
                }
                else
                {
                    a.xor(eax, eax);
                }

                a.mov(__qword_ptr[Record], rax);
                a.mov(rax, cr2);
                a.mov(__qword_ptr[Record + 8], rax);
                a.mov(rax, __qword_ptr[rsp]);
                a.mov(__qword_ptr[Record + 16], rax);
                a.mov(__qword_ptr[Record + 24], vector);
                a.hlt();
            });
            m.SetGate64(vector, address);
        }

        m.WriteQword(Record + 24, 0xFF);
        m.WriteQword(TestMachine.TssBase + 4, 0x7_E000); // RSP0 for faults taken from ring 3
    }

    /// <summary>Makes every 4 KiB page of the first 2 MiB supervisor-only except <paramref name="userPages"/>.</summary>
    private static void SupervisorPagesExcept(TestMachine m, params ulong[] userPages)
    {
        for (ulong i = 0; i < 512; i++)
        {
            ulong page = i << 12;
            m.WriteQword(TestMachine.Pt + i * 8, page | (userPages.Contains(page) ? 7UL : 3UL));
        }
    }

    private static void SetCr4(TestMachine m, ulong bits)
    {
        SystemRegisters s = m.Vcpu.GetSystemRegisters();
        s.Cr4 |= bits;
        m.Vcpu.SetSystemRegisters(s);
    }

    private static (ulong Vector, ulong Error, ulong Cr2, ulong Rip) RunToHandler(TestMachine m)
    {
        VcpuExit exit = m.Run();
        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), exit.Detail);
        return (m.ReadQword(Record + 24), m.ReadQword(Record), m.ReadQword(Record + 8), m.ReadQword(Record + 16));
    }

    [TestCase(false)]
    [TestCase(true)]
    public void SmepForbidsSupervisorFetchFromUserPage(bool smep)
    {
        using var m = new TestMachine(options: Jit.JitCoverage.For(engine));
        m.StartLong64(0x8000);
        InstallRecorders(m);
        SupervisorPagesExcept(m, 0x52000);
        m.Load(64, 0x52000, a => a.hlt());
        m.Load(64, 0x8000, a =>
        {
            a.mov(rax, 0x52000);
            a.jmp(rax);
        });
        if (smep)
        {
            SetCr4(m, Smep);
        }

        VcpuExit exit = m.Run();

        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), exit.Detail);
        if (!smep)
        {
            Assert.That(exit.InstructionPointer, Is.EqualTo(0x52001UL), "without SMEP the supervisor runs the user page's HLT");
            Assert.That(m.ReadQword(Record + 24), Is.EqualTo(0xFFUL), "no exception");
            return;
        }

        Assert.That(m.ReadQword(Record + 24), Is.EqualTo(14UL), "#PF");
        Assert.That(m.ReadQword(Record), Is.EqualTo(0x11UL), "P=1 (protection) and I/D=1 (CR4.SMEP makes fetches report I/D)");
        Assert.That(m.ReadQword(Record + 8), Is.EqualTo(0x52000UL), "CR2");
        Assert.That(m.ReadQword(Record + 16), Is.EqualTo(0x52000UL), "the fault is reported at the target");
    }

    [Test]
    public void SmapForbidsSupervisorReadOfUserPageUnlessAcIsSet()
    {
        using var m = new TestMachine(options: Jit.JitCoverage.For(engine));
        m.StartLong64(0x8000);
        InstallRecorders(m);
        SupervisorPagesExcept(m, 0x51000);
        m.WriteQword(0x51008, 0xABCD);
        m.WriteQword(0x51010, 0x1234);
        m.Load(64, 0x8000, a =>
        {
            a.stac();
            a.mov(rbx, __qword_ptr[0x51008]); // AC=1: allowed
            a.clac();
            a.mov(rcx, __qword_ptr[0x51010]); // AC=0: #PF
            a.hlt();
        });
        SetCr4(m, Smap);

        var (vector, error, cr2, rip) = RunToHandler(m);

        Assert.That(vector, Is.EqualTo(14UL));
        Assert.That(error, Is.EqualTo(1UL), "P=1, read, supervisor");
        Assert.That(cr2, Is.EqualTo(0x51010UL));
        Assert.That(rip, Is.EqualTo(0x8000UL + 3 + 8 + 3), "the second MOV faulted (STAC and CLAC are 3 bytes, the MOV 8)");
        GeneralRegisters g = m.Vcpu.GetGeneralRegisters();
        Assert.That(g.Rbx, Is.EqualTo(0xABCDUL), "the read with AC=1 went through");
        Assert.That(g.Rcx, Is.EqualTo(0UL), "the faulting read wrote nothing");
    }

    [TestCase(false)]
    [TestCase(true)]
    public void SmapForbidsSupervisorWriteToUserPage(bool smap)
    {
        using var m = new TestMachine(options: Jit.JitCoverage.For(engine));
        m.StartLong64(0x8000);
        InstallRecorders(m);
        SupervisorPagesExcept(m, 0x51000);
        m.Load(64, 0x8000, a =>
        {
            a.mov(__byte_ptr[0x51020], 0x5A);
            a.hlt();
        });
        if (smap)
        {
            SetCr4(m, Smap);
        }

        VcpuExit exit = m.Run();

        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), exit.Detail);
        Assert.That(m.ReadQword(0x51020) & 0xFF, Is.EqualTo(smap ? 0UL : 0x5AUL));
        Assert.That(m.ReadQword(Record + 24), Is.EqualTo(smap ? 14UL : 0xFFUL));
        if (smap)
        {
            Assert.That(m.ReadQword(Record), Is.EqualTo(3UL), "P=1, W=1, supervisor");
            Assert.That(m.ReadQword(Record + 8), Is.EqualTo(0x51020UL));
        }
    }

    [Test]
    public void SmapAppliesToImplicitSupervisorAccessesEvenWithAcSet()
    {
        // Descriptor-table reads are implicit supervisor accesses: with the LDT on a user page, loading DS from it
        // faults under SMAP even though AC is set (SDM Vol. 3A, 4.6.1). (The GDT stays supervisor: event delivery
        // needs it.)
        using var m = new TestMachine(options: Jit.JitCoverage.For(engine));
        m.StartLong64(0x8000);
        InstallRecorders(m);
        SupervisorPagesExcept(m, 0x52000);
        m.WriteQword(0x52008, 0x00CF_9200_0000_FFFF); // LDT entry 1: flat data
        m.WriteQword(TestMachine.GdtBase + 0x48, 0x0000_8205_2000_000F); // 64-bit LDT descriptor: base 0x52000, limit 0xF
        m.WriteQword(TestMachine.GdtBase + 0x50, 0);
        SystemRegisters s = m.Vcpu.GetSystemRegisters();
        s.Gdt = new DescriptorTableRegister(TestMachine.GdtBase, 0x57);
        m.Vcpu.SetSystemRegisters(s);
        m.Load(64, 0x8000, a =>
        {
            a.mov(eax, 0x48);
            a.lldt(ax);
            a.stac();
            a.mov(eax, 0x0C); // LDT entry 1, RPL 0
            a.mov(ds, eax);
            a.hlt();
        });
        SetCr4(m, Smap);

        var (vector, error, cr2, _) = RunToHandler(m);

        Assert.That(vector, Is.EqualTo(14UL));
        Assert.That(error & 5, Is.EqualTo(1UL), "P=1, supervisor");
        Assert.That(cr2, Is.EqualTo(0x52008UL), "the descriptor's address in the LDT");
    }

    [Test]
    public void StacAndClacSetAndClearAcAtCpl0AndRaiseUdInRing3()
    {
        using var m = new TestMachine(options: Jit.JitCoverage.For(engine));
        m.StartLong64(0x8000);
        InstallRecorders(m);
        m.Load(64, 0xA000, a =>
        {
            a.stac(); // ring 3: #UD
            a.hlt();
        });
        m.Load(64, 0x8000, a =>
        {
            a.stac();
            a.pushfq();
            a.pop(rbx);
            a.clac();
            a.pushfq();
            a.pop(rcx);
            a.push(0x2B); // SS: user data, RPL 3
            a.push(0x6_F000);
            a.push(2);
            a.push(0x33); // CS: user code64, RPL 3
            a.push(0xA000);
            a.iretq();
        });

        var (vector, _, _, rip) = RunToHandler(m);

        GeneralRegisters g = m.Vcpu.GetGeneralRegisters();
        Assert.That(g.Rbx & Ac, Is.EqualTo(Ac), "STAC sets EFLAGS.AC");
        Assert.That(g.Rcx & Ac, Is.EqualTo(0UL), "CLAC clears it");
        Assert.That(vector, Is.EqualTo(6UL), "STAC at CPL 3 is #UD");
        Assert.That(rip, Is.EqualTo(0xA000UL));
    }

    [TestCase(false)]
    [TestCase(true)]
    public void UmipMakesSgdtAtCpl3RaiseGp(bool umip)
    {
        using var m = new TestMachine(options: Jit.JitCoverage.For(engine));
        m.StartLong64(0x8000);
        InstallRecorders(m);
        m.Load(64, 0xA000, a =>
        {
            a.sgdt(__[0x6100]);
            a.hlt(); // ring 3: #GP, recorded as vector 13 with RIP 0xA008
        });
        m.Load(64, 0x8000, a =>
        {
            a.sgdt(__[0x6200]); // CPL 0: allowed with or without UMIP
            a.push(0x2B);
            a.push(0x6_F000);
            a.push(2);
            a.push(0x33);
            a.push(0xA000);
            a.iretq();
        });
        if (umip)
        {
            SetCr4(m, Umip);
        }

        var (vector, error, _, rip) = RunToHandler(m);

        Assert.That(m.ReadQword(0x6202) & 0xFFFF_FFFF, Is.EqualTo(TestMachine.GdtBase), "SGDT at CPL 0 stored the base");
        Assert.That(vector, Is.EqualTo(13UL), "#GP: UMIP's, or the HLT's at CPL 3");
        Assert.That(error, Is.EqualTo(0UL));
        Assert.That(rip, Is.EqualTo(umip ? 0xA000UL : 0xA008UL), umip ? "SGDT faulted" : "SGDT ran, HLT faulted");
        Assert.That(m.ReadQword(0x6102) & 0xFFFF_FFFF, Is.EqualTo(umip ? 0UL : TestMachine.GdtBase));
    }

    [Test]
    public void CpuidLeaf7AdvertisesSmepSmapUmipAndCr4AcceptsThem()
    {
        using var m = new TestMachine(options: Jit.JitCoverage.For(engine));
        m.StartLong64(0x8000);
        InstallRecorders(m);
        SupervisorPagesExcept(m); // with SMEP on, the supervisor may not run from user pages
        m.Load(64, 0x8000, a =>
        {
            a.mov(eax, 7);
            a.xor(ecx, ecx);
            a.cpuid();
            a.mov(r8, rbx);
            a.mov(r9, rcx);
            a.mov(rax, cr4);
            a.or(rax, (int)(Smep | Smap | Umip));
            a.mov(cr4, rax);
            a.mov(r10, cr4);
            a.hlt();
        });

        VcpuExit exit = m.Run();

        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), exit.Detail);
        GeneralRegisters g = m.Vcpu.GetGeneralRegisters();
        Assert.That(g.R8 & ((1UL << 7) | (1UL << 20)), Is.EqualTo((1UL << 7) | (1UL << 20)), "EBX: SMEP (7), SMAP (20)");
        Assert.That(g.R9 & (1UL << 2), Is.EqualTo(1UL << 2), "ECX: UMIP (2)");
        Assert.That(g.R10 & (Smep | Smap | Umip), Is.EqualTo(Smep | Smap | Umip), "MOV CR4 took the bits without #GP");
        Assert.That(m.ReadQword(Record + 24), Is.EqualTo(0xFFUL), "no exception");
    }
}
