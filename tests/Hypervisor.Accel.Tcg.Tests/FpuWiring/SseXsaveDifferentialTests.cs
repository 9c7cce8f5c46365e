using System.Runtime.InteropServices;
using Hypervisor.Accel.Tcg.Tests.Guests;
using Hypervisor.Accel.Tcg.Tests.Native;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Memory;
using Hypervisor.Core.Registers;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;
using Hypervisor.Accel.Tcg.Tests.Jit;

namespace Hypervisor.Accel.Tcg.Tests.FpuWiring;

/// <summary>
/// XSAVE, XSAVEOPT and XRSTOR (and their REX.W forms) against the host CPU, requesting only the x87 and SSE components
/// (the host also has AVX, which this CPU does not: a request never includes it, so RFBM is the same on both sides).
/// The same buffer (random bytes, a random XSAVE header) and the same XMM0-15, MXCSR and x87 stack go in; the first 576
/// bytes (legacy region and header, XSTATE_BV included) must come out equal. Not compared: FOP/FIP/FDP (see
/// <see cref="CompareImage"/>) and MXCSR_MASK bits above 15 (AMD's MM bit, see
/// <see cref="FxsaveDifferentialTests"/>). The native side ends with FNINIT and the caller's MXCSR.
/// </summary>
[TestFixture(JitCoverage.Interpreter)]
[TestFixture(JitCoverage.Jit)]
public sealed class SseXsaveDifferentialTests(string engine)
{
    private const ulong Code = 0x10_0000;
    private const ulong GuestBuffer = 0x8_0000; // 64-byte aligned
    private const int BufferBytes = 2048;
    private const int Second = 1024; // XRSTOR tests save again here
    private const int XmmInputs = 1536, X87Inputs = 1792, MxcsrInput = 1856, SavedMxcsr = 1860, MaskInput = 1864;

    public enum Op
    {
        Xsave,
        Xsave64,
        Xsaveopt,
        Xsaveopt64,
    }

    private static readonly AssemblerRegisterXMM[] s_xmm = [xmm0, xmm1, xmm2, xmm3, xmm4, xmm5, xmm6, xmm7, xmm8, xmm9, xmm10, xmm11, xmm12, xmm13, xmm14, xmm15];

    private static void LoadState(Assembler a)
    {
        a.stmxcsr(__dword_ptr[rsi + SavedMxcsr]);
        a.ldmxcsr(__dword_ptr[rsi + MxcsrInput]);
        for (int i = 0; i < 16; i++)
        {
            a.movdqu(s_xmm[i], __xmmword_ptr[rsi + XmmInputs + (16 * i)]);
        }

        // FNINIT keeps register contents and FXSAVE-format images hold all eight physical registers, so every one is
        // written first (eight loads), then five are popped: three valid registers, five empty ones with known bits.
        a.fninit();
        for (int i = 0; i < 8; i++)
        {
            a.fld(__qword_ptr[rsi + X87Inputs + (8 * i)]);
        }

        for (int i = 0; i < 5; i++)
        {
            a.fstp(st0);
        }
    }

    private static void Restore(Assembler a)
    {
        a.fninit();
        a.ldmxcsr(__dword_ptr[rsi + SavedMxcsr]);
    }

    private static void SaveBody(Assembler a, Op op)
    {
        LoadState(a);
        a.mov(eax, __dword_ptr[rsi + MaskInput]);
        a.mov(edx, __dword_ptr[rsi + MaskInput + 4]);
        switch (op)
        {
            case Op.Xsave: a.xsave(__[rsi]); break;
            case Op.Xsave64: a.xsave64(__[rsi]); break;
            case Op.Xsaveopt: a.xsaveopt(__[rsi]); break;
            default: a.xsaveopt64(__[rsi]); break;
        }

        Restore(a);
    }

    private static void RestoreBody(Assembler a, bool rexW)
    {
        LoadState(a);
        a.mov(eax, __dword_ptr[rsi + MaskInput]);
        a.mov(edx, __dword_ptr[rsi + MaskInput + 4]);
        if (rexW)
        {
            a.xrstor64(__[rsi]);
        }
        else
        {
            a.xrstor(__[rsi]);
        }

        a.mov(eax, 3);
        a.xor(edx, edx);
        a.lea(rdi, __[rsi + Second]);
        if (rexW)
        {
            a.xsave64(__[rdi]);
        }
        else
        {
            a.xsave(__[rdi]);
        }

        Restore(a);
    }

    private static byte[] Input(int seed, ulong mask)
    {
        var r = new Random(seed);
        var input = new byte[BufferBytes];
        r.NextBytes(input.AsSpan(0, 1024));
        input.AsSpan(1024, 1024).Fill(0x5A);
        r.NextBytes(input.AsSpan(XmmInputs, 256));
        for (int i = 0; i < 8; i++)
        {
            double v = i switch { 0 => -1.5e300, 1 => 0.0, 2 => 5e-320, _ => (r.NextDouble() - 0.5) * Math.Pow(2, r.Next(-60, 60)) };
            BitConverter.TryWriteBytes(input.AsSpan(X87Inputs + (8 * i)), BitConverter.DoubleToUInt64Bits(v));
        }

        BitConverter.TryWriteBytes(input.AsSpan(MxcsrInput), 0x1F80u | ((uint)r.Next(4) << 13) | (uint)r.Next(0x40));
        BitConverter.TryWriteBytes(input.AsSpan(MaskInput), mask | ((ulong)r.Next(2) << 32));
        return input;
    }

    private static byte[] RunNative(Action<Assembler> body, byte[] input)
    {
        byte[] pinned = GC.AllocateArray<byte>(BufferBytes + 64, pinned: true);
        nint address = Marshal.UnsafeAddrOfPinnedArrayElement(pinned, 0);
        int offset = (int)((64 - (address & 63)) & 63);
        input.CopyTo(pinned.AsSpan(offset));
        using (var cpu = new NativeCpu())
        {
            NativeStub stub = cpu.Compile64(body);
            RegisterFile regs = default;
            regs.Rsi = (ulong)(address + offset);
            regs.Rflags = 2;
            cpu.Run(stub, ref regs);
        }

        return pinned.AsSpan(offset, BufferBytes).ToArray();
    }

    private byte[] RunGuest(Action<Assembler> body, byte[] input)
    {
        using var m = new TestMachine(options: JitCoverage.For(engine));
        m.StartLong64(Code);
        SystemRegisters s = m.Vcpu.GetSystemRegisters();
        s.Cr4 |= 0x600 | (1UL << 18); // OSFXSR, OSXMMEXCPT, OSXSAVE
        m.Vcpu.SetSystemRegisters(s);
        ulong halted = m.Load(64, Code, a =>
        {
            a.mov(ecx, 0);
            a.mov(eax, 3);
            a.xor(edx, edx);
            a.xsetbv(); // XCR0 = x87 | SSE (the reset value is x87 only)
            a.mov(rsi, GuestBuffer);
            body(a);
            a.hlt();
        });
        m.Memory.Write(new GuestAddress(GuestBuffer), input);
        VcpuExit exit = m.Run(10_000);
        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), exit.ToString());
        Assert.That(m.Vcpu.GetGeneralRegisters().Rip, Is.EqualTo(halted), "stopped early (a fault?)");
        var guest = new byte[BufferBytes];
        m.Memory.Read(new GuestAddress(GuestBuffer), guest);
        return guest;
    }

    private static void SkipUnlessHostHasXsave()
    {
        if (NativeCpu.UnsupportedReason is { } reason)
        {
            Assert.Ignore(reason);
        }

        if (!System.Runtime.Intrinsics.X86.X86Base.IsSupported || (System.Runtime.Intrinsics.X86.X86Base.CpuId(1, 0).Ecx & (1 << 27)) == 0)
        {
            Assert.Ignore("the host CPU or OS does not enable XSAVE (CPUID.1:ECX.OSXSAVE is clear)");
        }

        if ((System.Runtime.Intrinsics.X86.X86Base.CpuId(0xD, 1).Eax & 1) == 0)
        {
            Assert.Ignore("the host CPU lacks XSAVEOPT");
        }
    }

    /// <summary>
    /// Compares a saved image. FOP/FIP/FDP (bytes 6-23) are left out: AMD processors store them only while FSW.ES is set
    /// (AMD APM Vol. 5, FXSAVE), Intel ones always, and this CPU does not track the last x87 instruction.
    /// </summary>
    private static void CompareImage(byte[] host, byte[] guest, int at, bool sseWritten)
    {
        host = (byte[])host.Clone();
        guest = (byte[])guest.Clone();
        host.AsSpan(at + 6, 18).Clear();
        guest.AsSpan(at + 6, 18).Clear();

        if (sseWritten)
        {
            host[at + 30] = 0; // MXCSR_MASK bits 31:16 (AMD's MM bit 17)
            host[at + 31] = 0;
        }

        Assert.Multiple(() =>
        {
            Assert.That(Convert.ToHexString(guest, at, 24), Is.EqualTo(Convert.ToHexString(host, at, 24)), "FCW FSW FTW FOP FIP FDP (0-23)");
            Assert.That(Convert.ToHexString(guest, at + 24, 8), Is.EqualTo(Convert.ToHexString(host, at + 24, 8)), "MXCSR, MXCSR_MASK (24-31)");
            Assert.That(Convert.ToHexString(guest, at + 32, 128), Is.EqualTo(Convert.ToHexString(host, at + 32, 128)), "ST0-7 (32-159)");
            Assert.That(Convert.ToHexString(guest, at + 160, 256), Is.EqualTo(Convert.ToHexString(host, at + 160, 256)), "XMM0-15 (160-415)");
            Assert.That(Convert.ToHexString(guest, at + 416, 96), Is.EqualTo(Convert.ToHexString(host, at + 416, 96)), "bytes 416-511 (never written)");
            Assert.That(BitConverter.ToUInt64(guest, at + 512), Is.EqualTo(BitConverter.ToUInt64(host, at + 512)).Using<ulong>((x, y) => x == y), $"XSTATE_BV guest {BitConverter.ToUInt64(guest, at + 512):X} host {BitConverter.ToUInt64(host, at + 512):X}");
            Assert.That(Convert.ToHexString(guest, at + 520, 56), Is.EqualTo(Convert.ToHexString(host, at + 520, 56)), "header bytes 8-63");
        });
    }

    public static IEnumerable<TestCaseData> SaveCases()
    {
        foreach (Op op in Enum.GetValues<Op>())
        {
            foreach (ulong mask in new ulong[] { 0, 1, 2, 3 })
            {
                yield return new TestCaseData(op, mask).SetName($"{op} with EDX:EAX = {mask} matches the host");
            }
        }
    }

    [TestCaseSource(nameof(SaveCases))]
    public void SaveMatchesHost(Op op, ulong mask)
    {
        SkipUnlessHostHasXsave();
        byte[] input = Input((int)op * 16 + (int)mask, mask);
        byte[] host = RunNative(a => SaveBody(a, op), input);
        byte[] guest = RunGuest(a => SaveBody(a, op), input);
        CompareImage(host, guest, 0, sseWritten: (mask & 2) != 0);
    }

    public static IEnumerable<TestCaseData> RestoreCases()
    {
        foreach (bool rexW in new[] { false, true })
        {
            foreach (ulong mask in new ulong[] { 0, 1, 2, 3 })
            {
                foreach (ulong xstateBv in new ulong[] { 0, 1, 2, 3 })
                {
                    yield return new TestCaseData(rexW, mask, xstateBv)
                        .SetName($"XRSTOR{(rexW ? "64" : string.Empty)} with EDX:EAX = {mask}, XSTATE_BV = {xstateBv}, then XSAVE, matches the host");
                }
            }
        }
    }

    /// <summary>
    /// XRSTOR of a valid image over different current state, then XSAVE of everything: components outside RFBM keep the
    /// current state, the others are loaded or initialised per XSTATE_BV, MXCSR follows RFBM; FOP/FIP/FDP come from the
    /// image (no x87 instruction runs after XRSTOR), so the whole legacy region is compared.
    /// </summary>
    [TestCaseSource(nameof(RestoreCases))]
    public void RestoreMatchesHost(bool rexW, ulong mask, ulong xstateBv)
    {
        SkipUnlessHostHasXsave();
        var r = new Random((int)(mask * 8 + xstateBv) + (rexW ? 100 : 0));
        byte[] input = Input(r.Next(), mask);
        Span<byte> image = input.AsSpan(0, 576);
        BitConverter.TryWriteBytes(image, (ushort)(0x0040 | (r.Next(4) << 10) | (r.Next(4) << 8) | 0x3F)); // FCW: all masked
        BitConverter.TryWriteBytes(image[2..], (ushort)((r.Next(8) << 11) | (r.Next(0x80) & 0x7F & ~0x80)));
        image[4] = (byte)r.Next(256);
        image[5] = 0;
        BitConverter.TryWriteBytes(image[6..], (ushort)r.Next(0x800));
        if (!rexW)
        {
            image[14] = image[15] = image[22] = image[23] = 0;
        }

        for (int i = 0; i < 8; i++)
        {
            image.Slice(32 + (16 * i) + 10, 6).Clear();
        }

        BitConverter.TryWriteBytes(image[24..], 0x1F80u | ((uint)r.Next(4) << 13) | (uint)r.Next(0x40) | ((uint)r.Next(2) << 15));
        BitConverter.TryWriteBytes(image[28..], 0xFFFFu);
        image[416..512].Clear();
        image[512..576].Clear();
        BitConverter.TryWriteBytes(image[512..], xstateBv);

        byte[] host = RunNative(a => RestoreBody(a, rexW), input);
        byte[] guest = RunGuest(a => RestoreBody(a, rexW), input);
        CompareImage(host, guest, Second, sseWritten: true);
    }
}
