using Hypervisor.Accel.Tcg.Tests.Guests;
using Hypervisor.Core.Machine;

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
}
