using Hypervisor.Accel.Tcg.Tests.Guests;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Memory;
using Hypervisor.Core.Registers;
using Hypervisor.Accel.Tcg.Tests.Jit;

namespace Hypervisor.Accel.Tcg.Tests.FpuWiring;

/// <summary>
/// Random x87 and SSE encodings (0F, 66 0F, F3 0F, F2 0F and D8-DF opcodes with random ModRM/SIB/displacement bytes and
/// REX prefixes) under random MXCSR and FCW, one at a time with CR4.OSFXSR and OSXMMEXCPT set: every run must end in a
/// defined exit (an exception handler's HLT, the instruction's own HLT, a limit, or a kick out of STI; HLT), never in a
/// host error.
/// </summary>
[TestFixture(JitCoverage.Interpreter)]
[TestFixture(JitCoverage.Jit)]
public sealed class FpuFuzzTests(string engine)
{
    private const ulong Code = 0x8000, Handler = 0x9000;

    [TestCase(1)]
    [TestCase(2)]
    public void RandomFpuAndSseEncodingsEndInDefinedExits(int seed)
    {
        var random = new Random(seed);
        using var m = new TestMachine(options: JitCoverage.For(engine));
        m.StartLong64(Code);
        for (int v = 0; v < 32; v++)
        {
            m.SetGate64(v, Handler);
        }

        m.Load(64, Handler, a => a.hlt());
        SystemRegisters s = m.Vcpu.GetSystemRegisters();
        s.Cr4 |= 0x600;
        s.Cr0 |= 0x20; // NE: x87 errors as #MF
        m.Vcpu.SetSystemRegisters(s);
        byte[][] prefixes = [[0x0F], [0x66, 0x0F], [0xF3, 0x0F], [0xF2, 0x0F], [0xD8], [0xD9], [0xDA], [0xDB], [0xDC], [0xDD], [0xDE], [0xDF]];
        var problems = new List<string>();
        for (int i = 0; i < 3000; i++)
        {
            var bytes = new List<byte>();
            if (random.Next(3) == 0)
            {
                bytes.Add((byte)(0x40 | random.Next(16))); // REX (after a 66/F2/F3 it must follow them; misplacement is just another encoding)
            }

            bytes.AddRange(prefixes[random.Next(prefixes.Length)]);
            var tail = new byte[8];
            random.NextBytes(tail);
            bytes.AddRange(tail);
            bytes.Add(0xF4);
            m.Memory.Write(new GuestAddress(Code), bytes.ToArray());

            var f = new FpuRegisters { Fcw = (ushort)random.Next(0x10000), Mxcsr = (uint)random.Next(0x10000), Ftw = (byte)random.Next(256) };
            for (int r = 0; r < 16; r++)
            {
                f.Xmm[r] = new UInt128((ulong)random.NextInt64(), (ulong)random.NextInt64());
            }

            for (int r = 0; r < 8; r++)
            {
                f.St[r] = new Float80((ulong)random.NextInt64(), (ushort)random.Next(0x10000));
            }

            m.Vcpu.SetFpuRegisters(f);
            GeneralRegisters g = default;
            for (int r = 0; r < 16; r++)
            {
                g[r] = 0x6000 + (ulong)random.Next(0x100); // memory operands land in mapped RAM (or fault, also fine)
            }

            g.Rsp = 0x7_F000;
            g.Rip = Code;
            g.Rflags = 2;
            m.Vcpu.SetGeneralRegisters(g);
            // The random tail can hold STI; HLT, which waits for an interrupt as on hardware: kick it out.
            using var watchdog = new Timer(_ => m.Vcpu.Kick(), null, 200, Timeout.Infinite);
            VcpuExit exit = m.Vcpu.Run(8);
            if (exit.Reason is not (VcpuExitReason.Halted or VcpuExitReason.InstructionLimit or VcpuExitReason.Shutdown or VcpuExitReason.Interrupted) ||
                exit.Detail?.Contains("internal error", StringComparison.OrdinalIgnoreCase) == true)
            {
                problems.Add($"{Convert.ToHexString(bytes.ToArray())}: {exit.Reason} {exit.Detail}");
            }
        }

        Assert.That(problems, Is.Empty, string.Join(Environment.NewLine, problems.Take(10)));
    }
}
