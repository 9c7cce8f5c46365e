using Hypervisor.Accel.Tcg.Tests.Jit;
using Hypervisor.Core.Machine;

namespace Hypervisor.Accel.Tcg.Tests.Guests;

/// <summary>
/// The interpreter's fast path (whole blocks in the chained loop, fused compare-and-branch pairs, lazy flags, the
/// cached segment checks) against the same interpreter stepping one instruction at a time (a trace hook forces that
/// path: every instruction alone, unfused, its flags settled after it). The same random integer program runs on
/// both; the fast machine runs in slices of random length, the stepping one is advanced by exactly the instructions
/// the fast one retired, and RIP, RFLAGS, the sixteen GPRs and the scratch memory must then be identical.
/// </summary>
[TestFixture]
public sealed class FastPathLockstepTests
{
    [TestCase(64, 1)]
    [TestCase(64, 2)]
    [TestCase(64, 3)]
    [TestCase(32, 1)]
    [TestCase(32, 2)]
    [TestCase(32, 3)]
    public void FastPathAgreesWithSteppingAtEverySlice(int bitness, int seed)
    {
        var random = new Random((seed * 104729) + bitness);
        byte[] code = TestMachine.Assemble(bitness, LockstepMachines.CodeBase, a => RandomIntegerProgram.Emit(a, bitness, random, 120, 60));
        var scratch = new byte[128];
        random.NextBytes(scratch);
        ulong[] regs = LockstepMachines.RandomRegisters(random, bitness);

        using TestMachine fast = LockstepMachines.Prepare(new TestMachine(options: JitCoverage.Off), bitness, code, scratch, regs);
        using TestMachine stepping = LockstepMachines.Prepare(new TestMachine(options: JitCoverage.Off), bitness, code, scratch, regs);
        long hooked = 0;
        stepping.Cpu.TraceHook = _ => hooked++;

        string? difference = null;
        int slices = 0;
        VcpuExit fastExit;
        do
        {
            fastExit = fast.Run(random.Next(1, 300));
            long behind = fast.Vcpu.Statistics.Instructions - stepping.Vcpu.Statistics.Instructions;
            if (behind > 0)
            {
                stepping.Run(behind);
            }

            difference ??= LockstepMachines.Compare(stepping, "stepping", fast, "fast", $"slice {slices} after {fast.Vcpu.Statistics.Instructions} instructions");
            slices++;
        }
        while (fastExit.Reason == VcpuExitReason.InstructionLimit && fast.Vcpu.Statistics.Instructions < 2_000_000);

        VcpuExit steppingExit = stepping.Run(2_000_000);
        Assert.Multiple(() =>
        {
            Assert.That(difference, Is.Null);
            Assert.That(fastExit.Reason, Is.EqualTo(VcpuExitReason.Halted), fastExit.ToString());
            Assert.That(steppingExit.Reason, Is.EqualTo(VcpuExitReason.Halted), steppingExit.ToString());
            Assert.That(fast.Vcpu.Statistics.Instructions, Is.EqualTo(stepping.Vcpu.Statistics.Instructions), "instruction count");
            Assert.That(LockstepMachines.Compare(stepping, "stepping", fast, "fast", "at the end"), Is.Null);
            Assert.That(hooked, Is.EqualTo(stepping.Vcpu.Statistics.Instructions), "the stepping machine ran every instruction alone");
            Assert.That(slices, Is.GreaterThan(20), "slices compared");
        });
    }
}
