using System.Globalization;
using Hypervisor.Accel.Tcg.Tests.Guests;
using Hypervisor.Core.Memory;
using Hypervisor.Core.Registers;

namespace Hypervisor.Accel.Tcg.Tests.Jit;

/// <summary>
/// The machines of the lockstep tests (interpreter against JIT, fast path against single-stepping): the same random
/// integer program, registers and scratch block on two machines, and the comparison of their architectural state.
/// </summary>
internal static class LockstepMachines
{
    /// <summary>Where the program is loaded (in real mode: segment 1000h, offset 0).</summary>
    internal const ulong CodeBase = 0x1_0000;

    /// <summary>The scratch block the program reads and writes through RBX (in real mode: DS = 9000h, offset 0).</summary>
    internal const ulong Scratch = 0x9_0000;

    /// <summary>Sixteen register values, a third of them small (-3..2), the rest large; 32 bits wide below 64-bit mode.</summary>
    internal static ulong[] RandomRegisters(Random random, int bitness)
    {
        var regs = new ulong[16];
        for (int i = 0; i < 16; i++)
        {
            regs[i] = random.Next(3) == 0 ? (ulong)random.Next(-3, 3) : (ulong)random.NextInt64() * 3;
            if (bitness != 64)
            {
                regs[i] &= 0xFFFF_FFFF;
            }
        }

        return regs;
    }

    /// <summary>
    /// Puts <paramref name="m"/> in the mode of <paramref name="bitness"/> at <see cref="CodeBase"/> with the code, the
    /// scratch block and the registers (RSP is left to the mode's set-up, RBX points at the scratch block).
    /// </summary>
    internal static TestMachine Prepare(TestMachine m, int bitness, byte[] code, byte[] scratch, ulong[] regs)
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

    /// <summary>RIP, RFLAGS, the sixteen GPRs and the scratch block of both machines; null when they agree.</summary>
    internal static string? Compare(TestMachine reference, string referenceName, TestMachine other, string otherName, string where)
    {
        GeneralRegisters a = reference.Vcpu.GetGeneralRegisters(), b = other.Vcpu.GetGeneralRegisters();
        var problems = new List<string>();
        if (a.Rip != b.Rip)
        {
            problems.Add($"RIP {referenceName} {a.Rip:X} {otherName} {b.Rip:X}");
        }

        if (a.Rflags != b.Rflags)
        {
            problems.Add($"RFLAGS {referenceName} {a.Rflags:X} {otherName} {b.Rflags:X}");
        }

        for (int i = 0; i < 16; i++)
        {
            if (a[i] != b[i])
            {
                problems.Add(string.Create(CultureInfo.InvariantCulture, $"GPR{i} {referenceName} {a[i]:X16} {otherName} {b[i]:X16}"));
            }
        }

        var sa = new byte[128];
        var sb = new byte[128];
        reference.Memory.Read(new GuestAddress(Scratch), sa);
        other.Memory.Read(new GuestAddress(Scratch), sb);
        if (!sa.AsSpan().SequenceEqual(sb))
        {
            problems.Add($"scratch {referenceName} {Convert.ToHexString(sa)} {otherName} {Convert.ToHexString(sb)}");
        }

        return problems.Count == 0 ? null : $"{where}: " + string.Join("; ", problems);
    }
}
