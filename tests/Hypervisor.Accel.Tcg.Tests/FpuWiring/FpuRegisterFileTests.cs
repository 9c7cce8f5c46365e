using Hypervisor.Accel.Tcg.Tests.Guests;
using Hypervisor.Core.Registers;
using Hypervisor.Accel.Tcg.Tests.Jit;

namespace Hypervisor.Accel.Tcg.Tests.FpuWiring;

/// <summary>The x87/SSE register file of the tcg CPU as IVcpu exposes it (Get/SetFpuRegisters).</summary>
[TestFixture(JitCoverage.Interpreter)]
[TestFixture(JitCoverage.Jit)]
public sealed class FpuRegisterFileTests(string engine)
{
    /// <summary>SDM Vol. 3A, Table 10-1: after power-up FCW = 0040H, FSW = 0, all tags empty, MXCSR = 1F80H, XMM = 0.</summary>
    [Test]
    public void PowerUpStateFollowsTheSdm()
    {
        using var m = new TestMachine(options: JitCoverage.For(engine));
        FpuRegisters r = m.Vcpu.GetFpuRegisters();
        Assert.Multiple(() =>
        {
            Assert.That(r.Fcw, Is.EqualTo((ushort)0x0040));
            Assert.That(r.Fsw, Is.EqualTo((ushort)0));
            Assert.That(r.Ftw, Is.EqualTo((byte)0));
            Assert.That(r.Mxcsr, Is.EqualTo(0x1F80u));
            for (int i = 0; i < 16; i++)
            {
                Assert.That(r.Xmm[i], Is.EqualTo(UInt128.Zero), $"XMM{i}");
            }
        });
    }

    /// <summary>Every field a host sets (x87 stack with a non-zero TOP, tags, XMM0-15, MXCSR) reads back unchanged.</summary>
    [Test]
    public void SetThenGetRoundTrips()
    {
        using var m = new TestMachine(options: JitCoverage.For(engine));
        var random = new Random(7);
        var r = new FpuRegisters { Fcw = 0x027F, Fsw = (ushort)(5 << 11) | 0x0021, Ftw = 0b1010_0111, Mxcsr = 0x9FC0 };
        for (int i = 0; i < 8; i++)
        {
            // Normal values (integer bit set, exponent neither 0 nor max) so the rebuilt full tag is "valid".
            r.St[i] = new Float80((ulong)random.NextInt64() | (1UL << 63), (ushort)((0x3FFF + i) | (i % 2 == 0 ? 0 : 0x8000)));
        }

        for (int i = 0; i < 16; i++)
        {
            r.Xmm[i] = new UInt128((ulong)random.NextInt64(), (ulong)random.NextInt64());
        }

        m.Vcpu.SetFpuRegisters(r);
        FpuRegisters back = m.Vcpu.GetFpuRegisters();
        Assert.Multiple(() =>
        {
            Assert.That(back.Fcw, Is.EqualTo(r.Fcw));
            Assert.That(back.Fsw, Is.EqualTo(r.Fsw));
            Assert.That(back.Ftw, Is.EqualTo(r.Ftw));
            Assert.That(back.Mxcsr, Is.EqualTo(r.Mxcsr));
            for (int i = 0; i < 8; i++)
            {
                Assert.That(back.St[i], Is.EqualTo(r.St[i]), $"ST({i})");
            }

            for (int i = 0; i < 16; i++)
            {
                Assert.That(back.Xmm[i], Is.EqualTo(r.Xmm[i]), $"XMM{i}");
            }
        });
    }
}
