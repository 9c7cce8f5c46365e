using Hypervisor.Accel.Tcg.Tests.Jit;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Accel.Tcg.Tests.SystemGuests;

/// <summary>
/// Virtual-8086 mode against the Intel SDM (Vol. 3B, chapter 20; Vol. 2, INT n "INTERRUPT-FROM-VIRTUAL-8086-MODE"):
/// the ring-0 frame of an exception from virtual-8086 mode, limits of 8086 segments, IOPL sensitivity of INT n (not
/// of INT3) and the handler-privilege rule, all without the virtual-8086 mode extensions (VirtualModeExtensionTests).
/// </summary>
[TestFixture(JitCoverage.Interpreter)]
[TestFixture(JitCoverage.Jit)]
public class Virtual8086Tests(string engine)
{
    /// <summary>A harness on the engine of this fixture (the JIT translates every block on first execution; the
    /// instructions under test go back to the interpreter).</summary>
    private SystemHarness NewHarness(Hypervisor.Core.Io.IInterruptSource? interrupts = null) => new(interrupts, JitCoverage.For(engine));

    private const ushort V86Segment = 0x4000;
    private const uint V86Linear = V86Segment << 4;

    /// <summary>Enters virtual-8086 mode at 4000:0000 (DS = ES = SS = 0x4000, SP = 0xFFF0, FS = 0x1111, GS = 0x2222) with IOPL <paramref name="iopl"/>.</summary>
    private static void StartV86(SystemHarness h, Action<Assembler> v86, int iopl = 0)
    {
        h.M.Load(16, V86Linear, v86);
        h.Start(a =>
        {
            a.push(0x2222); // GS
            a.push(0x1111); // FS
            a.push(V86Segment); // DS
            a.push(V86Segment); // ES
            a.push(V86Segment); // SS
            a.push(0xFFF0); // ESP
            a.push((int)((1u << 17) | ((uint)iopl << 12) | 2)); // EFLAGS
            a.push(V86Segment); // CS
            a.push(0); // EIP
            a.iretd();
        });
    }

    [Test]
    public void AnExceptionFromVirtual8086ModePushesTheSegmentsOnTheRing0StackAndNullsThem()
    {
        using var h = NewHarness();
        StartV86(h, a =>
        {
            a.mov(ax, 0x77);
            a.hlt(); // privileged at CPL 3: #GP(0)
        });
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(13));
        Assert.That(h.ErrorCode, Is.EqualTo(0u));
        Assert.That(h.FaultEip, Is.EqualTo(3u), "IP of the HLT");

        // The frame below SS0:ESP0 (0x10:0x8000), after the stub popped the error code and EIP.
        uint[] frame = [.. Enumerable.Range(0, 8).Select(i => (uint)h.M.ReadQword(0x8000 - 32 + (ulong)(i * 4)))];
        Assert.That(frame[0], Is.EqualTo((uint)V86Segment), "CS");
        Assert.That(frame[1] & (1u << 17), Is.Not.Zero, "EFLAGS with VM");
        Assert.That(frame[2], Is.EqualTo(0xFFF0u), "ESP");
        Assert.That(frame[3..], Is.EqualTo(new uint[] { V86Segment, V86Segment, V86Segment, 0x1111, 0x2222 }), "SS ES DS FS GS");

        var s = h.M.Vcpu.GetSystemRegisters();
        Assert.That(new[] { s.Es.Selector, s.Fs.Selector, s.Gs.Selector }, Is.All.EqualTo((ushort)0), "null data segments in the handler");
        Assert.That(h.M.Vcpu.GetGeneralRegisters().Rflags & (1UL << 17), Is.Zero, "VM cleared");
    }

    [Test]
    public void AnOffsetBeyond64KiBRaisesGp0()
    {
        using var h = NewHarness();
        StartV86(h, a =>
        {
            a.mov(ebx, 0xFFFF);
            a.mov(al, __byte_ptr[ebx]); // the last byte: fine
            a.mov(ax, __word_ptr[ebx]); // crosses the 64-KiB limit
        });
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(13));
        Assert.That(h.ErrorCode, Is.EqualTo(0u));
        Assert.That(h.FaultEip, Is.EqualTo((uint)(6 + 3)));
    }

    [Test]
    public void IntNAtIoplBelow3RaisesGp0()
    {
        using var h = NewHarness();
        StartV86(h, a => a.@int(0x21), iopl: 2);
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(13));
        Assert.That(h.ErrorCode, Is.EqualTo(0u));
        Assert.That(h.FaultEip, Is.EqualTo(0u));
    }

    [Test]
    public void Int3IsNotIoplSensitiveAndGoesThroughItsDpl3Gate()
    {
        using var h = NewHarness();
        h.SetGate(3, 0xEE00, (uint)(SystemHarness.Stubs + (3 * 64)));
        StartV86(h, a => a.int3());
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(3));
        Assert.That(h.FaultEip, Is.EqualTo(1u), "a trap: after the INT3");
    }

    [Test]
    public void AnInterruptFromVirtual8086ModeToANonRing0HandlerRaisesGpWithItsSelector()
    {
        using var h = NewHarness();
        h.SetDescriptor(0x28, 0x00CF_FB00_0000_FFFF); // ring-3 code
        h.SetGate(0x21, 0xEE00, 0x1000, selector: 0x2B);
        StartV86(h, a => a.@int(0x21), iopl: 3);
        h.Run();
        Assert.That(h.Vector, Is.EqualTo(13));
        Assert.That(h.ErrorCode, Is.EqualTo(0x28u));
    }
}
