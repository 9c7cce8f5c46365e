using System.Diagnostics;
using Hypervisor.Accel.Tcg.Tests.Guests;
using Hypervisor.Core.Accelerators;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Memory;
using Hypervisor.Core.Registers;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Accel.Tcg.Tests.Jit;

/// <summary>
/// Guests for the properties the JIT must keep from the interpreter: self-modifying code, precise faults inside a
/// translated loop, and interrupts delivered at instruction boundaries with bounded latency and exact instruction
/// counts. Each runs on the interpreter and on the JIT (translating on first execution).
/// </summary>
[TestFixture]
public sealed class JitGuestTests
{
    private const ulong CodeBase = 0x1_0000;

    /// <summary>
    /// Code that patches the immediate of the very next instruction in its own block, and the immediate of a hot
    /// subroutine it calls, in loops. The SDM (Vol. 3A, 11.6) makes a write to code visible to the next fetch, so the
    /// sums are those of the patched values.
    /// </summary>
    [TestCase(JitCoverage.Interpreter)]
    [TestCase(JitCoverage.Jit)]
    public void SelfModifyingCodeRunsThePatchedInstructions(string engine)
    {
        using var m = new TestMachine(options: JitCoverage.For(engine));
        m.StartLong64(CodeBase);
        m.Load(64, CodeBase, a =>
        {
            Label again = a.CreateLabel(), next = a.CreateLabel(), outer = a.CreateLabel(), patchme = a.CreateLabel();
            a.xor(r9d, r9d);
            a.mov(r10d, 5);
            a.Label(ref again);
            a.lea(rdi, __[next]);
            a.mov(__byte_ptr[rdi + 1], r10b); // the low byte of the next MOV's immediate
            a.Label(ref next);
            a.mov(eax, 0x100);
            a.add(r9, rax);
            a.dec(r10d);
            a.jnz(again);

            a.xor(r8d, r8d);
            a.mov(ecx, 10);
            a.lea(rsi, __[patchme]);
            a.Label(ref outer);
            a.call(patchme);
            a.add(r8, rax);
            a.inc(__dword_ptr[rsi + 1]); // the subroutine's immediate, in another block of the same page
            a.dec(ecx);
            a.jnz(outer);
            a.hlt();
            a.Label(ref patchme);
            a.mov(eax, 100);
            a.ret();
        });

        VcpuExit exit = m.Run(100_000);
        GeneralRegisters g = m.Vcpu.GetGeneralRegisters();
        Assert.Multiple(() =>
        {
            Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), exit.ToString());
            Assert.That(g.R9, Is.EqualTo((ulong)((5 * 0x100) + 5 + 4 + 3 + 2 + 1)), "same-block patch");
            Assert.That(g.R8, Is.EqualTo((ulong)Enumerable.Range(100, 10).Sum()), "patched subroutine");
            if (engine == JitCoverage.Jit)
            {
                Assert.That(m.Cpu.Jit!.Statistics.Invalidations, Is.GreaterThan(0), "translations invalidated by the writes");
                Assert.That(m.Cpu.Jit!.Statistics.JitInstructions, Is.GreaterThan(0), "translated code ran");
            }
        });
    }

    /// <summary>
    /// A translated loop walks into an unmapped page: the #PF must report the faulting MOV's address, CR2, and the
    /// registers and flags of the instructions before it in the same iteration, exactly as the interpreter does.
    /// </summary>
    [Test]
    public void PageFaultInsideATranslatedLoopIsPrecise()
    {
        (GeneralRegisters Regs, ulong[] Frame, ulong Cr2, long Count) Run(string engine)
        {
            using var m = new TestMachine(options: JitCoverage.For(engine));
            m.StartLong64(CodeBase);
            m.WriteQword(TestMachine.Pt + (0x15 * 8), 0); // unmap 0x15000
            m.SetGate64(14, 0x1_8000);
            m.Load(64, 0x1_8000, a => a.hlt());
            m.Load(64, CodeBase, a =>
            {
                Label loop = a.CreateLabel();
                a.mov(ebx, 0x1_4000);
                a.xor(eax, eax);
                a.xor(ecx, ecx);
                a.Label(ref loop);
                a.add(rax, rcx);
                a.mov(rdx, __qword_ptr[rbx + (rcx * 8)]);
                a.sub(rax, 3);
                a.inc(rcx);
                a.cmp(rcx, 2000);
                a.jb(loop);
                a.hlt();
            });
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

            return (g, frame, m.Vcpu.GetSystemRegisters().Cr2, m.Vcpu.Statistics.Instructions);
        }

        var reference = Run(JitCoverage.Interpreter);
        var jit = Run(JitCoverage.Jit);
        ulong faultingMov = CodeBase + 12; // mov ebx,imm32 (5) + xor (2) + xor (2) + add rax,rcx (3)
        ulong expectedRax = (ulong)(Enumerable.Range(0, 513).Sum(c => (long)c) - (3 * 512));
        Assert.Multiple(() =>
        {
            // Independent expectations (SDM Vol. 3A, 6.14: error code, RIP, CS, RFLAGS, RSP, SS on the stack).
            Assert.That(jit.Frame[1], Is.EqualTo(faultingMov), "pushed RIP is the faulting instruction");
            Assert.That(jit.Cr2, Is.EqualTo(0x1_5000UL), "CR2");
            Assert.That(jit.Regs.Rcx, Is.EqualTo(512UL), "RCX: the faulting iteration");
            Assert.That(jit.Regs.Rax, Is.EqualTo(expectedRax), "RAX: the ADD before the fault done, the SUB after it not");
            Assert.That(jit.Frame[0], Is.EqualTo(0UL), "error code: not present, read, supervisor");

            // Everything else exactly as the interpreter leaves it.
            for (int i = 0; i < 16; i++)
            {
                Assert.That(jit.Regs[i], Is.EqualTo(reference.Regs[i]), $"GPR{i}");
            }

            Assert.That(jit.Frame, Is.EqualTo(reference.Frame), "exception frame (RFLAGS of the ADD included)");
            Assert.That(jit.Regs.Rflags, Is.EqualTo(reference.Regs.Rflags), "RFLAGS in the handler");
            Assert.That(jit.Count, Is.EqualTo(reference.Count), "instructions retired");
        });
    }

    /// <summary>
    /// A translated infinite loop (an IL loop in the JIT) must take an interrupt requested from another thread
    /// promptly, at an instruction boundary, with the retired-instruction count consistent with the loop counter.
    /// </summary>
    [TestCase(JitCoverage.Interpreter)]
    [TestCase(JitCoverage.Jit)]
    public void InterruptReachesATranslatedLoopPromptlyAtAnInstructionBoundary(string engine)
    {
        var source = new LatchedInterrupt();
        using var m = new TestMachine(interrupts: source, options: JitCoverage.For(engine));
        m.StartLong64(CodeBase);
        m.SetGate64(0x20, 0x1_8000);
        m.Load(64, 0x1_8000, a => a.hlt());
        ulong loop = 0, jmp = 0;
        m.Load(64, CodeBase, a =>
        {
            Label l = a.CreateLabel();
            a.xor(eax, eax);
            a.Label(ref l);
            a.inc(rax);
            a.jmp(l);
        });
        loop = TestMachine.InstructionAddress(m, 64, CodeBase, 1);
        jmp = TestMachine.InstructionAddress(m, 64, CodeBase, 2);
        GeneralRegisters g0 = m.Vcpu.GetGeneralRegisters();
        g0.Rflags |= 1UL << 9; // IF
        m.Vcpu.SetGeneralRegisters(g0);

        Task<VcpuExit> run = Task.Run(() => m.Vcpu.Run(long.MaxValue));
        Thread.Sleep(300);
        Assert.That(run.IsCompleted, Is.False, "the loop runs until interrupted");
        var latency = Stopwatch.StartNew();
        source.Raise(0x20);
        m.Vcpu.NotifyInterruptPending();
        bool finished = run.Wait(TimeSpan.FromSeconds(10));
        latency.Stop();
        if (!finished)
        {
            m.Vcpu.Kick();
            run.Wait(TimeSpan.FromSeconds(5));
        }

        Assert.That(finished, Is.True, "the interrupt ended the loop");
        GeneralRegisters g = m.Vcpu.GetGeneralRegisters();
        ulong pushedRip = m.ReadQword(g.Rsp);
        long count = m.Vcpu.Statistics.Instructions;
        long counter = (long)g.Rax;
        Assert.Multiple(() =>
        {
            Assert.That(run.Result.Reason, Is.EqualTo(VcpuExitReason.Halted), run.Result.ToString());
            Assert.That(latency.Elapsed, Is.LessThan(TimeSpan.FromSeconds(2)), "latency (generous: the host is shared)");
            Assert.That(pushedRip, Is.EqualTo(loop).Or.EqualTo(jmp), "delivered at an instruction boundary of the loop");
            // xor + RAX incs + (RAX or RAX - 1) jmps + the handler's HLT.
            long jumps = pushedRip == loop ? counter : counter - 1;
            Assert.That(count, Is.EqualTo(1 + counter + jumps + 1), "retired instructions match the loop counter");
            Assert.That(counter, Is.GreaterThan(1000), "the loop ran");
            if (engine == JitCoverage.Jit)
            {
                Assert.That(m.Cpu.Jit!.Statistics.JitInstructions, Is.GreaterThan(counter), "the loop ran translated");
            }
        });
    }

    /// <summary>
    /// A device that raises an interrupt from an OUT (as an interrupt controller programmed by the guest would): the
    /// interpreter ends its block at every IN/OUT, so the interrupt is taken right after that OUT; translated code
    /// goes on after a port access only when nothing is pending, so it must stop there too, even where the next block
    /// is reached by a forward branch (no interrupt check). Two OUTs per iteration put the raising one before such a
    /// branch.
    /// </summary>
    [TestCase(JitCoverage.Interpreter)]
    [TestCase(JitCoverage.Jit)]
    public void InterruptRaisedByAnOutIsTakenRightAfterIt(string engine)
    {
        const int RaisingWrite = 500; // an even write: the OUT after INC RCX
        var source = new LatchedInterrupt();
        using var m = new TestMachine(interrupts: source, options: JitCoverage.For(engine));
        var device = new InterruptOnWrite(source, RaisingWrite, () => m.Vcpu);
        m.Ports.Register(0x80, 1, device, "raises an interrupt");
        m.StartLong64(CodeBase);
        m.SetGate64(0x20, 0x1_8000);
        m.Load(64, 0x1_8000, a => a.hlt());
        m.Load(64, CodeBase, a =>
        {
            Label l = a.CreateLabel();
            a.xor(eax, eax);
            a.xor(ecx, ecx);
            a.Label(ref l);
            a.inc(rax);
            a.@out(0x80, al);
            a.inc(rcx);
            a.@out(0x80, al);
            a.jmp(l);
        });
        ulong jmp = TestMachine.InstructionAddress(m, 64, CodeBase, 6);
        GeneralRegisters g0 = m.Vcpu.GetGeneralRegisters();
        g0.Rflags |= 1UL << 9; // IF
        m.Vcpu.SetGeneralRegisters(g0);

        VcpuExit exit = m.Vcpu.Run(1_000_000);
        GeneralRegisters g = m.Vcpu.GetGeneralRegisters();
        long iterations = (long)g.Rax;
        Assert.Multiple(() =>
        {
            Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), exit.ToString());
            Assert.That(device.Writes, Is.EqualTo(RaisingWrite), "OUTs executed");
            Assert.That(iterations, Is.EqualTo(RaisingWrite / 2));
            Assert.That(g.Rcx, Is.EqualTo(g.Rax));
            Assert.That(m.ReadQword(g.Rsp), Is.EqualTo(jmp), "delivered right after the raising OUT");
            // Two XORs, four instructions per iteration, a JMP between iterations, the handler's HLT.
            Assert.That(m.Vcpu.Statistics.Instructions, Is.EqualTo(2 + (4 * iterations) + (iterations - 1) + 1), "instructions retired");
            if (engine == JitCoverage.Jit)
            {
                Assert.That(m.Cpu.Jit!.Statistics.JitInstructions, Is.GreaterThan(RaisingWrite), "the loop ran translated");
                Assert.That(m.Cpu.Jit!.Statistics.RegionRuns, Is.LessThan(RaisingWrite / 4), "the region went on after OUTs");
            }
        });
    }

    /// <summary>Counts byte writes and raises vector 0x20 at the <c>after</c>-th.</summary>
    private sealed class InterruptOnWrite(LatchedInterrupt source, int after, Func<Hypervisor.Core.Machine.IVcpu> vcpu) : Hypervisor.Core.Io.IPortDevice
    {
        public int Writes { get; private set; }

        public uint Read(ushort offset, int size) => 0xFF;

        public void Write(ushort offset, int size, uint value)
        {
            if (++Writes == after)
            {
                source.Raise(0x20);
                vcpu().NotifyInterruptPending();
            }
        }
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
