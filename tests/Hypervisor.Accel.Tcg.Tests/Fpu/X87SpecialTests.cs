using Hypervisor.Accel.Tcg.Fpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Accel.Tcg.Tests.Fpu;

/// <summary>
/// FXTRACT, FSCALE, FPREM, FPREM1, the constant loads and FBLD/FBSTP against the host, all exceptions masked. Per the
/// SDM "FPU Flags Affected" of each, C0, C2 and C3 are undefined except after FPREM/FPREM1, where all four are compared.
/// </summary>
public sealed class X87SpecialTests : NativeFixture
{
    private const ushort C023 = 0x4500;

    private static ushort Fsw(FloatExceptions flags, bool c1, int top, ushort codes = 0) => (ushort)((ushort)flags | (c1 ? 0x200 : 0) | (top << 11) | codes);

    [Test]
    public void Fxtract()
    {
        nint stub = Native.Stub("fxtract", a =>
        {
            a.fld(__tword_ptr[rdi + NativeFloat.A]);
            a.fxtract();
            NativeFloat.Capture(a);
            a.fstp(__tword_ptr[rdi + NativeFloat.Result]);
            a.fstp(__tword_ptr[rdi + NativeFloat.Result2]);
        });
        var m = new Mismatches();
        foreach (var (x, _) in X87Values.Pairs(3, 3000))
        {
            Native.FcwInValue = X87Control.Default;
            Native.SetExtended(NativeFloat.A, x);
            Native.Run(stub);
            var hs = Native.GetExtended(NativeFloat.Result);
            var he = Native.GetExtended(NativeFloat.Result2);
            ushort hf = (ushort)(Native.FswOutValue & ~C023);
            var flags = FloatExceptions.None;
            var (e, s) = X87Arithmetic.Extract(x, ref flags);
            ushort of = Fsw(flags, false, 6);
            m.Check(hs == s && he == e && hf == of, () => $"fxtract {x}: host {he} {hs} fsw {hf:X4}, ours {e} {s} fsw {of:X4}");
        }
        m.AssertNone();
    }

    [Test]
    public void Fscale()
    {
        nint stub = Native.Stub("fscale", a =>
        {
            a.fld(__tword_ptr[rdi + NativeFloat.B]);
            a.fld(__tword_ptr[rdi + NativeFloat.A]);
            a.fscale();
            NativeFloat.Capture(a);
            a.fstp(__tword_ptr[rdi + NativeFloat.Result]);
        });
        var m = new Mismatches();
        var r = new Random(9);
        foreach (ushort fcw in X87Values.MaskedControlWords())
        {
            foreach (var (x, y0) in X87Values.Pairs(fcw, 800))
            {
                // Scale factors: mostly integers and fractions of moderate size, so that results land everywhere.
                var y = r.Next(3) == 0 ? y0 : X87Arithmetic.FromInt64(r.Next(-17000, 17000));
                if (r.Next(5) == 0)
                    y = new ExtendedFloat((ulong)r.NextInt64() | (1UL << 63), (ushort)(ExtendedFloat.Bias + r.Next(-3, 16) | (r.Next(2) << 15)));
                Native.FcwInValue = fcw;
                Native.SetExtended(NativeFloat.A, x);
                Native.SetExtended(NativeFloat.B, y);
                Native.Run(stub);
                var host = Native.GetExtended(NativeFloat.Result);
                ushort hf = (ushort)(Native.FswOutValue & ~C023);
                var flags = FloatExceptions.None;
                var ours = X87Arithmetic.Scale(x, y, fcw, ref flags, out bool c1);
                ushort of = Fsw(flags, c1, 6);
                m.Check(host == ours && hf == of, () => $"fscale fcw={fcw:X4} {x} by {y}: host {host} fsw {hf:X4}, ours {ours} fsw {of:X4}");
            }
        }
        m.AssertNone();
    }

    [TestCase(false)]
    [TestCase(true)]
    public void Fprem(bool ieee)
    {
        nint stub = Native.Stub(ieee ? "fprem1" : "fprem", a =>
        {
            a.fld(__tword_ptr[rdi + NativeFloat.B]);
            a.fld(__tword_ptr[rdi + NativeFloat.A]);
            if (ieee) a.fprem1(); else a.fprem();
            NativeFloat.Capture(a);
            a.fstp(__tword_ptr[rdi + NativeFloat.Result]);
        });
        var m = new Mismatches();
        foreach (var (x, y) in X87Values.Pairs(ieee ? 77 : 78, 6000))
        {
            Native.FcwInValue = X87Control.Default;
            Native.SetExtended(NativeFloat.A, x);
            Native.SetExtended(NativeFloat.B, y);
            Native.Run(stub);
            var host = Native.GetExtended(NativeFloat.Result);
            ushort hf = Native.FswOutValue;
            var flags = FloatExceptions.None;
            var ours = X87Arithmetic.Remainder(x, y, ieee, ref flags, out ushort codes);
            ushort of = Fsw(flags, false, 6, codes);
            m.Check(host == ours && hf == of, () => $"fprem{(ieee ? "1" : "")} {x} rem {y}: host {host} fsw {hf:X4}, ours {ours} fsw {of:X4}");
        }
        m.AssertNone();
    }

    [Test]
    public void Constants()
    {
        var m = new Mismatches();
        foreach (var c in Enum.GetValues<X87Constant>())
        {
            nint stub = Native.Stub($"const{c}", a =>
            {
                switch (c)
                {
                    case X87Constant.One: a.fld1(); break;
                    case X87Constant.Zero: a.fldz(); break;
                    case X87Constant.Pi: a.fldpi(); break;
                    case X87Constant.Log2E: a.fldl2e(); break;
                    case X87Constant.Log2Ten: a.fldl2t(); break;
                    case X87Constant.Log10Two: a.fldlg2(); break;
                    default: a.fldln2(); break;
                }
                NativeFloat.Capture(a);
                a.fstp(__tword_ptr[rdi + NativeFloat.Result]);
            });
            foreach (ushort fcw in X87Values.MaskedControlWords())
            {
                Native.FcwInValue = fcw;
                Native.Run(stub);
                var host = Native.GetExtended(NativeFloat.Result);
                ushort hf = (ushort)(Native.FswOutValue & ~C023);
                var ours = X87Arithmetic.Constant(c, fcw);
                ushort of = Fsw(FloatExceptions.None, false, 7);
                m.Check(host == ours && hf == of, () => $"{c} fcw={fcw:X4}: host {host} fsw {hf:X4}, ours {ours} fsw {of:X4}");
            }
        }
        m.AssertNone();
    }

    [Test]
    public void FbstpAndFbld()
    {
        nint st = Native.Stub("fbstp", a =>
        {
            a.fld(__tword_ptr[rdi + NativeFloat.A]);
            a.fbstp(__[rdi + NativeFloat.Result]);
            NativeFloat.Capture(a);
        });
        nint ld = Native.Stub("fbld", a =>
        {
            a.fbld(__[rdi + NativeFloat.A]);
            NativeFloat.Capture(a);
            a.fstp(__tword_ptr[rdi + NativeFloat.Result]);
        });
        var m = new Mismatches();
        var r = new Random(18);
        var values = X87Values.Edges.Concat(Enumerable.Range(0, 3000).Select(_ =>
            r.Next(2) == 0 ? X87Values.Random(r) : new ExtendedFloat((ulong)r.NextInt64() | (1UL << 63), (ushort)((ExtendedFloat.Bias + r.Next(-2, 62)) | (r.Next(2) << 15))))).ToList();
        foreach (ushort fcw in X87Values.MaskedControlWords())
        {
            foreach (var x in values)
            {
                Native.FcwInValue = fcw;
                Native.SetExtended(NativeFloat.A, x);
                Native.Run(st);
                byte[] host = Native.Bytes(NativeFloat.Result, 10).ToArray();
                ushort hf = (ushort)(Native.FswOutValue & ~C023);
                var flags = FloatExceptions.None;
                var ours = new byte[10];
                bool valid = X87Arithmetic.ToPackedBcd(x, fcw, ours, ref flags, out bool c1);
                ushort of = Fsw(flags, c1, 0);
                m.Check(host.AsSpan().SequenceEqual(ours) && hf == of, () => $"fbstp fcw={fcw:X4} {x}: host {Convert.ToHexString(host)} fsw {hf:X4}, ours {Convert.ToHexString(ours)} fsw {of:X4}");
                if (!valid || fcw != X87Control.Default)
                    continue;
                // Load the BCD back natively and in the model.
                host.CopyTo(Native.Bytes(NativeFloat.A, 10));
                Native.Run(ld);
                var hostBack = Native.GetExtended(NativeFloat.Result);
                var oursBack = X87Arithmetic.FromPackedBcd(ours);
                m.Check(hostBack == oursBack, () => $"fbld {Convert.ToHexString(host)}: host {hostBack} ours {oursBack}");
            }
        }
        m.AssertNone();
    }
}
