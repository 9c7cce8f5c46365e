using Hypervisor.Accel.Tcg.Tests.Guests;
using Hypervisor.Core.Machine;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Accel.Tcg.Tests.Jit;

/// <summary>
/// Lockstep: the same random integer program runs on the interpreter (the reference) and on the JIT. At every exit
/// of a translated region the interpreter is advanced by exactly the instructions the JIT machine has retired, and
/// RIP, RFLAGS, all sixteen GPRs and the scratch memory must be identical, so an error shows at the region where it
/// happens, with the instruction count exact.
/// </summary>
[TestFixture]
public sealed class JitLockstepTests
{
    [TestCase(64, 1)]
    [TestCase(64, 2)]
    [TestCase(64, 3)]
    [TestCase(64, 4)]
    [TestCase(64, 5)]
    [TestCase(64, 6)]
    [TestCase(32, 1)]
    [TestCase(32, 2)]
    [TestCase(32, 3)]
    [TestCase(16, 1)]
    [TestCase(16, 2)]
    public void RandomProgramAgreesWithTheInterpreterAtEveryRegionExit(int bitness, int seed)
    {
        var random = new Random((seed * 7919) + bitness);
        // Odd seeds: a loop body that spans pages (exits across pages, links through the fetch TLB).
        int length = seed % 2 == 1 ? 1500 : 80;
        byte[] code = TestMachine.Assemble(bitness, bitness == 16 ? 0 : LockstepMachines.CodeBase, a => RandomIntegerProgram.Emit(a, bitness, random, length, length > 100 ? 15 : 100));
        var scratch = new byte[128];
        random.NextBytes(scratch);
        ulong[] regs = LockstepMachines.RandomRegisters(random, bitness);

        using var reference = LockstepMachines.Prepare(new TestMachine(options: JitCoverage.Off), bitness, code, scratch, regs);
        using var jit = LockstepMachines.Prepare(new TestMachine(options: JitCoverage.Eager), bitness, code, scratch, regs);
        RunInLockstep(reference, jit, random);
    }

    /// <summary>
    /// Recursive calls (PUSH/CALL/POP/RET) and a JMP the decoder follows inside its block: the return sites of the
    /// calls belong to the same region, so a RET returns there without leaving translated code, and so does the JMP;
    /// the state still agrees with the interpreter at every region exit, and the guest's sum is the Fibonacci number
    /// computed here.
    /// </summary>
    [TestCase(64)]
    [TestCase(32)]
    [TestCase(16)]
    public void RecursiveCallsStayInTheirRegionAndAgreeWithTheInterpreter(int bitness)
    {
        const int Iterations = 30, Argument = 11;
        byte[] code = TestMachine.Assemble(bitness, bitness == 16 ? 0 : LockstepMachines.CodeBase, a => EmitRecursiveFib(a, bitness, Iterations, Argument));
        var random = new Random(bitness);
        var scratch = new byte[128];
        ulong[] regs = LockstepMachines.RandomRegisters(random, bitness);

        using (var reference = LockstepMachines.Prepare(new TestMachine(options: JitCoverage.Off), bitness, code, scratch, regs))
        using (var lockstep = LockstepMachines.Prepare(new TestMachine(options: JitCoverage.Eager), bitness, code, scratch, regs))
        {
            RunInLockstep(reference, lockstep, random);
        }

        // One run with a budget that never ends a region: region entries count the exits to the dispatcher.
        using var jit = LockstepMachines.Prepare(new TestMachine(options: JitCoverage.Eager), bitness, code, scratch, regs);
        VcpuExit exit = jit.Run(5_000_000);
        uint fib = 0, next = 1;
        for (int i = 0; i < Argument; i++)
        {
            (fib, next) = (next, fib + next);
        }

        long instructions = jit.Vcpu.Statistics.Instructions;
        Assert.Multiple(() =>
        {
            Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), exit.ToString());
            Assert.That((uint)jit.Vcpu.GetGeneralRegisters().Rdi & (bitness == 16 ? 0xFFFFu : uint.MaxValue), Is.EqualTo(fib * Iterations));
            Assert.That(jit.Cpu.Jit!.Statistics.RegionRuns * 200, Is.LessThan(instructions),
                $"region entries for {instructions} instructions (every RET leaving its region would make about one per ten)");
        });
    }

    /// <summary>
    /// Runs <paramref name="jit"/> in random slices and, at every region exit, catches <paramref name="reference"/> up
    /// by exactly the instructions retired and compares the architectural state; then both run to HLT.
    /// </summary>
    private static void RunInLockstep(TestMachine reference, TestMachine jit, Random random)
    {
        int compared = 0;
        string? difference = null;
        jit.Cpu.JitRegionExitHook = (cpu, soFar) =>
        {
            if (difference is not null)
            {
                return;
            }

            long target = cpu.Statistics.Instructions + soFar;
            long behind = target - reference.Vcpu.Statistics.Instructions;
            VcpuExit stepped = behind > 0 ? reference.Run(behind) : default;
            if (behind > 0 && reference.Vcpu.Statistics.Instructions != target)
            {
                difference = $"the interpreter stopped with {stepped} while catching up {behind} instructions";
                return;
            }

            difference = LockstepMachines.Compare(reference, "interpreter", jit, "jit", $"region exit {compared} after {cpu.Statistics.Instructions + soFar} instructions");
            compared++;
        };

        // Slices of random length end regions at budget checks as well as at their own exits.
        VcpuExit jitExit;
        do
        {
            jitExit = jit.Run(random.Next(1, 400));
        }
        while (jitExit.Reason == VcpuExitReason.InstructionLimit && jit.Vcpu.Statistics.Instructions < 5_000_000);

        VcpuExit referenceExit = reference.Run(5_000_000);
        Assert.That(difference, Is.Null, () => $"final: jit {jit.Vcpu.Statistics.Instructions} interp {reference.Vcpu.Statistics.Instructions} {LockstepMachines.Compare(reference, "interpreter", jit, "jit", "end")}");
        Assert.Multiple(() =>
        {
            Assert.That(jitExit.Reason, Is.EqualTo(VcpuExitReason.Halted), jitExit.ToString());
            Assert.That(referenceExit.Reason, Is.EqualTo(VcpuExitReason.Halted), referenceExit.ToString());
            Assert.That(jit.Vcpu.Statistics.Instructions, Is.EqualTo(reference.Vcpu.Statistics.Instructions), "instruction count");
            Assert.That(LockstepMachines.Compare(reference, "interpreter", jit, "jit", "at the end"), Is.Null);
            Assert.That(compared, Is.GreaterThan(20), "region exits compared");
            Assert.That(jit.Cpu.Jit!.Statistics.JitInstructions, Is.GreaterThan(jit.Vcpu.Statistics.Instructions / 2),
                "most instructions ran as translated code");
        });
    }

    /// <summary>EDI = fib(<paramref name="argument"/>) summed <paramref name="iterations"/> times, by the recursive definition.</summary>
    private static void EmitRecursiveFib(Assembler a, int bitness, int iterations, int argument)
    {
        Label loop = a.CreateLabel(), fib = a.CreateLabel(), leaf = a.CreateLabel(), over = a.CreateLabel();
        bool w = bitness == 16;
        if (w)
        {
            a.mov(bp, (short)iterations);
            a.xor(di, di);
        }
        else
        {
            a.mov(ebp, iterations);
            a.xor(edi, edi);
        }

        a.Label(ref loop);
        if (w)
        {
            a.mov(ax, (short)argument);
        }
        else
        {
            a.mov(eax, argument);
        }

        a.call(fib);
        if (w)
        {
            a.add(di, ax);
        }
        else
        {
            a.add(edi, eax);
        }

        a.jmp(over); // same page: the decoder continues the block at the target
        a.hlt();
        a.Label(ref over);
        if (w)
        {
            a.dec(bp);
        }
        else
        {
            a.dec(ebp);
        }

        a.jnz(loop);
        a.hlt();

        // fib: AX/EAX = n in, fib(n) out; CX/ECX clobbered.
        a.Label(ref fib);
        if (w)
        {
            a.cmp(ax, 2);
            a.jb(leaf);
            a.push(ax);
            a.dec(ax);
            a.call(fib);
            a.pop(cx);
            a.push(ax);
            a.mov(ax, cx);
            a.sub(ax, 2);
            a.call(fib);
            a.pop(cx);
            a.add(ax, cx);
        }
        else if (bitness == 32)
        {
            a.cmp(eax, 2);
            a.jb(leaf);
            a.push(eax);
            a.dec(eax);
            a.call(fib);
            a.pop(ecx);
            a.push(eax);
            a.mov(eax, ecx);
            a.sub(eax, 2);
            a.call(fib);
            a.pop(ecx);
            a.add(eax, ecx);
        }
        else
        {
            a.cmp(eax, 2);
            a.jb(leaf);
            a.push(rax);
            a.dec(eax);
            a.call(fib);
            a.pop(rcx);
            a.push(rax);
            a.mov(eax, ecx);
            a.sub(eax, 2);
            a.call(fib);
            a.pop(rcx);
            a.add(eax, ecx);
        }

        a.Label(ref leaf);
        a.ret();
    }
}
