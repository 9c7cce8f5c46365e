using Hypervisor.Accel.Tcg.Tests.Guests;
using Hypervisor.Core.Accelerators;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Memory;
using Hypervisor.Core.Registers;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Accel.Tcg.Tests.Jit;

/// <summary>
/// Guests for the translated stack path (PUSH/POP/CALL/RET through the cached stack page): pushes that straddle and
/// cross page boundaries, a 16-bit stack that wraps, pushes onto a page holding translated code, and a push that
/// faults inside a translated loop. Each checks independent expectations (arithmetic done here, SDM rules) and that
/// the JIT leaves exactly the interpreter's state.
/// </summary>
[TestFixture]
public sealed class JitStackTests
{
    private const ulong CodeBase = 0x1_0000;

    private static (GeneralRegisters Regs, byte[] Stack, long Count, long JitInstructions) RunRecursion(string engine, int bitness, ulong rsp, int depth)
    {
        using var m = new TestMachine(options: JitCoverage.For(engine));
        if (bitness == 64)
        {
            m.StartLong64(CodeBase, rsp);
            // Linear 0x7E000 on physical 0x50000: host memory is not contiguous across the boundary at 0x7F000, so an
            // access that straddles it must be split as the page tables say.
            m.WriteQword(TestMachine.Pt + (0x7E * 8), 0x5_0000 | 7);
        }
        else
        {
            m.StartProtected32((uint)CodeBase, (uint)rsp);
        }

        m.Load(bitness, CodeBase, a =>
        {
            Label sum = a.CreateLabel(), leaf = a.CreateLabel(), rep = a.CreateLabel();
            AssemblerRegister32 n = ecx;
            a.xor(edi, edi);
            a.mov(esi, 20);
            a.Label(ref rep);
            a.mov(n, depth);
            a.call(sum);
            a.add(edi, eax);
            a.dec(esi);
            a.jnz(rep);
            a.hlt();

            // sum(ECX) = ECX + sum(ECX - 1), sum(0) = 0; ECX saved on the stack around the recursive call.
            a.Label(ref sum);
            a.xor(eax, eax);
            a.test(n, n);
            a.jz(leaf);
            if (bitness == 64)
            {
                a.push(rcx);
            }
            else
            {
                a.push(ecx);
            }

            a.dec(n);
            a.call(sum);
            if (bitness == 64)
            {
                a.pop(rcx);
            }
            else
            {
                a.pop(ecx);
            }

            a.add(eax, n);
            a.Label(ref leaf);
            a.ret();
        });
        VcpuExit exit = m.Run(10_000_000);
        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), $"{engine}: {exit}");
        var stack = new byte[0x4_0000];
        m.Memory.Read(new GuestAddress(0x4_0000), stack); // physical 0x40000-0x7FFFF: both stack page mappings
        long jitInstructions = engine == JitCoverage.Jit ? m.Cpu.Jit!.Statistics.JitInstructions : 0;
        return (m.Vcpu.GetGeneralRegisters(), stack, m.Vcpu.Statistics.Instructions, jitInstructions);
    }

    /// <summary>
    /// Recursion 300 deep from a stack pointer 6 bytes past a page boundary: pushes and return addresses straddle
    /// page boundaries (the cached page must not serve an access that reaches the next page) and the stack walks over
    /// three pages (in 64-bit mode the page below the boundary maps elsewhere). EDI = 20 times 300 * 301 / 2.
    /// </summary>
    [TestCase(64)]
    [TestCase(32)]
    public void RecursionAcrossStackPagesMatchesTheInterpreter(int bitness)
    {
        const int depth = 300;
        const ulong rsp = 0x7_F006;
        var reference = RunRecursion(JitCoverage.Interpreter, bitness, rsp, depth);
        var jit = RunRecursion(JitCoverage.Jit, bitness, rsp, depth);
        Assert.Multiple(() =>
        {
            Assert.That(jit.Regs.Rdi, Is.EqualTo((ulong)(20 * depth * (depth + 1) / 2)), "sum");
            Assert.That(jit.Regs.Rsp, Is.EqualTo(rsp), "balanced stack");
            Assert.That(jit.JitInstructions, Is.GreaterThan(10_000), "the recursion ran translated");
            for (int i = 0; i < 16; i++)
            {
                Assert.That(jit.Regs[i], Is.EqualTo(reference.Regs[i]), $"GPR{i}");
            }

            Assert.That(jit.Regs.Rflags, Is.EqualTo(reference.Regs.Rflags), "RFLAGS");
            Assert.That(jit.Stack, Is.EqualTo(reference.Stack), "stack contents");
            Assert.That(jit.Count, Is.EqualTo(reference.Count), "instructions retired");
        });
    }

    /// <summary>
    /// Real mode: SP starts at 4, so the second CALL of every pass wraps SP to 0xFFFE (SDM Vol. 1, 6.2: the stack
    /// pointer wraps within the 16-bit segment) and the return address lands at SS:0xFFFE.
    /// </summary>
    [TestCase(JitCoverage.Interpreter)]
    [TestCase(JitCoverage.Jit)]
    public void RealModeStackWrapsWithinTheSegment(string engine)
    {
        using var m = new TestMachine(options: JitCoverage.For(engine));
        m.StartReal(0x1000);
        GeneralRegisters g0 = m.Vcpu.GetGeneralRegisters();
        g0.Rsp = 4;
        m.Vcpu.SetGeneralRegisters(g0);
        m.Load(16, 0x1000, a =>
        {
            Label outer = a.CreateLabel(), inner = a.CreateLabel(), sub = a.CreateLabel(), ret1 = a.CreateLabel();
            a.xor(di, di);
            a.mov(si, 100);
            a.Label(ref outer);
            a.call(sub);
            a.add(di, ax);
            a.dec(si);
            a.jnz(outer);
            a.hlt();
            a.Label(ref sub); // SP = 2 here
            a.push(si);       // SP = 0
            a.call(inner);    // SP wraps to 0xFFFE
            a.Label(ref ret1);
            a.pop(cx);
            a.ret();
            a.Label(ref inner);
            a.mov(ax, __word_ptr[0xFFFE]); // DS = SS = 0: the return address the CALL pushed
            a.add(ax, si);
            a.ret();
        });
        // The return address of `call inner` is the POP after it: instruction 9 from 0x1000.
        ulong afterInner = TestMachine.InstructionAddress(m, 16, 0x1000, 9);
        VcpuExit exit = m.Run(1_000_000);
        GeneralRegisters g = m.Vcpu.GetGeneralRegisters();
        ulong expected = 0;
        for (ulong si = 100; si >= 1; si--)
        {
            expected += afterInner + si;
        }

        Assert.Multiple(() =>
        {
            Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), exit.ToString());
            Assert.That(g.Rdi & 0xFFFF, Is.EqualTo(expected & 0xFFFF), "sum of return addresses read at SS:0xFFFE");
            Assert.That(g.Rsp & 0xFFFF, Is.EqualTo(4UL), "balanced stack");
            Assert.That(m.ReadQword(0) & 0xFFFF, Is.EqualTo(1UL), "the last pushed SI at SS:0");
            if (engine == JitCoverage.Jit)
            {
                Assert.That(m.Cpu.Jit!.Statistics.JitInstructions, Is.GreaterThan(0), "translated code ran");
            }
        });
    }

    /// <summary>
    /// A PUSH whose stack is a page holding translated code writes the 64-bit immediate of a MOV that runs next: the
    /// SDM (Vol. 3A, 11.6) makes the write visible to the next fetch, so R8 sums the pushed values, and the pushes
    /// must have invalidated the translations of the page.
    /// </summary>
    [TestCase(JitCoverage.Interpreter)]
    [TestCase(JitCoverage.Jit)]
    public void PushOntoACodePageIsSeenByTheNextFetch(string engine)
    {
        using var m = new TestMachine(options: JitCoverage.For(engine));
        m.StartLong64(CodeBase);
        m.Load(64, CodeBase, a =>
        {
            Label loop = a.CreateLabel(), patchme = a.CreateLabel();
            a.xor(r8d, r8d);
            a.mov(ecx, 1000);
            a.mov(r9d, 50);
            a.Label(ref loop);
            a.mov(r11, rsp);
            a.lea(rsp, __[patchme]);
            a.add(rsp, 10); // the push writes patchme+2..+9: the MOV's imm64
            a.push(rcx);
            a.mov(rsp, r11);
            a.call(patchme);
            a.add(r8, rax);
            a.add(rcx, 7);
            a.dec(r9d);
            a.jnz(loop);
            a.hlt();
            a.Label(ref patchme);
            a.mov(rax, 0x1234_5678_9ABC_DEF0UL); // 48 B8 imm64: 10 bytes
            a.ret();
        });
        VcpuExit exit = m.Run(1_000_000);
        GeneralRegisters g = m.Vcpu.GetGeneralRegisters();
        ulong expected = 0;
        for (ulong i = 0; i < 50; i++)
        {
            expected += 1000 + (7 * i);
        }

        Assert.Multiple(() =>
        {
            Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), exit.ToString());
            Assert.That(g.R8, Is.EqualTo(expected), "sum of the values the pushes patched in");
            if (engine == JitCoverage.Jit)
            {
                Assert.That(m.Cpu.Jit!.Statistics.Invalidations, Is.GreaterThan(0), "the pushes invalidated translations");
                Assert.That(m.Cpu.Jit!.Statistics.JitInstructions, Is.GreaterThan(0), "translated code ran");
            }
        });
    }

    /// <summary>
    /// A translated loop of PUSHes walks down into an unmapped page: the #PF (taken on an IST stack) must report the
    /// faulting PUSH, CR2 = the lowest byte it would write, RSP not yet decremented, and the counter of the pushes
    /// done, exactly as the interpreter does.
    /// </summary>
    [Test]
    public void StackFaultInsideATranslatedLoopIsPrecise()
    {
        (GeneralRegisters Regs, ulong[] Frame, ulong Cr2, long Count, ulong PushRip) Run(string engine)
        {
            using var m = new TestMachine(options: JitCoverage.For(engine));
            m.StartLong64(CodeBase, 0x1_7010);
            m.WriteQword(TestMachine.Pt + (0x15 * 8), 0); // unmap 0x15000
            m.WriteQword(TestMachine.TssBase + 0x24, 0x7_0000); // IST1
            m.SetGate64(14, 0x1_8000, ist: 1);
            m.Load(64, 0x1_8000, a => a.hlt());
            m.Load(64, CodeBase, a =>
            {
                Label loop = a.CreateLabel();
                a.xor(eax, eax);
                a.mov(ebx, 5);
                a.Label(ref loop);
                a.add(rbx, rax);
                a.push(rbx);
                a.inc(rax);
                a.cmp(rax, 100_000);
                a.jb(loop);
                a.hlt();
            });
            ulong pushRip = TestMachine.InstructionAddress(m, 64, CodeBase, 3);
            VcpuExit exit = m.Run(1_000_000);
            Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), $"{engine}: {exit}");
            GeneralRegisters g = m.Vcpu.GetGeneralRegisters();
            var frame = new ulong[6];
            for (int i = 0; i < frame.Length; i++)
            {
                frame[i] = m.ReadQword(g.Rsp + ((ulong)i * 8));
            }

            if (engine == JitCoverage.Jit)
            {
                Assert.That(m.Cpu.Jit!.Statistics.JitInstructions, Is.GreaterThan(1000), "the loop ran translated");
            }

            return (g, frame, m.Vcpu.GetSystemRegisters().Cr2, m.Vcpu.Statistics.Instructions, pushRip);
        }

        var reference = Run(JitCoverage.Interpreter);
        var jit = Run(JitCoverage.Jit);
        Assert.Multiple(() =>
        {
            Assert.That(jit.Frame[1], Is.EqualTo(jit.PushRip), "pushed RIP is the faulting PUSH");
            Assert.That(jit.Cr2, Is.EqualTo(0x1_5FF8UL), "CR2: the qword below 0x16000");
            Assert.That(jit.Frame[4], Is.EqualTo(0x1_6000UL), "RSP at the fault: not decremented");
            Assert.That(jit.Frame[0], Is.EqualTo(2UL), "error code: not present, write, supervisor");
            Assert.That(jit.Regs.Rax, Is.EqualTo(0x1010UL / 8), "pushes done before the fault (0x17010 down to 0x16000)");
            for (int i = 0; i < 16; i++)
            {
                Assert.That(jit.Regs[i], Is.EqualTo(reference.Regs[i]), $"GPR{i}");
            }

            Assert.That(jit.Frame, Is.EqualTo(reference.Frame), "exception frame");
            Assert.That(jit.Count, Is.EqualTo(reference.Count), "instructions retired");
        });
    }
}
