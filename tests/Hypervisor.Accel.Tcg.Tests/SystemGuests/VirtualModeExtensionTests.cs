using Hypervisor.Accel.Tcg.State;
using Hypervisor.Accel.Tcg.Tests.Guests;
using Hypervisor.Accel.Tcg.Tests.Jit;
using Hypervisor.Core.Registers;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Accel.Tcg.Tests.SystemGuests;

/// <summary>
/// The virtual-8086 mode extensions and protected-mode virtual interrupts against the Intel SDM (Vol. 3B, 20.3.2
/// "virtual interrupt mechanism", 20.3.3 and Table 20-2 "software interrupt handling methods", 20.4 PVI; Vol. 2, the
/// CLI, STI, PUSHF, POPF and IRET pseudo-code). QEMU 7.2, the QEMU installed here, does not implement VME (CLI and
/// PUSHF still raise #GP in virtual-8086 mode with CR4.VME set, and its CPUID does not report VME), so the rules are
/// checked here instead of in a QEMU comparison.
/// </summary>
[TestFixture(JitCoverage.Interpreter)]
[TestFixture(JitCoverage.Jit)]
public class VirtualModeExtensionTests(string engine)
{
    /// <summary>A harness on the engine of this fixture (the JIT translates every block on first execution; the
    /// instructions under test go back to the interpreter).</summary>
    private SystemHarness NewHarness(Hypervisor.Core.Io.IInterruptSource? interrupts = null) => new(interrupts, JitCoverage.For(engine));

    private const ushort V86Segment = 0x4000;
    private const uint V86Linear = V86Segment << 4;
    private const ulong Vif = 1UL << 19, Vip = 1UL << 20, If = 1UL << 9, Tf = 1UL << 8, Iopl = 3UL << 12;

    /// <summary>Where the redirection bitmap of task A's TSS starts (the I/O map base, 88H, less 32 bytes).</summary>
    private const uint RedirectionBitmap = SystemHarness.TssA + 0x68;

    /// <summary>
    /// Enters virtual-8086 mode at 4000:0000 (all segments 0x4000, SP 0xFFF0) with <paramref name="eflags"/> (VM is
    /// added) and CR4 = <paramref name="cr4"/>. Task A's TSS gets an I/O map base of 88H and the 32-byte redirection
    /// bitmap below it, all ones but the vectors in <paramref name="redirected"/>.
    /// </summary>
    private static void StartV86(SystemHarness h, Action<Assembler> v86, ulong eflags, ulong cr4 = Cr.Cr4Vme, params int[] redirected)
    {
        h.M.Load(16, V86Linear, v86);
        PrepareTss(h, redirected);
        h.Start(a =>
        {
            for (int i = 0; i < 5; i++)
            {
                a.push(V86Segment); // GS FS DS ES SS
            }

            a.push(0xFFF0); // ESP
            a.push((int)((1u << 17) | (uint)eflags | 2)); // EFLAGS
            a.push(V86Segment); // CS
            a.push(0); // EIP
            a.iretd();
        }, cr4);
        WidenTaskRegister(h);
    }

    private static void PrepareTss(SystemHarness h, int[] redirected)
    {
        var bitmap = Enumerable.Repeat((byte)0xFF, 32).ToArray();
        foreach (int v in redirected)
        {
            bitmap[v >> 3] &= (byte)~(1 << (v & 7));
        }

        h.M.Memory.Write(new Core.Memory.GuestAddress(RedirectionBitmap), bitmap);
        h.M.Memory.Write(new Core.Memory.GuestAddress(SystemHarness.TssA + 0x66), [0x88, 0]);
    }

    /// <summary>TR's limit covers the redirection bitmap (the I/O bitmap itself lies beyond it: every port is denied).</summary>
    private static void WidenTaskRegister(SystemHarness h)
    {
        SystemRegisters s = h.M.Vcpu.GetSystemRegisters();
        s.Tr = SegmentRegister.FromAttributes(0x18, SystemHarness.TssA, 0x87, 0x8B);
        h.M.Vcpu.SetSystemRegisters(s);
        h.SetDescriptor(0x18, SystemHarness.Descriptor(SystemHarness.TssA, 0x87, 0x8B, 0));
    }

    private static ushort V86Word(SystemHarness h, uint offset) => (ushort)h.M.ReadQword(V86Linear + offset);

    /// <summary>The virtual-8086 ESP in the frame a stub recorded (above the saved CS and EFLAGS).</summary>
    private static uint FaultEsp(SystemHarness h) => (uint)h.M.ReadQword(h.M.Vcpu.GetGeneralRegisters().Rsp + 8);

    /// <summary>The IP of instruction number <paramref name="index"/> of the virtual-8086 code.</summary>
    private static uint V86Offset(SystemHarness h, int index) => (uint)(TestMachine.InstructionAddress(h.M, 16, V86Linear, index) - V86Linear);

    [Test]
    public void CpuidReportsVmeAndCr4AcceptsVmeAndPvi()
    {
        using var h = NewHarness();
        h.Start(a =>
        {
            a.mov(eax, 1);
            a.cpuid();
            a.mov(__dword_ptr[0x14000], edx);
            a.mov(eax, cr4);
            a.or(eax, 3); // VME, PVI
            a.mov(cr4, eax);
            a.hlt();
        });
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(-1), "no #GP for MOV CR4");
        Assert.That(h.M.ReadQword(0x14000) & 2, Is.EqualTo(2UL), "CPUID.1:EDX.VME (covers VME and PVI, SDM Vol. 2, CPUID)");
        Assert.That(h.M.Vcpu.GetSystemRegisters().Cr4 & 3, Is.EqualTo(3UL));
    }

    [Test]
    public void CliStiAndPushfWorkOnVifBelowIopl3()
    {
        using var h = NewHarness();
        StartV86(h, a =>
        {
            a.sti(); // VIF = 1
            a.pushf();
            a.pop(ax);
            a.mov(__word_ptr[0x100], ax);
            a.cli(); // VIF = 0
            a.pushf();
            a.pop(ax);
            a.mov(__word_ptr[0x102], ax);
            a.sti();
            a.hlt(); // #GP: the first fault
        }, eflags: 0);
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(13));
        Assert.That(h.FaultEip, Is.EqualTo(V86Offset(h, 9)), "CLI, STI and PUSHF did not fault");
        Assert.That(V86Word(h, 0x100) & (If | Iopl), Is.EqualTo(If | Iopl), "PUSHF: IF is VIF (1), IOPL reads 3");
        Assert.That(V86Word(h, 0x102) & (If | Iopl), Is.EqualTo(Iopl), "PUSHF: IF is VIF (0)");
        Assert.That(h.FaultEflags & (Vif | If | Iopl), Is.EqualTo(Vif), "the real IF and IOPL are untouched");
    }

    [Test]
    public void StiWhileVipIsSetRaisesGp()
    {
        using var h = NewHarness();
        StartV86(h, a => a.sti(), eflags: Vip);
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(13));
        Assert.That(h.ErrorCode, Is.Zero);
        Assert.That(h.FaultEip, Is.Zero);
        Assert.That(h.FaultEflags & (Vif | Vip), Is.EqualTo(Vip));
    }

    [Test]
    public void CliAndStiWithoutVmeStillRaiseGp()
    {
        using var h = NewHarness();
        StartV86(h, a => a.cli(), eflags: 0, cr4: 0);
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(13));
        Assert.That(h.FaultEip, Is.Zero);
    }

    [Test]
    public void PopfLoadsVifFromTheImagesIfAndFaultsOnTf()
    {
        using var h = NewHarness();
        StartV86(h, a =>
        {
            a.push(0x0201); // IF, CF
            a.popf();
            a.push(0x0100); // TF
            a.popf(); // #GP
        }, eflags: 0);
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(13));
        Assert.That(h.FaultEip, Is.EqualTo(V86Offset(h, 3)));
        Assert.That(h.FaultEflags & (Vif | If | Tf | 1), Is.EqualTo(Vif | 1), "VIF and CF from the first image; IF and TF unchanged");
        Assert.That(FaultEsp(h), Is.EqualTo(0xFFEEu), "the faulting POPF popped nothing");
    }

    [Test]
    public void PopfSettingIfWhileVipIsSetRaisesGpButClearingItDoesNot()
    {
        using var h = NewHarness();
        StartV86(h, a =>
        {
            a.push(0x0000);
            a.popf(); // IF = 0 in the image: fine with VIP set
            a.push(0x0200);
            a.popf(); // #GP
        }, eflags: Vip | Vif);
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(13));
        Assert.That(h.FaultEip, Is.EqualTo(V86Offset(h, 3)));
        Assert.That(h.FaultEflags & (Vif | Vip), Is.EqualTo(Vip), "the first POPF cleared VIF");
    }

    [Test]
    public void PushfdAndPopfdStillRaiseGpBelowIopl3()
    {
        using var h = NewHarness();
        StartV86(h, a => a.pushfd(), eflags: 0);
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(13));
        Assert.That(h.FaultEip, Is.Zero);
    }

    [Test]
    public void IretLoadsVifFromTheImageAndFaultsOnTf()
    {
        using var h = NewHarness();
        StartV86(h, a =>
        {
            a.push(0x0200); // FLAGS: IF
            a.push(V86Segment);
            a.push(0x40); // IP
            a.iret(); // to 4000:0040
        }, eflags: 0);
        h.M.Load(16, V86Linear + 0x40, a =>
        {
            a.push(0x0100); // TF
            a.push(V86Segment);
            a.push(0x80);
            a.iret(); // #GP
        });
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(13));
        Assert.That(h.FaultEip, Is.EqualTo((uint)(TestMachine.InstructionAddress(h.M, 16, V86Linear + 0x40, 3) - V86Linear)), "the second IRET faulted");
        Assert.That(h.FaultEflags & (Vif | If), Is.EqualTo(Vif), "the first IRET set VIF from the image's IF");
    }

    [Test]
    public void IntNWithItsRedirectionBitClearBelowIopl3GoesToThe8086HandlerWithVifAsIf()
    {
        using var h = NewHarness();
        h.M.WriteDword(0x21 * 4, ((uint)V86Segment << 16) | 0x200); // IVT[21H] = 4000:0200
        h.M.Load(16, V86Linear + 0x200, a => a.hlt());
        StartV86(h, a =>
        {
            a.sti(); // VIF = 1
            a.@int(0x21);
        }, eflags: 0, redirected: [0x21]);
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(13), "the HLT of the 8086 handler");
        Assert.That(h.FaultEip, Is.EqualTo(0x200u));
        Assert.That(FaultEsp(h), Is.EqualTo(0xFFEAu), "three words on the 8086 stack");

        // The 8086 stack: IP after INT 21H (3), CS, FLAGS with IF = VIF and IOPL 3 (SDM Vol. 3B, Table 20-2, method 6).
        Assert.That(V86Word(h, 0xFFEA), Is.EqualTo((ushort)3));
        Assert.That(V86Word(h, 0xFFEC), Is.EqualTo(V86Segment));
        Assert.That(V86Word(h, 0xFFEE) & (If | Iopl), Is.EqualTo(If | Iopl));
        Assert.That(h.FaultEflags & (Vif | If | Iopl), Is.Zero, "VIF cleared by the redirection; IF and IOPL untouched");
    }

    [Test]
    public void IntNWithItsRedirectionBitClearAtIopl3ClearsTheRealIf()
    {
        using var h = NewHarness();
        h.M.WriteDword(0x21 * 4, ((uint)V86Segment << 16) | 0x200);
        h.M.Load(16, V86Linear + 0x200, a => a.hlt());
        StartV86(h, a => a.@int(0x21), eflags: Iopl | If | Vif, redirected: [0x21]);
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(13));
        Assert.That(h.FaultEip, Is.EqualTo(0x200u));
        Assert.That(V86Word(h, 0xFFEE) & (If | Iopl), Is.EqualTo(If | Iopl), "FLAGS as they were (method 5)");
        Assert.That(h.FaultEflags & (Vif | If), Is.EqualTo(Vif), "IF cleared, VIF untouched");
    }

    [Test]
    public void IntNWithItsRedirectionBitSetBelowIopl3RaisesGp()
    {
        using var h = NewHarness();
        StartV86(h, a => a.@int(0x21), eflags: 0, redirected: [0x20]);
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(13));
        Assert.That(h.ErrorCode, Is.Zero);
        Assert.That(h.FaultEip, Is.Zero);
    }

    [Test]
    public void IntNWithItsRedirectionBitSetAtIopl3GoesThroughTheIdt()
    {
        using var h = NewHarness();
        h.SetGate(0x1E, 0xEE00, (uint)(SystemHarness.Stubs + (0x1E * 64))); // DPL 3
        StartV86(h, a => a.@int(0x1E), eflags: Iopl, redirected: [0x21]);
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(0x1E));
        Assert.That(h.FaultEip, Is.EqualTo(2u), "after the INT");
    }

    [Test]
    public void Int3IsNotRedirected()
    {
        using var h = NewHarness();
        h.SetGate(3, 0xEE00, (uint)(SystemHarness.Stubs + (3 * 64)));
        StartV86(h, a => a.int3(), eflags: 0, redirected: [3]);
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(3), "INT3 (CC) is not INT n: the IDT");
    }

    [Test]
    public void ARedirectionBitmapBeyondTheTssLimitRaisesGp()
    {
        using var h = NewHarness();
        StartV86(h, a => a.@int(0x21), eflags: Iopl, redirected: [0x21]);
        h.M.Memory.Write(new Core.Memory.GuestAddress(SystemHarness.TssA + 0x66), [0x00, 0x10]); // map base 1000H
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(13));
        Assert.That(h.ErrorCode, Is.Zero);
    }

    /// <summary>Protected mode at CPL 3 (flat ring-3 code 0x2B and data 0x33 from the GDT), IOPL 0, EFLAGS <paramref name="eflags"/>.</summary>
    private static void StartRing3(SystemHarness h, Action<Assembler> ring3, ulong eflags, ulong cr4)
    {
        h.SetDescriptor(0x28, 0x00CF_FB00_0000_FFFF);
        h.SetDescriptor(0x30, 0x00CF_F300_0000_FFFF);
        h.M.Load(32, SystemHarness.Code + 0x100, ring3);
        h.Start(a =>
        {
            a.push(0x33); // SS
            a.push(0x8800); // ESP
            a.push((int)(eflags | 2));
            a.push(0x2B); // CS
            a.push((int)SystemHarness.Code + 0x100);
            a.iretd();
        }, cr4);
    }

    [Test]
    public void PviLetsCliAndStiAtCpl3ChangeVif()
    {
        using var h = NewHarness();
        StartRing3(h, a =>
        {
            a.push(0x33);
            a.pop(ds); // the return to CPL 3 nulled DS
            a.sti();
            a.pushfd();
            a.pop(__dword_ptr[0x14000]);
            a.cli();
            a.pushfd();
            a.pop(__dword_ptr[0x14004]);
            a.hlt(); // #GP
        }, eflags: 0, cr4: Cr.Cr4Pvi);
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(13));
        Assert.That(h.FaultEip, Is.EqualTo((uint)TestMachine.InstructionAddress(h.M, 32, SystemHarness.Code + 0x100, 8)));
        Assert.That(h.M.ReadQword(0x14000) & (Vif | If), Is.EqualTo(Vif), "STI set VIF, not IF");
        Assert.That(h.M.ReadQword(0x14004) & (Vif | If), Is.Zero, "CLI cleared VIF");
    }

    [Test]
    public void WithoutPviCliAtCpl3RaisesGp()
    {
        using var h = NewHarness();
        StartRing3(h, a => a.cli(), eflags: 0, cr4: Cr.Cr4Vme);
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(13));
        Assert.That(h.FaultEip, Is.EqualTo((uint)SystemHarness.Code + 0x100));
    }

    [Test]
    public void PviStiWhileVipIsSetRaisesGp()
    {
        using var h = NewHarness();
        StartRing3(h, a => a.sti(), eflags: Vip, cr4: Cr.Cr4Pvi);
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(13));
        Assert.That(h.FaultEip, Is.EqualTo((uint)SystemHarness.Code + 0x100));
        Assert.That(h.FaultEflags & (Vif | Vip), Is.EqualTo(Vip), "IRETD at CPL 0 set VIP; STI did not set VIF");
    }
}
