using System.Buffers.Binary;
using Hypervisor.Accel.Tcg.Fpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Accel.Tcg.Tests.Fpu;

/// <summary>
/// x87 comparisons and conversions against the host FPU, all exceptions masked, every rounding mode.
/// </summary>
public sealed class X87CompareConvertTests : NativeFixture
{
    // FCOM/FUCOM/FTST: C0 C2 C3 and C1 (set to 0) are defined, plus the exception flags and TOP.
    private const ushort CompareFswMask = 0x7F7F;
    // FCOMI/FUCOMI: ZF PF CF set, OF SF AF cleared (SDM FCOMI "Flags Affected").
    private const ulong EflagsMask = 0x8D5;
    // FIST/FST: C0 C2 C3 undefined (SDM "FPU Flags Affected"); C1 is the round-up bit.
    private const ushort StoreFswMask = 0x3A7F;

    private void Compare(string name, Action<Assembler> op, bool quiet, bool eflags, int pops)
    {
        nint stub = Native.Stub(name, a =>
        {
            a.fld(__tword_ptr[rdi + NativeFloat.B]);
            a.fld(__tword_ptr[rdi + NativeFloat.A]);
            op(a);
            NativeFloat.Capture(a);
        });
        var m = new Mismatches();
        foreach (var (x, y) in X87Values.Pairs(11, 4000))
        {
            Native.FcwInValue = X87Control.Default;
            Native.SetExtended(NativeFloat.A, x);
            Native.SetExtended(NativeFloat.B, y);
            Native.Run(stub);
            ushort hostFsw = (ushort)(Native.FswOutValue & CompareFswMask);
            ulong hostFlags = Native.RflagsOutValue & EflagsMask;

            var flags = FloatExceptions.None;
            var c = X87Arithmetic.Compare(x, y, quiet, ref flags);
            ushort ours = (ushort)((ushort)flags | ((6 + pops) % 8 << 11) | (eflags ? 0 : X87Arithmetic.ConditionCodes(c)));
            ulong oursFlags = eflags ? X87Arithmetic.EflagsBits(c) : hostFlags;
            m.Check(ours == hostFsw && oursFlags == hostFlags,
                () => $"{name} a={x} b={y}: host fsw {hostFsw:X4} eflags {hostFlags:X3}, ours fsw {ours:X4} eflags {oursFlags:X3}");
        }
        m.AssertNone();
    }

    [Test]
    public void Fcom() => Compare("fcom", a => a.fcom(st0, st1), quiet: false, eflags: false, pops: 0);

    [Test]
    public void Fucom() => Compare("fucom", a => a.fucom(st0, st1), quiet: true, eflags: false, pops: 0);

    [Test]
    public void Fcomip() => Compare("fcomip", a => a.fcomip(st0, st1), quiet: false, eflags: true, pops: 1);

    [Test]
    public void Fucomi() => Compare("fucomi", a => a.fucomi(st0, st1), quiet: true, eflags: true, pops: 0);

    [Test]
    public void Ftst()
    {
        nint stub = Native.Stub("ftst", a =>
        {
            a.fld(__tword_ptr[rdi + NativeFloat.A]);
            a.ftst();
            NativeFloat.Capture(a);
        });
        var m = new Mismatches();
        foreach (var (x, _) in X87Values.Pairs(12, 3000))
        {
            Native.FcwInValue = X87Control.Default;
            Native.SetExtended(NativeFloat.A, x);
            Native.Run(stub);
            ushort host = (ushort)(Native.FswOutValue & CompareFswMask);
            var flags = FloatExceptions.None;
            var c = X87Arithmetic.Compare(x, ExtendedFloat.PositiveZero, quiet: false, ref flags);
            ushort ours = (ushort)((ushort)flags | (7 << 11) | X87Arithmetic.ConditionCodes(c));
            m.Check(host == ours, () => $"ftst {x}: host {host:X4} ours {ours:X4}");
        }
        m.AssertNone();
    }

    [TestCase(16, false)]
    [TestCase(32, false)]
    [TestCase(64, false)]
    [TestCase(16, true)]
    [TestCase(32, true)]
    [TestCase(64, true)]
    public void FistpAndFisttp(int bits, bool truncate)
    {
        nint stub = Native.Stub($"fist{bits}{truncate}", a =>
        {
            a.fld(__tword_ptr[rdi + NativeFloat.A]);
            var mem = bits switch { 16 => __word_ptr[rdi + NativeFloat.IntOut], 32 => __dword_ptr[rdi + NativeFloat.IntOut], _ => __qword_ptr[rdi + NativeFloat.IntOut] };
            if (truncate)
                a.fisttp(mem);
            else
                a.fistp(mem);
            NativeFloat.Capture(a);
        });
        var m = new Mismatches();
        var r = new Random(bits);
        foreach (ushort fcw in X87Values.MaskedControlWords())
        {
            var inputs = X87Values.Edges.Concat(Enumerable.Range(0, 3000).Select(_ => IntegerLike(r, bits)));
            foreach (var x in inputs)
            {
                Native.FcwInValue = fcw;
                Native.SetUInt64(NativeFloat.IntOut, 0x5A5A_5A5A_5A5A_5A5A);
                Native.SetExtended(NativeFloat.A, x);
                Native.Run(stub);
                ulong mask = bits == 64 ? ulong.MaxValue : (1UL << bits) - 1;
                ulong host = Native.GetUInt64(NativeFloat.IntOut) & mask;
                ushort hostFsw = (ushort)(Native.FswOutValue & StoreFswMask);
                var flags = FloatExceptions.None;
                ulong ours = (ulong)X87Arithmetic.ToInteger(x, bits, fcw, truncate, ref flags, out bool c1) & mask;
                ushort oursFsw = (ushort)((ushort)flags | (c1 ? 0x200 : 0));
                m.Check(host == ours && hostFsw == oursFsw, () => $"fist{bits} t={truncate} fcw={fcw:X4} {x}: host {host:X} fsw {hostFsw:X4}, ours {ours:X} fsw {oursFsw:X4}");
            }
        }
        m.AssertNone();
    }

    // Values around the integer range of the given width, with fractions and ties.
    private static ExtendedFloat IntegerLike(Random r, int bits)
    {
        if (r.Next(3) == 0)
            return X87Values.Random(r);
        int e = r.Next(-3, bits + 2);
        ulong sig = (ulong)r.NextInt64() | (1UL << 63);
        if (r.Next(2) == 0)
            sig &= ~((1UL << Math.Clamp(62 - e, 1, 63)) - 1);
        if (r.Next(4) == 0)
            sig = 1UL << 63; // exact powers of two, including -2^(bits-1)
        return new ExtendedFloat(sig, (ushort)((ExtendedFloat.Bias + e) | (r.Next(2) << 15)));
    }

    [TestCase(32)]
    [TestCase(64)]
    public void FstpMemory(int bits)
    {
        nint stub = Native.Stub($"fstp{bits}", a =>
        {
            a.fld(__tword_ptr[rdi + NativeFloat.A]);
            if (bits == 32)
                a.fstp(__dword_ptr[rdi + NativeFloat.Result]);
            else
                a.fstp(__qword_ptr[rdi + NativeFloat.Result]);
            NativeFloat.Capture(a);
        });
        var m = new Mismatches();
        var r = new Random(100 + bits);
        foreach (ushort fcw in X87Values.MaskedControlWords())
        {
            var inputs = X87Values.Edges.Concat(Enumerable.Range(0, 3000).Select(_ => NearFormatRange(r, bits)));
            foreach (var x in inputs)
            {
                Native.FcwInValue = fcw;
                Native.SetExtended(NativeFloat.A, x);
                Native.Run(stub);
                ulong host = bits == 32 ? BinaryPrimitives.ReadUInt32LittleEndian(Native.Bytes(NativeFloat.Result, 4)) : Native.GetUInt64(NativeFloat.Result);
                ushort hostFsw = (ushort)(Native.FswOutValue & StoreFswMask);
                var flags = FloatExceptions.None;
                bool c1;
                ulong ours = bits == 32 ? X87Arithmetic.ToSingle(x, fcw, ref flags, out c1) : X87Arithmetic.ToDouble(x, fcw, ref flags, out c1);
                ushort oursFsw = (ushort)((ushort)flags | (c1 ? 0x200 : 0));
                m.Check(host == ours && hostFsw == oursFsw, () => $"fstp m{bits} fcw={fcw:X4} {x}: host {host:X} fsw {hostFsw:X4}, ours {ours:X} fsw {oursFsw:X4}");
            }
        }
        m.AssertNone();
    }

    // Exponents around the target format's normal, denormal and overflow boundaries.
    private static ExtendedFloat NearFormatRange(Random r, int bits)
    {
        int emin = bits == 32 ? -126 : -1022, emax = bits == 32 ? 127 : 1023, p = bits == 32 ? 24 : 53;
        int e = r.Next(4) switch
        {
            0 => emin - r.Next(0, p + 3),
            1 => emax - r.Next(-2, 3),
            2 => r.Next(emin, emax),
            _ => r.Next(-5, 5),
        };
        ulong sig = (ulong)r.NextInt64() | (1UL << 63);
        if (r.Next(3) == 0)
            sig &= ~((1UL << r.Next(1, 40)) - 1);
        return new ExtendedFloat(sig, (ushort)((ExtendedFloat.Bias + e) | (r.Next(2) << 15)));
    }

    [TestCase(32)]
    [TestCase(64)]
    public void FldMemory(int bits)
    {
        nint stub = Native.Stub($"fld{bits}", a =>
        {
            if (bits == 32)
                a.fld(__dword_ptr[rdi + NativeFloat.A]);
            else
                a.fld(__qword_ptr[rdi + NativeFloat.A]);
            NativeFloat.Capture(a);
            a.fstp(__tword_ptr[rdi + NativeFloat.Result]);
        });
        var m = new Mismatches();
        var r = new Random(200 + bits);
        var inputs = new List<ulong>();
        ulong[] edges32 = [0, 0x8000_0000, 1, 0x807F_FFFF, 0x0080_0000, 0x7F7F_FFFF, 0x7F80_0000, 0xFF80_0000, 0x7FC0_0000, 0x7F80_0001, 0xFFBF_FFFF, 0x3F80_0000];
        ulong[] edges64 = [0, 1UL << 63, 1, 0x800F_FFFF_FFFF_FFFF, 0x0010_0000_0000_0000, 0x7FEF_FFFF_FFFF_FFFF, 0x7FF0_0000_0000_0000, 0xFFF0_0000_0000_0000, 0x7FF8_0000_0000_0000, 0x7FF0_0000_0000_0001, 0xFFF7_FFFF_FFFF_FFFF];
        inputs.AddRange(bits == 32 ? edges32 : edges64);
        for (int i = 0; i < 2000; i++)
            inputs.Add(bits == 32 ? (uint)r.Next() | ((ulong)r.Next(2) << 31) : (ulong)r.NextInt64() | ((ulong)r.Next(2) << 63));
        foreach (ulong v in inputs)
        {
            Native.FcwInValue = X87Control.Default;
            Native.SetUInt64(NativeFloat.A, v);
            Native.Run(stub);
            var host = Native.GetExtended(NativeFloat.Result);
            ushort hostFsw = (ushort)(Native.FswOutValue & StoreFswMask);
            var flags = FloatExceptions.None;
            var ours = bits == 32 ? X87Arithmetic.FromSingle((uint)v, ref flags) : X87Arithmetic.FromDouble(v, ref flags);
            ushort oursFsw = (ushort)((ushort)flags | (7 << 11));
            m.Check(host == ours && hostFsw == oursFsw, () => $"fld m{bits} {v:X}: host {host} fsw {hostFsw:X4}, ours {ours} fsw {oursFsw:X4}");
        }
        m.AssertNone();
    }

    [Test]
    public void FildQword()
    {
        nint stub = Native.Stub("fild64", a =>
        {
            a.fild(__qword_ptr[rdi + NativeFloat.IntIn]);
            a.fstp(__tword_ptr[rdi + NativeFloat.Result]);
        });
        var m = new Mismatches();
        var r = new Random(7);
        long[] edges = [0, 1, -1, long.MinValue, long.MaxValue, int.MinValue, short.MinValue];
        foreach (long v in edges.Concat(Enumerable.Range(0, 2000).Select(_ => r.NextInt64() >> r.Next(64))))
        {
            Native.FcwInValue = X87Control.Default;
            Native.SetUInt64(NativeFloat.IntIn, (ulong)v);
            Native.Run(stub);
            var host = Native.GetExtended(NativeFloat.Result);
            var ours = X87Arithmetic.FromInt64(v);
            m.Check(host == ours, () => $"fild {v}: host {host} ours {ours}");
        }
        m.AssertNone();
    }
}
