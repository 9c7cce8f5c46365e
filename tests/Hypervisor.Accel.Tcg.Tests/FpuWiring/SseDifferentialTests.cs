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
/// Each wired SSE/SSE2 form runs in the tcg interpreter (64-bit mode) and on the host CPU inside the same wrapper: save the
/// caller's MXCSR, LDMXCSR the test's MXCSR, load XMM0 and XMM1 from the scratch block, run the form, store XMM0, XMM1
/// and MXCSR back, restore the caller's MXCSR. XMM0 (scratch 0-15), the memory operand (16-31), XMM1 (32-47), MXCSR
/// (56-59), RAX, RCX and the status flags must agree bit for bit, over edge values and seeded random values, under every
/// rounding mode and DAZ/FTZ setting (exceptions masked: an unmasked one would kill the host process; those are checked
/// against the SDM in <see cref="SseFaultTests"/>).
/// </summary>
[TestFixture(JitCoverage.Interpreter)]
[TestFixture(JitCoverage.Jit)]
public sealed class SseDifferentialTests(string engine)
{
    private const int Inputs = 300;
    private const ulong CodeBase = 0x10_0000; // 1 MiB: room for every form (128 bytes each) below the 2 MiB identity map
    private const ulong GuestScratch = 0x9_0000;
    private const ulong GuestStack = 0x7_F000;
    private const int ComparedScratchBytes = 60; // 60-63 hold the caller's MXCSR, which differs by design

    private NativeCpu? _cpu;
    private TestMachine? _machine;

    public static IEnumerable<string> FormNames => SseForms.All.Select(f => f.Name);

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
        SystemRegisters s = _machine.Vcpu.GetSystemRegisters();
        s.Cr4 |= 0x600; // OSFXSR | OSXMMEXCPT
        _machine.Vcpu.SetSystemRegisters(s);
    }

    [OneTimeTearDown]
    public void TearDown()
    {
        _cpu?.Dispose();
        _machine?.Dispose();
    }

    /// <summary>The wrapper around a form: RSI points at the 64-byte scratch block.</summary>
    internal static void Wrap(Assembler a, Action<Assembler> form)
    {
        a.stmxcsr(__dword_ptr[rsi + 60]);
        a.ldmxcsr(__dword_ptr[rsi + 56]);
        a.movdqu(xmm0, __xmmword_ptr[rsi]);
        a.movdqu(xmm1, __xmmword_ptr[rsi + 32]);
        form(a);
        a.movdqu(__xmmword_ptr[rsi], xmm0);
        a.movdqu(__xmmword_ptr[rsi + 32], xmm1);
        a.stmxcsr(__dword_ptr[rsi + 56]);
        a.ldmxcsr(__dword_ptr[rsi + 60]);
    }

    [TestCaseSource(nameof(FormNames))]
    public void InterpreterMatchesHostCpu(string formName)
    {
        NativeCpu cpu = _cpu ?? throw new InvalidOperationException("not set up");
        TestMachine machine = _machine ?? throw new InvalidOperationException("not set up");
        SseForm form = SseForms.All.First(f => f.Name == formName);
        ulong code = CodeBase + ((ulong)SseForms.All.IndexOf(form) * 128);
        ulong haltedAt = machine.Load(64, code, a =>
        {
            Wrap(a, form.Emit);
            a.hlt();
        });
        NativeStub stub = cpu.Compile64(a => Wrap(a, form.Emit));

        var random = new Random(0x5EE ^ StableHash(formName));
        uint[] mxcsrs = SseValues.MaskedMxcsrs().ToArray();
        var mismatches = new List<string>();
        for (int n = 0; n < Inputs; n++)
        {
            RegisterFile input = default;
            Span<byte> scratch = input.Scratch;
            WriteVector(scratch, Vector(form.Lanes, random));
            WriteVector(scratch[16..], Vector(form.Lanes, random));
            WriteVector(scratch[32..], Vector(form.Lanes, random));
            uint mxcsr = mxcsrs[n % mxcsrs.Length] | (uint)(random.Next(4) == 0 ? random.Next(0x40) : 0);
            BitConverter.TryWriteBytes(scratch[56..], mxcsr);
            input.Rax = Integer(random);
            input.Rcx = Integer(random);
            input.Rflags = ((ulong)random.Next(0x1000) & 0x8D5) | 2;
            input.Rsi = cpu.ScratchAddress;

            RegisterFile native = input;
            cpu.Run(stub, ref native);
            string? problem = Compare(machine, code, haltedAt, input, native);
            if (problem is not null)
            {
                mismatches.Add($"xmm0 {Hex(input.Scratch, 0)} mem {Hex(input.Scratch, 16)} xmm1 {Hex(input.Scratch, 32)} mxcsr {mxcsr:X4} rax {input.Rax:X16}:{problem}");
            }
        }

        Assert.That(mismatches, Is.Empty,
            $"{formName}: {mismatches.Count} of {Inputs} inputs differ between the interpreter and the host CPU"
            + Environment.NewLine + string.Join(Environment.NewLine, mismatches.Take(10)));
    }

    private static readonly (string What, int At, int Length)[] Regions = [("xmm0", 0, 16), ("mem", 16, 16), ("xmm1", 32, 16), ("bytes 48-55", 48, 8), ("mxcsr", 56, 4)];

    private static string? Compare(TestMachine machine, ulong code, ulong haltedAt, RegisterFile input, RegisterFile native) =>
        InterpreterReplay.Compare(machine, code, haltedAt, GuestScratch, GuestStack, input, native, Regions, compareRcx: true);

    private static UInt128 Vector(SseLanes lanes, Random r)
    {
        switch (lanes)
        {
            case SseLanes.F32:
            {
                var v = new ulong[4];
                for (int i = 0; i < 4; i++)
                {
                    v[i] = r.Next(2) == 0 ? SseValues.Edges32[r.Next(SseValues.Edges32.Length)] : SseValues.Random(r, false);
                }

                return SseValues.Lanes(false, v, 0);
            }

            case SseLanes.F64:
            {
                var v = new ulong[2];
                for (int i = 0; i < 2; i++)
                {
                    v[i] = r.Next(2) == 0 ? SseValues.Edges64[r.Next(SseValues.Edges64.Length)] : SseValues.Random(r, true);
                }

                return SseValues.Lanes(true, v, 0);
            }

            case SseLanes.Text:
            {
                // Characters from a small alphabet (signed and unsigned extremes included), often cut short by zeros.
                ReadOnlySpan<byte> alphabet = [(byte)'a', (byte)'b', (byte)'c', (byte)'m', (byte)'z', 0x01, 0x7F, 0x80, 0xFF];
                Span<byte> bytes = stackalloc byte[16];
                for (int i = 0; i < 16; i++)
                {
                    bytes[i] = alphabet[r.Next(alphabet.Length)];
                }

                if (r.Next(5) < 3)
                {
                    bytes[r.Next(17)..].Clear();
                }

                return new UInt128(BitConverter.ToUInt64(bytes[8..]), BitConverter.ToUInt64(bytes));
            }

            default:
            {
                // Integer lanes: random bytes, with runs of equal bytes so that compares see equality.
                ulong lo = (ulong)r.NextInt64(), hi = (ulong)r.NextInt64();
                if (r.Next(3) == 0)
                {
                    hi = lo;
                }

                if (r.Next(4) == 0)
                {
                    lo = r.Next(2) == 0 ? 0 : ulong.MaxValue;
                }
                else if (r.Next(3) == 0)
                {
                    lo = (ulong)r.Next(70); // small shift counts
                }

                return new UInt128(hi, lo);
            }
        }
    }

    private static readonly ulong[] s_integerEdges =
    [
        0, 1, ulong.MaxValue, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF_8000_0000, 0x7FFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000,
        (1UL << 53) + 1, (1UL << 24) + 1, 0xFFFF_FFFF, 12345,
    ];

    private static ulong Integer(Random r) =>
        r.Next(2) == 0 ? s_integerEdges[r.Next(s_integerEdges.Length)] : (ulong)r.NextInt64() >> r.Next(64);

    private static void WriteVector(Span<byte> at, UInt128 v)
    {
        BitConverter.TryWriteBytes(at, (ulong)v);
        BitConverter.TryWriteBytes(at[8..], (ulong)(v >> 64));
    }

    private static string Hex(ReadOnlySpan<byte> bytes, int at, int length = 16) => Convert.ToHexString(bytes.Slice(at, length));

    private static int StableHash(string s)
    {
        int h = 17;
        foreach (char c in s)
        {
            h = unchecked((h * 31) + c);
        }

        return h;
    }
}
