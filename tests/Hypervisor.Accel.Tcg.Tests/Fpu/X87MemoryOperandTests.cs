using System.Buffers.Binary;
using Hypervisor.Accel.Tcg.Fpu;
using Hypervisor.Accel.Tcg.Tests.Sse;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Accel.Tcg.Tests.Fpu;

/// <summary>
/// Arithmetic with memory operands (FADD/FMUL/FDIVR m32fp and m64fp, FIADD/FISUB m32int) and FLD m32/m64 through
/// <see cref="X87Instructions"/>, against the host, all exceptions masked. C0, C2 and C3 are undefined after these
/// instructions and masked.
/// </summary>
public sealed class X87MemoryOperandTests : NativeFixture
{
    [Test]
    public void ArithmeticWithMemoryOperands([Values("fadd32", "fmul64", "fdivr32", "fsub64", "fiadd32", "fisub32")] string form)
    {
        bool integer = form.StartsWith("fi", StringComparison.Ordinal);
        bool is64 = form.EndsWith("64", StringComparison.Ordinal);
        var op = form[..^2] switch
        {
            "fadd" or "fiadd" => X87ArithmeticOp.Add,
            "fmul" => X87ArithmeticOp.Mul,
            "fdivr" => X87ArithmeticOp.DivReverse,
            _ => X87ArithmeticOp.Sub,
        };
        nint stub = Native.Stub("mem_" + form, a =>
        {
            a.fld(__tword_ptr[rdi + NativeFloat.A]);
            switch (form)
            {
                case "fadd32": a.fadd(__dword_ptr[rdi + NativeFloat.B]); break;
                case "fmul64": a.fmul(__qword_ptr[rdi + NativeFloat.B]); break;
                case "fdivr32": a.fdivr(__dword_ptr[rdi + NativeFloat.B]); break;
                case "fsub64": a.fsub(__qword_ptr[rdi + NativeFloat.B]); break;
                case "fiadd32": a.fiadd(__dword_ptr[rdi + NativeFloat.B]); break;
                default: a.fisub(__dword_ptr[rdi + NativeFloat.B]); break;
            }
            NativeFloat.Capture(a);
            a.fstp(__tword_ptr[rdi + NativeFloat.Result]);
        });
        var m = new Mismatches();
        var r = new Random(form.Length * 13 + form[1]);
        ulong[] edges = is64 ? SseValues.Edges64 : SseValues.Edges32.Select(x => (ulong)x).ToArray();
        foreach (ushort fcw in X87Values.MaskedControlWords())
        {
            for (int i = 0; i < 1200; i++)
            {
                var x = i < X87Values.Edges.Length ? X87Values.Edges[i] : (r.Next(4) == 0 ? X87Values.Edges[r.Next(X87Values.Edges.Length)] : X87Values.Random(r));
                ulong mem = integer ? (ulong)(uint)(r.Next(3) == 0 ? r.Next() : r.Next() >> r.Next(31)) * (r.Next(2) == 0 ? 1UL : ulong.MaxValue)
                    : r.Next(3) == 0 ? edges[r.Next(edges.Length)] : SseValues.Random(r, is64);
                if (!is64)
                    mem &= 0xFFFF_FFFF;
                Native.FcwInValue = fcw;
                Native.SetExtended(NativeFloat.A, x);
                Native.SetUInt64(NativeFloat.B, mem);
                Native.Run(stub);
                var host = Native.GetExtended(NativeFloat.Result);
                ushort hostFsw = (ushort)(Native.FswOutValue & 0x3A7F);

                var s = X87State.Initial();
                s.LoadControlWord(fcw);
                X87Instructions.Load(ref s, x);
                bool denormal = false;
                ExtendedFloat operand = integer ? X87Arithmetic.FromInt64((int)(uint)mem)
                    : is64 ? X87Arithmetic.WidenDouble(mem, out denormal) : X87Arithmetic.WidenSingle((uint)mem, out denormal);
                X87Instructions.ArithmeticMemory(ref s, op, operand, denormal);
                var ours = s.St(0);
                ushort oursFsw = (ushort)(s.Fsw & 0x3A7F);
                m.Check(host == ours && hostFsw == oursFsw, () => $"{form} fcw={fcw:X4} st0={x} mem={mem:X}: host {host} fsw {hostFsw:X4}, ours {ours} fsw {oursFsw:X4}");
            }
        }
        m.AssertNone();
    }

    [TestCase(32)]
    [TestCase(64)]
    public void FldMemoryThroughState(int bits)
    {
        nint stub = Native.Stub($"fldstate{bits}", a =>
        {
            if (bits == 32) a.fld(__dword_ptr[rdi + NativeFloat.B]); else a.fld(__qword_ptr[rdi + NativeFloat.B]);
            NativeFloat.Capture(a);
            a.fstp(__tword_ptr[rdi + NativeFloat.Result]);
        });
        var m = new Mismatches();
        var r = new Random(bits + 5);
        ulong[] edges = bits == 64 ? SseValues.Edges64 : SseValues.Edges32.Select(x => (ulong)x).ToArray();
        foreach (ulong v in edges.Concat(Enumerable.Range(0, 500).Select(_ => SseValues.Random(r, bits == 64))))
        {
            Native.FcwInValue = X87Control.Default;
            Native.SetUInt64(NativeFloat.B, v);
            Native.Run(stub);
            var host = Native.GetExtended(NativeFloat.Result);
            ushort hostFsw = (ushort)(Native.FswOutValue & 0x3A7F);
            var s = X87State.Initial();
            var flags = FloatExceptions.None;
            var value = bits == 32 ? X87Arithmetic.FromSingle((uint)v, ref flags) : X87Arithmetic.FromDouble(v, ref flags);
            X87Instructions.LoadConverted(ref s, value, flags);
            m.Check(host == s.St(0) && hostFsw == (ushort)(s.Fsw & 0x3A7F), () => $"fld m{bits} {v:X}: host {host} fsw {hostFsw:X4}, ours {s.St(0)} fsw {s.Fsw & 0x3A7F:X4}");
        }
        m.AssertNone();
    }
}
