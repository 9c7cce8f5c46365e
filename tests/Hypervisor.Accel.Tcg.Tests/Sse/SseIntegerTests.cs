using Hypervisor.Accel.Tcg.Sse;
using Hypervisor.Accel.Tcg.Tests.Fpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Accel.Tcg.Tests.Sse;

/// <summary>
/// Integer SIMD against the host: <c>OP xmm2, xmm1</c> (xmm0 holds the implicit BLENDV mask, RAX the CRC/GPR operand)
/// over seeded random vectors rich in lane boundary values; destination, GPR result and arithmetic flags bit for bit.
/// </summary>
public sealed class SseIntegerTests : NativeFixture
{
    private delegate UInt128 Model(UInt128 a, UInt128 b, UInt128 mask, ulong rax);

    private sealed record Case(Action<Assembler> Emit, Model Model, Output Out = Output.Xmm, Func<Random, UInt128>? B = null);

    private enum Output { Xmm, Rax, Flags }

    private static readonly Dictionary<string, Case> Cases = Build();

    private static Dictionary<string, Case> Build()
    {
        var d = new Dictionary<string, Case>();
        void X(string n, Action<Assembler> e, Model m, Func<Random, UInt128>? b = null) => d[n] = new Case(e, m, Output.Xmm, b);
        int[] sizes = [1, 2, 4, 8];
        X("paddb", a => a.paddb(xmm2, xmm1), (x, y, _, _) => SseInteger.Padd(x, y, 1));
        X("paddw", a => a.paddw(xmm2, xmm1), (x, y, _, _) => SseInteger.Padd(x, y, 2));
        X("paddd", a => a.paddd(xmm2, xmm1), (x, y, _, _) => SseInteger.Padd(x, y, 4));
        X("paddq", a => a.paddq(xmm2, xmm1), (x, y, _, _) => SseInteger.Padd(x, y, 8));
        X("psubb", a => a.psubb(xmm2, xmm1), (x, y, _, _) => SseInteger.Psub(x, y, 1));
        X("psubw", a => a.psubw(xmm2, xmm1), (x, y, _, _) => SseInteger.Psub(x, y, 2));
        X("psubd", a => a.psubd(xmm2, xmm1), (x, y, _, _) => SseInteger.Psub(x, y, 4));
        X("psubq", a => a.psubq(xmm2, xmm1), (x, y, _, _) => SseInteger.Psub(x, y, 8));
        X("paddsb", a => a.paddsb(xmm2, xmm1), (x, y, _, _) => SseInteger.AddSubSaturate(x, y, 1, false, true));
        X("paddsw", a => a.paddsw(xmm2, xmm1), (x, y, _, _) => SseInteger.AddSubSaturate(x, y, 2, false, true));
        X("paddusb", a => a.paddusb(xmm2, xmm1), (x, y, _, _) => SseInteger.AddSubSaturate(x, y, 1, false, false));
        X("paddusw", a => a.paddusw(xmm2, xmm1), (x, y, _, _) => SseInteger.AddSubSaturate(x, y, 2, false, false));
        X("psubsb", a => a.psubsb(xmm2, xmm1), (x, y, _, _) => SseInteger.AddSubSaturate(x, y, 1, true, true));
        X("psubsw", a => a.psubsw(xmm2, xmm1), (x, y, _, _) => SseInteger.AddSubSaturate(x, y, 2, true, true));
        X("psubusb", a => a.psubusb(xmm2, xmm1), (x, y, _, _) => SseInteger.AddSubSaturate(x, y, 1, true, false));
        X("psubusw", a => a.psubusw(xmm2, xmm1), (x, y, _, _) => SseInteger.AddSubSaturate(x, y, 2, true, false));
        X("pmullw", a => a.pmullw(xmm2, xmm1), (x, y, _, _) => SseInteger.Pmullw(x, y));
        X("pmulhw", a => a.pmulhw(xmm2, xmm1), (x, y, _, _) => SseInteger.Pmulhw(x, y));
        X("pmulhuw", a => a.pmulhuw(xmm2, xmm1), (x, y, _, _) => SseInteger.Pmulhuw(x, y));
        X("pmulhrsw", a => a.pmulhrsw(xmm2, xmm1), (x, y, _, _) => SseInteger.Pmulhrsw(x, y));
        X("pmulld", a => a.pmulld(xmm2, xmm1), (x, y, _, _) => SseInteger.Pmulld(x, y));
        X("pmuludq", a => a.pmuludq(xmm2, xmm1), (x, y, _, _) => SseInteger.Pmuldq(x, y, false));
        X("pmuldq", a => a.pmuldq(xmm2, xmm1), (x, y, _, _) => SseInteger.Pmuldq(x, y, true));
        X("pmaddwd", a => a.pmaddwd(xmm2, xmm1), (x, y, _, _) => SseInteger.Pmaddwd(x, y));
        X("pmaddubsw", a => a.pmaddubsw(xmm2, xmm1), (x, y, _, _) => SseInteger.Pmaddubsw(x, y));
        X("pcmpeqb", a => a.pcmpeqb(xmm2, xmm1), (x, y, _, _) => SseInteger.Pcmpeq(x, y, 1));
        X("pcmpeqw", a => a.pcmpeqw(xmm2, xmm1), (x, y, _, _) => SseInteger.Pcmpeq(x, y, 2));
        X("pcmpeqd", a => a.pcmpeqd(xmm2, xmm1), (x, y, _, _) => SseInteger.Pcmpeq(x, y, 4));
        X("pcmpeqq", a => a.pcmpeqq(xmm2, xmm1), (x, y, _, _) => SseInteger.Pcmpeq(x, y, 8));
        X("pcmpgtb", a => a.pcmpgtb(xmm2, xmm1), (x, y, _, _) => SseInteger.Pcmpgt(x, y, 1));
        X("pcmpgtw", a => a.pcmpgtw(xmm2, xmm1), (x, y, _, _) => SseInteger.Pcmpgt(x, y, 2));
        X("pcmpgtd", a => a.pcmpgtd(xmm2, xmm1), (x, y, _, _) => SseInteger.Pcmpgt(x, y, 4));
        X("pcmpgtq", a => a.pcmpgtq(xmm2, xmm1), (x, y, _, _) => SseInteger.Pcmpgt(x, y, 8));
        X("pminsb", a => a.pminsb(xmm2, xmm1), (x, y, _, _) => SseInteger.MinMax(x, y, 1, true, false));
        X("pminub", a => a.pminub(xmm2, xmm1), (x, y, _, _) => SseInteger.MinMax(x, y, 1, false, false));
        X("pminsw", a => a.pminsw(xmm2, xmm1), (x, y, _, _) => SseInteger.MinMax(x, y, 2, true, false));
        X("pminuw", a => a.pminuw(xmm2, xmm1), (x, y, _, _) => SseInteger.MinMax(x, y, 2, false, false));
        X("pminsd", a => a.pminsd(xmm2, xmm1), (x, y, _, _) => SseInteger.MinMax(x, y, 4, true, false));
        X("pminud", a => a.pminud(xmm2, xmm1), (x, y, _, _) => SseInteger.MinMax(x, y, 4, false, false));
        X("pmaxsb", a => a.pmaxsb(xmm2, xmm1), (x, y, _, _) => SseInteger.MinMax(x, y, 1, true, true));
        X("pmaxub", a => a.pmaxub(xmm2, xmm1), (x, y, _, _) => SseInteger.MinMax(x, y, 1, false, true));
        X("pmaxsw", a => a.pmaxsw(xmm2, xmm1), (x, y, _, _) => SseInteger.MinMax(x, y, 2, true, true));
        X("pmaxuw", a => a.pmaxuw(xmm2, xmm1), (x, y, _, _) => SseInteger.MinMax(x, y, 2, false, true));
        X("pmaxsd", a => a.pmaxsd(xmm2, xmm1), (x, y, _, _) => SseInteger.MinMax(x, y, 4, true, true));
        X("pmaxud", a => a.pmaxud(xmm2, xmm1), (x, y, _, _) => SseInteger.MinMax(x, y, 4, false, true));
        X("pavgb", a => a.pavgb(xmm2, xmm1), (x, y, _, _) => SseInteger.Pavg(x, y, 1));
        X("pavgw", a => a.pavgw(xmm2, xmm1), (x, y, _, _) => SseInteger.Pavg(x, y, 2));
        X("pabsb", a => a.pabsb(xmm2, xmm1), (x, y, _, _) => SseInteger.Pabs(y, 1));
        X("pabsw", a => a.pabsw(xmm2, xmm1), (x, y, _, _) => SseInteger.Pabs(y, 2));
        X("pabsd", a => a.pabsd(xmm2, xmm1), (x, y, _, _) => SseInteger.Pabs(y, 4));
        X("psignb", a => a.psignb(xmm2, xmm1), (x, y, _, _) => SseInteger.Psign(x, y, 1));
        X("psignw", a => a.psignw(xmm2, xmm1), (x, y, _, _) => SseInteger.Psign(x, y, 2));
        X("psignd", a => a.psignd(xmm2, xmm1), (x, y, _, _) => SseInteger.Psign(x, y, 4));
        X("psadbw", a => a.psadbw(xmm2, xmm1), (x, y, _, _) => SseInteger.Psadbw(x, y));
        X("phminposuw", a => a.phminposuw(xmm2, xmm1), (x, y, _, _) => SseInteger.Phminposuw(y));
        X("phaddw", a => a.phaddw(xmm2, xmm1), (x, y, _, _) => SseInteger.Horizontal(x, y, 2, false, false));
        X("phaddd", a => a.phaddd(xmm2, xmm1), (x, y, _, _) => SseInteger.Horizontal(x, y, 4, false, false));
        X("phaddsw", a => a.phaddsw(xmm2, xmm1), (x, y, _, _) => SseInteger.Horizontal(x, y, 2, false, true));
        X("phsubw", a => a.phsubw(xmm2, xmm1), (x, y, _, _) => SseInteger.Horizontal(x, y, 2, true, false));
        X("phsubd", a => a.phsubd(xmm2, xmm1), (x, y, _, _) => SseInteger.Horizontal(x, y, 4, true, false));
        X("phsubsw", a => a.phsubsw(xmm2, xmm1), (x, y, _, _) => SseInteger.Horizontal(x, y, 2, true, true));
        Func<Random, UInt128> counts = r => (UInt128)(ulong)(r.Next(4) == 0 ? (ulong)r.NextInt64() : (ulong)r.Next(0, 70)) | ((UInt128)(ulong)r.NextInt64() << 64);
        X("psllw", a => a.psllw(xmm2, xmm1), (x, y, _, _) => SseInteger.Psll(x, (ulong)y, 2), counts);
        X("pslld", a => a.pslld(xmm2, xmm1), (x, y, _, _) => SseInteger.Psll(x, (ulong)y, 4), counts);
        X("psllq", a => a.psllq(xmm2, xmm1), (x, y, _, _) => SseInteger.Psll(x, (ulong)y, 8), counts);
        X("psrlw", a => a.psrlw(xmm2, xmm1), (x, y, _, _) => SseInteger.Psrl(x, (ulong)y, 2), counts);
        X("psrld", a => a.psrld(xmm2, xmm1), (x, y, _, _) => SseInteger.Psrl(x, (ulong)y, 4), counts);
        X("psrlq", a => a.psrlq(xmm2, xmm1), (x, y, _, _) => SseInteger.Psrl(x, (ulong)y, 8), counts);
        X("psraw", a => a.psraw(xmm2, xmm1), (x, y, _, _) => SseInteger.Psra(x, (ulong)y, 2), counts);
        X("psrad", a => a.psrad(xmm2, xmm1), (x, y, _, _) => SseInteger.Psra(x, (ulong)y, 4), counts);
        foreach (byte imm in new byte[] { 0, 1, 7, 15, 16, 31, 33, 63, 64, 200 })
        {
            byte i = imm;
            X($"psllw_{i}", a => a.psllw(xmm2, i), (x, y, _, _) => SseInteger.Psll(x, i, 2));
            X($"psrld_{i}", a => a.psrld(xmm2, i), (x, y, _, _) => SseInteger.Psrl(x, i, 4));
            X($"psraw_{i}", a => a.psraw(xmm2, i), (x, y, _, _) => SseInteger.Psra(x, i, 2));
            X($"psrad_{i}", a => a.psrad(xmm2, i), (x, y, _, _) => SseInteger.Psra(x, i, 4));
            X($"psllq_{i}", a => a.psllq(xmm2, i), (x, y, _, _) => SseInteger.Psll(x, i, 8));
            X($"pslldq_{i}", a => a.pslldq(xmm2, i), (x, y, _, _) => SseInteger.Pslldq(x, i));
            X($"psrldq_{i}", a => a.psrldq(xmm2, i), (x, y, _, _) => SseInteger.Psrldq(x, i));
            X($"palignr_{i}", a => a.palignr(xmm2, xmm1, i), (x, y, _, _) => SseInteger.Palignr(x, y, i));
        }
        X("packsswb", a => a.packsswb(xmm2, xmm1), (x, y, _, _) => SseInteger.Pack(x, y, 2, false));
        X("packuswb", a => a.packuswb(xmm2, xmm1), (x, y, _, _) => SseInteger.Pack(x, y, 2, true));
        X("packssdw", a => a.packssdw(xmm2, xmm1), (x, y, _, _) => SseInteger.Pack(x, y, 4, false));
        X("packusdw", a => a.packusdw(xmm2, xmm1), (x, y, _, _) => SseInteger.Pack(x, y, 4, true));
        X("punpcklbw", a => a.punpcklbw(xmm2, xmm1), (x, y, _, _) => SseInteger.Unpack(x, y, 1, false));
        X("punpcklwd", a => a.punpcklwd(xmm2, xmm1), (x, y, _, _) => SseInteger.Unpack(x, y, 2, false));
        X("punpckldq", a => a.punpckldq(xmm2, xmm1), (x, y, _, _) => SseInteger.Unpack(x, y, 4, false));
        X("punpcklqdq", a => a.punpcklqdq(xmm2, xmm1), (x, y, _, _) => SseInteger.Unpack(x, y, 8, false));
        X("punpckhbw", a => a.punpckhbw(xmm2, xmm1), (x, y, _, _) => SseInteger.Unpack(x, y, 1, true));
        X("punpckhwd", a => a.punpckhwd(xmm2, xmm1), (x, y, _, _) => SseInteger.Unpack(x, y, 2, true));
        X("punpckhdq", a => a.punpckhdq(xmm2, xmm1), (x, y, _, _) => SseInteger.Unpack(x, y, 4, true));
        X("punpckhqdq", a => a.punpckhqdq(xmm2, xmm1), (x, y, _, _) => SseInteger.Unpack(x, y, 8, true));
        X("pshufb", a => a.pshufb(xmm2, xmm1), (x, y, _, _) => SseInteger.Pshufb(x, y));
        foreach (byte imm in new byte[] { 0x00, 0x1B, 0xE4, 0x4E, 0xA5, 0xFF, 0x39 })
        {
            byte i = imm;
            X($"pshufd_{i:X2}", a => a.pshufd(xmm2, xmm1, i), (x, y, _, _) => SseInteger.Pshufd(y, i));
            X($"pshuflw_{i:X2}", a => a.pshuflw(xmm2, xmm1, i), (x, y, _, _) => SseInteger.Pshufw(y, i, false));
            X($"pshufhw_{i:X2}", a => a.pshufhw(xmm2, xmm1, i), (x, y, _, _) => SseInteger.Pshufw(y, i, true));
            X($"shufps_{i:X2}", a => a.shufps(xmm2, xmm1, i), (x, y, _, _) => SseInteger.Shufps(x, y, i));
            X($"shufpd_{i:X2}", a => a.shufpd(xmm2, xmm1, (byte)(i & 3)), (x, y, _, _) => SseInteger.Shufpd(x, y, (byte)(i & 3)));
            X($"pblendw_{i:X2}", a => a.pblendw(xmm2, xmm1, i), (x, y, _, _) => SseInteger.BlendImmediate(x, y, i, 2));
            X($"blendps_{i:X2}", a => a.blendps(xmm2, xmm1, (byte)(i & 15)), (x, y, _, _) => SseInteger.BlendImmediate(x, y, (byte)(i & 15), 4));
            X($"blendpd_{i:X2}", a => a.blendpd(xmm2, xmm1, (byte)(i & 3)), (x, y, _, _) => SseInteger.BlendImmediate(x, y, (byte)(i & 3), 8));
            X($"mpsadbw_{i:X2}", a => a.mpsadbw(xmm2, xmm1, (byte)(i & 7)), (x, y, _, _) => SseInteger.Mpsadbw(x, y, (byte)(i & 7)));
        }
        X("pblendvb", a => a.pblendvb(xmm2, xmm1), (x, y, m, _) => SseInteger.BlendVariable(x, y, m, 1));
        X("blendvps", a => a.blendvps(xmm2, xmm1), (x, y, m, _) => SseInteger.BlendVariable(x, y, m, 4));
        X("blendvpd", a => a.blendvpd(xmm2, xmm1), (x, y, m, _) => SseInteger.BlendVariable(x, y, m, 8));
        X("pmovsxbw", a => a.pmovsxbw(xmm2, xmm1), (x, y, _, _) => SseInteger.Pmovx(y, 1, 2, true));
        X("pmovsxbd", a => a.pmovsxbd(xmm2, xmm1), (x, y, _, _) => SseInteger.Pmovx(y, 1, 4, true));
        X("pmovsxbq", a => a.pmovsxbq(xmm2, xmm1), (x, y, _, _) => SseInteger.Pmovx(y, 1, 8, true));
        X("pmovsxwd", a => a.pmovsxwd(xmm2, xmm1), (x, y, _, _) => SseInteger.Pmovx(y, 2, 4, true));
        X("pmovsxwq", a => a.pmovsxwq(xmm2, xmm1), (x, y, _, _) => SseInteger.Pmovx(y, 2, 8, true));
        X("pmovsxdq", a => a.pmovsxdq(xmm2, xmm1), (x, y, _, _) => SseInteger.Pmovx(y, 4, 8, true));
        X("pmovzxbw", a => a.pmovzxbw(xmm2, xmm1), (x, y, _, _) => SseInteger.Pmovx(y, 1, 2, false));
        X("pmovzxbd", a => a.pmovzxbd(xmm2, xmm1), (x, y, _, _) => SseInteger.Pmovx(y, 1, 4, false));
        X("pmovzxbq", a => a.pmovzxbq(xmm2, xmm1), (x, y, _, _) => SseInteger.Pmovx(y, 1, 8, false));
        X("pmovzxwd", a => a.pmovzxwd(xmm2, xmm1), (x, y, _, _) => SseInteger.Pmovx(y, 2, 4, false));
        X("pmovzxwq", a => a.pmovzxwq(xmm2, xmm1), (x, y, _, _) => SseInteger.Pmovx(y, 2, 8, false));
        X("pmovzxdq", a => a.pmovzxdq(xmm2, xmm1), (x, y, _, _) => SseInteger.Pmovx(y, 4, 8, false));
        d["pmovmskb"] = new Case(a => a.pmovmskb(eax, xmm2), (x, y, _, _) => SseInteger.MoveMask(x, 1), Output.Rax);
        d["movmskps"] = new Case(a => a.movmskps(eax, xmm2), (x, y, _, _) => SseInteger.MoveMask(x, 4), Output.Rax);
        d["movmskpd"] = new Case(a => a.movmskpd(eax, xmm2), (x, y, _, _) => SseInteger.MoveMask(x, 8), Output.Rax);
        d["ptest"] = new Case(a => a.ptest(xmm2, xmm1), (x, y, _, _) => SseInteger.PtestFlags(x, y), Output.Flags,
            r => r.Next(3) switch { 0 => 0, _ => (UInt128)(ulong)r.NextInt64() << r.Next(100) });
        d["crc32b"] = new Case(a => a.crc32(eax, cl), (x, y, _, rax) => SseInteger.Crc32((uint)rax, (ulong)y, 1), Output.Rax);
        d["crc32w"] = new Case(a => a.crc32(eax, cx), (x, y, _, rax) => SseInteger.Crc32((uint)rax, (ulong)y, 2), Output.Rax);
        d["crc32d"] = new Case(a => a.crc32(eax, ecx), (x, y, _, rax) => SseInteger.Crc32((uint)rax, (ulong)y, 4), Output.Rax);
        d["crc32q"] = new Case(a => a.crc32(rax, rcx), (x, y, _, rax) => SseInteger.Crc32((uint)rax, (ulong)y, 8), Output.Rax);
        d["popcnt"] = new Case(a => a.popcnt(rax, rcx), (x, y, _, _) => (ulong)SseInteger.Popcnt((ulong)y), Output.Rax);
        return d;
    }

    public static IEnumerable<string> Names() => Cases.Keys;

    // Lanes full of boundary values (0, 1, 7F.., 80.., FF..) mixed with random bytes.
    private static UInt128 RandomVector(Random r)
    {
        Span<byte> bytes = stackalloc byte[16];
        r.NextBytes(bytes);
        int lane = 1 << r.Next(4);
        for (int i = 0; i < 16; i += lane)
        {
            int k = r.Next(8);
            if (k >= 5)
                continue;
            for (int j = 0; j < lane; j++)
            {
                bool top = j == lane - 1;
                bytes[i + j] = k switch { 0 => 0, 1 => j == 0 ? (byte)1 : (byte)0, 2 => top ? (byte)0x7F : (byte)0xFF, 3 => top ? (byte)0x80 : (byte)0, _ => 0xFF };
            }
        }
        return System.Buffers.Binary.BinaryPrimitives.ReadUInt128LittleEndian(bytes);
    }

    [TestCaseSource(nameof(Names))]
    public void Differential(string name)
    {
        var c = Cases[name];
        nint stub = Native.Stub("int_" + name, a =>
        {
            a.movups(xmm0, __xmmword_ptr[rdi + NativeFloat.C]);
            a.movups(xmm2, __xmmword_ptr[rdi + NativeFloat.A]);
            a.movups(xmm1, __xmmword_ptr[rdi + NativeFloat.B]);
            a.mov(rax, __qword_ptr[rdi + NativeFloat.IntIn]);
            a.mov(rcx, __qword_ptr[rdi + NativeFloat.B]);
            a.xor(edx, edx); // flags to a known state (ZF=1 PF=1) before the instruction
            c.Emit(a);
            NativeFloat.Capture(a);
            a.movups(__xmmword_ptr[rdi + NativeFloat.Result], xmm2);
            a.mov(__qword_ptr[rdi + NativeFloat.IntOut], rax);
        });
        var m = new Mismatches();
        var r = new Random(name.GetHashCode(StringComparison.Ordinal));
        for (int i = 0; i < 1500; i++)
        {
            UInt128 x = RandomVector(r), y = c.B?.Invoke(r) ?? RandomVector(r), mask = RandomVector(r);
            if (i % 7 == 0)
                y = x; // equal operands: PCMPEQ all ones, PSUB zero, PTEST ZF/CF cases
            ulong rax = (ulong)r.NextInt64();
            Native.SetUInt128(NativeFloat.A, x);
            Native.SetUInt128(NativeFloat.B, y);
            Native.SetUInt128(NativeFloat.C, mask);
            Native.SetUInt64(NativeFloat.IntIn, rax);
            Native.MxcsrInValue = 0x1F80;
            Native.FcwInValue = 0x037F;
            Native.Run(stub);
            UInt128 host = c.Out switch
            {
                Output.Xmm => Native.GetUInt128(NativeFloat.Result),
                Output.Rax => Native.GetUInt64(NativeFloat.IntOut),
                _ => Native.RflagsOutValue & 0x8D5, // PTEST: ZF CF set, OF SF AF PF cleared
            };
            UInt128 ours = c.Model(x, y, mask, rax);
            m.Check(host == ours, () => $"{name} a={x:X32} b={y:X32} mask={mask:X32} rax={rax:X}: host {host:X32} ours {ours:X32}");
        }
        m.AssertNone();
    }
}
