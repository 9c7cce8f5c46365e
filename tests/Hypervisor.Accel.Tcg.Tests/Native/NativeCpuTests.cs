using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Accel.Tcg.Tests.Native;

/// <summary>
/// Checks the executor itself: that the stubs move every register, the flags and the scratch block in and out
/// unchanged, so that a difference in a differential test is the instruction's and not the harness's.
/// </summary>
[TestFixture]
public sealed class NativeCpuTests
{
    private NativeCpu? _cpu;

    private NativeCpu Cpu => _cpu ?? throw new InvalidOperationException("not set up");

    [OneTimeSetUp]
    public void SetUp()
    {
        if (NativeCpu.UnsupportedReason is { } reason)
        {
            Assert.Ignore(reason);
        }

        _cpu = new NativeCpu();
    }

    [OneTimeTearDown]
    public void TearDown() => _cpu?.Dispose();

    [Test]
    public void EmptyBodyReturnsEveryRegisterAndStatusFlagUnchanged()
    {
        NativeStub stub = Cpu.Compile64(_ => { });
        var random = new Random(1234);
        for (int round = 0; round < 64; round++)
        {
            RegisterFile input = RandomRegisters(random);
            RegisterFile output = input;
            Cpu.Run(stub, ref output);
            for (int i = 0; i < 16; i++)
            {
                Assert.That(output[i], Is.EqualTo(input[i]), $"register {i}, round {round}");
            }

            Assert.That(output.Rflags & 0x8D5, Is.EqualTo(input.Rflags & 0x8D5), $"flags, round {round}");
        }
    }

    [Test]
    public void BodyResultsAreStoredBack()
    {
        // ADD RAX,RCX and an XCHG of R15 with R8 show that the stub stores what the body computed, register by register,
        // and that RFLAGS is read after the body (CF from the 64-bit carry).
        NativeStub stub = Cpu.Compile64(a =>
        {
            a.add(rax, rcx);
            a.xchg(r15, r8);
        });
        var registers = new RegisterFile { Rax = ulong.MaxValue, Rcx = 2, R8 = 8, R15 = 15 };
        Cpu.Run(stub, ref registers);
        Assert.Multiple(() =>
        {
            Assert.That(registers.Rax, Is.EqualTo(1UL));
            Assert.That(registers.Rflags & 1, Is.EqualTo(1UL));
            Assert.That(registers.R8, Is.EqualTo(15UL));
            Assert.That(registers.R15, Is.EqualTo(8UL));
        });
    }

    [Test]
    public void ScratchMemoryIsReachableThroughARegister()
    {
        NativeStub stub = Cpu.Compile64(a =>
        {
            a.mov(__qword_ptr[rsi + 8], rax);
            a.mov(rbx, __qword_ptr[rsi + 56]);
        });
        var registers = new RegisterFile { Rax = 0x1122334455667788, Rsi = Cpu.ScratchAddress };
        registers.Scratch[56] = 0xAB;
        Cpu.Run(stub, ref registers);
        Assert.Multiple(() =>
        {
            Assert.That(BitConverter.ToUInt64(registers.Scratch[8..16]), Is.EqualTo(0x1122334455667788UL));
            Assert.That(registers.Rbx, Is.EqualTo(0xABUL));
        });
    }

    [Test]
    public void CompatibilityModeStubRunsThirtyTwoBitCode()
    {
        // DAA is #UD in 64-bit mode, so it executing at all shows the body ran in compatibility mode; 0x0F + 0x01 = 0x10
        // adjusted is 0x16 (binary 0x10 with AF set from the addition).
        NativeStub stub = Cpu.CompileCompat32(a =>
        {
            a.add(al, cl);
            a.daa();
        });
        var registers = new RegisterFile { Rax = 0xFFFF_FFFF_0000_000F, Rcx = 1, Rbx = 0x1234_5678_9ABC_DEF0 };
        Cpu.Run(stub, ref registers);
        Assert.Multiple(() =>
        {
            Assert.That(registers.Rax, Is.EqualTo(0x16UL));
            Assert.That(registers.Rbx, Is.EqualTo(0x9ABC_DEF0UL), "compatibility mode keeps 32-bit registers");
        });
    }

    [Test]
    public void RawInstructionBytesRun()
    {
        // 48 0F AF C3 is IMUL RAX,RBX (Intel SDM Vol. 2, IMUL: REX.W + 0F AF /r); 37 is AAA, valid only outside 64-bit mode.
        NativeStub imul = Cpu.Compile64([0x48, 0x0F, 0xAF, 0xC3]);
        var registers = new RegisterFile { Rax = 0x1_0000_0001, Rbx = 3 };
        Cpu.Run(imul, ref registers);
        Assert.That(registers.Rax, Is.EqualTo(0x3_0000_0003UL));

        NativeStub aaa = Cpu.CompileCompat32([0x37]);
        registers = new RegisterFile { Rax = 0x010B };
        Cpu.Run(aaa, ref registers);
        Assert.That(registers.Rax, Is.EqualTo(0x0201UL), "AAA: AX + 0x106, AL &= 0x0F");
    }

    internal static RegisterFile RandomRegisters(Random random)
    {
        var r = default(RegisterFile);
        for (int i = 0; i < 16; i++)
        {
            r[i] = (ulong)random.NextInt64() ^ ((ulong)random.Next() << 63);
        }

        r.Rsp = 0;
        r.Rflags = (ulong)random.Next() & 0x8D5;
        return r;
    }
}
