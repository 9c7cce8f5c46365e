using Hypervisor.Accel.Tcg.Tests.Guests;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Registers;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;
using Hypervisor.Accel.Tcg.Tests.Jit;

namespace Hypervisor.Accel.Tcg.Tests.FpuWiring;

/// <summary>
/// The exceptions of the wired SSE/SSE2 instructions, checked against the SDM's rules (these cannot run natively: the
/// host would kill the test process): #UD without CR4.OSFXSR or with CR0.EM, #NM with CR0.TS (SDM Vol. 3A, Table 2-2 and
/// 13.1), #GP(0) on a misaligned 16-byte operand of the MOVAPS class (SDM Vol. 2, each instruction's exceptions), #XM or
/// #UD for an unmasked SIMD floating-point exception per CR4.OSXMMEXCPT with the destination unwritten (SDM Vol. 1,
/// 11.5.1), #GP(0) for reserved MXCSR bits on LDMXCSR and FXRSTOR.
/// </summary>
[TestFixture(JitCoverage.Interpreter)]
[TestFixture(JitCoverage.Jit)]
public sealed class SseFaultTests(string engine)
{
    private const ulong Code = 0x8000;
    private const ulong Data = 0x6000; // 16-byte aligned
    private const ulong Cr0Em = 1UL << 2, Cr0Ts = 1UL << 3, Cr4Osfxsr = 1UL << 9, Cr4Osxmmexcpt = 1UL << 10;

    /// <summary>A long-mode machine whose handlers for #UD, #NM, #GP and #XM put the vector in EBX and halt.</summary>
    private TestMachine Start(ulong cr0Set, ulong cr4Set, Action<Assembler> body)
    {
        var m = new TestMachine(options: JitCoverage.For(engine));
        m.StartLong64(Code);
        foreach (int vector in new[] { 6, 7, 13, 19 })
        {
            ulong handler = 0x9000 + ((ulong)vector * 0x10);
            m.SetGate64(vector, handler);
            m.Load(64, handler, a =>
            {
                a.mov(ebx, vector);
                a.hlt();
            });
        }

        m.Load(64, Code, a =>
        {
            a.mov(ebx, 0xFF);
            a.mov(rsi, Data);
            body(a);
            a.mov(ebx, 0); // no exception
            a.hlt();
        });
        SystemRegisters s = m.Vcpu.GetSystemRegisters();
        s.Cr0 |= cr0Set;
        s.Cr4 |= cr4Set;
        m.Vcpu.SetSystemRegisters(s);
        return m;
    }

    private static ulong RunToVector(TestMachine m)
    {
        VcpuExit exit = m.Run(1000);
        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), exit.ToString());
        return m.Vcpu.GetGeneralRegisters().Rbx;
    }

    public static IEnumerable<TestCaseData> AvailabilityCases()
    {
        Action<Assembler> addps = a => a.addps(xmm0, xmm1);
        Action<Assembler> movd = a => a.movd(xmm0, eax);
        Action<Assembler> ldmxcsr = a => a.ldmxcsr(__dword_ptr[rsi]);
        Action<Assembler> fxsave = a => a.fxsave64(__[rsi]);
        const ulong ok = Cr4Osfxsr | Cr4Osxmmexcpt;
        yield return new TestCaseData(0UL, 0UL, addps, 6UL).SetName("ADDPS without CR4.OSFXSR is #UD");
        yield return new TestCaseData(Cr0Em, ok, addps, 6UL).SetName("ADDPS with CR0.EM is #UD");
        yield return new TestCaseData(Cr0Ts, ok, addps, 7UL).SetName("ADDPS with CR0.TS is #NM");
        yield return new TestCaseData(Cr0Ts | Cr0Em, ok, addps, 6UL).SetName("ADDPS with CR0.EM and CR0.TS is #UD");
        yield return new TestCaseData(0UL, ok, addps, 0UL).SetName("ADDPS with CR4.OSFXSR runs");
        yield return new TestCaseData(0UL, 0UL, movd, 6UL).SetName("MOVD without CR4.OSFXSR is #UD");
        yield return new TestCaseData(Cr0Ts, ok, movd, 7UL).SetName("MOVD with CR0.TS is #NM");
        yield return new TestCaseData(0UL, 0UL, ldmxcsr, 6UL).SetName("LDMXCSR without CR4.OSFXSR is #UD");
        yield return new TestCaseData(Cr0Ts, ok, ldmxcsr, 7UL).SetName("LDMXCSR with CR0.TS is #NM");
        yield return new TestCaseData(Cr0Ts, ok, fxsave, 7UL).SetName("FXSAVE with CR0.TS is #NM");
        yield return new TestCaseData(Cr0Em, ok, fxsave, 7UL).SetName("FXSAVE with CR0.EM is #NM");
        yield return new TestCaseData(0UL, ok, fxsave, 0UL).SetName("FXSAVE with CR4.OSFXSR runs");
        Action<Assembler> pshufb = a => a.pshufb(xmm0, xmm1);
        Action<Assembler> pcmpistri = a => a.pcmpistri(xmm0, xmm1, 0);
        Action<Assembler> crc32 = a => a.crc32(eax, ecx);
        Action<Assembler> pshufbMmx = a => a.pshufb(mm0, mm1);
        yield return new TestCaseData(0UL, 0UL, pshufb, 6UL).SetName("PSHUFB (SSSE3) without CR4.OSFXSR is #UD");
        yield return new TestCaseData(Cr0Ts, ok, pshufb, 7UL).SetName("PSHUFB (SSSE3) with CR0.TS is #NM");
        yield return new TestCaseData(Cr0Em, ok, pcmpistri, 6UL).SetName("PCMPISTRI (SSE4.2) with CR0.EM is #UD");
        yield return new TestCaseData(Cr0Ts, ok, pcmpistri, 7UL).SetName("PCMPISTRI (SSE4.2) with CR0.TS is #NM");
        yield return new TestCaseData(Cr0Ts | Cr0Em, 0UL, crc32, 0UL).SetName("CRC32 ignores CR0.EM, CR0.TS and CR4.OSFXSR");
        yield return new TestCaseData(0UL, ok, pshufbMmx, 6UL).SetName("PSHUFB mm (MMX form; MMX is not wired) is #UD");
    }

    [TestCaseSource(nameof(AvailabilityCases))]
    public void AvailabilityFollowsCr0AndCr4(ulong cr0, ulong cr4, Action<Assembler> body, ulong expectedVector)
    {
        using TestMachine m = Start(cr0, cr4, body);
        m.WriteDword(Data, 0x1F80);
        Assert.That(RunToVector(m), Is.EqualTo(expectedVector));
    }

    public static IEnumerable<TestCaseData> AlignmentCases()
    {
        yield return new TestCaseData((Action<Assembler>)(a => a.movaps(xmm0, __xmmword_ptr[rsi + 8])), 13UL).SetName("MOVAPS load from RSI+8 is #GP");
        yield return new TestCaseData((Action<Assembler>)(a => a.movdqa(__xmmword_ptr[rsi + 8], xmm0)), 13UL).SetName("MOVDQA store to RSI+8 is #GP");
        yield return new TestCaseData((Action<Assembler>)(a => a.addpd(xmm0, __xmmword_ptr[rsi + 4])), 13UL).SetName("ADDPD from RSI+4 is #GP");
        yield return new TestCaseData((Action<Assembler>)(a => a.pxor(xmm0, __xmmword_ptr[rsi + 1])), 13UL).SetName("PXOR from RSI+1 is #GP");
        yield return new TestCaseData((Action<Assembler>)(a => a.fxsave64(__[rsi + 8])), 13UL).SetName("FXSAVE64 to RSI+8 is #GP");
        yield return new TestCaseData((Action<Assembler>)(a => a.movups(__xmmword_ptr[rsi + 8], xmm0)), 0UL).SetName("MOVUPS store to RSI+8 runs");
        yield return new TestCaseData((Action<Assembler>)(a => a.ptest(xmm0, __xmmword_ptr[rsi + 8])), 13UL).SetName("PTEST from RSI+8 is #GP");
        yield return new TestCaseData((Action<Assembler>)(a => a.pshufb(xmm0, __xmmword_ptr[rsi + 8])), 13UL).SetName("PSHUFB from RSI+8 is #GP");
        yield return new TestCaseData((Action<Assembler>)(a => a.haddps(xmm0, __xmmword_ptr[rsi + 8])), 13UL).SetName("HADDPS from RSI+8 is #GP");
        yield return new TestCaseData((Action<Assembler>)(a => a.movntdqa(xmm0, __xmmword_ptr[rsi + 8])), 13UL).SetName("MOVNTDQA from RSI+8 is #GP");
        yield return new TestCaseData((Action<Assembler>)(a => a.roundps(xmm0, __xmmword_ptr[rsi + 8], 0)), 13UL).SetName("ROUNDPS from RSI+8 is #GP");
        yield return new TestCaseData((Action<Assembler>)(a => a.lddqu(xmm0, __xmmword_ptr[rsi + 8])), 0UL).SetName("LDDQU from RSI+8 runs");
        yield return new TestCaseData((Action<Assembler>)(a => a.pcmpistri(xmm0, __xmmword_ptr[rsi + 8], 0)), 0UL).SetName("PCMPISTRI from RSI+8 runs");
        yield return new TestCaseData((Action<Assembler>)(a => a.pmovzxbw(xmm0, __qword_ptr[rsi + 3])), 0UL).SetName("PMOVZXBW from RSI+3 runs (m64)");
        yield return new TestCaseData((Action<Assembler>)(a => a.addsd(xmm0, __qword_ptr[rsi + 8])), 0UL).SetName("ADDSD from RSI+8 runs (scalar, no alignment)");
    }

    [TestCaseSource(nameof(AlignmentCases))]
    public void SixteenByteOperandsMustBeAligned(Action<Assembler> body, ulong expectedVector)
    {
        using TestMachine m = Start(0, Cr4Osfxsr | Cr4Osxmmexcpt, a =>
        {
            a.pcmpeqb(xmm0, xmm0); // all ones: a store that happens is visible
            body(a);
        });
        for (ulong i = 0; i < 64; i += 8)
        {
            m.WriteQword(Data + i, 0);
        }

        Assert.That(RunToVector(m), Is.EqualTo(expectedVector));
        if (expectedVector != 0)
        {
            for (ulong i = 0; i < 64; i += 8)
            {
                Assert.That(m.ReadQword(Data + i), Is.Zero, $"memory at +{i} written by a faulting instruction");
            }
        }
    }

    [TestCase(Cr4Osxmmexcpt, 19UL, TestName = "Unmasked divide-by-zero with CR4.OSXMMEXCPT is #XM")]
    [TestCase(0UL, 6UL, TestName = "Unmasked divide-by-zero without CR4.OSXMMEXCPT is #UD")]
    public void UnmaskedExceptionFaultsAndLeavesTheDestination(ulong osxmmexcpt, ulong expectedVector)
    {
        using TestMachine m = Start(0, Cr4Osfxsr | osxmmexcpt, a =>
        {
            a.ldmxcsr(__dword_ptr[rsi]);
            a.divsd(xmm0, xmm1);
        });
        m.WriteDword(Data, 0x1F80 & ~0x200u); // ZM clear (SDM Vol. 1, Figure 10-3)
        var f = new FpuRegisters { Mxcsr = 0x1F80, Fcw = 0x037F };
        f.Xmm[0] = new UInt128(0x1234, BitConverter.DoubleToUInt64Bits(1.0));
        f.Xmm[1] = 0; // +0.0
        m.Vcpu.SetFpuRegisters(f);

        Assert.That(RunToVector(m), Is.EqualTo(expectedVector));
        FpuRegisters after = m.Vcpu.GetFpuRegisters();
        Assert.Multiple(() =>
        {
            Assert.That(after.Xmm[0], Is.EqualTo(f.Xmm[0]), "the destination is not written");
            Assert.That(after.Mxcsr, Is.EqualTo((0x1F80 & ~0x200u) | 0x4), "ZE is set in MXCSR");
        });
    }

    /// <summary>
    /// ROUNDSD (SSE4.1) with precision unmasked: 2.5 is inexact unless imm8 bit 3 suppresses PE (SDM Vol. 2, ROUNDSD), so
    /// imm8 0 faults with #XM leaving XMM0 and imm8 8 rounds to 2.0 without a fault or a PE flag.
    /// </summary>
    [TestCase((byte)0x00, 19UL, TestName = "ROUNDSD 2.5 with PE unmasked is #XM")]
    [TestCase((byte)0x08, 0UL, TestName = "ROUNDSD 2.5 with PE unmasked but suppressed by imm8 bit 3 runs")]
    public void RoundPrecisionExceptionHonoursImm8Bit3(byte imm, ulong expectedVector)
    {
        using TestMachine m = Start(0, Cr4Osfxsr | Cr4Osxmmexcpt, a =>
        {
            a.ldmxcsr(__dword_ptr[rsi]);
            a.roundsd(xmm0, xmm1, imm);
        });
        m.WriteDword(Data, 0x1F80 & ~0x1000u); // PM clear
        var f = new FpuRegisters { Mxcsr = 0x1F80, Fcw = 0x037F };
        f.Xmm[0] = BitConverter.DoubleToUInt64Bits(7.0);
        f.Xmm[1] = BitConverter.DoubleToUInt64Bits(2.5);
        m.Vcpu.SetFpuRegisters(f);

        Assert.That(RunToVector(m), Is.EqualTo(expectedVector));
        FpuRegisters after = m.Vcpu.GetFpuRegisters();
        Assert.Multiple(() =>
        {
            Assert.That((ulong)after.Xmm[0], Is.EqualTo(BitConverter.DoubleToUInt64Bits(expectedVector == 0 ? 2.0 : 7.0)));
            Assert.That(after.Mxcsr & 0x20, Is.EqualTo(expectedVector == 0 ? 0u : 0x20u), "PE");
        });
    }

    /// <summary>
    /// SSE3/SSE4.1 arithmetic with invalid unmasked (SDM Vol. 1, 11.5.1): +inf - +inf in a lane raises #XM, IE is set
    /// and the destination keeps its value, whichever lane the invalid operation is in.
    /// </summary>
    [TestCase("hsubpd", TestName = "HSUBPD inf-inf with IM unmasked is #XM and leaves XMM0")]
    [TestCase("addsubpd", TestName = "ADDSUBPD inf-inf with IM unmasked is #XM and leaves XMM0")]
    [TestCase("dppd", TestName = "DPPD inf*0 with IM unmasked is #XM and leaves XMM0")]
    public void UnmaskedInvalidInSse3AndSse41ArithmeticFaults(string form)
    {
        using TestMachine m = Start(0, Cr4Osfxsr | Cr4Osxmmexcpt, a =>
        {
            a.ldmxcsr(__dword_ptr[rsi]);
            switch (form)
            {
                case "hsubpd": a.hsubpd(xmm0, xmm1); break;
                case "addsubpd": a.addsubpd(xmm0, xmm1); break;
                default: a.dppd(xmm0, xmm1, 0x33); break;
            }
        });
        m.WriteDword(Data, 0x1F80 & ~0x80u); // IM clear
        ulong inf = BitConverter.DoubleToUInt64Bits(double.PositiveInfinity);
        var f = new FpuRegisters { Mxcsr = 0x1F80, Fcw = 0x037F };
        f.Xmm[0] = form == "dppd" ? new UInt128(BitConverter.DoubleToUInt64Bits(2.0), inf) : new UInt128(inf, inf);
        f.Xmm[1] = form == "dppd" ? new UInt128(BitConverter.DoubleToUInt64Bits(3.0), 0) : new UInt128(inf, inf);
        m.Vcpu.SetFpuRegisters(f);

        Assert.That(RunToVector(m), Is.EqualTo(19UL));
        FpuRegisters after = m.Vcpu.GetFpuRegisters();
        Assert.Multiple(() =>
        {
            Assert.That(after.Xmm[0], Is.EqualTo(f.Xmm[0]), "the destination is not written");
            Assert.That(after.Mxcsr & 1, Is.EqualTo(1u), "IE");
        });
    }

    [Test]
    public void MaskedDivideByZeroGivesInfinityAndSetsZe()
    {
        using TestMachine m = Start(0, Cr4Osfxsr | Cr4Osxmmexcpt, a => a.divsd(xmm0, xmm1));
        var f = new FpuRegisters { Mxcsr = 0x1F80, Fcw = 0x037F };
        f.Xmm[0] = BitConverter.DoubleToUInt64Bits(-3.0);
        m.Vcpu.SetFpuRegisters(f);

        Assert.That(RunToVector(m), Is.Zero);
        FpuRegisters after = m.Vcpu.GetFpuRegisters();
        Assert.That((ulong)after.Xmm[0], Is.EqualTo(BitConverter.DoubleToUInt64Bits(-3.0 / 0.0)));
        Assert.That(after.Mxcsr, Is.EqualTo(0x1F84u));
    }

    [Test]
    public void LdmxcsrWithReservedBitIsGp()
    {
        using TestMachine m = Start(0, Cr4Osfxsr, a => a.ldmxcsr(__dword_ptr[rsi]));
        m.WriteDword(Data, 0x1_1F80);
        Assert.That(RunToVector(m), Is.EqualTo(13UL));
        Assert.That(m.Vcpu.GetFpuRegisters().Mxcsr, Is.EqualTo(0x1F80u));
    }

    [Test]
    public void FxrstorWithReservedMxcsrBitIsGpAndChangesNothing()
    {
        using TestMachine m = Start(0, Cr4Osfxsr, a =>
        {
            a.fxsave64(__[rsi]);
            a.mov(__dword_ptr[rsi + 24], 0x1_1F80);
            a.pxor(xmm3, xmm3);
            a.fxrstor64(__[rsi]);
        });
        var f = new FpuRegisters { Mxcsr = 0x1F80, Fcw = 0x037F };
        f.Xmm[3] = new UInt128(5, 6);
        m.Vcpu.SetFpuRegisters(f);
        Assert.That(RunToVector(m), Is.EqualTo(13UL));
        Assert.That(m.Vcpu.GetFpuRegisters().Xmm[3], Is.EqualTo(UInt128.Zero), "XMM3 keeps the PXOR result, not the image");
    }

    /// <summary>A guest saves with FXSAVE64, clobbers every XMM register and MXCSR, restores with FXRSTOR64: all comes back.</summary>
    [Test]
    public void FxsaveThenFxrstorRestoresXmmAndMxcsr()
    {
        using TestMachine m = Start(0, Cr4Osfxsr | Cr4Osxmmexcpt, a =>
        {
            a.fxsave64(__[rsi]);
            foreach (AssemblerRegisterXMM x in new[] { xmm0, xmm1, xmm2, xmm3, xmm4, xmm5, xmm6, xmm7, xmm8, xmm9, xmm10, xmm11, xmm12, xmm13, xmm14, xmm15 })
            {
                a.pcmpeqd(x, x);
            }

            a.ldmxcsr(__dword_ptr[rsi + 512]);
            a.fxrstor64(__[rsi]);
        });
        m.WriteDword(Data + 512, 0x7F80);
        var random = new Random(11);
        var f = new FpuRegisters { Mxcsr = 0x9FA5, Fcw = 0x037F };
        for (int i = 0; i < 16; i++)
        {
            f.Xmm[i] = new UInt128((ulong)random.NextInt64(), (ulong)random.NextInt64());
        }

        m.Vcpu.SetFpuRegisters(f);
        Assert.That(RunToVector(m), Is.Zero);
        FpuRegisters after = m.Vcpu.GetFpuRegisters();
        Assert.Multiple(() =>
        {
            Assert.That(after.Mxcsr, Is.EqualTo(f.Mxcsr));
            for (int i = 0; i < 16; i++)
            {
                Assert.That(after.Xmm[i], Is.EqualTo(f.Xmm[i]), $"XMM{i}");
            }
        });
    }
}
