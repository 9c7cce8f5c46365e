using Hypervisor.Accel.Tcg.Tests.Jit;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Accel.Tcg.Tests.SystemGuests;

/// <summary>
/// Debug-register rules of the Intel SDM (Vol. 3B, 18.2 and 18.3; Vol. 2, MOV to/from debug registers) that the QEMU
/// comparison cannot check: general detect (DR7.GD), DR4/DR5 aliasing by CR4.DE, data breakpoints on stack pushes,
/// and breakpoints that cost nothing once disabled.
/// </summary>
[TestFixture(JitCoverage.Interpreter)]
[TestFixture(JitCoverage.Jit)]
public class DebugRegisterTests(string engine)
{
    /// <summary>A harness on the engine of this fixture (the JIT translates every block on first execution; the
    /// instructions under test go back to the interpreter).</summary>
    private SystemHarness NewHarness(Hypervisor.Core.Io.IInterruptSource? interrupts = null) => new(interrupts, JitCoverage.For(engine));

    [Test]
    public void GeneralDetectFaultsOnTheMovWithBdAndClearsGd()
    {
        using var h = NewHarness();
        h.Start(a =>
        {
            a.mov(eax, 0x2400); // GD
            a.mov(dr7, eax);
            a.mov(eax, dr0);
        });
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(1));
        Assert.That(h.FaultEip, Is.EqualTo((uint)h.InstructionAt(2)), "a fault: EIP of the MOV from DR0");
        Assert.That(h.M.Cpu.S.Dr6 & (1UL << 13), Is.EqualTo(1UL << 13), "DR6.BD");
        Assert.That(h.M.Cpu.S.Dr7 & (1UL << 13), Is.Zero, "GD cleared on entry to the handler");
    }

    [Test]
    public void Dr4AndDr5AliasDr6AndDr7WithoutDebugExtensions()
    {
        using var h = NewHarness();
        h.Start(a =>
        {
            a.mov(eax, 0x1);
            a.mov(dr4, eax); // DR6
            a.mov(eax, 0x0);
            a.mov(dr5, eax); // DR7
            a.mov(eax, dr6);
            a.mov(__dword_ptr[0x14000], eax);
            a.hlt();
        });
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(-1), "no fault");
        Assert.That(h.M.ReadQword(0x14000) & 0xFFFF_FFFF, Is.EqualTo(0xFFFF_0FF1UL), "B0 written through DR4; reserved bits read as 1");
    }

    [Test]
    public void Dr4WithDebugExtensionsRaisesUd()
    {
        using var h = NewHarness();
        h.Start(a => a.mov(eax, dr4), cr4: 8);
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(6));
    }

    [Test]
    public void ADataBreakpointOnTheStackTrapsAfterThePush()
    {
        using var h = NewHarness();
        h.Start(a =>
        {
            a.mov(eax, 0x8FF8);
            a.mov(dr0, eax);
            a.mov(eax, 1 | (1 << 16) | (3 << 18)); // L0, writes, 4 bytes
            a.mov(dr7, eax);
            a.mov(esp, 0x9000);
            a.push(eax); // 0x8FFC: outside
            a.push(eax); // 0x8FF8: hit
            a.nop();
        });
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(1));
        Assert.That(h.FaultEip, Is.EqualTo((uint)h.InstructionAt(7)), "a trap: EIP after the second PUSH");
        Assert.That(h.M.Cpu.S.Dr6 & 0xF, Is.EqualTo(1UL), "B0");
    }

    [Test]
    public void DisabledBreakpointsNeitherTriggerNorSlowTheCpu()
    {
        using var h = NewHarness();
        h.Start(a =>
        {
            a.mov(eax, 0x14000);
            a.mov(dr0, eax);
            a.mov(eax, 1 | (1 << 16) | (3 << 18));
            a.mov(dr7, eax);
            a.xor(eax, eax);
            a.mov(dr7, eax); // disabled again
            a.mov(__dword_ptr[0x14000], eax);
            a.hlt();
        });
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(-1));
        Assert.That(h.M.Cpu.BreakpointsEnabled, Is.False, "the run loop executes whole blocks again");
    }
}
