using System.Runtime.Intrinsics.X86;
using Hypervisor.Accel.Tcg.Tests.Guests;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Registers;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;
using Hypervisor.Accel.Tcg.Tests.Jit;

namespace Hypervisor.Accel.Tcg.Tests.FpuWiring;

/// <summary>
/// CPUID's SSE-family and XSAVE reporting, and the fault rules of XGETBV, XSETBV, XSAVE and XRSTOR that cannot run
/// natively (SDM Vol. 2, each instruction's "Protected Mode Exceptions"; Vol. 1, 13.8.1 for XRSTOR's header checks).
/// Feature bit positions are checked against the host CPU's own CPUID, which has all of them.
/// </summary>
[TestFixture(JitCoverage.Interpreter)]
[TestFixture(JitCoverage.Jit)]
public sealed class SseXsaveFaultTests(string engine)
{
    private const ulong Code = 0x8000;
    private const ulong Data = 0x6000; // 64-byte aligned
    private const ulong Cr0Em = 1UL << 2, Cr0Ts = 1UL << 3, Cr4Osfxsr = 1UL << 9, Cr4Osxsave = 1UL << 18;

    /// <summary>A long-mode machine whose #UD, #NM and #GP handlers put the vector in EBX and halt; EBX 0 means no fault.</summary>
    private TestMachine Start(ulong cr0Set, ulong cr4Set, Action<Assembler> body)
    {
        var m = new TestMachine(options: JitCoverage.For(engine));
        m.StartLong64(Code);
        foreach (int vector in new[] { 6, 7, 13 })
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
            a.mov(ebx, 0);
            a.hlt();
        });
        SystemRegisters s = m.Vcpu.GetSystemRegisters();
        s.Cr0 |= cr0Set;
        s.Cr4 |= cr4Set;
        m.Vcpu.SetSystemRegisters(s);
        for (ulong i = 0; i < 1024; i += 8)
        {
            m.WriteQword(Data + i, 0);
        }

        return m;
    }

    private static ulong RunToVector(TestMachine m)
    {
        VcpuExit exit = m.Run(1000);
        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), exit.ToString());
        return m.Vcpu.GetGeneralRegisters().Rbx;
    }

    private static void SetXcr0(Assembler a, uint value)
    {
        a.xor(ecx, ecx);
        a.xor(edx, edx);
        a.mov(eax, value);
        a.xsetbv();
    }

    [Test]
    public void CpuidLeaf1AdvertisesTheSseFamilyAtTheHostsBitPositionsAndOsxsaveFollowsCr4()
    {
        if (!X86Base.IsSupported)
        {
            Assert.Ignore("the host is not x86: its CPUID cannot confirm the bit positions");
        }

        using TestMachine m = Start(0, Cr4Osfxsr, a =>
        {
            a.mov(eax, 1);
            a.cpuid();
            a.mov(r8d, ecx);
            a.mov(r9d, edx);
            a.mov(rax, cr4);
            a.or(eax, (int)Cr4Osxsave);
            a.mov(cr4, rax);
            a.mov(eax, 1);
            a.cpuid();
            a.mov(r10d, ecx);
            a.xor(eax, eax);
            a.cpuid();
            a.mov(r11d, eax);
        });
        Assert.That(RunToVector(m), Is.Zero);
        GeneralRegisters g = m.Vcpu.GetGeneralRegisters();

        // SSE3 SSSE3 SSE4.1 SSE4.2 XSAVE in ECX, FXSR SSE SSE2 in EDX: the host's CPUID must report the same bits for
        // its own (complete) implementations of these features (Intel SDM Vol. 2, CPUID Table 3-10 and 3-11).
        (int Eax, int Ebx, int Ecx, int Edx) host = X86Base.CpuId(1, 0);
        uint ecxFeatures = (uint)host.Ecx & ((1u << 0) | (1u << 9) | (1u << 19) | (1u << 20) | (1u << 26));
        uint edxFeatures = (uint)host.Edx & ((1u << 24) | (1u << 25) | (1u << 26));
        Assert.Multiple(() =>
        {
            Assert.That(ecxFeatures, Is.EqualTo(0x0418_0201u), "the host lacks one of SSE3/SSSE3/SSE4.1/SSE4.2/XSAVE");
            Assert.That((uint)g.R8 & ecxFeatures, Is.EqualTo(ecxFeatures), "leaf 1 ECX: SSE3 SSSE3 SSE4.1 SSE4.2 XSAVE");
            Assert.That((uint)g.R9 & edxFeatures, Is.EqualTo(edxFeatures), "leaf 1 EDX: FXSR SSE SSE2");
            Assert.That((g.R8 >> 27) & 1, Is.Zero, "OSXSAVE clear while CR4.OSXSAVE is clear");
            Assert.That((g.R10 >> 27) & 1, Is.EqualTo(1UL), "OSXSAVE set once CR4.OSXSAVE is set");
            Assert.That(g.R11, Is.GreaterThanOrEqualTo(0xDUL), "leaf 0 EAX reaches leaf 0DH");
        });
    }

    [Test]
    public void CpuidLeafDDescribesTheStandardX87AndSseArea()
    {
        using TestMachine m = Start(0, Cr4Osfxsr, a =>
        {
            a.mov(eax, 0xD);
            a.xor(ecx, ecx);
            a.cpuid();
            a.mov(r8d, eax);
            a.mov(r9d, ebx);
            a.mov(r10d, ecx);
            a.mov(r11d, edx);
            a.mov(eax, 0xD);
            a.mov(ecx, 1);
            a.cpuid();
            a.mov(r12d, eax);
            a.mov(r13d, ebx);
            a.mov(eax, 0xD);
            a.mov(ecx, 2);
            a.cpuid();
            a.mov(r14d, eax);
            a.mov(r15d, ebx);
        });
        Assert.That(RunToVector(m), Is.Zero);
        GeneralRegisters g = m.Vcpu.GetGeneralRegisters();

        // The standard format puts the first extended component right after the 512-byte legacy region and the 64-byte
        // header (SDM Vol. 1, 13.4.3), so the host's offset of component 2 (AVX) is the area size for x87 and SSE alone.
        uint areaBytes = 576;
        if (X86Base.IsSupported && (X86Base.CpuId(1, 0).Ecx & (1 << 26)) != 0 && (X86Base.CpuId(0xD, 0).Eax & 4) != 0)
        {
            areaBytes = (uint)X86Base.CpuId(0xD, 2).Ebx;
        }

        Assert.Multiple(() =>
        {
            Assert.That(g.R8, Is.EqualTo(3UL), "sub-leaf 0 EAX: XCR0 may hold x87 and SSE");
            Assert.That(g.R9, Is.EqualTo((ulong)areaBytes), "sub-leaf 0 EBX: size for XCR0's components");
            Assert.That(g.R10, Is.EqualTo((ulong)areaBytes), "sub-leaf 0 ECX: size for every supported component");
            Assert.That(g.R11, Is.Zero, "sub-leaf 0 EDX: no upper XCR0 bits");
            Assert.That(g.R12, Is.EqualTo(1UL), "sub-leaf 1 EAX: XSAVEOPT only (no XSAVEC, XGETBV ECX=1, XSAVES)");
            Assert.That(g.R13, Is.Zero, "sub-leaf 1 EBX: no XSAVES area");
            Assert.That(g.R14 | g.R15, Is.Zero, "sub-leaf 2: no AVX component");
        });
    }

    public static IEnumerable<TestCaseData> XcrCases()
    {
        const ulong os = Cr4Osfxsr | Cr4Osxsave;
        yield return new TestCaseData(0UL, Cr4Osfxsr, (Action<Assembler>)(a => { a.xor(ecx, ecx); a.xgetbv(); }), 6UL)
            .SetName("XGETBV without CR4.OSXSAVE is #UD");
        yield return new TestCaseData(0UL, Cr4Osfxsr, (Action<Assembler>)(a => SetXcr0(a, 3)), 6UL)
            .SetName("XSETBV without CR4.OSXSAVE is #UD");
        yield return new TestCaseData(0UL, os, (Action<Assembler>)(a => { a.mov(ecx, 1); a.xgetbv(); }), 13UL)
            .SetName("XGETBV with ECX = 1 (not advertised) is #GP");
        yield return new TestCaseData(0UL, os, (Action<Assembler>)(a => { a.mov(ecx, 1); a.mov(eax, 3); a.xor(edx, edx); a.xsetbv(); }), 13UL)
            .SetName("XSETBV with ECX = 1 is #GP");
        yield return new TestCaseData(0UL, os, (Action<Assembler>)(a => SetXcr0(a, 2)), 13UL)
            .SetName("XSETBV clearing the x87 bit is #GP");
        yield return new TestCaseData(0UL, os, (Action<Assembler>)(a => SetXcr0(a, 7)), 13UL)
            .SetName("XSETBV setting AVX (unsupported) is #GP");
        yield return new TestCaseData(0UL, os, (Action<Assembler>)(a => { a.xor(ecx, ecx); a.mov(edx, 1); a.mov(eax, 3); a.xsetbv(); }), 13UL)
            .SetName("XSETBV setting bit 32 is #GP");
        yield return new TestCaseData(Cr0Ts | Cr0Em, os, (Action<Assembler>)(a => SetXcr0(a, 3)), 0UL)
            .SetName("XSETBV ignores CR0.TS and CR0.EM");
    }

    [TestCaseSource(nameof(XcrCases))]
    public void XgetbvAndXsetbvFollowTheSdm(ulong cr0, ulong cr4, Action<Assembler> body, ulong expectedVector)
    {
        using TestMachine m = Start(cr0, cr4, body);
        Assert.That(RunToVector(m), Is.EqualTo(expectedVector));
    }

    [Test]
    public void Xcr0StartsAsX87OnlyAndXsetbvChangesWhatXgetbvReads()
    {
        using TestMachine m = Start(0, Cr4Osfxsr | Cr4Osxsave, a =>
        {
            a.mov(rdx, -1L);
            a.xor(ecx, ecx);
            a.xgetbv();
            a.mov(r8, rax);
            a.mov(r9, rdx);
            SetXcr0(a, 3);
            a.xgetbv();
            a.mov(r10, rax);
        });
        Assert.That(RunToVector(m), Is.Zero);
        GeneralRegisters g = m.Vcpu.GetGeneralRegisters();
        Assert.Multiple(() =>
        {
            Assert.That(g.R8, Is.EqualTo(1UL), "XCR0 after reset (SDM Vol. 1, 13.3)");
            Assert.That(g.R9, Is.Zero, "EDX cleared, upper RDX cleared");
            Assert.That(g.R10, Is.EqualTo(3UL));
        });
    }

    public static IEnumerable<TestCaseData> AreaCases()
    {
        const ulong os = Cr4Osfxsr | Cr4Osxsave;
        Action<Assembler> save = a => { SetXcr0(a, 3); a.mov(eax, 3); a.xsave64(__[rsi]); };
        yield return new TestCaseData(0UL, os, save, 0UL).SetName("XSAVE64 to an aligned area runs");
        yield return new TestCaseData(Cr0Em, os, save, 0UL).SetName("XSAVE64 ignores CR0.EM");
        yield return new TestCaseData(Cr0Ts, os, (Action<Assembler>)(a => { a.mov(eax, 3); a.xsave64(__[rsi]); }), 7UL).SetName("XSAVE64 with CR0.TS is #NM");
        yield return new TestCaseData(0UL, Cr4Osfxsr, (Action<Assembler>)(a => { a.mov(eax, 3); a.xsave(__[rsi]); }), 6UL).SetName("XSAVE without CR4.OSXSAVE is #UD");
        yield return new TestCaseData(0UL, Cr4Osfxsr, (Action<Assembler>)(a => { a.mov(eax, 3); a.xrstor(__[rsi]); }), 6UL).SetName("XRSTOR without CR4.OSXSAVE is #UD");
        yield return new TestCaseData(0UL, os, (Action<Assembler>)(a => { a.mov(eax, 3); a.xsave(__[rsi + 16]); }), 13UL).SetName("XSAVE to a 16-byte aligned area is #GP");
        yield return new TestCaseData(0UL, os, (Action<Assembler>)(a => { a.mov(eax, 3); a.xsaveopt(__[rsi + 32]); }), 13UL).SetName("XSAVEOPT to a 32-byte aligned area is #GP");
        yield return new TestCaseData(0UL, os, (Action<Assembler>)(a => { a.mov(eax, 3); a.xrstor64(__[rsi + 8]); }), 13UL).SetName("XRSTOR64 from an 8-byte aligned area is #GP");
        yield return new TestCaseData(0UL, os, (Action<Assembler>)(a => { a.mov(eax, 3); a.xsavec(__[rsi]); }), 6UL).SetName("XSAVEC (not advertised) is #UD");
        yield return new TestCaseData(0UL, os, (Action<Assembler>)(a => { a.mov(eax, 3); a.xsaves(__[rsi]); }), 6UL).SetName("XSAVES (not advertised) is #UD");

        // XRSTOR's header checks on a zeroed area whose MXCSR is valid (SDM Vol. 1, 13.8.1; Vol. 2, XRSTOR).
        static Action<Assembler> Restore(Action<Assembler> edit) => a =>
        {
            SetXcr0(a, 3);
            a.mov(__dword_ptr[rsi + 24], 0x1F80);
            edit(a);
            a.mov(eax, 3);
            a.xor(edx, edx);
            a.xrstor64(__[rsi]);
        };
        yield return new TestCaseData(0UL, os, Restore(_ => { }), 0UL).SetName("XRSTOR64 of a zeroed header initialises and runs");
        yield return new TestCaseData(0UL, os, Restore(a => a.mov(__byte_ptr[rsi + 512], 3)), 0UL).SetName("XRSTOR64 with XSTATE_BV = 3 runs");
        yield return new TestCaseData(0UL, os, Restore(a => a.mov(__byte_ptr[rsi + 512], 4)), 13UL).SetName("XRSTOR64 with XSTATE_BV bit 2 outside XCR0 is #GP");
        yield return new TestCaseData(0UL, os, Restore(a => a.mov(__byte_ptr[rsi + 527], 0x80)), 13UL).SetName("XRSTOR64 of the compacted form (XCOMP_BV[63]) is #GP");
        yield return new TestCaseData(0UL, os, Restore(a => a.mov(__byte_ptr[rsi + 520], 1)), 13UL).SetName("XRSTOR64 with XCOMP_BV non-zero is #GP");
        yield return new TestCaseData(0UL, os, Restore(a => a.mov(__byte_ptr[rsi + 535], 1)), 13UL).SetName("XRSTOR64 with header bytes 16-23 non-zero is #GP");
        yield return new TestCaseData(0UL, os, Restore(a => a.mov(__byte_ptr[rsi + 540], 1)), 0UL).SetName("XRSTOR64 ignores header bytes 24-63");
        yield return new TestCaseData(0UL, os, Restore(a => a.mov(__dword_ptr[rsi + 24], 0x1_1F80)), 13UL).SetName("XRSTOR64 loading a reserved MXCSR bit is #GP");
    }

    [TestCaseSource(nameof(AreaCases))]
    public void XsaveAreaRulesFollowTheSdm(ulong cr0, ulong cr4, Action<Assembler> body, ulong expectedVector)
    {
        using TestMachine m = Start(cr0, cr4, body);
        Assert.That(RunToVector(m), Is.EqualTo(expectedVector));
    }

    /// <summary>A faulting XRSTOR changes nothing: XMM0 and MXCSR keep their values (SDM Vol. 2, XRSTOR: the checks come first).</summary>
    [Test]
    public void FaultingXrstorChangesNoState()
    {
        using TestMachine m = Start(0, Cr4Osfxsr | Cr4Osxsave, a =>
        {
            SetXcr0(a, 3);
            a.mov(__dword_ptr[rsi + 24], 0x1_1F80);
            a.mov(__byte_ptr[rsi + 512], 3);
            a.mov(eax, 3);
            a.xrstor64(__[rsi]);
        });
        var f = new FpuRegisters { Mxcsr = 0x3F80, Fcw = 0x037F };
        f.Xmm[0] = new UInt128(0x1111, 0x2222);
        m.Vcpu.SetFpuRegisters(f);
        Assert.That(RunToVector(m), Is.EqualTo(13UL));
        FpuRegisters after = m.Vcpu.GetFpuRegisters();
        Assert.Multiple(() =>
        {
            Assert.That(after.Xmm[0], Is.EqualTo(f.Xmm[0]));
            Assert.That(after.Mxcsr, Is.EqualTo(0x3F80u));
        });
    }
}
