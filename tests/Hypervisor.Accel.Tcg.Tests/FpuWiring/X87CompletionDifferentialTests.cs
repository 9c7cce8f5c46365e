using System.Globalization;
using Hypervisor.Accel.Tcg.Fpu;
using Hypervisor.Accel.Tcg.Tests.Fpu;
using Hypervisor.Accel.Tcg.Tests.Guests;
using Hypervisor.Accel.Tcg.Tests.Native;
using Hypervisor.Core.Memory;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;
using Hypervisor.Accel.Tcg.Tests.Jit;

namespace Hypervisor.Accel.Tcg.Tests.FpuWiring;

/// <summary>
/// The x87 forms wired after the first slice (constants, FXAM, FTST, FICOM, FCMOVcc, FFREE(P), FINCSTP/FDECSTP, FNOP,
/// FPREM/FPREM1, FSCALE, FXTRACT, FBLD/FBSTP, the transcendentals), run in the tcg interpreter and on the host CPU
/// inside the same wrapper, with exceptions masked or unmasked. An unmasked x87 exception is only delivered by the next
/// waiting instruction, so after the form the wrapper uses only non-waiting ones: FNSTSW, then FNSAVE (which also
/// re-initialises the x87), from whose image ST(0), ST(1) and the full tag word are copied into the scratch block.
/// Scratch layout: inputs A (0-9, loaded as ST(0)) and B (10-19, ST(1)) as 80-bit values, so that pseudo-denormals,
/// unnormals, pseudo-NaNs and SNaNs load unchanged; FCW in (20), caller's FCW (22); outputs ST(0) (24-33), ST(1)
/// (34-43), FSW (44), tag word (46); the memory operand (48-63). Each form also runs after FINCSTP (ST(7) occupied: push
/// overflow) and after FDECSTP (ST(0) empty: underflow). RAX and the status flags are compared too.
/// </summary>
[TestFixture(JitCoverage.Interpreter)]
[TestFixture(JitCoverage.Jit)]
public sealed class X87CompletionDifferentialTests(string engine)
{
    private const int Inputs = 400;
    private const ulong CodeBase = 0x10_0000;
    private const ulong GuestScratch = 0x9_0000;
    private const ulong GuestStack = 0x7_F000;

    private static readonly AssemblerMemoryOperand M16 = __word_ptr[rsi + 48];
    private static readonly AssemblerMemoryOperand M32 = __dword_ptr[rsi + 48];
    private static readonly AssemblerMemoryOperand M64 = __qword_ptr[rsi + 48];
    private static readonly AssemblerMemoryOperand M80 = __tword_ptr[rsi + 48];

    /// <summary>Which operands a form gets, and whether its results are exact or, for the transcendentals, within one ulp.</summary>
    private enum Domain
    {
        Any,
        /// <summary>FSIN/FCOS/FSINCOS/FPTAN: |x| below 2^6 or at least 2^63 (then C2 = 1).</summary>
        Angle,
        /// <summary>F2XM1: -1 &lt;= x &lt;= 1 (SDM Vol. 2A, F2XM1: undefined outside).</summary>
        UnitInterval,
        /// <summary>FYL2XP1: |x| &lt; 1 - sqrt(2)/2 (SDM Vol. 2A, FYL2XP1: undefined outside).</summary>
        SmallLog,
        /// <summary>FYL2X, FPATAN: any operands, results within one ulp.</summary>
        AnyTranscendental,
    }

    private sealed record Form(string Name, Action<Assembler> Emit, Domain Domain, int MemoryKind);

    // Memory operand kinds: 0 random bytes or a double, 1 a 16/32-bit integer edge, 2 packed BCD.
    private static readonly Form[] s_forms = BuildForms();

    public static IEnumerable<string> FormNames => s_forms.Select(f => f.Name);

    private static Form[] BuildForms()
    {
        var basic = new List<Form>
        {
            new("fld1", a => a.fld1(), Domain.Any, 0),
            new("fldz", a => a.fldz(), Domain.Any, 0),
            new("fldpi", a => a.fldpi(), Domain.Any, 0),
            new("fldl2e", a => a.fldl2e(), Domain.Any, 0),
            new("fldl2t", a => a.fldl2t(), Domain.Any, 0),
            new("fldlg2", a => a.fldlg2(), Domain.Any, 0),
            new("fldln2", a => a.fldln2(), Domain.Any, 0),
            new("fxam", a => a.fxam(), Domain.Any, 0),
            new("ftst", a => a.ftst(), Domain.Any, 0),
            new("ficom m16", a => a.ficom(M16), Domain.Any, 1),
            new("ficom m32", a => a.ficom(M32), Domain.Any, 1),
            new("ficomp m16", a => a.ficomp(M16), Domain.Any, 1),
            new("ficomp m32", a => a.ficomp(M32), Domain.Any, 1),
            new("fcmovb st, st(1)", a => a.fcmovb(st0, st1), Domain.Any, 0),
            new("fcmove st, st(1)", a => a.fcmove(st0, st1), Domain.Any, 0),
            new("fcmovbe st, st(1)", a => a.fcmovbe(st0, st1), Domain.Any, 0),
            new("fcmovu st, st(1)", a => a.fcmovu(st0, st1), Domain.Any, 0),
            new("fcmovnb st, st(1)", a => a.fcmovnb(st0, st1), Domain.Any, 0),
            new("fcmovne st, st(1)", a => a.fcmovne(st0, st1), Domain.Any, 0),
            new("fcmovnbe st, st(1)", a => a.fcmovnbe(st0, st1), Domain.Any, 0),
            new("fcmovnu st, st(1)", a => a.fcmovnu(st0, st1), Domain.Any, 0),
            new("fxch st(1)", a => a.fxch(st0, st1), Domain.Any, 0),
            new("fxch st(2)", a => a.fxch(st0, st2), Domain.Any, 0),
            new("ffree st(0)", a => a.ffree(st0), Domain.Any, 0),
            new("ffree st(1)", a => a.ffree(st1), Domain.Any, 0),
            new("ffreep st(1)", a => a.ffreep(st1), Domain.Any, 0),
            new("fincstp", a => a.fincstp(), Domain.Any, 0),
            new("fdecstp", a => a.fdecstp(), Domain.Any, 0),
            new("fnop", a => a.fnop(), Domain.Any, 0),
            new("fchs", a => a.fchs(), Domain.Any, 0),
            new("fabs", a => a.fabs(), Domain.Any, 0),
            new("fsqrt", a => a.fsqrt(), Domain.Any, 0),
            new("frndint", a => a.frndint(), Domain.Any, 0),
            new("fprem", a => a.fprem(), Domain.Any, 0),
            new("fprem1", a => a.fprem1(), Domain.Any, 0),
            new("fscale", a => a.fscale(), Domain.Any, 0),
            new("fxtract", a => a.fxtract(), Domain.Any, 0),
            new("fbld m80", a => a.fbld(M80), Domain.Any, 2),
            new("fbstp m80", a => a.fbstp(M80), Domain.Any, 0),
            new("fsin", a => a.fsin(), Domain.Angle, 0),
            new("fcos", a => a.fcos(), Domain.Angle, 0),
            new("fsincos", a => a.fsincos(), Domain.Angle, 0),
            new("fptan", a => a.fptan(), Domain.Angle, 0),
            new("f2xm1", a => a.f2xm1(), Domain.UnitInterval, 0),
            new("fyl2x", a => a.fyl2x(), Domain.AnyTranscendental, 0),
            new("fyl2xp1", a => a.fyl2xp1(), Domain.SmallLog, 0),
            new("fpatan", a => a.fpatan(), Domain.AnyTranscendental, 0),

            // The reserved encodings that alias documented forms (decoded as FXCH, FSTP, FCOM, FCOMP; listed as aliases in
            // the SDM's opcode map, Vol. 2, Table A-10), emitted as bytes since the assembler has no mnemonics for them.
            new("fxch4 st(1) (DD C9)", a => a.db(0xDD, 0xC9), Domain.Any, 0),
            new("fxch7 st(1) (DF C9)", a => a.db(0xDF, 0xC9), Domain.Any, 0),
            new("fstp1 st(1) (D9 D9)", a => a.db(0xD9, 0xD9), Domain.Any, 0),
            new("fstp8 st(1) (DF D1)", a => a.db(0xDF, 0xD1), Domain.Any, 0),
            new("fstp9 st(1) (DF D9)", a => a.db(0xDF, 0xD9), Domain.Any, 0),
            new("fcom2 st(1) (DC D1)", a => a.db(0xDC, 0xD1), Domain.Any, 0),
            new("fcomp3 st(1) (DC D9)", a => a.db(0xDC, 0xD9), Domain.Any, 0),
            new("fcomp5 st(1) (DE D1)", a => a.db(0xDE, 0xD1), Domain.Any, 0),

            // Forms of the first slice, here also with unmasked exceptions and empty or full stacks.
            new("fld m32", a => a.fld(M32), Domain.Any, 0),
            new("fld m64", a => a.fld(M64), Domain.Any, 0),
            new("fcom st(1)", a => a.fcom(st0, st1), Domain.Any, 0),
            new("fcomp m64", a => a.fcomp(M64), Domain.Any, 0),
            new("fucompp", a => a.fucompp(), Domain.Any, 0),
            new("fcomi st, st(1)", a => a.fcomi(st0, st1), Domain.Any, 0),
            new("fucomip st, st(1)", a => a.fucomip(st0, st1), Domain.Any, 0),
            new("fadd st, st(1)", a => a.fadd(st0, st1), Domain.Any, 0),
            new("fmul m32", a => a.fmul(M32), Domain.Any, 0),
            new("fdivrp st(1), st", a => a.fdivrp(st1, st0), Domain.Any, 0),
            new("fidiv m16", a => a.fidiv(M16), Domain.Any, 1),
            new("fst m32", a => a.fst(M32), Domain.Any, 0),
            new("fstp m64", a => a.fstp(M64), Domain.Any, 0),
            new("fistp m32", a => a.fistp(M32), Domain.Any, 0),
            new("fisttp m16", a => a.fisttp(M16), Domain.Any, 0),
        };
        var all = new List<Form>(basic);
        foreach (Form f in basic)
        {
            all.Add(f with { Name = "fincstp; " + f.Name, Emit = a => { a.fincstp(); f.Emit(a); } });
            all.Add(f with { Name = "fdecstp; " + f.Name, Emit = a => { a.fdecstp(); f.Emit(a); } });
        }

        return all.ToArray();
    }

    private NativeCpu? _cpu;
    private TestMachine? _machine;

    [OneTimeSetUp]
    public void SetUp()
    {
        if (NativeCpu.UnsupportedReason is { } reason)
        {
            Assert.Ignore(reason);
        }

        _cpu = new NativeCpu();
        _machine = new TestMachine(options: JitCoverage.For(engine));
        _machine.StartLong64(CodeBase, GuestStack);
    }

    [OneTimeTearDown]
    public void TearDown()
    {
        _cpu?.Dispose();
        _machine?.Dispose();
    }

    private static void Wrap(Assembler a, Action<Assembler> form)
    {
        a.fnstcw(__word_ptr[rsi + 22]);
        a.fninit();
        // Empty registers keep their old contents, which FNSAVE shows: give all eight the same (+0) on both sides.
        for (int i = 0; i < 8; i++)
        {
            a.fldz();
        }

        a.fninit();
        a.fld(__tword_ptr[rsi + 10]);
        a.fld(__tword_ptr[rsi]);
        a.fnclex();
        a.fldcw(__word_ptr[rsi + 20]);
        form(a);
        a.fnstsw(__word_ptr[rsi + 44]);
        a.fnsave(__[rsp - 128]); // the 108-byte image, in the red zone below the stack pointer
        a.mov(rdx, __qword_ptr[rsp - 128 + 28]);
        a.mov(__qword_ptr[rsi + 24], rdx);
        a.mov(dx, __word_ptr[rsp - 128 + 36]);
        a.mov(__word_ptr[rsi + 32], dx);
        a.mov(rdx, __qword_ptr[rsp - 128 + 38]);
        a.mov(__qword_ptr[rsi + 34], rdx);
        a.mov(dx, __word_ptr[rsp - 128 + 46]);
        a.mov(__word_ptr[rsi + 42], dx);
        a.mov(dx, __word_ptr[rsp - 128 + 8]);
        a.mov(__word_ptr[rsi + 46], dx);
        a.fldcw(__word_ptr[rsi + 22]);
    }

    [TestCaseSource(nameof(FormNames))]
    public void InterpreterMatchesHostCpu(string formName)
    {
        NativeCpu cpu = _cpu ?? throw new InvalidOperationException("not set up");
        TestMachine machine = _machine ?? throw new InvalidOperationException("not set up");
        int index = Array.FindIndex(s_forms, f => f.Name == formName);
        Form form = s_forms[index];
        ulong code = CodeBase + ((ulong)index * 256);
        ulong haltedAt = machine.Load(64, code, a =>
        {
            Wrap(a, form.Emit);
            a.hlt();
        });
        NativeStub stub = cpu.Compile64(a => Wrap(a, form.Emit));

        int seed = 0x87C;
        foreach (char c in formName)
        {
            seed = unchecked((seed * 31) + c);
        }

        var random = new Random(seed);
        var mismatches = new List<string>();
        int exact = 0, results = 0;
        for (int n = 0; n < Inputs; n++)
        {
            RegisterFile input = default;
            Span<byte> scratch = input.Scratch;
            Operand(random, form.Domain, n).Write(scratch);
            // After FINCSTP the form's ST(0) is B, so B comes from the form's domain too.
            Operand(random, form.Domain, n + 7).Write(scratch[10..]);
            // RC and PC (01 reserved) vary; half the runs mask every exception, the other half a random subset.
            int pc = new[] { 0, 2, 3 }[random.Next(3)];
            int masks = random.Next(2) == 0 ? 0x3F : random.Next(64);
            ushort fcw = (ushort)(0x40 | masks | (pc << 8) | (random.Next(4) << 10));
            BitConverter.TryWriteBytes(scratch[20..], fcw);
            MemoryOperand(random, form.MemoryKind, scratch[48..]);
            input.Rax = (ulong)random.NextInt64();
            input.Rflags = ((ulong)random.Next(0x1000) & 0x8D5) | 2;
            input.Rsi = cpu.ScratchAddress;

            RegisterFile native = input;
            cpu.Run(stub, ref native);
            string? problem = form.Domain == Domain.Any
                ? InterpreterReplay.Compare(machine, code, haltedAt, GuestScratch, GuestStack, input, native, ExactRegions, compareRcx: false)
                : CompareWithinOneUlp(machine, code, haltedAt, input, native, ref exact, ref results);
            if (problem is not null)
            {
                mismatches.Add(string.Create(CultureInfo.InvariantCulture,
                    $"a {Hex(input.Scratch, 0, 10)} b {Hex(input.Scratch, 10, 10)} fcw {fcw:X4} flags {input.Rflags:X3} mem {Hex(input.Scratch, 48, 16)}:{problem}"));
            }
        }

        if (results > 0)
        {
            TestContext.Out.WriteLine($"{formName}: {exact} of {results} transcendental results bit-exact");
            // Measured here (AMD EPYC): 87-100% per form, FPTAN lowest; the bar keeps the model from drifting.
            Assert.That(exact, Is.GreaterThanOrEqualTo(results * 80 / 100), $"{formName}: share of bit-exact results");
        }

        Assert.That(mismatches, Is.Empty,
            $"{formName}: {mismatches.Count} of {Inputs} inputs differ between the interpreter and the host CPU"
            + Environment.NewLine + string.Join(Environment.NewLine, mismatches.Take(10)));
    }

    private static readonly (string What, int At, int Length)[] ExactRegions =
        [("st0", 24, 10), ("st1", 34, 10), ("fsw", 44, 2), ("tags", 46, 2), ("mem", 48, 16)];

    private static readonly (string What, int At, int Length)[] TranscendentalRegions = [("mem", 48, 16)];

    /// <summary>
    /// The transcendentals are not correctly rounded on hardware (SDM Vol. 1, 8.3.10: within one ulp), and the model is
    /// within one ulp of the host rather than equal to it (Fpu/X87TranscendentalTests measures how often it is exact).
    /// So: memory, RAX and flags exactly; each of ST(0)/ST(1) equal or within one ulp, and the tags exactly when the results
    /// are equal (a result one ulp above the smallest denormal may be zero on the other side); FSW exactly except C1
    /// ("rounded up"), which depends on which side of the exact value the approximation fell even when both round to the
    /// same result, and, when the results differ, PE.
    /// </summary>
    private static string? CompareWithinOneUlp(TestMachine machine, ulong code, ulong haltedAt, RegisterFile input, RegisterFile native, ref int exact, ref int results)
    {
        string? rest = InterpreterReplay.Compare(machine, code, haltedAt, GuestScratch, GuestStack, input, native, TranscendentalRegions, compareRcx: false);
        var guest = new byte[64];
        machine.Memory.Read(new GuestAddress(GuestScratch), guest);
        ReadOnlySpan<byte> host = native.Scratch;
        bool same = true, close = true;
        foreach (int at in new[] { 24, 34 })
        {
            var h = ExtendedFloat.Read(host.Slice(at, 10));
            var g = ExtendedFloat.Read(guest.AsSpan(at, 10));
            same &= h == g;
            close &= h == g || WithinOneUlp(h, g);
        }

        results++;
        if (same)
        {
            exact++;
        }

        ushort hostTags = BitConverter.ToUInt16(host[46..]);
        ushort guestTags = BitConverter.ToUInt16(guest, 46);
        ushort hostFsw = BitConverter.ToUInt16(host[44..]);
        ushort guestFsw = BitConverter.ToUInt16(guest, 44);
        ushort mask = same ? unchecked((ushort)~0x0200) : unchecked((ushort)~0x0220);
        string problems = rest ?? string.Empty;
        if (!close)
        {
            problems += $" results host {Hex(host, 24, 20)} interpreter {Hex(guest, 24, 20)};";
        }

        if (same && hostTags != guestTags)
        {
            problems += string.Create(CultureInfo.InvariantCulture, $" tags host {hostTags:X4} interpreter {guestTags:X4};");
        }

        if (((hostFsw ^ guestFsw) & mask) != 0)
        {
            problems += string.Create(CultureInfo.InvariantCulture, $" fsw host {hostFsw:X4} interpreter {guestFsw:X4} (results {Hex(host, 24, 20)} / {Hex(guest, 24, 20)});");
        }

        return problems.Length == 0 ? null : problems;
    }

    private static bool WithinOneUlp(ExtendedFloat a, ExtendedFloat b)
    {
        if (a.Sign != b.Sign || a.BiasedExponent == 0x7FFF || b.BiasedExponent == 0x7FFF)
        {
            return false;
        }

        Int128 ka = ((Int128)a.BiasedExponent << 63) + (a.Significand & 0x7FFF_FFFF_FFFF_FFFF);
        Int128 kb = ((Int128)b.BiasedExponent << 63) + (b.Significand & 0x7FFF_FFFF_FFFF_FFFF);
        return Int128.Abs(ka - kb) <= 1;
    }

    private static ExtendedFloat Operand(Random r, Domain domain, int n)
    {
        ExtendedFloat[] edges = X87Values.Edges;
        // The first inputs walk the edge values in order, so that each one is seen whatever the seed.
        ExtendedFloat v = n < edges.Length ? edges[n] : r.Next(3) == 0 ? edges[r.Next(edges.Length)] : X87Values.Random(r);
        switch (domain)
        {
            case Domain.Angle:
                if (!Moderate(v))
                {
                    v = new ExtendedFloat((ulong)r.NextInt64() | (1UL << 63), (ushort)((ExtendedFloat.Bias + r.Next(-40, 6)) | (r.Next(2) << 15)));
                }

                break;
            case Domain.UnitInterval:
                if (!(v.BiasedExponent < ExtendedFloat.Bias || v.BiasedExponent == 0x7FFF || v.Abs() == ExtendedFloat.One))
                {
                    v = new ExtendedFloat((ulong)r.NextInt64() | (1UL << 63), (ushort)((ExtendedFloat.Bias - r.Next(1, 70)) | (r.Next(2) << 15)));
                }

                break;
            case Domain.SmallLog:
                if (!(v.BiasedExponent < ExtendedFloat.Bias - 2 || v.BiasedExponent == 0x7FFF))
                {
                    v = new ExtendedFloat((ulong)r.NextInt64() | (1UL << 63), (ushort)((ExtendedFloat.Bias - r.Next(3, 70)) | (r.Next(2) << 15)));
                }

                break;
        }

        return v;
    }

    // Beyond 2^6 (below 2^63) and near multiples of pi/2 the host's reduction uses its own approximation of pi (SDM Vol. 1,
    // 8.3.10), which the model does not reproduce; from 2^63 on the instructions leave the operand and set C2.
    private static bool Moderate(ExtendedFloat x) =>
        x.BiasedExponent < ExtendedFloat.Bias + 6 || x.BiasedExponent >= ExtendedFloat.Bias + 63;

    private static void MemoryOperand(Random r, int kind, Span<byte> m)
    {
        r.NextBytes(m);
        switch (kind)
        {
            case 1:
            {
                int[] edges = [0, 1, -1, short.MaxValue, short.MinValue, int.MaxValue, int.MinValue, 3, -2];
                int v = r.Next(2) == 0 ? edges[r.Next(edges.Length)] : r.Next(int.MinValue, int.MaxValue);
                if (r.Next(2) == 0)
                {
                    BitConverter.TryWriteBytes(m, (short)v);
                }
                else
                {
                    BitConverter.TryWriteBytes(m, v);
                }

                break;
            }

            case 2:
                // 18 decimal digits and a sign byte; an occasional non-decimal nibble (undefined per the SDM) is not generated.
                for (int i = 0; i < 9; i++)
                {
                    m[i] = (byte)(r.Next(10) | (r.Next(10) << 4));
                }

                m[9] = (byte)(r.Next(2) << 7);
                break;
        }
    }

    private static string Hex(ReadOnlySpan<byte> bytes, int at, int length) => Convert.ToHexString(bytes.Slice(at, length));
}
