using Hypervisor.Accel.Tcg.Tests.Jit;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Registers;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Accel.Tcg.Tests.SystemGuests;

/// <summary>
/// RF in the EFLAGS image of an event and data breakpoints inside REP string instructions, against the Intel SDM
/// (Vol. 3B, 18.3.1.1: "for any fault-class exception except a debug exception generated in response to an
/// instruction breakpoint, the value pushed for RF is 1"; for an interrupt or a trap-class exception after an
/// iteration of a repeated string instruction that is not the last, RF is pushed as 1; otherwise RF as it is, and 0
/// for software interrupts. 18.3.1.2: a data breakpoint in a REP string instruction traps after the iteration that hit
/// it). QEMU does not model RF in the image, so these are checked here rather than in the QEMU comparison.
/// </summary>
[TestFixture(JitCoverage.Interpreter)]
[TestFixture(JitCoverage.Jit)]
public class ResumeFlagTests(string engine)
{
    /// <summary>A harness on the engine of this fixture (the JIT translates every block on first execution; the
    /// instructions under test go back to the interpreter).</summary>
    private SystemHarness NewHarness(Hypervisor.Core.Io.IInterruptSource? interrupts = null) => new(interrupts, JitCoverage.For(engine));

    private const uint Rf = 1u << 16;

    [Test]
    public void AnInvalidOpcodeFaultPushesRfSet()
    {
        using var h = NewHarness();
        h.Start(a => a.ud2());
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(6));
        Assert.That(h.FaultEflags & Rf, Is.EqualTo(Rf));
    }

    [Test]
    public void AGeneralProtectionFaultPushesRfSet()
    {
        using var h = NewHarness();
        h.Start(a =>
        {
            a.mov(ax, 0x1234);
            a.mov(ds, ax);
        });
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(13));
        Assert.That(h.ErrorCode, Is.EqualTo(0x1234u & 0xFFFC));
        Assert.That(h.FaultEflags & Rf, Is.EqualTo(Rf));
    }

    [Test]
    public void AnInstructionBreakpointPushesRfClear()
    {
        using var h = NewHarness();
        h.Start(a =>
        {
            a.mov(eax, 0);
            a.mov(dr0, eax);
            a.mov(eax, 1);
            a.mov(dr7, eax);
            a.nop(); // DR0 is patched to point here
        });
        h.M.WriteDword(SystemHarness.Code + 1, (uint)h.InstructionAt(4));
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(1));
        Assert.That(h.FaultEip, Is.EqualTo((uint)h.InstructionAt(4)), "a fault: before the NOP");
        Assert.That(h.FaultEflags & Rf, Is.Zero);
    }

    [Test]
    public void Int3PushesRfClear()
    {
        using var h = NewHarness();
        h.Start(a => a.int3());
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(3));
        Assert.That(h.FaultEflags & Rf, Is.Zero);
    }

    [Test]
    public void ADataBreakpointInsideRepStosTrapsAfterTheIterationThatHitIt()
    {
        using var h = NewHarness();
        h.Start(a =>
        {
            a.mov(eax, 0x14008);
            a.mov(dr0, eax);
            a.mov(eax, 1 | (1 << 16) | (3 << 18)); // L0, writes, 4 bytes
            a.mov(dr7, eax);
            a.mov(edi, 0x14000);
            a.mov(ecx, 8);
            a.xor(eax, eax);
            a.rep.stosd(); // the third store (0x14008) hits
            a.nop();
        });
        h.Run();
        GeneralRegisters r = h.M.Vcpu.GetGeneralRegisters();
        Assert.That(h.Vector, Is.EqualTo(1));
        Assert.That(h.M.Cpu.S.Dr6 & 0xF, Is.EqualTo(1UL), "B0");
        Assert.That(h.FaultEip, Is.EqualTo((uint)h.InstructionAt(7)), "RIP still on the REP STOSD");
        Assert.That(r.Rcx, Is.EqualTo(5UL), "three iterations done");
        Assert.That(r.Rdi, Is.EqualTo(0x1400CUL));
        Assert.That(h.FaultEflags & Rf, Is.EqualTo(Rf), "trap after an iteration that is not the last");
    }

    [Test]
    public void ADataBreakpointOnTheLastIterationTrapsAfterTheInstruction()
    {
        using var h = NewHarness();
        h.Start(a =>
        {
            a.mov(eax, 0x14008);
            a.mov(dr0, eax);
            a.mov(eax, 1 | (1 << 16) | (3 << 18));
            a.mov(dr7, eax);
            a.mov(edi, 0x14000);
            a.mov(ecx, 3);
            a.xor(eax, eax);
            a.rep.stosd(); // the third and last store hits
            a.nop();
        });
        h.Run();
        GeneralRegisters r = h.M.Vcpu.GetGeneralRegisters();
        Assert.That(h.Vector, Is.EqualTo(1));
        Assert.That(h.FaultEip, Is.EqualTo((uint)h.InstructionAt(8)), "after the instruction");
        Assert.That(r.Rcx, Is.Zero);
        Assert.That(h.FaultEflags & Rf, Is.Zero);
    }

    [Test]
    public void ADataBreakpointInsideRepeCmpsbTrapsAndTheInstructionResumesWhereItLeft()
    {
        // Handler for #DB: count, then return (RF in the image resumes the REPE CMPSB without an instruction-breakpoint check).
        using var h = NewHarness();
        h.M.Load(32, SystemHarness.Stubs + (1 * 64), a =>
        {
            a.inc(__dword_ptr[0x15000]);
            a.mov(__dword_ptr[0x15004], ecx);
            a.iretd();
        });
        for (int i = 0; i < 16; i++)
        {
            h.M.Memory.Write(new Core.Memory.GuestAddress(0x14000 + (ulong)i), [(byte)(i == 12 ? 0xEE : i)]);
            h.M.Memory.Write(new Core.Memory.GuestAddress(0x14100 + (ulong)i), [(byte)i]);
        }

        h.Start(a =>
        {
            a.mov(eax, 0x14104);
            a.mov(dr0, eax);
            a.mov(eax, 1 | (3 << 16)); // L0, reads or writes, 1 byte
            a.mov(dr7, eax);
            a.mov(esi, 0x14000);
            a.mov(edi, 0x14100);
            a.mov(ecx, 16);
            a.repe.cmpsb(); // the fifth compare reads 0x14104; the thirteenth differs
            a.hlt();
        });
        h.Run();
        GeneralRegisters r = h.M.Vcpu.GetGeneralRegisters();
        Assert.That(h.M.ReadQword(0x15000) & 0xFFFF_FFFF, Is.EqualTo(1UL), "one #DB");
        Assert.That(h.M.ReadQword(0x15004) & 0xFFFF_FFFF, Is.EqualTo(11UL), "taken after the fifth compare");
        Assert.That(r.Rcx, Is.EqualTo(3UL), "the instruction went on to the first difference");
        Assert.That(r.Rsi, Is.EqualTo(0x1400DUL));
        Assert.That(r.Rflags & (1UL << 6), Is.Zero, "ZF clear: the bytes differ");
    }

    [Test]
    public void SingleSteppingARepStringTrapsAfterEachIterationWithRfSetButTheLast()
    {
        // The #DB handler records ECX, the saved EIP and the EFLAGS image of each trap, and returns.
        using var h = NewHarness();
        h.M.Load(32, SystemHarness.Stubs + (1 * 64), a =>
        {
            a.push(eax);
            a.mov(eax, __dword_ptr[0x15000]);
            a.mov(__dword_ptr[(eax * 4) + 0x15100], ecx);
            a.push(__dword_ptr[esp + 4]); // EIP
            a.pop(__dword_ptr[(eax * 4) + 0x15200]);
            a.push(__dword_ptr[esp + 12]); // EFLAGS
            a.pop(__dword_ptr[(eax * 4) + 0x15300]);
            a.inc(__dword_ptr[0x15000]);
            a.pop(eax);
            a.iretd();
        });
        h.Start(a =>
        {
            a.mov(edi, 0x14000);
            a.mov(ecx, 3);
            a.pushfd();
            a.or(__dword_ptr[esp], 0x100);
            a.popfd(); // TF from the next instruction on
            a.rep.stosb();
            a.pushfd();
            a.and(__dword_ptr[esp], ~0x100);
            a.popfd(); // traced too: TF was set when it began
            a.hlt();
        });
        h.Run();
        uint Record(uint table, int i) => (uint)h.M.ReadQword(table + (uint)(i * 4));
        uint rep = (uint)h.InstructionAt(5), after = (uint)h.InstructionAt(6);
        Assert.That(h.M.ReadQword(0x15000) & 0xFFFF_FFFF, Is.EqualTo(6UL), "three iterations, PUSHFD, AND, POPFD");
        Assert.That(new[] { Record(0x15100, 0), Record(0x15100, 1), Record(0x15100, 2) }, Is.EqualTo(new uint[] { 2, 1, 0 }), "ECX");
        Assert.That(new[] { Record(0x15200, 0), Record(0x15200, 1), Record(0x15200, 2) }, Is.EqualTo(new[] { rep, rep, after }), "EIP");
        Assert.That(new[] { Record(0x15300, 0) & Rf, Record(0x15300, 1) & Rf, Record(0x15300, 2) & Rf }, Is.EqualTo(new[] { Rf, Rf, 0u }), "RF");
    }

    [Test]
    public void AnInterruptBetweenIterationsOfALongRepStringPushesRfSet()
    {
        var source = new LatchedInterrupt();
        using var h = NewHarness(source);
        h.Start(a =>
        {
            a.mov(edi, 0x100000);
            a.mov(ecx, 10000);
            a.xor(eax, eax);
            a.sti();
            a.rep.stosb();
            a.hlt();
        });

        // Stop part way through the REP STOSB (the interpreter pauses it between iterations), then raise an
        // interrupt: it is taken between two iterations.
        VcpuExit exit = h.M.Run(5);
        GeneralRegisters r = h.M.Vcpu.GetGeneralRegisters();
        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.InstructionLimit));
        Assert.That(r.Rip, Is.EqualTo(h.InstructionAt(4)), "on the REP STOSB");
        Assert.That(r.Rcx, Is.InRange(1UL, 9999UL), "part way through");
        ulong remaining = r.Rcx;

        source.Raise(31);
        h.M.Vcpu.NotifyInterruptPending();
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(31));
        Assert.That(h.FaultEip, Is.EqualTo((uint)h.InstructionAt(4)), "the interrupted REP STOSB resumes later");
        Assert.That(h.M.Vcpu.GetGeneralRegisters().Rcx, Is.EqualTo(remaining));
        Assert.That(h.FaultEflags & Rf, Is.EqualTo(Rf), "an interrupt after an iteration that is not the last");
    }

    /// <summary>An interrupt controller output with one latched vector.</summary>
    private sealed class LatchedInterrupt : Hypervisor.Core.Io.IInterruptSource
    {
        private int _vector = -1;

        public bool HasPendingInterrupt => Volatile.Read(ref _vector) >= 0;

        public void Raise(int vector) => Volatile.Write(ref _vector, vector);

        public int AcknowledgeInterrupt() => Interlocked.Exchange(ref _vector, -1);
    }
}
