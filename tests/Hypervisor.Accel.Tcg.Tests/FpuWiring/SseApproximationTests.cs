using Hypervisor.Accel.Tcg.Tests.Guests;
using Hypervisor.Accel.Tcg.Tests.Native;
using Hypervisor.Accel.Tcg.Tests.Sse;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Memory;
using Hypervisor.Core.Registers;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;
using Hypervisor.Accel.Tcg.Tests.Jit;

namespace Hypervisor.Accel.Tcg.Tests.FpuWiring;

/// <summary>
/// RCPPS, RCPSS, RSQRTPS, RSQRTSS against the host CPU. Their bits are implementation-specific (SDM Vol. 2, RCPPS:
/// "relative error ... less than or equal to 1.5 * 2^-12"; Intel and AMD tables differ), so: lanes whose exact result is
/// special (zero, infinity, NaN, indefinite, flushed denormal) must equal the host's bits; other lanes must be within
/// 1.5 * 2^-12 of the exact value, on the host (which checks the bound used) and in the interpreter; the untouched
/// upper lanes of the scalar forms, MXCSR (no flags) and EFLAGS must equal the host's.
/// </summary>
[TestFixture(JitCoverage.Interpreter)]
[TestFixture(JitCoverage.Jit)]
public sealed class SseApproximationTests(string engine)
{
    private const ulong Code = 0x10_0000;
    private const ulong GuestScratch = 0x9_0000;
    private const ulong GuestStack = 0x7_F000;

    public static IEnumerable<TestCaseData> Forms()
    {
        yield return new TestCaseData("rcpps", false, false, (Action<Assembler>)(a => a.rcpps(xmm0, xmm1)));
        yield return new TestCaseData("rcpps m", false, false, (Action<Assembler>)(a => a.rcpps(xmm0, __xmmword_ptr[rsi + 16])));
        yield return new TestCaseData("rsqrtps", true, false, (Action<Assembler>)(a => a.rsqrtps(xmm0, xmm1)));
        yield return new TestCaseData("rsqrtps m", true, false, (Action<Assembler>)(a => a.rsqrtps(xmm0, __xmmword_ptr[rsi + 16])));
        yield return new TestCaseData("rcpss", false, true, (Action<Assembler>)(a => a.rcpss(xmm0, xmm1)));
        yield return new TestCaseData("rcpss m", false, true, (Action<Assembler>)(a => a.rcpss(xmm0, __dword_ptr[rsi + 16])));
        yield return new TestCaseData("rsqrtss", true, true, (Action<Assembler>)(a => a.rsqrtss(xmm0, xmm1)));
        yield return new TestCaseData("rsqrtss m", true, true, (Action<Assembler>)(a => a.rsqrtss(xmm0, __dword_ptr[rsi + 16])));
    }

    [TestCaseSource(nameof(Forms))]
    public void ApproximationsMatchTheHostWithinTheSdmBound(string name, bool sqrt, bool scalar, Action<Assembler> form)
    {
        if (NativeCpu.UnsupportedReason is { } reason)
        {
            Assert.Ignore(reason);
        }

        using var cpu = new NativeCpu();
        using var machine = new TestMachine(options: JitCoverage.For(engine));
        machine.StartLong64(Code, GuestStack);
        SystemRegisters s = machine.Vcpu.GetSystemRegisters();
        s.Cr4 |= 0x600;
        machine.Vcpu.SetSystemRegisters(s);
        ulong haltedAt = machine.Load(64, Code, a =>
        {
            SseDifferentialTests.Wrap(a, form);
            a.hlt();
        });
        NativeStub stub = cpu.Compile64(a => SseDifferentialTests.Wrap(a, form));
        bool memory = name.EndsWith(" m", StringComparison.Ordinal);

        var random = new Random(name.Length * 7919 + (sqrt ? 1 : 0));
        uint[] mxcsrs = SseValues.MaskedMxcsrs().ToArray();
        var problems = new List<string>();
        for (int n = 0; n < 400; n++)
        {
            RegisterFile input = default;
            Span<byte> scratch = input.Scratch;
            for (int i = 0; i < 12; i++)
            {
                uint v = random.Next(3) == 0 ? SseValues.Edges32[random.Next(SseValues.Edges32.Length)] : (uint)SseValues.Random(random, false);
                BitConverter.TryWriteBytes(scratch[(i < 4 ? 0 : i < 8 ? 16 : 32)..][((i % 4) * 4)..], v);
            }

            BitConverter.TryWriteBytes(scratch[56..], mxcsrs[n % mxcsrs.Length]);
            input.Rflags = 2 | 0x8D5;
            input.Rsi = cpu.ScratchAddress;
            RegisterFile native = input;
            cpu.Run(stub, ref native);

            GeneralRegisters g = default;
            g.Rsi = GuestScratch;
            g.Rsp = GuestStack;
            g.Rip = Code;
            g.Rflags = input.Rflags;
            machine.Memory.Write(new GuestAddress(GuestScratch), input.Scratch);
            machine.Vcpu.SetGeneralRegisters(g);
            VcpuExit exit = machine.Run(64);
            Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), exit.ToString());
            Assert.That(machine.Vcpu.GetGeneralRegisters().Rip, Is.EqualTo(haltedAt));
            var guest = new byte[64];
            machine.Memory.Read(new GuestAddress(GuestScratch), guest);
            ReadOnlySpan<byte> host = native.Scratch;

            int source = memory ? 16 : 32;
            for (int lane = 0; lane < 4; lane++)
            {
                uint x = BitConverter.ToUInt32(input.Scratch[(source + (4 * lane))..]);
                uint h = BitConverter.ToUInt32(host[(4 * lane)..]);
                uint t = BitConverter.ToUInt32(guest, 4 * lane);
                if (scalar && lane > 0)
                {
                    if (h != t)
                    {
                        problems.Add($"{name} lane {lane} (kept) host {h:X8} interpreter {t:X8}");
                    }

                    continue;
                }

                if (Special(h) || Special(t))
                {
                    if (h != t)
                    {
                        problems.Add($"{name}({x:X8}) special: host {h:X8} interpreter {t:X8}");
                    }

                    continue;
                }

                double exact = sqrt ? 1.0 / Math.Sqrt(BitConverter.UInt32BitsToSingle(x)) : 1.0 / BitConverter.UInt32BitsToSingle(x);
                foreach ((string who, uint r) in new[] { ("host", h), ("interpreter", t) })
                {
                    double error = Math.Abs((BitConverter.UInt32BitsToSingle(r) - exact) / exact);
                    if (!(error <= 1.5 * Math.Pow(2, -12)))
                    {
                        problems.Add($"{name}({x:X8}) {who} {r:X8}: relative error {error:E3}");
                    }
                }
            }

            if (!host.Slice(16, 44).SequenceEqual(guest.AsSpan(16, 44))) // 60-63 hold the caller's MXCSR
            {
                problems.Add($"{name}: memory, XMM1 or MXCSR differ: host {Convert.ToHexString(host.Slice(16, 44))} interpreter {Convert.ToHexString(guest, 16, 44)}");
            }
        }

        Assert.That(problems, Is.Empty, string.Join(Environment.NewLine, problems.Take(10)));
    }

    /// <summary>Zero, infinity or NaN: results with no approximation in them.</summary>
    private static bool Special(uint r) => (r & 0x7F80_0000) is 0 or 0x7F80_0000;
}
