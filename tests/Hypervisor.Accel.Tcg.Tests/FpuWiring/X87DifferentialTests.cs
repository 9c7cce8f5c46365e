using System.Globalization;
using System.Text;
using Hypervisor.Accel.Tcg.Tests.Guests;
using Hypervisor.Accel.Tcg.Tests.Native;
using Hypervisor.Accel.Tcg.Tests.Sse;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Memory;
using Hypervisor.Core.Registers;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;
using Hypervisor.Accel.Tcg.Tests.Jit;

namespace Hypervisor.Accel.Tcg.Tests.FpuWiring;

/// <summary>
/// Each wired x87 form runs in the tcg interpreter and on the host CPU inside the same wrapper: save the caller's FCW,
/// FNINIT, FLDCW the test's FCW, FLD two doubles (ST(1) from scratch 8, ST(0) from scratch 0), run the form, FNSTSW,
/// FSTP both stack slots as 80-bit values, FNINIT and restore the caller's FCW. The stored ST(0)/ST(1) (16-25, 32-41),
/// FSW (26-27), the memory operand area (48-63), RAX and the status flags must agree bit for bit, over edge and random
/// doubles under every rounding and precision control (exceptions masked: unmasked ones would kill the host process).
/// </summary>
[TestFixture(JitCoverage.Interpreter)]
[TestFixture(JitCoverage.Jit)]
public sealed class X87DifferentialTests(string engine)
{
    private const int Inputs = 300;
    private const ulong CodeBase = 0x4_0000;
    private const ulong GuestScratch = 0x9_0000;
    private const ulong GuestStack = 0x7_F000;

    private static readonly AssemblerMemoryOperand M16 = __word_ptr[rsi + 48];
    private static readonly AssemblerMemoryOperand M32 = __dword_ptr[rsi + 48];
    private static readonly AssemblerMemoryOperand M64 = __qword_ptr[rsi + 48];
    private static readonly AssemblerMemoryOperand M80 = __tword_ptr[rsi + 48];

    private NativeCpu? _cpu;
    private TestMachine? _machine;

    private static readonly (string Name, Action<Assembler> Emit)[] s_forms = BuildForms();

    public static IEnumerable<string> FormNames => s_forms.Select(f => f.Name);

    private static (string, Action<Assembler>)[] BuildForms()
    {
        var l = new List<(string, Action<Assembler>)>
        {
            ("fninit", a => a.fninit()),
            ("fnstsw ax", a => a.fnstsw(ax)),
            ("fnstsw m16", a => a.fnstsw(M16)),
            ("fnstcw m16", a => a.fnstcw(M16)),
            ("fld st(1)", a => a.fld(st1)),
            ("fld m32", a => a.fld(M32)),
            ("fld m64", a => a.fld(M64)),
            ("fld m80", a => a.fld(M80)),
            ("fild m16", a => a.fild(M16)),
            ("fild m32", a => a.fild(M32)),
            ("fild m64", a => a.fild(M64)),
            ("fst st(1)", a => a.fst(st1)),
            ("fstp st(1)", a => a.fstp(st1)),
            ("fst m32", a => a.fst(M32)),
            ("fst m64", a => a.fst(M64)),
            ("fstp m32", a => a.fstp(M32)),
            ("fstp m64", a => a.fstp(M64)),
            ("fstp m80", a => a.fstp(M80)),
            ("fcomi st, st(1)", a => a.fcomi(st0, st1)),
            ("fcomip st, st(1)", a => a.fcomip(st0, st1)),
            ("fucomi st, st(1)", a => a.fucomi(st0, st1)),
            ("fucomip st, st(1)", a => a.fucomip(st0, st1)),
            ("fcom st(1)", a => a.fcom(st0, st1)),
            ("fcomp st(1)", a => a.fcomp(st0, st1)),
            ("fcompp", a => a.fcompp()),
            ("fucom st(1)", a => a.fucom(st0, st1)),
            ("fucomp st(1)", a => a.fucomp(st0, st1)),
            ("fucompp", a => a.fucompp()),
            ("fcom m32", a => a.fcom(M32)),
            ("fcom m64", a => a.fcom(M64)),
            ("fcomp m64", a => a.fcomp(M64)),
            ("fxch st(1)", a => a.fxch(st0, st1)),
            ("fchs", a => a.fchs()),
            ("fabs", a => a.fabs()),
            ("fsqrt", a => a.fsqrt()),
            ("frndint", a => a.frndint()),
            ("fist m16", a => a.fist(M16)),
            ("fist m32", a => a.fist(M32)),
            ("fistp m64", a => a.fistp(M64)),
            ("fisttp m16", a => a.fisttp(M16)),
            ("fisttp m32", a => a.fisttp(M32)),
            ("fisttp m64", a => a.fisttp(M64)),
        };
        void Arith(string n, Action<Assembler, AssemblerRegisterST, AssemblerRegisterST> rr, Action<Assembler, AssemblerRegisterST, AssemblerRegisterST> p,
            Action<Assembler, AssemblerMemoryOperand> m, Action<Assembler, AssemblerMemoryOperand> i)
        {
            l.Add((n + " st, st(1)", a => rr(a, st0, st1)));
            l.Add((n + " st(1), st", a => rr(a, st1, st0)));
            l.Add((n + "p st(1), st", a => p(a, st1, st0)));
            l.Add((n + " m32", a => m(a, M32)));
            l.Add((n + " m64", a => m(a, M64)));
            l.Add(("fi" + n[1..] + " m16", a => i(a, M16)));
            l.Add(("fi" + n[1..] + " m32", a => i(a, M32)));
        }

        Arith("fadd", (a, d, s) => a.fadd(d, s), (a, d, s) => a.faddp(d, s), (a, m) => a.fadd(m), (a, m) => a.fiadd(m));
        Arith("fsub", (a, d, s) => a.fsub(d, s), (a, d, s) => a.fsubp(d, s), (a, m) => a.fsub(m), (a, m) => a.fisub(m));
        Arith("fsubr", (a, d, s) => a.fsubr(d, s), (a, d, s) => a.fsubrp(d, s), (a, m) => a.fsubr(m), (a, m) => a.fisubr(m));
        Arith("fmul", (a, d, s) => a.fmul(d, s), (a, d, s) => a.fmulp(d, s), (a, m) => a.fmul(m), (a, m) => a.fimul(m));
        Arith("fdiv", (a, d, s) => a.fdiv(d, s), (a, d, s) => a.fdivp(d, s), (a, m) => a.fdiv(m), (a, m) => a.fidiv(m));
        Arith("fdivr", (a, d, s) => a.fdivr(d, s), (a, d, s) => a.fdivrp(d, s), (a, m) => a.fdivr(m), (a, m) => a.fidivr(m));
        return l.ToArray();
    }

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
        a.fnstcw(__word_ptr[rsi + 30]);
        a.fninit();
        a.fldcw(__word_ptr[rsi + 28]);
        a.fld(__qword_ptr[rsi + 8]);
        a.fld(__qword_ptr[rsi]);
        form(a);
        a.fnstsw(__word_ptr[rsi + 26]);
        a.fstp(__tword_ptr[rsi + 16]);
        a.fstp(__tword_ptr[rsi + 32]);
        a.fninit();
        a.fldcw(__word_ptr[rsi + 30]);
    }

    [TestCaseSource(nameof(FormNames))]
    public void InterpreterMatchesHostCpu(string formName)
    {
        NativeCpu cpu = _cpu ?? throw new InvalidOperationException("not set up");
        TestMachine machine = _machine ?? throw new InvalidOperationException("not set up");
        int index = Array.FindIndex(s_forms, f => f.Name == formName);
        Action<Assembler> form = s_forms[index].Emit;
        ulong code = CodeBase + ((ulong)index * 128);
        ulong haltedAt = machine.Load(64, code, a =>
        {
            Wrap(a, form);
            a.hlt();
        });
        NativeStub stub = cpu.Compile64(a => Wrap(a, form));

        int seed = 0x87;
        foreach (char c in formName)
        {
            seed = unchecked((seed * 31) + c); // stable across runs, unlike string.GetHashCode
        }

        var random = new Random(seed);

        var mismatches = new List<string>();
        for (int n = 0; n < Inputs; n++)
        {
            RegisterFile input = default;
            Span<byte> scratch = input.Scratch;
            BitConverter.TryWriteBytes(scratch, Double(random));
            BitConverter.TryWriteBytes(scratch[8..], Double(random));
            // RC (bits 10-11) and PC (bits 8-9; 01 is reserved) vary; every exception masked.
            int pc = new[] { 0, 2, 3 }[random.Next(3)];
            ushort fcw = (ushort)(0x7F | (pc << 8) | (random.Next(4) << 10) | 0x40);
            BitConverter.TryWriteBytes(scratch[28..], fcw);
            random.NextBytes(scratch[48..]);
            if (random.Next(2) == 0)
            {
                BitConverter.TryWriteBytes(scratch[48..], Double(random));
            }
            else if (random.Next(2) == 0)
            {
                BitConverter.TryWriteBytes(scratch[48..], (uint)SseValues.Edges32[random.Next(SseValues.Edges32.Length)]);
            }

            input.Rax = (ulong)random.NextInt64();
            input.Rflags = ((ulong)random.Next(0x1000) & 0x8D5) | 2;
            input.Rsi = cpu.ScratchAddress;

            RegisterFile native = input;
            cpu.Run(stub, ref native);
            string? problem = Compare(machine, code, haltedAt, input, native);
            if (problem is not null)
            {
                mismatches.Add($"st0 {Hex(input.Scratch, 0, 8)} st1 {Hex(input.Scratch, 8, 8)} fcw {fcw:X4} mem {Hex(input.Scratch, 48, 16)}:{problem}");
            }
        }

        Assert.That(mismatches, Is.Empty,
            $"{formName}: {mismatches.Count} of {Inputs} inputs differ between the interpreter and the host CPU"
            + Environment.NewLine + string.Join(Environment.NewLine, mismatches.Take(10)));
    }

    private static readonly (string What, int At, int Length)[] Regions = [("st0", 16, 10), ("fsw", 26, 2), ("st1", 32, 10), ("mem", 48, 16)];

    private static string? Compare(TestMachine machine, ulong code, ulong haltedAt, RegisterFile input, RegisterFile native) =>
        InterpreterReplay.Compare(machine, code, haltedAt, GuestScratch, GuestStack, input, native, Regions, compareRcx: false);

    private static ulong Double(Random r) =>
        r.Next(2) == 0 ? SseValues.Edges64[r.Next(SseValues.Edges64.Length)] : SseValues.Random(r, true);

    private static string Hex(ReadOnlySpan<byte> bytes, int at, int length) => Convert.ToHexString(bytes.Slice(at, length));
}
