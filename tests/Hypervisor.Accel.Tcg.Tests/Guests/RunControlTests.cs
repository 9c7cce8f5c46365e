using System.Diagnostics;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Memory;
using Hypervisor.Core.Registers;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Accel.Tcg.Tests.Guests;

/// <summary>Run control: instruction budgets, kicks, port I/O, self-modifying code, and robustness on garbage.</summary>
public class RunControlTests
{
    [Test]
    public void InstructionLimitStopsAfterExactlyThatManyInstructions()
    {
        using var m = new TestMachine();
        m.StartLong64(0x8000);
        m.Load(64, 0x8000, a =>
        {
            var loop = a.CreateLabel();
            a.Label(ref loop);
            a.inc(rax);
            a.jmp(loop);
        });

        VcpuExit exit = m.Vcpu.Run(1001);

        // Instructions 1, 3, ..., 1001 are INC: 501 of them.
        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.InstructionLimit));
        Assert.That(m.Vcpu.GetGeneralRegisters().Rax, Is.EqualTo(501UL));
        Assert.That(m.Vcpu.Statistics.Instructions, Is.EqualTo(1001L));
    }

    [Test]
    public void KickFromAnotherThreadInterruptsAnEndlessLoop()
    {
        using var m = new TestMachine();
        m.StartLong64(0x8000);
        m.Load(64, 0x8000, a =>
        {
            var loop = a.CreateLabel();
            a.Label(ref loop);
            a.jmp(loop);
        });

        var sw = Stopwatch.StartNew();
        using var timer = new Timer(_ => m.Vcpu.Kick(), null, 100, Timeout.Infinite);
        VcpuExit exit = m.Vcpu.Run();
        sw.Stop();

        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Interrupted));
        Assert.That(sw.ElapsedMilliseconds, Is.LessThan(5000), "the kick is seen within a bounded latency");
        Assert.That(exit.InstructionPointer, Is.EqualTo(0x8000UL));
    }

    [Test]
    public void KickBeforeRunMakesTheNextRunReturnImmediately()
    {
        using var m = new TestMachine();
        m.StartLong64(0x8000);
        m.Load(64, 0x8000, a => a.hlt());
        m.Vcpu.Kick();

        Assert.That(m.Vcpu.Run().Reason, Is.EqualTo(VcpuExitReason.Interrupted));
        Assert.That(m.Vcpu.Run().Reason, Is.EqualTo(VcpuExitReason.Halted));
    }

    [Test]
    public void ApplicationProcessorsWaitForAStartupIpiInsteadOfRunning()
    {
        using var m = new TestMachine();
        IVcpu ap = m.Vm.CreateVcpu(1);
        // SDM Vol. 3A, 9.4: only the bootstrap processor runs from the reset vector; APs wait for INIT/SIPI.
        using var timer = new Timer(_ => ap.Kick(), null, 100, Timeout.Infinite);
        VcpuExit exit = ap.Run(1000);

        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Interrupted));
        Assert.That(ap.Statistics.Instructions, Is.Zero);
    }

    [Test]
    public void PortInputOutputAndStringIoReachTheDevices()
    {
        using var m = new TestMachine(addRegions: null);
        m.Load(64, 0xB000, a => a.db("abc"u8.ToArray()));
        m.StartLong64(0x8000);
        m.Load(64, 0x8000, a =>
        {
            a.mov(dx, 0x3F8);
            a.mov(rsi, 0xB000);
            a.mov(ecx, 3);
            a.rep.outsb();
            a.mov(dx, 0x510);
            a.@in(eax, dx); // unclaimed port: reads all ones
            a.hlt();
        });

        VcpuExit exit = m.Run();

        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted));
        Assert.That(m.Serial.Text, Is.EqualTo("abc"));
        GeneralRegisters g = m.Vcpu.GetGeneralRegisters();
        Assert.That(g.Rcx, Is.EqualTo(0UL), "REP decremented RCX to zero");
        Assert.That(g.Rsi, Is.EqualTo(0xB003UL));
        Assert.That(g.Rax, Is.EqualTo(0xFFFF_FFFFUL), "an unclaimed port reads as all ones (guest-contract.md)");
        Assert.That(m.Ports.UnclaimedReadCount, Is.EqualTo(1));
        Assert.That(m.Vcpu.Statistics.Exits, Is.GreaterThanOrEqualTo(4));
    }

    [Test]
    public void RealModeStringCopyWithAddressSizeOverrideUsesEsiEdi()
    {
        using var m = new TestMachine();
        m.Memory.Write(new GuestAddress(0x1_2000), "hello"u8);
        m.Load(16, 0x8000, a =>
        {
            // Big-real addressing: with a 67h prefix MOVSB uses ESI/EDI, but real-mode limits (64 KiB) still apply,
            // so stay below 0x10000 in offsets and use segments for the high address.
            a.mov(ax, 0x1000);
            a.mov(ds, ax);
            a.mov(ax, 0x2000);
            a.mov(es, ax);
            a.mov(esi, 0x2000);
            a.mov(edi, 0x100);
            a.mov(ecx, 5);
            a.cld();
            a.rep.movsb(); // 16-bit addressing (SI/DI/CX)
            a.mov(esi, 0x2000);
            a.mov(edi, 0x200);
            a.mov(ecx, 5);
            a.db(0x67); // address-size override: ESI/EDI/ECX
            a.rep.movsb();
            a.hlt();
        });
        m.StartReal(0x8000);

        VcpuExit exit = m.Run();

        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), exit.Detail);
        byte[] copy = new byte[5];
        m.Memory.Read(new GuestAddress(0x2_0100), copy);
        Assert.That(copy, Is.EqualTo("hello"u8.ToArray()));
        m.Memory.Read(new GuestAddress(0x2_0200), copy);
        Assert.That(copy, Is.EqualTo("hello"u8.ToArray()));
        Assert.That(m.Vcpu.GetGeneralRegisters().Rdi, Is.EqualTo(0x205UL));
    }

    [Test]
    public void SelfModifyingCodeIsSeenByTheNextInstruction()
    {
        using var m = new TestMachine();
        m.StartLong64(0x8000);
        // 0x8000: mov byte [0x800A], 0x42 (C6 04 25 disp32 imm8 = 8 bytes)... target instruction at 0x8008.
        m.Load(64, 0x8000, a =>
        {
            a.mov(__byte_ptr[0x8009], 0x42); // patch the immediate of the MOV AL below (8 bytes)
            a.mov(al, 0x00); // B0 ib at 0x8008
            a.hlt();
        });

        VcpuExit exit = m.Run();

        // SDM Vol. 3A, 11.6: a write to code about to be executed is seen by that execution.
        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), exit.Detail);
        Assert.That(m.Vcpu.GetGeneralRegisters().Rax & 0xFF, Is.EqualTo(0x42UL));
    }

    [Test]
    public void HostWriteToCodeInvalidatesDecodedBlocks()
    {
        using var m = new TestMachine();
        m.StartLong64(0x8000);
        m.Load(64, 0x8000, a =>
        {
            a.mov(eax, 1);
            a.hlt();
        });
        Assert.That(m.Run().Reason, Is.EqualTo(VcpuExitReason.Halted));
        Assert.That(m.Vcpu.GetGeneralRegisters().Rax, Is.EqualTo(1UL));

        m.Load(64, 0x8000, a =>
        {
            a.mov(eax, 2);
            a.hlt();
        });
        m.StartLong64(0x8000);
        Assert.That(m.Run().Reason, Is.EqualTo(VcpuExitReason.Halted));
        Assert.That(m.Vcpu.GetGeneralRegisters().Rax, Is.EqualTo(2UL), "the new code ran, not the cached block");
    }

    [Test]
    public void CpuidAdvertisesLongModeAndTheFpuButNoMmx()
    {
        using var m = new TestMachine();
        m.StartLong64(0x8000);
        m.Load(64, 0x8000, a =>
        {
            a.mov(eax, 1);
            a.cpuid();
            a.mov(r8d, edx);
            a.mov(r9d, ecx);
            a.mov(eax, 0x8000_0001);
            a.cpuid();
            a.mov(r10d, edx);
            a.hlt();
        });

        Assert.That(m.Run().Reason, Is.EqualTo(VcpuExitReason.Halted));
        GeneralRegisters g = m.Vcpu.GetGeneralRegisters();
        Assert.That(g.R8 & 1, Is.EqualTo(1UL), "leaf 1 EDX.FPU[0]: the x87 is complete");
        Assert.That(g.R8 & (1UL << 23), Is.Zero, "MMX (SSE-SSE4.2, FXSR and XSAVE are advertised: SseXsaveFaultTests)");
        Assert.That((g.R10 >> 29) & 1, Is.EqualTo(1UL), "leaf 0x80000001 EDX.LM[29]");
    }

    [Test]
    public void BiosSignIdHoldsTheWrittenValueUntilCpuidLoadsTheUpdateSignature()
    {
        // SDM Vol. 3A, 10.11.7.1: software writes 0 to IA32_BIOS_SIGN_ID (8BH), executes CPUID.01H, and reads the
        // update signature from the MSR's high dword (0 when no update is loaded). Linux's early_init_intel does
        // exactly this; an unimplemented MSR would #GP there.
        using var m = new TestMachine();
        m.StartLong64(0x8000);
        m.Load(64, 0x8000, a =>
        {
            a.mov(ecx, 0x8B);
            a.mov(eax, 0x9ABC_DEF0);
            a.mov(edx, 0x1234_5678);
            a.wrmsr();
            a.xor(eax, eax);
            a.xor(edx, edx);
            a.rdmsr();
            a.mov(r8d, eax);
            a.mov(r9d, edx);
            a.mov(eax, 1);
            a.cpuid();
            a.mov(ecx, 0x8B);
            a.mov(eax, 0xFFFF_FFFF);
            a.mov(edx, eax);
            a.rdmsr();
            a.mov(r10d, eax);
            a.mov(r11d, edx);
            a.hlt();
        });

        Assert.That(m.Run().Reason, Is.EqualTo(VcpuExitReason.Halted));
        GeneralRegisters g = m.Vcpu.GetGeneralRegisters();
        Assert.That((g.R9 << 32) | g.R8, Is.EqualTo(0x1234_5678_9ABC_DEF0UL), "before CPUID the MSR reads back the write");
        Assert.That((g.R11 << 32) | g.R10, Is.Zero, "after CPUID.01H: signature 0 (no microcode update loaded)");
    }

    [Test]
    public void X87RaisesNmWithCr0EmOrTsAndRunsOtherwise()
    {
        // SDM Vol. 3A, Table 2-2: x87 instructions raise #NM when CR0.EM or CR0.TS is set; WAIT/FWAIT only when CR0.MP
        // and CR0.TS are both set. With both clear FLD1 executes (the x87 is complete, so nothing here is #UD).
        using var m = new TestMachine();
        m.SetGate64(7, 0x9000);
        m.SetGate64(6, 0x9100);
        m.Load(64, 0x9000, a =>
        {
            a.mov(ebx, 7);
            a.hlt();
        });
        m.Load(64, 0x9100, a =>
        {
            a.mov(ebx, 6);
            a.hlt();
        });
        m.Load(64, 0x8000, a =>
        {
            a.fld1();
            a.mov(ebx, 1);
            a.hlt();
        });
        m.Load(64, 0x8100, a =>
        {
            a.wait();
            a.mov(ebx, 1);
            a.hlt();
        });

        ulong RunWithCr0(ulong rip, ulong setBits)
        {
            m.StartLong64(rip);
            SystemRegisters s = m.Vcpu.GetSystemRegisters();
            s.Cr0 |= setBits;
            m.Vcpu.SetSystemRegisters(s);
            Assert.That(m.Run().Reason, Is.EqualTo(VcpuExitReason.Halted));
            return m.Vcpu.GetGeneralRegisters().Rbx;
        }

        const ulong Mp = 2, Em = 4, Ts = 8;
        Assert.Multiple(() =>
        {
            Assert.That(RunWithCr0(0x8000, Em), Is.EqualTo(7UL), "FLD1 with CR0.EM=1 raises #NM");
            Assert.That(RunWithCr0(0x8000, Ts), Is.EqualTo(7UL), "FLD1 with CR0.TS=1 raises #NM");
            Assert.That(RunWithCr0(0x8100, Ts), Is.EqualTo(1UL), "FWAIT with CR0.TS=1, MP=0 runs");
            Assert.That(RunWithCr0(0x8100, Em), Is.EqualTo(1UL), "FWAIT ignores CR0.EM");
            Assert.That(RunWithCr0(0x8100, Mp | Ts), Is.EqualTo(7UL), "FWAIT with CR0.MP=1 and TS=1 raises #NM");
            Assert.That(RunWithCr0(0x8000, Mp), Is.EqualTo(1UL), "FLD1 runs with CR0.EM=0, TS=0");
            Assert.That(m.Vcpu.GetFpuRegisters().St[0], Is.EqualTo(new Float80(0x8000_0000_0000_0000, 0x3FFF)), "FLD1 pushed +1.0");
            Assert.That(m.Cpu.UnimplementedCounts.ContainsKey(Mnemonic.Fld1), Is.False, "FLD1 is implemented");
        });
    }

    [Test]
    public void LockPrefixOnlyOnMemoryReadModifyWrite()
    {
        using var m = new TestMachine();
        m.StartLong64(0x8000);
        m.SetGate64(6, 0x9000);
        m.Load(64, 0x9000, a =>
        {
            a.mov(rdx, __qword_ptr[rsp]);
            a.hlt();
        });
        m.Load(64, 0x8000, a =>
        {
            a.mov(rbx, 0x6000);
            a.@lock.add(__dword_ptr[rbx], 5); // valid: memory destination
            a.db(0xF0, 0x01, 0xC8); // LOCK ADD EAX, ECX: register destination, #UD (SDM Vol. 2, LOCK)
            a.hlt();
        });
        m.WriteQword(0x6000, 10);

        Assert.That(m.Run().Reason, Is.EqualTo(VcpuExitReason.Halted));
        Assert.That(m.ReadQword(0x6000), Is.EqualTo(15UL));
        Assert.That(m.Vcpu.GetGeneralRegisters().Rdx, Is.EqualTo(TestMachine.InstructionAddress(m, 64, 0x8000, 2)), "#UD at the LOCK ADD");
    }

    [Test]
    public void SyscallAndSysretRoundTrip()
    {
        using var m = new TestMachine();
        m.StartLong64(0x8000);
        m.Vcpu.TrySetMsr(0xC000_0080, 0x501); // EFER: SCE | LME | LMA
        // STAR[47:32] = 0x18 (kernel CS, SS = +8 = 0x20?) -- use 0x08-based layout: kernel CS 0x18, SS 0x20 is user
        // code in our GDT, so set STAR so that SYSCALL loads CS=0x18/SS=0x20 and SYSRET (64-bit) CS=0x20+16=0x30|3, SS=0x28|3.
        m.Vcpu.TrySetMsr(0xC000_0081, (0x20UL << 48) | (0x18UL << 32));
        m.Vcpu.TrySetMsr(0xC000_0082, 0x9000); // LSTAR
        m.Vcpu.TrySetMsr(0xC000_0084, 0x200); // SFMASK: clear IF
        m.Load(64, 0x9000, a =>
        {
            a.mov(r12, rcx);
            a.mov(r13, r11);
            a.db(0x48, 0x0F, 0x07); // SYSRETQ (REX.W 0F 07)
        });
        m.Load(64, 0xA000, a =>
        {
            a.mov(r14d, 0x77); // 41 BE id: 6 bytes
            a.syscall();
            a.mov(r15, 0x88);
            a.hlt(); // CPL 3: #GP -> no IDT gate present -> ... ends the run
        });
        m.Load(64, 0x8000, a =>
        {
            a.push(0x2B);
            a.push(0x6_F000);
            a.push(0x202);
            a.push(0x33);
            a.push(0xA000);
            a.iretq();
        });

        VcpuExit exit = m.Run(1000);

        GeneralRegisters g = m.Vcpu.GetGeneralRegisters();
        // SYSCALL: RCX = next RIP, R11 = RFLAGS (SDM Vol. 2, SYSCALL); SYSRET returns to RCX at CPL 3.
        Assert.That(g.R12, Is.EqualTo(0xA008UL), "RCX = address after SYSCALL (6 + 2 bytes)");
        Assert.That(g.R13 & 0x202, Is.EqualTo(0x202UL), "R11 = RFLAGS with IF");
        Assert.That(g.R15, Is.EqualTo(0x88UL), $"execution continued after SYSCALL ({exit})");
        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Shutdown).Or.EqualTo(VcpuExitReason.InstructionLimit));
    }

    [TestCase(16, 1)]
    [TestCase(16, 2)]
    [TestCase(32, 3)]
    [TestCase(32, 4)]
    [TestCase(64, 5)]
    [TestCase(64, 6)]
    [TestCase(64, 7)]
    [TestCase(64, 8)]
    public void RandomBytesEndInDefinedExitsWithoutHostErrors(int bitness, int seed)
    {
        var random = new Random(seed);
        for (int round = 0; round < 20; round++)
        {
            using var m = new TestMachine();
            byte[] garbage = new byte[0x4000];
            random.NextBytes(garbage);
            m.Memory.Write(new GuestAddress(0x8000), garbage);
            // Random IDT and descriptor contents too: the CPU must reject or follow them without host errors.
            byte[] tables = new byte[0x1000];
            random.NextBytes(tables);
            m.Memory.Write(new GuestAddress(TestMachine.IdtBase), tables);
            switch (bitness)
            {
                case 16:
                    m.StartReal(0x8000);
                    break;
                case 32:
                    m.StartProtected32(0x8000);
                    SystemRegisters s = m.Vcpu.GetSystemRegisters();
                    s.Idt = new DescriptorTableRegister(TestMachine.IdtBase, 0x7FF);
                    m.Vcpu.SetSystemRegisters(s);
                    break;
                default:
                    m.StartLong64(0x8000);
                    break;
            }

            // HLT with IF=1 and no interrupt source waits for a kick (as on hardware): bound the run in time too.
            using var watchdog = new Timer(_ => m.Vcpu.Kick(), null, 2000, Timeout.Infinite);
            VcpuExit exit = m.Vcpu.Run(20_000);

            Assert.That(exit.Reason, Is.AnyOf(VcpuExitReason.Halted, VcpuExitReason.Shutdown, VcpuExitReason.InstructionLimit,
                VcpuExitReason.GuestError, VcpuExitReason.Interrupted), exit.Detail);
            if (exit.Reason == VcpuExitReason.GuestError)
            {
                Assert.That(exit.Detail, Does.Not.Contain("internal error"), $"seed {seed} round {round}");
            }
        }
    }
}
