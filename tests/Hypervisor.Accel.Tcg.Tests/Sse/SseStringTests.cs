using Hypervisor.Accel.Tcg.Sse;
using Hypervisor.Accel.Tcg.Tests.Fpu;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Accel.Tcg.Tests.Sse;

/// <summary>
/// PCMPESTRI/PCMPESTRM/PCMPISTRI/PCMPISTRM against the host for every imm8 control byte (bits 0-6): ECX or XMM0 and
/// the flags (CF ZF SF OF set as defined, AF PF cleared) bit for bit, over short strings from small alphabets (so that
/// matches, ranges and nulls are frequent) and explicit lengths including negative and out-of-range ones.
/// </summary>
public sealed class SseStringTests : NativeFixture
{
    [Test]
    public void AllControlBytes([Values] bool explicitLength, [Values] bool mask)
    {
        var m = new Mismatches();
        var r = new Random((explicitLength ? 1 : 0) + (mask ? 2 : 0));
        for (int imm = 0; imm < 128; imm++)
        {
            byte b8 = (byte)imm;
            nint stub = Native.Stub($"pcmp{explicitLength}{mask}{imm}", a =>
            {
                a.movups(xmm1, __xmmword_ptr[rdi + NativeFloat.A]);
                a.movups(xmm2, __xmmword_ptr[rdi + NativeFloat.B]);
                a.pxor(xmm0, xmm0);
                a.mov(rax, __qword_ptr[rdi + NativeFloat.IntIn]);
                a.mov(rdx, __qword_ptr[rdi + NativeFloat.C]);
                a.mov(ecx, 0x5A5A);
                if (explicitLength && mask) a.pcmpestrm(xmm1, xmm2, b8);
                else if (explicitLength) a.pcmpestri(xmm1, xmm2, b8);
                else if (mask) a.pcmpistrm(xmm1, xmm2, b8);
                else a.pcmpistri(xmm1, xmm2, b8);
                NativeFloat.Capture(a);
                a.mov(__qword_ptr[rdi + NativeFloat.IntOut], rcx);
                a.movups(__xmmword_ptr[rdi + NativeFloat.Result], xmm0);
            });
            for (int k = 0; k < 60; k++)
            {
                UInt128 x = RandomString(r), y = RandomString(r);
                long la = r.Next(4) == 0 ? r.Next(-40, 40) : r.Next(-17, 18), lb = r.Next(4) == 0 ? r.Next(-40, 40) : r.Next(-17, 18);
                Native.SetUInt128(NativeFloat.A, x);
                Native.SetUInt128(NativeFloat.B, y);
                Native.SetUInt64(NativeFloat.IntIn, (ulong)la);
                Native.SetUInt64(NativeFloat.C, (ulong)lb);
                Native.MxcsrInValue = 0x1F80;
                Native.Run(stub);
                ulong hostFlags = Native.RflagsOutValue & 0x8D5;
                UInt128 host = mask ? Native.GetUInt128(NativeFloat.Result) : Native.GetUInt64(NativeFloat.IntOut);
                // Without REX.W the lengths are EAX/EDX: the low 32 bits, signed.
                var res = SseString.Compare(x, y, b8, explicitLength ? (int)la : null, explicitLength ? (int)lb : null);
                UInt128 ours = mask ? SseString.Mask(res, b8) : SseString.Index(res, b8);
                m.Check(host == ours && hostFlags == res.Eflags,
                    () => $"imm={imm:X2} explicit={explicitLength} a={x:X32} b={y:X32} la={la} lb={lb}: host {host:X} fl {hostFlags:X}, ours {ours:X} fl {res.Eflags:X}");
            }
        }
        m.AssertNone();
    }

    private static UInt128 RandomString(Random r)
    {
        Span<byte> s = stackalloc byte[16];
        int alphabet = r.Next(2, 6);
        for (int i = 0; i < 16; i++)
            s[i] = (byte)(r.Next(alphabet) switch { 0 => 0x41, 1 => 0x42, 2 => 0x80, 3 => 0xFF, _ => 0x43 });
        if (r.Next(2) == 0)
            s[r.Next(16)] = 0;
        if (r.Next(4) == 0)
            s[r.Next(16)] = (byte)r.Next(256);
        return System.Buffers.Binary.BinaryPrimitives.ReadUInt128LittleEndian(s);
    }
}
