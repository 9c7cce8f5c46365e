using System.Globalization;
using Hypervisor.Accel.Tcg.Tests.Guests;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Memory;
using Hypervisor.Core.Registers;

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
    private const ulong CodeBase = 0x1_0000;
    private const ulong Scratch = 0x9_0000;

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
        byte[] code = TestMachine.Assemble(bitness, bitness == 16 ? 0 : CodeBase, a => RandomIntegerProgram.Emit(a, bitness, random, length, length > 100 ? 15 : 100));
        var scratch = new byte[128];
        random.NextBytes(scratch);
        var regs = new ulong[16];
        for (int i = 0; i < 16; i++)
        {
            regs[i] = random.Next(3) == 0 ? (ulong)random.Next(-3, 3) : (ulong)random.NextInt64() * 3;
            if (bitness != 64)
            {
                regs[i] &= 0xFFFF_FFFF;
            }
        }

        using var reference = Prepare(new TestMachine(options: JitCoverage.Off), bitness, code, scratch, regs);
        using var jit = Prepare(new TestMachine(options: JitCoverage.Eager), bitness, code, scratch, regs);
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

            difference = Compare(reference, jit, $"region exit {compared} after {cpu.Statistics.Instructions + soFar} instructions");
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
        Assert.That(difference, Is.Null, () => $"final: jit {jit.Vcpu.Statistics.Instructions} interp {reference.Vcpu.Statistics.Instructions} {Compare(reference, jit, "end")}");
        Assert.Multiple(() =>
        {
            Assert.That(jitExit.Reason, Is.EqualTo(VcpuExitReason.Halted), jitExit.ToString());
            Assert.That(referenceExit.Reason, Is.EqualTo(VcpuExitReason.Halted), referenceExit.ToString());
            Assert.That(jit.Vcpu.Statistics.Instructions, Is.EqualTo(reference.Vcpu.Statistics.Instructions), "instruction count");
            Assert.That(Compare(reference, jit, "at the end"), Is.Null);
            Assert.That(compared, Is.GreaterThan(20), "region exits compared");
            Assert.That(jit.Cpu.Jit!.Statistics.JitInstructions, Is.GreaterThan(jit.Vcpu.Statistics.Instructions / 2),
                "most instructions ran as translated code");
        });
    }

    private static TestMachine Prepare(TestMachine m, int bitness, byte[] code, byte[] scratch, ulong[] regs)
    {
        if (bitness == 64)
        {
            m.StartLong64(CodeBase);
        }
        else if (bitness == 32)
        {
            m.StartProtected32((uint)CodeBase);
        }
        else
        {
            // Real mode: CS:IP = 1000:0 (the code), DS = 9000 (the scratch block at offset 0), SS:SP = 0:7000 (16-bit
            // stack: PUSH/POP/CALL/RET translated for SS.B = 0).
            m.StartReal(0);
            SystemRegisters s = m.Vcpu.GetSystemRegisters();
            s.Cs = SegmentRegister.RealMode((ushort)(CodeBase >> 4), type: 0xB);
            s.Ds = SegmentRegister.RealMode((ushort)(Scratch >> 4));
            m.Vcpu.SetSystemRegisters(s);
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

        g.Rbx = bitness == 16 ? 0 : Scratch;
        g.Rflags = 2 | (regs[3] & 0x8D5);
        m.Vcpu.SetGeneralRegisters(g);
        return m;
    }

    private static string? Compare(TestMachine reference, TestMachine jit, string where)
    {
        GeneralRegisters a = reference.Vcpu.GetGeneralRegisters(), b = jit.Vcpu.GetGeneralRegisters();
        var problems = new List<string>();
        if (a.Rip != b.Rip)
        {
            problems.Add($"RIP interpreter {a.Rip:X} jit {b.Rip:X}");
        }

        if (a.Rflags != b.Rflags)
        {
            problems.Add($"RFLAGS interpreter {a.Rflags:X} jit {b.Rflags:X}");
        }

        for (int i = 0; i < 16; i++)
        {
            if (a[i] != b[i])
            {
                problems.Add(string.Create(CultureInfo.InvariantCulture, $"GPR{i} interpreter {a[i]:X16} jit {b[i]:X16}"));
            }
        }

        var sa = new byte[128];
        var sb = new byte[128];
        reference.Memory.Read(new GuestAddress(Scratch), sa);
        jit.Memory.Read(new GuestAddress(Scratch), sb);
        if (!sa.AsSpan().SequenceEqual(sb))
        {
            problems.Add($"scratch interpreter {Convert.ToHexString(sa)} jit {Convert.ToHexString(sb)}");
        }

        return problems.Count == 0 ? null : $"{where}: " + string.Join("; ", problems);
    }
}
