using Hypervisor.Accel.Tcg.Fpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Accel.Tcg.Tests.Fpu;

/// <summary>
/// x87 arithmetic against the host FPU, bit for bit: result, exception flags and C1, under every rounding mode and
/// precision with all exceptions masked. Per the SDM (FADD/FSUB/FMUL/FDIV/FSQRT "FPU Flags Affected"), C0, C2 and C3 are
/// undefined after these instructions, so the FSW comparison masks them; TOP is compared.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class X87ArithmeticTests
{
    private NativeFloat _native = null!;

    [OneTimeSetUp]
    public void SetUp()
    {
        if (!NativeFloat.Supported)
            Assert.Ignore("differential tests need an x86-64 Linux host to run the instructions natively");
        _native = new NativeFloat();
    }

    [OneTimeTearDown]
    public void TearDown() => _native?.Dispose();

    private delegate ExtendedFloat Binary(ExtendedFloat a, ExtendedFloat b, ushort fcw, ref FloatExceptions flags, out bool c1);

    // FSW bits compared after arithmetic: IE DE ZE OE UE PE (0-5), SF (6), C1 (9), TOP (11-13). C0/C2/C3 undefined.
    private const ushort ArithmeticFswMask = 0x3A7F;

    private void RunBinary(string name, Action<Assembler> op, Binary model, int seed)
    {
        nint stub = _native.Stub(name, a =>
        {
            a.fld(__tword_ptr[rdi + NativeFloat.B]);
            a.fld(__tword_ptr[rdi + NativeFloat.A]);
            op(a); // ST0 = ST0 op ST1
            NativeFloat.Capture(a);
            a.fstp(__tword_ptr[rdi + NativeFloat.Result]);
        });
        var failures = new List<string>();
        int count = 0;
        foreach (ushort fcw in X87Values.MaskedControlWords())
        {
            foreach (var (x, y) in X87Values.Pairs(seed + fcw, 3000))
            {
                _native.FcwInValue = fcw;
                _native.MxcsrInValue = 0x1F80;
                _native.SetExtended(NativeFloat.A, x);
                _native.SetExtended(NativeFloat.B, y);
                _native.Run(stub);
                var expected = _native.GetExtended(NativeFloat.Result);
                ushort expectedFsw = (ushort)(_native.FswOutValue & ArithmeticFswMask);

                var flags = FloatExceptions.None;
                var actual = model(x, y, fcw, ref flags, out bool c1);
                ushort actualFsw = (ushort)((ushort)flags | (c1 ? 0x200 : 0) | (6 << 11));
                count++;
                if (actual != expected || actualFsw != expectedFsw)
                {
                    if (failures.Count < 20)
                        failures.Add($"{name} fcw={fcw:X4} a={x} b={y}: host {expected} fsw {expectedFsw:X4}, ours {actual} fsw {actualFsw:X4}");
                }
            }
        }
        Assert.That(failures, Is.Empty, $"{failures.Count} of {count} shown");
    }

    [Test]
    public void Fadd() => RunBinary("fadd", a => a.fadd(st0, st1), X87Arithmetic.Add, 1);

    [Test]
    public void Fsub() => RunBinary("fsub", a => a.fsub(st0, st1), X87Arithmetic.Sub, 2);

    [Test]
    public void Fmul() => RunBinary("fmul", a => a.fmul(st0, st1), X87Arithmetic.Mul, 3);

    [Test]
    public void Fdiv() => RunBinary("fdiv", a => a.fdiv(st0, st1), X87Arithmetic.Div, 4);

    [Test]
    public void Fsqrt() => RunBinary("fsqrt", a => a.fsqrt(),
        (ExtendedFloat x, ExtendedFloat _, ushort fcw, ref FloatExceptions f, out bool c1) => X87Arithmetic.Sqrt(x, fcw, ref f, out c1), 5);

    [Test]
    public void Frndint() => RunBinary("frndint", a => a.frndint(),
        (ExtendedFloat x, ExtendedFloat _, ushort fcw, ref FloatExceptions f, out bool c1) => X87Arithmetic.RoundToInteger(x, fcw, ref f, out c1), 6);
}
