using Hypervisor.Accel.Tcg.Tests.Guests;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Registers;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;
using Hypervisor.Accel.Tcg.Tests.Jit;

namespace Hypervisor.Accel.Tcg.Tests.FpuWiring;

/// <summary>
/// x87 exceptions by the SDM's rules (they cannot run natively): #NM with CR0.TS or CR0.EM (SDM Vol. 3A, Table 2-2); an
/// unmasked exception sets FSW.ES and is delivered as #MF by the next waiting instruction with CR0.NE set, while the
/// non-waiting FNSTSW still runs (SDM Vol. 1, 8.6 and 8.7).
/// </summary>
[TestFixture(JitCoverage.Interpreter)]
[TestFixture(JitCoverage.Jit)]
public sealed class X87FaultTests(string engine)
{
    private const ulong Code = 0x8000, Data = 0x6000;

    private TestMachine Start(ulong cr0Set, Action<Assembler> body)
    {
        var m = new TestMachine(options: JitCoverage.For(engine));
        m.StartLong64(Code);
        foreach (int vector in new[] { 6, 7, 16 })
        {
            ulong handler = 0x9000 + ((ulong)vector * 0x10);
            m.SetGate64(vector, handler);
            m.Load(64, handler, a =>
            {
                a.mov(ebx, vector);
                a.hlt();
            });
        }

        m.Load(64, Code, a =>
        {
            a.mov(ebx, 0xFF);
            a.mov(rsi, Data);
            body(a);
            a.mov(ebx, 0);
            a.hlt();
        });
        SystemRegisters s = m.Vcpu.GetSystemRegisters();
        s.Cr0 |= cr0Set;
        m.Vcpu.SetSystemRegisters(s);
        return m;
    }

    [TestCase(1UL << 3, 7UL, TestName = "FADD with CR0.TS is #NM")]
    [TestCase(1UL << 2, 7UL, TestName = "FADD with CR0.EM is #NM")]
    [TestCase(0UL, 0UL, TestName = "FADD with CR0.EM and CR0.TS clear runs")]
    public void AvailabilityFollowsCr0(ulong cr0, ulong expected)
    {
        using TestMachine m = Start(cr0, a => a.fadd(st0, st0));
        Assert.That(m.Run(1000).Reason, Is.EqualTo(VcpuExitReason.Halted));
        Assert.That(m.Vcpu.GetGeneralRegisters().Rbx, Is.EqualTo(expected));
    }

    [Test]
    public void UnmaskedZeroDivideIsDeliveredAsMfByTheNextWaitingInstruction()
    {
        using TestMachine m = Start(1UL << 5, a => // CR0.NE
        {
            a.fninit();
            a.fldcw(__word_ptr[rsi + 8]);
            a.fild(__dword_ptr[rsi]);
            a.fidiv(__dword_ptr[rsi + 4]);
            a.fnstsw(ax); // non-waiting: runs with the exception pending
            a.fadd(st0, st0); // waiting: #MF
        });
        m.WriteDword(Data, 1);
        m.WriteDword(Data + 4, 0);
        m.WriteDword(Data + 8, 0x037B); // ZM clear (SDM Vol. 1, Figure 8-6)

        Assert.That(m.Run(1000).Reason, Is.EqualTo(VcpuExitReason.Halted));
        GeneralRegisters g = m.Vcpu.GetGeneralRegisters();
        Assert.Multiple(() =>
        {
            Assert.That(g.Rbx, Is.EqualTo(16UL), "#MF");
            Assert.That(g.Rax & 0x84, Is.EqualTo(0x84UL), "FNSTSW saw ES and ZE");
            Assert.That(m.Vcpu.GetFpuRegisters().St[0].SignExponent, Is.EqualTo((ushort)0x3FFF), "the unmasked divide left ST(0) = 1.0");
        });
    }

    // A pending unmasked zero divide: FNINIT, FLDCW with ZM clear, 1 / 0. The FIDIV is the third instruction of the body.
    private static void PendingZeroDivide(Assembler a)
    {
        a.fninit();
        a.fldcw(__word_ptr[rsi + 8]);
        a.fild(__dword_ptr[rsi]);
        a.fidiv(__dword_ptr[rsi + 4]);
    }

    private TestMachine StartPending(ulong cr0Set, Action<Assembler> after)
    {
        TestMachine m = Start(cr0Set, a =>
        {
            PendingZeroDivide(a);
            after(a);
        });
        m.WriteDword(Data, 1);
        m.WriteDword(Data + 4, 0);
        m.WriteDword(Data + 8, 0x037B);
        // The #MF handler records the x87 environment and the faulting RIP before halting.
        m.Load(64, 0x9000 + (16 * 0x10), a =>
        {
            a.fnstenv(__[rsi + 0x100]);
            a.mov(rax, __qword_ptr[rsp]);
            a.mov(ebx, 16);
            a.hlt();
        });
        return m;
    }

    [Test]
    public void FwaitDeliversThePendingExceptionWithThePointersOfTheFaultingInstruction()
    {
        using TestMachine m = StartPending(1UL << 5, a => a.wait());
        Assert.That(m.Run(1000).Reason, Is.EqualTo(VcpuExitReason.Halted));
        GeneralRegisters g = m.Vcpu.GetGeneralRegisters();
        // The body starts with MOV EBX, MOV RSI; the x87 part follows (SDM Vol. 1, 8.1.8: FIP/FOP name the last
        // non-control instruction, here FIDIV m32int = DA /6, ModR/M 76h for [RSI+disp8]).
        ulong fidiv = TestMachine.InstructionAddress(m, 64, Code, 5);
        ulong wait = TestMachine.InstructionAddress(m, 64, Code, 6);
        var env = new byte[28];
        m.Memory.Read(new Hypervisor.Core.Memory.GuestAddress(Data + 0x100), env);
        Assert.Multiple(() =>
        {
            Assert.That(g.Rbx, Is.EqualTo(16UL), "#MF");
            Assert.That(g.Rax, Is.EqualTo(wait), "#MF is a fault on the FWAIT");
            Assert.That(BitConverter.ToUInt32(env, 12), Is.EqualTo((uint)fidiv), "FIP");
            Assert.That(BitConverter.ToUInt32(env, 16) >> 16, Is.EqualTo(0x276u), "FOP: DA 76 -> 2 76");
            Assert.That(BitConverter.ToUInt32(env, 20), Is.EqualTo((uint)Data + 4), "FDP");
            Assert.That(BitConverter.ToUInt16(env, 4) & 0x84, Is.EqualTo(0x84), "ES and ZE still set in the handler");
        });
    }

    [TestCase("fnclex", 0UL, TestName = "FNCLEX with an exception pending does not fault and clears it")]
    [TestCase("fninit", 0UL, TestName = "FNINIT with an exception pending does not fault")]
    [TestCase("fnstenv", 0UL, TestName = "FNSTENV with an exception pending does not fault and masks it")]
    [TestCase("fnsave", 0UL, TestName = "FNSAVE with an exception pending does not fault")]
    [TestCase("fclex", 16UL, TestName = "FCLEX (waiting) with an exception pending is #MF")]
    [TestCase("finit", 16UL, TestName = "FINIT (waiting) with an exception pending is #MF")]
    [TestCase("fstcw", 16UL, TestName = "FSTCW (waiting) with an exception pending is #MF")]
    [TestCase("fnop", 16UL, TestName = "FNOP with an exception pending is #MF")]
    public void OnlyWaitingInstructionsDeliverAPendingException(string instruction, ulong expected)
    {
        using TestMachine m = StartPending(1UL << 5, a =>
        {
            switch (instruction)
            {
                case "fnclex": a.fnclex(); break;
                case "fninit": a.fninit(); break;
                case "fnstenv": a.fnstenv(__[rsi + 0x200]); break;
                case "fnsave": a.fnsave(__[rsi + 0x200]); break;
                case "fclex": a.fclex(); break;
                case "finit": a.finit(); break;
                case "fstcw": a.fstcw(__word_ptr[rsi + 0x200]); break;
                default: a.fnop(); break;
            }

            a.fld1(); // waiting: faults only if the exception is still pending and unmasked
        });
        Assert.That(m.Run(1000).Reason, Is.EqualTo(VcpuExitReason.Halted));
        Assert.That(m.Vcpu.GetGeneralRegisters().Rbx, Is.EqualTo(expected));
    }

    [Test]
    public void FldcwThatUnmasksAPendingFlagMakesTheNextWaitingInstructionFault()
    {
        using TestMachine m = Start(1UL << 5, a =>
        {
            a.fninit();
            a.fild(__dword_ptr[rsi]);
            a.fidiv(__dword_ptr[rsi + 4]); // masked: ZE set, nothing pending
            a.fldcw(__word_ptr[rsi + 8]); // unmasks ZE: ES set (SDM Vol. 1, 8.1.3.1)
            a.fld1();
        });
        m.WriteDword(Data, 1);
        m.WriteDword(Data + 4, 0);
        m.WriteDword(Data + 8, 0x037B);
        Assert.That(m.Run(1000).Reason, Is.EqualTo(VcpuExitReason.Halted));
        Assert.That(m.Vcpu.GetGeneralRegisters().Rbx, Is.EqualTo(16UL));
    }

    [Test]
    public void FrstorOfAnImageWithAnUnmaskedFlagMakesTheNextWaitingInstructionFault()
    {
        using TestMachine m = Start(1UL << 5, a =>
        {
            a.fninit();
            a.fnsave(__[rsi + 0x100]);
            a.mov(__word_ptr[rsi + 0x100], 0x037B); // FCW: ZM clear
            a.mov(__word_ptr[rsi + 0x104], 0x0004); // FSW: ZE
            a.frstor(__[rsi + 0x100]);
            a.fnstsw(ax);
            a.fld1();
        });
        Assert.That(m.Run(1000).Reason, Is.EqualTo(VcpuExitReason.Halted));
        GeneralRegisters g = m.Vcpu.GetGeneralRegisters();
        Assert.Multiple(() =>
        {
            Assert.That(g.Rbx, Is.EqualTo(16UL), "#MF");
            Assert.That(g.Rax & 0x8084, Is.EqualTo(0x8084UL), "FRSTOR recomputed ES and B from the loaded flags and masks");
        });
    }

    /// <summary>
    /// With CR0.NE clear a PC reports x87 errors through FERR# and IRQ 13, which tcg does not model (no line from the
    /// vCPU into the interrupt controller): it behaves as if IGNNE# were asserted, so the waiting instruction runs and
    /// the exception stays pending in FSW until software clears it (SDM Vol. 1, 8.7 and Appendix D).
    /// </summary>
    [Test]
    public void WithCr0NeClearTheWaitingInstructionRunsAndTheExceptionStaysPending()
    {
        using TestMachine m = StartPending(0, a =>
        {
            a.wait();
            a.fld1();
            a.fnstsw(ax);
        });
        Assert.That(m.Run(1000).Reason, Is.EqualTo(VcpuExitReason.Halted));
        GeneralRegisters g = m.Vcpu.GetGeneralRegisters();
        Assert.Multiple(() =>
        {
            Assert.That(g.Rbx, Is.EqualTo(0UL), "no #MF");
            Assert.That(g.Rax & 0x84, Is.EqualTo(0x84UL), "ES and ZE still set");
            Assert.That(m.Vcpu.GetFpuRegisters().St[0].SignExponent, Is.EqualTo((ushort)0x3FFF), "FLD1 ran");
        });
    }
}
