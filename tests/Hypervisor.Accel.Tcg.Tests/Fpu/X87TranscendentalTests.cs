using Hypervisor.Accel.Tcg.Fpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Accel.Tcg.Tests.Fpu;

/// <summary>
/// F2XM1, FYL2X, FYL2XP1 and FPATAN against the host. Hardware transcendentals are not correctly rounded (the SDM promises
/// an error within one ulp), so the rule here is: special cases (NaN, infinities, zeros, invalid operands) and all
/// exception flags except PE must match bit for bit; finite results must be within one ulp of the host's. The share
/// of bit-exact results is printed and must stay above 95% (90% for FPTAN); measured on the development host, an AMD
/// Zen part: F2XM1 97.4%, FYL2X 97.3%, FYL2XP1 96.7%, FPATAN 98.4%, FSIN 99.8%, FCOS 99.9%, FPTAN 93.1%.
/// </summary>
public sealed class X87TranscendentalTests : NativeFixture
{
    private delegate ExtendedFloat Model(ExtendedFloat x, ExtendedFloat y, ushort fcw, ref FloatExceptions flags, out bool c1);

    private void Run(string name, Action<Assembler> op, Model model, Func<Random, ExtendedFloat> xs, Func<ExtendedFloat, bool> defined, int minExactPercent = 95)
    {
        nint stub = Native.Stub(name, a =>
        {
            a.fld(__tword_ptr[rdi + NativeFloat.B]);
            a.fld(__tword_ptr[rdi + NativeFloat.A]);
            op(a);
            NativeFloat.Capture(a);
            a.fstp(__tword_ptr[rdi + NativeFloat.Result]);
        });
        var m = new Mismatches();
        var r = new Random(name.Length);
        int exact = 0, total = 0;
        foreach (ushort fcw in new ushort[] { 0x037F, 0x077F, 0x0B7F, 0x0F7F })
        {
            var inputs = X87Values.Edges.Select(e => (e, X87Values.Edges[r.Next(X87Values.Edges.Length)]))
                .Concat(Enumerable.Range(0, 1500).Select(_ => (xs(r), r.Next(4) == 0 ? X87Values.Random(r) : X87Values.Edges[13 + r.Next(2)])));
            foreach (var (x, y) in inputs.Where(p => defined(p.Item1)))
            {
                Native.FcwInValue = fcw;
                Native.SetExtended(NativeFloat.A, x);
                Native.SetExtended(NativeFloat.B, y);
                Native.Run(stub);
                var host = Native.GetExtended(NativeFloat.Result);
                var hostFlags = (FloatExceptions)(Native.FswOutValue & 0x1F);
                var flags = FloatExceptions.None;
                var ours = model(x, y, fcw, ref flags, out _);
                total++;
                if (host == ours)
                    exact++;
                bool close = host == ours || WithinOneUlp(host, ours);
                m.Check(close && hostFlags == (flags & (FloatExceptions)0x1F), () => $"{name} fcw={fcw:X4} x={x} y={y}: host {host} flags {hostFlags}, ours {ours} flags {flags}");
            }
        }
        TestContext.Out.WriteLine($"{name}: {exact} of {total} bit-exact ({100.0 * exact / total:F2}%)");
        m.AssertNone();
        Assert.That(exact, Is.GreaterThan(total * minExactPercent / 100), "bit-exact share");
    }

    private static bool WithinOneUlp(ExtendedFloat a, ExtendedFloat b)
    {
        if (a.Sign != b.Sign || a.BiasedExponent == 0x7FFF || b.BiasedExponent == 0x7FFF)
            return false;
        Int128 ka = ((Int128)a.BiasedExponent << 63) + (a.Significand & 0x7FFF_FFFF_FFFF_FFFF);
        Int128 kb = ((Int128)b.BiasedExponent << 63) + (b.Significand & 0x7FFF_FFFF_FFFF_FFFF);
        return Int128.Abs(ka - kb) <= 1;
    }

    private static ExtendedFloat Fraction(Random r, int maxExp) =>
        new((ulong)r.NextInt64() | (1UL << 63), (ushort)((ExtendedFloat.Bias - r.Next(0, 70) - (maxExp < 0 ? -maxExp : 0)) | (r.Next(2) << 15)));

    [Test]
    public void F2xm1() => Run("f2xm1", a => a.f2xm1(),
        (ExtendedFloat x, ExtendedFloat _, ushort fcw, ref FloatExceptions f, out bool c1) => X87Transcendental.TwoToXMinusOne(x, fcw, ref f, out c1),
        r => Fraction(r, 0), x => x.BiasedExponent < ExtendedFloat.Bias || x.BiasedExponent == 0x7FFF || x.Abs() == ExtendedFloat.One); // SDM: undefined outside [-1, 1]

    [Test]
    public void Fyl2x() => Run("fyl2x", a => a.fyl2x(),
        (ExtendedFloat x, ExtendedFloat y, ushort fcw, ref FloatExceptions f, out bool c1) => X87Transcendental.YLog2X(x, y, fcw, ref f, out c1),
        r => r.Next(3) == 0 ? X87Values.Random(r).Abs() : new ExtendedFloat((ulong)r.NextInt64() | (1UL << 63), (ushort)(ExtendedFloat.Bias + r.Next(-3, 3))), _ => true);

    [Test]
    public void Fyl2xp1() => Run("fyl2xp1", a => a.fyl2xp1(),
        (ExtendedFloat x, ExtendedFloat y, ushort fcw, ref FloatExceptions f, out bool c1) => X87Transcendental.YLog2XPlusOne(x, y, fcw, ref f, out c1),
        r => Fraction(r, -2), x => x.BiasedExponent < ExtendedFloat.Bias - 2 || x.BiasedExponent == 0x7FFF); // SDM: undefined for |x| >= 1 - sqrt(2)/2

    [Test]
    public void Fpatan() => Run("fpatan", a => a.fpatan(),
        (ExtendedFloat x, ExtendedFloat y, ushort fcw, ref FloatExceptions f, out bool c1) => X87Transcendental.PartialArctangent(x, y, fcw, ref f, out c1),
        X87Values.Random, _ => true);

    // Arguments up to 2^6 in magnitude: beyond that, and near multiples of pi/2, the result depends on the host's own
    // approximation of pi used in the reduction (SDM Vol. 1, 8.3.10), which the model does not reproduce.
    private static ExtendedFloat Angle(Random r) =>
        new((ulong)r.NextInt64() | (1UL << 63), (ushort)((ExtendedFloat.Bias + r.Next(-40, 6)) | (r.Next(2) << 15)));

    private static bool Moderate(ExtendedFloat x) => x.BiasedExponent < ExtendedFloat.Bias + 6 || x.BiasedExponent == 0x7FFF;

    [Test]
    public void Fsin() => Run("fsin", a => a.fsin(),
        (ExtendedFloat x, ExtendedFloat _, ushort fcw, ref FloatExceptions f, out bool c1) =>
        {
            c1 = false;
            var cosFlags = FloatExceptions.None;
            X87Transcendental.SinCos(x, fcw, ref f, ref cosFlags, out var s, out _);
            return s;
        }, Angle, Moderate);

    [Test]
    public void Fcos() => Run("fcos", a => a.fcos(),
        (ExtendedFloat x, ExtendedFloat _, ushort fcw, ref FloatExceptions f, out bool c1) =>
        {
            c1 = false;
            var sinFlags = FloatExceptions.None;
            X87Transcendental.SinCos(x, fcw, ref sinFlags, ref f, out _, out var c);
            return c;
        }, Angle, Moderate);

    [Test]
    public void Fptan() => Run("fptan", a =>
        {
            a.fptan();
            a.fstp(st0); // drop the pushed 1.0 (FSTP ST(0) raises nothing); the flags are captured after it
        },
        (ExtendedFloat x, ExtendedFloat _, ushort fcw, ref FloatExceptions f, out bool c1) =>
        {
            c1 = false;
            X87Transcendental.Tan(x, fcw, ref f, out var t);
            return t;
        }, Angle, Moderate, minExactPercent: 90); // measured: 93% (the host's FPTAN is the least accurate of these)
}
