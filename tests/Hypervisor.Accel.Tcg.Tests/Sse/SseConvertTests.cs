using Hypervisor.Accel.Tcg.Fpu;
using Hypervisor.Accel.Tcg.Sse;
using Hypervisor.Accel.Tcg.Tests.Fpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Accel.Tcg.Tests.Sse;

/// <summary>SSE/SSE2 conversions against the host: destination and MXCSR bit for bit, every RC/DAZ/FTZ, masked.</summary>
public sealed class SseConvertTests : NativeFixture
{
    private delegate UInt128 Model(UInt128 dst, UInt128 src, uint mxcsr, ref FloatExceptions flags);

    private void Run(string name, Action<Assembler> op, Func<Random, UInt128> source, Model model, int count = 1500)
    {
        nint stub = Native.Stub(name, a =>
        {
            a.movups(xmm0, __xmmword_ptr[rdi + NativeFloat.A]);
            a.movups(xmm1, __xmmword_ptr[rdi + NativeFloat.B]);
            a.mov(rax, __qword_ptr[rdi + NativeFloat.IntIn]);
            op(a);
            NativeFloat.Capture(a);
            a.movups(__xmmword_ptr[rdi + NativeFloat.Result], xmm0);
            a.mov(__qword_ptr[rdi + NativeFloat.IntOut], rax);
        });
        var m = new Mismatches();
        var r = new Random(name.Length * 7919 + name[^1]);
        var inputs = Enumerable.Range(0, count).Select(_ => source(r)).ToList();
        foreach (uint mxcsr in SseValues.MaskedMxcsrs())
        {
            foreach (var src in inputs)
            {
                UInt128 dst = ((UInt128)0x0123_4567_89AB_CDEF << 64) | 0xFEDC_BA98_7654_3210;
                Native.MxcsrInValue = mxcsr;
                Native.SetUInt128(NativeFloat.A, dst);
                Native.SetUInt128(NativeFloat.B, src);
                Native.SetUInt64(NativeFloat.IntIn, (ulong)src);
                Native.Run(stub);
                // Conversions to a general register return it in RAX; the model returns it in the low 64 bits.
                UInt128 host = name.Contains("2si", StringComparison.Ordinal) ? Native.GetUInt64(NativeFloat.IntOut) : Native.GetUInt128(NativeFloat.Result);
                uint hostMxcsr = Native.MxcsrOutValue;
                var flags = FloatExceptions.None;
                UInt128 ours = model(dst, src, mxcsr, ref flags);
                uint oursMxcsr = Mxcsr.Accumulate(mxcsr, flags);
                m.Check(host == ours && hostMxcsr == oursMxcsr,
                    () => $"{name} mxcsr={mxcsr:X4} src={src:X32}: host {host:X32} mxcsr {hostMxcsr:X4}, ours {ours:X32} mxcsr {oursMxcsr:X4}");
            }
        }
        m.AssertNone();
    }

    private static int _edge;

    private static UInt128 Floats(Random r, bool isDouble)
    {
        ulong Pick()
        {
            if (r.Next(4) == 0)
            {
                var e = isDouble ? SseValues.Edges64 : SseValues.Edges32.Select(x => (ulong)x).ToArray();
                return e[_edge++ % e.Length];
            }
            if (r.Next(3) == 0)
                return NearInteger(r, isDouble);
            return SseValues.Random(r, isDouble);
        }
        return isDouble ? Pick() | ((UInt128)Pick() << 64) : (UInt128)(uint)Pick() | ((UInt128)(uint)Pick() << 32) | ((UInt128)(uint)Pick() << 64) | ((UInt128)(uint)Pick() << 96);
    }

    // Magnitudes around 2^31 and 2^63 and small values with fractions, to exercise integer range limits and ties.
    private static ulong NearInteger(Random r, bool isDouble)
    {
        int e = r.Next(3) switch { 0 => r.Next(29, 33), 1 => r.Next(61, 65), _ => r.Next(-2, 6) };
        ulong sign = (ulong)r.Next(2);
        if (isDouble)
        {
            ulong frac = (ulong)r.NextInt64() & 0xF_FFFF_FFFF_FFFF;
            if (r.Next(2) == 0) frac &= ~((1UL << Math.Clamp(52 - e + 1, 1, 52)) - 1);
            return (sign << 63) | ((ulong)(1023 + e) << 52) | frac;
        }
        ulong f = (ulong)r.Next() & 0x7F_FFFF;
        if (r.Next(2) == 0) f &= ~((1UL << Math.Clamp(23 - e + 1, 1, 23)) - 1);
        return (sign << 31) | ((ulong)(127 + e) << 23) | f;
    }

    private static UInt128 Ints(Random r)
    {
        UInt128 v = 0;
        for (int i = 0; i < 4; i++)
        {
            uint x = r.Next(4) switch { 0 => (uint)r.Next(), 1 => (uint)(r.Next() >> r.Next(31)), 2 => (uint)-(r.Next() >> r.Next(31)), _ => new uint[] { 0, 1, 0x8000_0000, 0x7FFF_FFFF, 0xFFFF_FFFF, 0x0100_0001 }[r.Next(6)] };
            v |= (UInt128)x << (32 * i);
        }
        if (r.Next(2) == 0)
            v = (v & ~(UInt128)ulong.MaxValue) | (ulong)(r.NextInt64() >> r.Next(64)) * (ulong)(r.Next(2) * 2 - 1);
        return v;
    }

    [Test]
    public void Cvtps2pd() => Run("cvtps2pd", a => a.cvtps2pd(xmm0, xmm1), r => Floats(r, false),
        (UInt128 d, UInt128 s, uint mx, ref FloatExceptions f) => SseConvert.Ps2Pd(s, mx, ref f));

    [Test]
    public void Cvtpd2ps() => Run("cvtpd2ps", a => a.cvtpd2ps(xmm0, xmm1), r => Floats(r, true),
        (UInt128 d, UInt128 s, uint mx, ref FloatExceptions f) => SseConvert.Pd2Ps(s, mx, ref f));

    [Test]
    public void Cvtss2sd() => Run("cvtss2sd", a => a.cvtss2sd(xmm0, xmm1), r => Floats(r, false),
        (UInt128 d, UInt128 s, uint mx, ref FloatExceptions f) => SseConvert.Ss2Sd(d, s, mx, ref f));

    [Test]
    public void Cvtsd2ss() => Run("cvtsd2ss", a => a.cvtsd2ss(xmm0, xmm1), r => Floats(r, true),
        (UInt128 d, UInt128 s, uint mx, ref FloatExceptions f) => SseConvert.Sd2Ss(d, s, mx, ref f));

    [Test]
    public void Cvtdq2ps() => Run("cvtdq2ps", a => a.cvtdq2ps(xmm0, xmm1), Ints,
        (UInt128 d, UInt128 s, uint mx, ref FloatExceptions f) => SseConvert.Dq2Ps(s, mx, ref f));

    [Test]
    public void Cvtdq2pd() => Run("cvtdq2pd", a => a.cvtdq2pd(xmm0, xmm1), Ints,
        (UInt128 d, UInt128 s, uint mx, ref FloatExceptions f) => SseConvert.Dq2Pd(s, mx, ref f), 300);

    [TestCase(false)]
    [TestCase(true)]
    public void Cvtps2dq(bool truncate) => Run(truncate ? "cvttps2dq" : "cvtps2dq", a => { if (truncate) a.cvttps2dq(xmm0, xmm1); else a.cvtps2dq(xmm0, xmm1); },
        r => Floats(r, false), (UInt128 d, UInt128 s, uint mx, ref FloatExceptions f) => SseConvert.Ps2Dq(s, truncate, mx, ref f));

    [TestCase(false)]
    [TestCase(true)]
    public void Cvtpd2dq(bool truncate) => Run(truncate ? "cvttpd2dq" : "cvtpd2dq", a => { if (truncate) a.cvttpd2dq(xmm0, xmm1); else a.cvtpd2dq(xmm0, xmm1); },
        r => Floats(r, true), (UInt128 d, UInt128 s, uint mx, ref FloatExceptions f) => SseConvert.Pd2Dq(s, truncate, mx, ref f));

    [TestCase(false, 32)]
    [TestCase(false, 64)]
    [TestCase(true, 32)]
    [TestCase(true, 64)]
    public void Cvtsi2scalar(bool isDouble, int bits) => Run($"cvtsi2s{(isDouble ? "d" : "s")}{bits}", a =>
        {
            if (isDouble && bits == 32) a.cvtsi2sd(xmm0, eax);
            else if (isDouble) a.cvtsi2sd(xmm0, rax);
            else if (bits == 32) a.cvtsi2ss(xmm0, eax);
            else a.cvtsi2ss(xmm0, rax);
        }, Ints, (UInt128 d, UInt128 s, uint mx, ref FloatExceptions f) =>
            SseConvert.Si2Scalar(d, bits == 32 ? (int)(uint)s : (long)(ulong)s, isDouble, mx, ref f));

    [TestCase(false, 32, false)]
    [TestCase(false, 64, false)]
    [TestCase(true, 32, false)]
    [TestCase(true, 64, false)]
    [TestCase(false, 32, true)]
    [TestCase(false, 64, true)]
    [TestCase(true, 32, true)]
    [TestCase(true, 64, true)]
    public void CvtScalar2si(bool isDouble, int bits, bool truncate) => Run($"cvt{(truncate ? "t" : "")}s{(isDouble ? "d" : "s")}2si{bits}", a =>
        {
            var dst = bits == 32 ? (AssemblerRegister32?)eax : null;
            if (isDouble && truncate) { if (dst is { } d) a.cvttsd2si(d, xmm1); else a.cvttsd2si(rax, xmm1); }
            else if (isDouble) { if (dst is { } d) a.cvtsd2si(d, xmm1); else a.cvtsd2si(rax, xmm1); }
            else if (truncate) { if (dst is { } d) a.cvttss2si(d, xmm1); else a.cvttss2si(rax, xmm1); }
            else { if (dst is { } d) a.cvtss2si(d, xmm1); else a.cvtss2si(rax, xmm1); }
        }, r => Floats(r, isDouble), (UInt128 d, UInt128 s, uint mx, ref FloatExceptions f) =>
        {
            long v = SseConvert.Scalar2Si(s, isDouble, bits, truncate, mx, ref f);
            return bits == 32 ? (uint)v : (ulong)v; // a 32-bit destination zero-extends into RAX
        });
}
