using System.Buffers.Binary;
using Hypervisor.Accel.Tcg.Fpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Accel.Tcg.Tests.Fpu;

/// <summary>
/// Unmasked x87 exceptions against the host. An unmasked x87 exception is only delivered by the next waiting
/// instruction, so the native stub ends with non-waiting FNSTSW and FNSAVE (which also clears the pending state):
/// the test sees FSW with ES/B, and the registers exactly as the instruction left them (unchanged for IE/DE/ZE,
/// exponent-wrapped results for OE/UE). C0, C2 and C3 are undefined after arithmetic and stores and are masked.
/// </summary>
public sealed class X87UnmaskedTests : NativeFixture
{
    private const ushort FswMask = 0xBAFF; // all but C0, C2, C3

    private static IEnumerable<ushort> ControlWords(Random r)
    {
        for (int i = 0; i < 12; i++)
            yield return (ushort)(0x40 | r.Next(64) | (new[] { 0, 2, 3 }[r.Next(3)] << 8) | (r.Next(4) << 10));
        yield return 0x0040 | 0x0300; // everything unmasked, 64-bit precision
    }

    [TestCase("Add")]
    [TestCase("Sub")]
    [TestCase("Mul")]
    [TestCase("Div")]
    [TestCase("DivReverse")]
    public void Arithmetic(string name)
    {
        var op = Enum.Parse<X87ArithmeticOp>(name);
        nint stub = Native.Stub($"unmasked_{op}", a =>
        {
            a.fld(__tword_ptr[rdi + NativeFloat.B]);
            a.fld(__tword_ptr[rdi + NativeFloat.A]);
            switch (op)
            {
                case X87ArithmeticOp.Add: a.fadd(st0, st1); break;
                case X87ArithmeticOp.Sub: a.fsub(st0, st1); break;
                case X87ArithmeticOp.Mul: a.fmul(st0, st1); break;
                case X87ArithmeticOp.Div: a.fdiv(st0, st1); break;
                default: a.fdivr(st0, st1); break;
            }
            a.fnstsw(__word_ptr[rdi + NativeFloat.FswOut]);
            a.fnsave(__[rdi + NativeFloat.SaveLegacy]);
        });
        var m = new Mismatches();
        var r = new Random((int)op + 40);
        foreach (ushort fcw in ControlWords(r))
        {
            foreach (var (x, y) in X87Values.Pairs((int)op * 31 + fcw, 300))
            {
                Native.FcwInValue = fcw;
                Native.SetExtended(NativeFloat.A, x);
                Native.SetExtended(NativeFloat.B, y);
                Native.Run(stub);
                ushort hostFsw = (ushort)(Native.FswOutValue & FswMask);
                var hostSt0 = Native.GetExtended(NativeFloat.SaveLegacy + 28);

                var s = X87State.Initial();
                s.LoadControlWord(fcw);
                X87Instructions.Load(ref s, y);
                X87Instructions.Load(ref s, x);
                X87Instructions.Arithmetic(ref s, op, 0, 1, false);
                ushort oursFsw = (ushort)(s.Fsw & FswMask);
                var oursSt0 = s.St(0);
                m.Check(hostFsw == oursFsw && hostSt0 == oursSt0, () => $"{op} fcw={fcw:X4} a={x} b={y}: host {hostSt0} fsw {hostFsw:X4}, ours {oursSt0} fsw {oursFsw:X4}");
            }
        }
        m.AssertNone();
    }

    [TestCase(32)]
    [TestCase(64)]
    public void StoreMemory(int bits)
    {
        nint stub = Native.Stub($"unmasked_fst{bits}", a =>
        {
            a.fld(__tword_ptr[rdi + NativeFloat.A]);
            if (bits == 32)
                a.fstp(__dword_ptr[rdi + NativeFloat.Result]);
            else
                a.fstp(__qword_ptr[rdi + NativeFloat.Result]);
            a.fnstsw(__word_ptr[rdi + NativeFloat.FswOut]);
            a.fnsave(__[rdi + NativeFloat.SaveLegacy]);
        });
        var m = new Mismatches();
        var r = new Random(bits);
        foreach (ushort fcw in ControlWords(r))
        {
            foreach (var (x, _) in X87Values.Pairs(bits + fcw, 300))
            {
                // Scale some operands into the narrow format's overflow and underflow ranges.
                var v = r.Next(3) == 0 && x.BiasedExponent is > 0 and < 0x7FFF
                    ? new ExtendedFloat(x.Significand, (ushort)((x.SignExponent & 0x8000) | (ExtendedFloat.Bias + (bits == 32 ? r.Next(-160, 140) : r.Next(-1090, 1040)))))
                    : x;
                Native.FcwInValue = fcw;
                Native.SetExtended(NativeFloat.A, v);
                Native.SetUInt64(NativeFloat.Result, 0x1111_2222_3333_4444);
                Native.Run(stub);
                ushort hostFsw = (ushort)(Native.FswOutValue & FswMask);
                ulong hostMem = bits == 32 ? BinaryPrimitives.ReadUInt32LittleEndian(Native.Bytes(NativeFloat.Result, 4)) : Native.GetUInt64(NativeFloat.Result);

                var s = X87State.Initial();
                s.LoadControlWord(fcw);
                X87Instructions.Load(ref s, v);
                X87Instructions.StoreMemory(ref s, bits, true, out ulong result, out _, out bool write);
                ulong oursMem = write ? result : (bits == 32 ? 0x3333_4444UL : 0x1111_2222_3333_4444UL);
                ushort oursFsw = (ushort)(s.Fsw & FswMask);
                m.Check(hostFsw == oursFsw && hostMem == oursMem, () => $"fstp m{bits} fcw={fcw:X4} {v}: host {hostMem:X} fsw {hostFsw:X4}, ours {oursMem:X} fsw {oursFsw:X4}");
            }
        }
        m.AssertNone();
    }
}
