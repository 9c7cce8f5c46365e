using System.Globalization;
using Hypervisor.Accel.Tcg.Tests.Jit;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Memory;
using Hypervisor.Core.Registers;

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
    private const ulong CodeBase = 0x1_0000;
    private const ulong Scratch = 0x9_0000;

    [TestCase(64, 1)]
    [TestCase(64, 2)]
    [TestCase(64, 3)]
    [TestCase(32, 1)]
    [TestCase(32, 2)]
    [TestCase(32, 3)]
    public void FastPathAgreesWithSteppingAtEverySlice(int bitness, int seed)
    {
        var random = new Random((seed * 104729) + bitness);
        byte[] code = TestMachine.Assemble(bitness, CodeBase, a => RandomIntegerProgram.Emit(a, bitness, random, 120, 60));
        var scratch = new byte[128];
        random.NextBytes(scratch);
        var regs = new ulong[16];
        for (int i = 0; i < 16; i++)
        {
            regs[i] = random.Next(3) == 0 ? (ulong)random.Next(-3, 3) : (ulong)random.NextInt64() * 3;
            if (bitness == 32)
            {
                regs[i] &= 0xFFFF_FFFF;
            }
        }

        using TestMachine fast = Prepare(new TestMachine(options: JitCoverage.Off), bitness, code, scratch, regs);
        using TestMachine stepping = Prepare(new TestMachine(options: JitCoverage.Off), bitness, code, scratch, regs);
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

            difference ??= Compare(stepping, fast, $"slice {slices} after {fast.Vcpu.Statistics.Instructions} instructions");
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
            Assert.That(Compare(stepping, fast, "at the end"), Is.Null);
            Assert.That(hooked, Is.EqualTo(stepping.Vcpu.Statistics.Instructions), "the stepping machine ran every instruction alone");
            Assert.That(slices, Is.GreaterThan(20), "slices compared");
        });
    }

    private static TestMachine Prepare(TestMachine m, int bitness, byte[] code, byte[] scratch, ulong[] regs)
    {
        if (bitness == 64)
        {
            m.StartLong64(CodeBase);
        }
        else
        {
            m.StartProtected32((uint)CodeBase);
        }

        m.Memory.Write(new GuestAddress(CodeBase), code);
        m.Memory.Write(new GuestAddress(Scratch), scratch);
        GeneralRegisters g = m.Vcpu.GetGeneralRegisters();
        for (int i = 0; i < 16; i++)
        {
            if (i != 4 && (bitness == 64 || i < 8))
            {
                g[i] = regs[i];
            }
        }

        g.Rbx = Scratch;
        g.Rflags = 2 | (regs[3] & 0x8D5);
        m.Vcpu.SetGeneralRegisters(g);
        return m;
    }

    private static string? Compare(TestMachine stepping, TestMachine fast, string where)
    {
        GeneralRegisters a = stepping.Vcpu.GetGeneralRegisters(), b = fast.Vcpu.GetGeneralRegisters();
        var problems = new List<string>();
        if (a.Rip != b.Rip)
        {
            problems.Add($"RIP stepping {a.Rip:X} fast {b.Rip:X}");
        }

        if (a.Rflags != b.Rflags)
        {
            problems.Add($"RFLAGS stepping {a.Rflags:X} fast {b.Rflags:X}");
        }

        for (int i = 0; i < 16; i++)
        {
            if (a[i] != b[i])
            {
                problems.Add(string.Create(CultureInfo.InvariantCulture, $"GPR{i} stepping {a[i]:X16} fast {b[i]:X16}"));
            }
        }

        var sa = new byte[128];
        var sb = new byte[128];
        stepping.Memory.Read(new GuestAddress(Scratch), sa);
        fast.Memory.Read(new GuestAddress(Scratch), sb);
        if (!sa.AsSpan().SequenceEqual(sb))
        {
            problems.Add($"scratch stepping {Convert.ToHexString(sa)} fast {Convert.ToHexString(sb)}");
        }

        return problems.Count == 0 ? null : $"{where}: " + string.Join("; ", problems);
    }
}
