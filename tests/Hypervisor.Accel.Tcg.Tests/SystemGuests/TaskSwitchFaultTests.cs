using Hypervisor.Accel.Tcg.State;
using Hypervisor.Accel.Tcg.Tests.Jit;
using Hypervisor.Core.Registers;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Accel.Tcg.Tests.SystemGuests;

/// <summary>
/// Faults of hardware task switches against the rules of the Intel SDM (Vol. 3A, Table 7-1 and 6.13 for the EXT bit;
/// Vol. 2, JMP/CALL/IRET pseudo-code): which exception, which selector in the error code, and whether it is taken in
/// the old task (before the TR load) or the new one. Also CR0.TS, DR7's local enables and the T flag.
/// </summary>
[TestFixture(JitCoverage.Interpreter)]
[TestFixture(JitCoverage.Jit)]
public class TaskSwitchFaultTests(string engine)
{
    /// <summary>A harness on the engine of this fixture (the JIT translates every block on first execution; the
    /// instructions under test go back to the interpreter).</summary>
    private SystemHarness NewHarness(Hypervisor.Core.Io.IInterruptSource? interrupts = null) => new(interrupts, JitCoverage.For(engine));

    private static void FarJump(Iced.Intel.Assembler a, ushort selector)
    {
        a.db(0xEA);
        a.dd(0);
        a.dw(selector);
    }

    private static void FarCall(Iced.Intel.Assembler a, ushort selector)
    {
        a.db(0x9A);
        a.dd(0);
        a.dw(selector);
    }

    [Test]
    public void JumpToATssBelowTheMinimumLimitRaisesTsWithItsSelectorInTheOldTask()
    {
        using var h = NewHarness();
        h.SetDescriptor(0x20, SystemHarness.Descriptor(SystemHarness.TssB, 0x66, 0x89, 0));
        h.Start(a => FarJump(a, 0x20));
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(10));
        Assert.That(h.ErrorCode, Is.EqualTo(0x20u));
        Assert.That(h.FaultTr, Is.EqualTo((ushort)0x18), "before the commit point: the old task");
        Assert.That(h.FaultEip, Is.EqualTo((uint)SystemHarness.Code), "a fault: EIP of the JMP");
    }

    [Test]
    public void CallToABusyTssRaisesGpWithItsSelector()
    {
        using var h = NewHarness();
        h.Start(a => FarCall(a, 0x1B)); // RPL 3 in the selector; the error code keeps only index and TI
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(13));
        Assert.That(h.ErrorCode, Is.EqualTo(0x18u));
    }

    [Test]
    public void JumpToANotPresentTssRaisesNp()
    {
        using var h = NewHarness();
        h.SetDescriptor(0x20, SystemHarness.Descriptor(SystemHarness.TssB, 0x67, 0x09, 0));
        h.Start(a => FarJump(a, 0x20));
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(11));
        Assert.That(h.ErrorCode, Is.EqualTo(0x20u));
    }

    [Test]
    public void TaskGateNamingAnLdtSelectorRaisesGpWithThatSelector()
    {
        using var h = NewHarness();
        h.SetDescriptor(0x28, SystemHarness.TaskGate(0x24));
        h.Start(a => FarJump(a, 0x28));
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(13));
        Assert.That(h.ErrorCode, Is.EqualTo(0x24u));
    }

    [Test]
    public void IretWithNtToATssThatIsNotBusyRaisesTsWithTheBackLink()
    {
        using var h = NewHarness();
        h.SetDescriptor(0x20, SystemHarness.Descriptor(SystemHarness.TssB, 0x67, 0x89, 0));
        h.M.WriteDword(SystemHarness.TssA, 0x20); // back link
        h.Start(a =>
        {
            a.pushfd();
            a.or(__dword_ptr[esp], 1 << 14);
            a.popfd();
            a.iretd();
        });
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(10));
        Assert.That(h.ErrorCode, Is.EqualTo(0x20u));
        Assert.That(h.FaultEip, Is.EqualTo((uint)h.InstructionAt(3)));
    }

    [TestCase(0x10, 0x50, 0x08, 10, 0x50, TestName = "SS DPL not CPL: #TS(SS)")]
    [TestCase(0x10, 0x40, 0x08, 12, 0x40, TestName = "SS descriptor not present: #SS(SS)")]
    [TestCase(0x48, 0x10, 0x08, 11, 0x48, TestName = "DS descriptor not present: #NP(DS)")]
    [TestCase(0x10, 0x13, 0x08, 10, 0x10, TestName = "SS RPL not CPL: #TS(SS)")]
    [TestCase(0x10, 0x10, 0x18, 10, 0x18, TestName = "CS naming a TSS: #TS(CS)")]
    [TestCase(0x10, 0x10, 0x00, 10, 0x00, TestName = "null CS: #TS(0)")]
    [TestCase(0x10, 0x10, 0x10, 10, 0x10, TestName = "CS naming a data segment: #TS(CS)")]
    public void FaultsAfterTheCommitPointAreTakenInTheNewTask(int ds, int ss, int cs, int vector, int error)
    {
        using var h = NewHarness();
        h.SetDescriptor(0x20, SystemHarness.Descriptor(SystemHarness.TssB, 0x67, 0x89, 0));
        h.SetDescriptor(0x40, 0x00CF_1300_0000_FFFF); // data, not present
        h.SetDescriptor(0x48, 0x00CF_1300_0000_FFFF);
        h.SetDescriptor(0x50, 0x00CF_F300_0000_FFFF); // data, DPL 3

        // The #TS, #SS or #NP stub runs in the new task on its stack, which the processor loads even when it faulted
        // (unchecked, SDM Vol. 3A, 7.3): so every stack case here leaves a writable stack segment.
        h.WriteTss32(SystemHarness.TssB, SystemHarness.Code + 0x100, 0x7000, cs: (ushort)cs, ss: (ushort)ss, ds: (ushort)ds);
        h.Start(a => FarJump(a, 0x20));
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(vector));
        Assert.That(h.ErrorCode, Is.EqualTo((uint)error));
        Assert.That(h.FaultTr, Is.EqualTo((ushort)0x20), "after the commit point: the new task");
        Assert.That(h.GetDescriptor(0x18) >> 40 & 0xF, Is.EqualTo(9UL), "JMP freed the old task");
        Assert.That(h.GetDescriptor(0x20) >> 40 & 0xF, Is.EqualTo(0xBUL), "the new task is busy");
    }

    [Test]
    public void AfterAFaultPastTheCommitPointTheRemainingSegmentRegistersHoldTheNewTasksDescriptorsUnchecked()
    {
        // SDM Vol. 3A, 7.3 (note to step 13) and 6.15 (#NP, #TS): past the commit point the processor completes the
        // switch without further checks, then raises the exception in the new task. DS faults first (#NP); ES, FS
        // and GS are loaded after it, unchecked: their caches come from the new task's descriptors, not the old task.
        using var h = NewHarness();
        h.SetDescriptor(0x20, SystemHarness.Descriptor(SystemHarness.TssB, 0x67, 0x89, 0));
        h.SetDescriptor(0x48, 0x00CF_1300_0000_FFFF); // data, not present
        h.SetDescriptor(0x50, SystemHarness.Descriptor(0x0012_3000, 0xFFFF, 0x93, 0)); // ES: data, base 0x123000
        h.SetDescriptor(0x58, SystemHarness.Descriptor(0x0045_6000, 0x0FFF, 0xF0, 0)); // FS: read-only, DPL 3, not accessed
        h.WriteTss32(SystemHarness.TssB, SystemHarness.Code + 0x100, 0x7000, ds: 0x48);
        h.M.WriteDword(SystemHarness.TssB + 0x48, 0x50); // ES
        h.M.WriteDword(SystemHarness.TssB + 0x58, 0x58); // FS
        h.M.WriteDword(SystemHarness.TssB + 0x5C, 0x100); // GS: beyond the GDT limit (0xFF)
        h.Start(a => FarJump(a, 0x20));
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(11));
        Assert.That(h.ErrorCode, Is.EqualTo(0x48u));
        Assert.That(h.FaultTr, Is.EqualTo((ushort)0x20));

        SystemRegisters s = h.M.Vcpu.GetSystemRegisters();
        Assert.That((s.Es.Selector, s.Es.Base, s.Es.Limit, s.Es.Unusable), Is.EqualTo(((ushort)0x50, 0x123000UL, 0xFFFFu, false)));
        Assert.That((s.Fs.Selector, s.Fs.Base, s.Fs.Limit, s.Fs.Type, s.Fs.Dpl), Is.EqualTo(((ushort)0x58, 0x456000UL, 0xFFFu, (byte)0, (byte)3)),
            "loaded as the descriptor is: no checks, no accessed bit");
        Assert.That(h.GetDescriptor(0x58) >> 40 & 1, Is.Zero, "the accessed bit in the GDT is not set by an unchecked load");
        Assert.That((s.Gs.Selector, s.Gs.Unusable), Is.EqualTo(((ushort)0x100, true)), "no descriptor to load");
    }

    [Test]
    public void AFaultPastTheCommitPointOfATaskGateDeliveryIsTakenWithTheNewTasksFlags()
    {
        // #UD through a task gate to task B, whose DS is not present: #NP(DS, EXT) in task B, with task B's EFLAGS
        // (DF set in its TSS), while task A's saved EFLAGS carries RF (a fault-class exception, SDM Vol. 3B, 18.3.1.1).
        using var h = NewHarness();
        h.SetDescriptor(0x20, SystemHarness.Descriptor(SystemHarness.TssB, 0x67, 0x89, 0));
        h.SetDescriptor(0x48, 0x00CF_1300_0000_FFFF); // data, not present
        h.WriteTss32(SystemHarness.TssB, SystemHarness.Code + 0x100, 0x7000, ds: 0x48, eflags: 0x402);
        h.SetIdtEntry(6, SystemHarness.TaskGate(0x20));
        h.Start(a => a.ud2());
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(11));
        Assert.That(h.ErrorCode, Is.EqualTo(0x49u), "DS with EXT: raised while delivering #UD");
        Assert.That(h.FaultTr, Is.EqualTo((ushort)0x20));
        Assert.That(h.FaultEflags & 0x400, Is.EqualTo(0x400u), "task B's DF");
        Assert.That(h.M.ReadQword(SystemHarness.TssA + 0x24) & (1UL << 16), Is.EqualTo(1UL << 16), "RF in task A's saved EFLAGS");
    }

    [Test]
    public void AFaultDeliveredThroughATaskGateReportsTsWithTheExtBit()
    {
        using var h = NewHarness();
        h.SetDescriptor(0x20, SystemHarness.Descriptor(SystemHarness.TssB, 0x50, 0x89, 0)); // too small
        h.SetIdtEntry(6, SystemHarness.TaskGate(0x20));
        h.Start(a => a.ud2());
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(10));
        Assert.That(h.ErrorCode, Is.EqualTo(0x21u), "selector 0x20 with EXT: raised while delivering #UD (SDM Vol. 3A, 6.13)");
    }

    [Test]
    public void IntNThroughATaskGateWithDplBelowCplRaisesGpWithTheIdtEntry()
    {
        using var h = NewHarness();
        h.SetDescriptor(0x20, SystemHarness.Descriptor(SystemHarness.TssB, 0x67, 0x89, 0));
        h.SetDescriptor(0x28, 0x00CF_FB00_0000_FFFF); // ring-3 code
        h.SetDescriptor(0x30, 0x00CF_F300_0000_FFFF); // ring-3 data
        h.SetIdtEntry(0x40, SystemHarness.TaskGate(0x20, dpl: 0));
        h.Start(a =>
        {
            a.push(0x33); // SS
            a.push(0x8800); // ESP
            a.push(2); // EFLAGS
            a.push(0x2B); // CS
            a.push((int)SystemHarness.Code + 0x80);
            a.iretd();
            a.db(new byte[0x80 - 17]);
            a.@int(0x40);
        });
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(13));
        Assert.That(h.ErrorCode, Is.EqualTo((0x40u * 8) + 2), "IDT bit set, EXT clear for INT n");
    }

    [Test]
    public void ATaskSwitchSetsCr0TsAndClearsTheLocalBreakpointEnables()
    {
        using var h = NewHarness();
        h.SetDescriptor(0x20, SystemHarness.Descriptor(SystemHarness.TssB, 0x67, 0x89, 0));
        h.WriteTss32(SystemHarness.TssB, SystemHarness.Code + 0x100, 0x7000);
        h.M.Load(32, SystemHarness.Code + 0x100, a => a.hlt());
        h.Start(a =>
        {
            a.mov(eax, 0x7000);
            a.mov(dr0, eax);
            a.mov(eax, 3); // L0 and G0, an execute breakpoint at 0x7000 that is never reached
            a.mov(dr7, eax);
            FarJump(a, 0x20);
        });
        h.Run();
        Assert.That(h.M.Vcpu.GetSystemRegisters().Cr0 & Cr.TS, Is.EqualTo(Cr.TS));
        Assert.That(h.M.Cpu.S.Dr7 & 0xFF, Is.EqualTo(2UL), "L0 cleared, G0 kept (SDM Vol. 3B, 18.2.4)");
        Assert.That(h.M.Vcpu.GetGeneralRegisters().Rip, Is.EqualTo(SystemHarness.Code + 0x101));
    }

    [Test]
    public void TheTssTFlagRaisesADebugTrapBeforeTheNewTasksFirstInstruction()
    {
        using var h = NewHarness();
        h.SetDescriptor(0x20, SystemHarness.Descriptor(SystemHarness.TssB, 0x67, 0x89, 0));
        h.WriteTss32(SystemHarness.TssB, SystemHarness.Code + 0x100, 0x7000, trap: true);
        h.M.Load(32, SystemHarness.Code + 0x100, a => a.hlt());
        h.Start(a => FarCall(a, 0x20));
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(1));
        Assert.That(h.FaultEip, Is.EqualTo((uint)SystemHarness.Code + 0x100), "a trap before the first instruction of task B");
        Assert.That(h.FaultTr, Is.EqualTo((ushort)0x20));
        Assert.That(h.M.Cpu.S.Dr6 & (1UL << 15), Is.EqualTo(1UL << 15), "DR6.BT");
    }
}
