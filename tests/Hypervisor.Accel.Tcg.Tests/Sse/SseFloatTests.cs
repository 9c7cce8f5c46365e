using Hypervisor.Accel.Tcg.Fpu;
using Hypervisor.Accel.Tcg.Sse;
using Hypervisor.Accel.Tcg.Tests.Fpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Accel.Tcg.Tests.Sse;

/// <summary>
/// SSE/SSE2 floating point against the host, bit for bit: the destination register and the whole MXCSR after the
/// instruction (flags included), under every rounding mode and DAZ/FTZ combination, all exceptions masked. Nothing is
/// masked out of the comparison: these instructions have no undefined results or flags.
/// </summary>
public sealed class SseFloatTests : NativeFixture
{
    private delegate UInt128 Model(UInt128 a, UInt128 b, uint mxcsr, ref FloatExceptions flags);

    /// <summary>Runs <c>op xmm0, xmm1</c> natively over lane pairs and compares with the model.</summary>
    private void Run(string name, Action<Assembler> op, bool isDouble, Model model, int randomCount = 2000)
    {
        nint stub = Native.Stub(name, a =>
        {
            a.movups(xmm0, __xmmword_ptr[rdi + NativeFloat.A]);
            a.movups(xmm1, __xmmword_ptr[rdi + NativeFloat.B]);
            a.xor(eax, eax); // known flags before COMIS
            op(a);
            NativeFloat.Capture(a);
            a.movups(__xmmword_ptr[rdi + NativeFloat.Result], xmm0);
        });
        var m = new Mismatches();
        var pairs = SseValues.Pairs(isDouble, name.GetHashCode(StringComparison.Ordinal) & 0xFFFF, randomCount).ToList();
        var xs = pairs.Select(p => p.Item1).ToList();
        var ys = pairs.Select(p => p.Item2).ToList();
        int lanes = isDouble ? 2 : 4;
        foreach (uint mxcsr in SseValues.MaskedMxcsrs())
        {
            // Each call covers `lanes` pairs; scalar forms use lane 0 and carry the others through.
            for (int i = 0; i < pairs.Count; i += lanes)
            {
                UInt128 a = SseValues.Lanes(isDouble, xs, i), b = SseValues.Lanes(isDouble, ys, i);
                Native.MxcsrInValue = mxcsr;
                Native.SetUInt128(NativeFloat.A, a);
                Native.SetUInt128(NativeFloat.B, b);
                Native.Run(stub);
                UInt128 host = Native.GetUInt128(NativeFloat.Result);
                uint hostMxcsr = Native.MxcsrOutValue;
                var flags = FloatExceptions.None;
                UInt128 ours = model(a, b, mxcsr, ref flags);
                uint oursMxcsr = Mxcsr.Accumulate(mxcsr, flags);
                m.Check(host == ours && hostMxcsr == oursMxcsr,
                    () => $"{name} mxcsr={mxcsr:X4} a={a:X32} b={b:X32}: host {host:X32} mxcsr {hostMxcsr:X4}, ours {ours:X32} mxcsr {oursMxcsr:X4}");
            }
        }
        m.AssertNone();
    }

    private static readonly (string Name, SseBinaryOp Op)[] BinaryOps =
        [("add", SseBinaryOp.Add), ("sub", SseBinaryOp.Sub), ("mul", SseBinaryOp.Mul), ("div", SseBinaryOp.Div), ("min", SseBinaryOp.Min), ("max", SseBinaryOp.Max)];

    private static void Emit(Assembler a, string mnemonic)
    {
        switch (mnemonic)
        {
            case "addps": a.addps(xmm0, xmm1); break;
            case "subps": a.subps(xmm0, xmm1); break;
            case "mulps": a.mulps(xmm0, xmm1); break;
            case "divps": a.divps(xmm0, xmm1); break;
            case "minps": a.minps(xmm0, xmm1); break;
            case "maxps": a.maxps(xmm0, xmm1); break;
            case "addpd": a.addpd(xmm0, xmm1); break;
            case "subpd": a.subpd(xmm0, xmm1); break;
            case "mulpd": a.mulpd(xmm0, xmm1); break;
            case "divpd": a.divpd(xmm0, xmm1); break;
            case "minpd": a.minpd(xmm0, xmm1); break;
            case "maxpd": a.maxpd(xmm0, xmm1); break;
            case "addss": a.addss(xmm0, xmm1); break;
            case "subss": a.subss(xmm0, xmm1); break;
            case "mulss": a.mulss(xmm0, xmm1); break;
            case "divss": a.divss(xmm0, xmm1); break;
            case "minss": a.minss(xmm0, xmm1); break;
            case "maxss": a.maxss(xmm0, xmm1); break;
            case "addsd": a.addsd(xmm0, xmm1); break;
            case "subsd": a.subsd(xmm0, xmm1); break;
            case "mulsd": a.mulsd(xmm0, xmm1); break;
            case "divsd": a.divsd(xmm0, xmm1); break;
            case "minsd": a.minsd(xmm0, xmm1); break;
            case "maxsd": a.maxsd(xmm0, xmm1); break;
            default: throw new ArgumentOutOfRangeException(nameof(mnemonic));
        }
    }

    public static IEnumerable<TestCaseData> BinaryCases()
    {
        foreach (var (name, op) in BinaryOps)
            foreach (var suffix in new[] { "ps", "pd", "ss", "sd" })
                yield return new TestCaseData(name + suffix, (int)op, suffix[1] == 'd', suffix[0] == 'p').SetName($"Binary_{name}{suffix}");
    }

    [TestCaseSource(nameof(BinaryCases))]
    public void Binary(string mnemonic, int opIndex, bool isDouble, bool packed)
    {
        var op = (SseBinaryOp)opIndex;
        Run(mnemonic, a => Emit(a, mnemonic), isDouble,
            (UInt128 x, UInt128 y, uint mx, ref FloatExceptions f) => packed
                ? SseFloat.PackedBinary(op, x, y, isDouble, mx, ref f)
                : SseFloat.ScalarBinary(op, x, y, isDouble, mx, ref f),
            packed ? 2000 : 600);
    }

    [TestCase(false)]
    [TestCase(true)]
    public void Sqrt(bool isDouble) =>
        Run(isDouble ? "sqrtpd" : "sqrtps", a => { if (isDouble) a.sqrtpd(xmm0, xmm1); else a.sqrtps(xmm0, xmm1); }, isDouble,
            (UInt128 _, UInt128 y, uint mx, ref FloatExceptions f) => SseFloat.PackedSqrt(y, isDouble, mx, ref f));

    [Test]
    public void Compare([Range(0, 7)] int predicate, [Values] bool isDouble) =>
        Run($"cmp{predicate}{isDouble}", a => { if (isDouble) a.cmppd(xmm0, xmm1, (sbyte)predicate); else a.cmpps(xmm0, xmm1, (sbyte)predicate); }, isDouble,
            (UInt128 x, UInt128 y, uint mx, ref FloatExceptions f) => SseFloat.PackedCompare(predicate, x, y, isDouble, mx, ref f), 600);

    [Test]
    public void ComisAndUcomis([Values] bool quiet, [Values] bool isDouble)
    {
        string name = $"{(quiet ? "u" : "")}comis{(isDouble ? "d" : "s")}";
        // The stub moves RFLAGS & (OF SF ZF AF PF CF) into xmm0, so the "result" compared is the EFLAGS outcome.
        Run(name, a =>
        {
            if (quiet && isDouble) a.ucomisd(xmm0, xmm1);
            else if (quiet) a.ucomiss(xmm0, xmm1);
            else if (isDouble) a.comisd(xmm0, xmm1);
            else a.comiss(xmm0, xmm1);
            NativeFloat.Capture(a);
            a.pxor(xmm0, xmm0);
            a.mov(rax, __qword_ptr[rdi + NativeFloat.RflagsOut]);
            a.and(rax, 0x8D5);
            a.movq(xmm0, rax);
        }, isDouble, (UInt128 x, UInt128 y, uint mx, ref FloatExceptions f) =>
        {
            ulong mask = isDouble ? ulong.MaxValue : uint.MaxValue;
            return X87Arithmetic.EflagsBits(SseFloat.CompareScalar((ulong)x & mask, (ulong)y & mask, isDouble, quiet, mx, ref f));
        }, 600);
    }

    [TestCase(false)]
    [TestCase(true)]
    public void ScalarSqrt(bool isDouble) =>
        Run(isDouble ? "sqrtsd" : "sqrtss", a => { if (isDouble) a.sqrtsd(xmm0, xmm1); else a.sqrtss(xmm0, xmm1); }, isDouble,
            (UInt128 x, UInt128 y, uint mx, ref FloatExceptions f) => SseFloat.ScalarSqrt(x, y, isDouble, mx, ref f), 600);

    [TestCase(false)]
    [TestCase(true)]
    public void AddSub(bool isDouble) =>
        Run(isDouble ? "addsubpd" : "addsubps", a => { if (isDouble) a.addsubpd(xmm0, xmm1); else a.addsubps(xmm0, xmm1); }, isDouble,
            (UInt128 x, UInt128 y, uint mx, ref FloatExceptions f) => SseFloat.AddSub(x, y, isDouble, mx, ref f), 600);

    [Test]
    public void Horizontal([Values] bool isDouble, [Values] bool subtract) =>
        Run($"h{(subtract ? "sub" : "add")}p{(isDouble ? "d" : "s")}", a =>
        {
            if (isDouble && subtract) a.hsubpd(xmm0, xmm1);
            else if (isDouble) a.haddpd(xmm0, xmm1);
            else if (subtract) a.hsubps(xmm0, xmm1);
            else a.haddps(xmm0, xmm1);
        }, isDouble, (UInt128 x, UInt128 y, uint mx, ref FloatExceptions f) => SseFloat.Horizontal(x, y, isDouble, subtract, mx, ref f), 600);

    [Test]
    public void Round([Values] bool isDouble, [Values] bool scalar, [Values(0, 1, 2, 3, 4, 8, 11, 12)] int imm) =>
        Run($"round{(scalar ? "s" : "p")}{(isDouble ? "d" : "s")}{imm}", a =>
        {
            if (isDouble && scalar) a.roundsd(xmm0, xmm1, (sbyte)imm);
            else if (isDouble) a.roundpd(xmm0, xmm1, (sbyte)imm);
            else if (scalar) a.roundss(xmm0, xmm1, (sbyte)imm);
            else a.roundps(xmm0, xmm1, (sbyte)imm);
        }, isDouble, (UInt128 x, UInt128 y, uint mx, ref FloatExceptions f) => scalar
            ? SseFloat.ScalarRound(x, y, isDouble, (byte)imm, mx, ref f)
            : SseFloat.PackedRound(y, isDouble, (byte)imm, mx, ref f), 300);

    [Test]
    public void DotProduct([Values] bool isDouble, [Values(0xFF, 0xF1, 0x31, 0x5A, 0x33, 0x12, 0x0F)] int imm) =>
        Run($"dpp{(isDouble ? "d" : "s")}{imm}", a => { if (isDouble) a.dppd(xmm0, xmm1, (byte)imm); else a.dpps(xmm0, xmm1, (byte)imm); }, isDouble,
            (UInt128 x, UInt128 y, uint mx, ref FloatExceptions f) => SseFloat.DotProduct(x, y, isDouble, (byte)imm, mx, ref f), 400);

    [Test]
    public void InsertPs([Values(0x00, 0x4E, 0xB1, 0xF0, 0x3F, 0x9C)] int imm) =>
        Run($"insertps{imm}", a => a.insertps(xmm0, xmm1, (byte)imm), false,
            (UInt128 x, UInt128 y, uint mx, ref FloatExceptions f) => SseFloat.InsertPs(x, y, (byte)imm), 100);
}
