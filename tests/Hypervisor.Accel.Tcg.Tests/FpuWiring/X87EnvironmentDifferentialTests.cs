using System.Globalization;
using System.Runtime.InteropServices;
using Hypervisor.Accel.Tcg.Fpu;
using Hypervisor.Accel.Tcg.Tests.Fpu;
using Hypervisor.Accel.Tcg.Tests.Guests;
using Hypervisor.Accel.Tcg.Tests.Native;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Memory;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;
using Hypervisor.Accel.Tcg.Tests.Jit;

namespace Hypervisor.Accel.Tcg.Tests.FpuWiring;

/// <summary>
/// FNSTENV/FNSAVE images (14/28 and 94/108 bytes, 64-bit mode, with and without an operand-size prefix) and
/// FLDENV/FRSTOR round trips against the host CPU, byte for byte. The same body runs natively (on a pinned buffer) and in
/// the interpreter (on guest memory). The x87 pointers differ only by where the code and the buffer are: each body stores
/// the address of its last non-control x87 instruction, CS and DS, and the comparison subtracts them from FIP, FCS, FDP and
/// FDS on each side (FDP is relative to the buffer). Everything else, FOP included, must be equal. The images from
/// FLDENV/FRSTOR of random bytes are compared without any adjustment.
/// </summary>
[TestFixture(JitCoverage.Interpreter)]
[TestFixture(JitCoverage.Jit)]
public sealed class X87EnvironmentDifferentialTests(string engine)
{
    private const ulong Code = 0x8000;
    private const ulong GuestBuffer = 0x6_0000;
    private const int BufferBytes = 1024;
    private const int A = 0, B = 10, Fcw = 20, SavedFcw = 22, Operand = 32, Image = 64, ImageIn = 192, LabelAt = 320, CsAt = 328, DsAt = 330, After = 336, Fill = 400;
    private const int Inputs = 200;

    /// <summary>The image sizes: FNSTENV with 16- or 32-bit operand size, FNSAVE likewise.</summary>
    public enum Format
    {
        /// <summary>o16 FNSTENV.</summary>
        Env14,
        /// <summary>FNSTENV.</summary>
        Env28,
        /// <summary>o16 FNSAVE.</summary>
        Save94,
        /// <summary>FNSAVE.</summary>
        Save108,
    }

    private static int Size(Format f) => f switch { Format.Env14 => 14, Format.Env28 => 28, Format.Save94 => 94, _ => 108 };

    private static bool Wide(Format f) => f is Format.Env28 or Format.Save108;

    // The 16-bit forms carry an operand-size prefix (66h), emitted as a byte since the assembler has no o16 modifier.
    private static void Store(Assembler a, Format f)
    {
        AssemblerMemoryOperand m = __[rsi + Image];
        switch (f)
        {
            case Format.Env14: a.db(0x66); a.fnstenv(m); break;
            case Format.Env28: a.fnstenv(m); break;
            case Format.Save94: a.db(0x66); a.fnsave(m); break;
            default: a.fnsave(m); break;
        }
    }

    private static void Load(Assembler a, Format f)
    {
        AssemblerMemoryOperand m = __[rsi + ImageIn];
        switch (f)
        {
            case Format.Env14: a.db(0x66); a.fldenv(m); break;
            case Format.Env28: a.fldenv(m); break;
            case Format.Save94: a.db(0x66); a.frstor(m); break;
            default: a.frstor(m); break;
        }
    }

    private static readonly (string Name, Action<Assembler> Op)[] s_operations =
    [
        ("fadd m64", a => a.fadd(__qword_ptr[rsi + Operand])),
        ("fimul m16", a => a.fimul(__word_ptr[rsi + Operand])),
        ("fcomp m32", a => a.fcomp(__dword_ptr[rsi + Operand])),
        ("fst m64", a => a.fst(__qword_ptr[rsi + Operand + 8])),
        ("fsubr st(1), st", a => a.fsubr(st1, st0)),
        ("fld m32; fsqrt", a => a.fsqrt()),
        ("fxch st(1)", a => a.fxch(st0, st1)),
        ("fld1", a => a.fld1()),
        ("fprem1", a => a.fprem1()),
    ];

    public static IEnumerable<TestCaseData> StoreCases() =>
        from op in s_operations
        from f in Enum.GetValues<Format>()
        select new TestCaseData(op.Name, f).SetName($"{(f is Format.Env14 or Format.Env28 ? "FNSTENV" : "FNSAVE")} {Size(f)} bytes after {op.Name} matches the host");

    /// <summary>
    /// Two values loaded, exceptions masked or not (FNCLEX, FLDCW), the operation (its last instruction is the one the
    /// pointers name), a control instruction (FNSTCW, which must not change them), the image, then FNSTCW and FNSTSW
    /// again to see that FSTENV masked all exceptions and that FSAVE re-initialised.
    /// </summary>
    [TestCaseSource(nameof(StoreCases))]
    public void StoredImageMatchesHost(string operation, Format format)
    {
        Action<Assembler> op = s_operations.Single(o => o.Name == operation).Op;
        void Body(Assembler a)
        {
            Label last = a.CreateLabel();
            a.fnstcw(__word_ptr[rsi + SavedFcw]);
            FillRegisters(a);
            a.fld(__tword_ptr[rsi + B]);
            a.fld(__tword_ptr[rsi + A]);
            bool twoInstructions = operation.Contains(';', StringComparison.Ordinal);
            if (twoInstructions)
            {
                a.fincstp(); // room for the load, which runs masked: only the last instruction may leave an exception pending
                a.fld(__dword_ptr[rsi + Operand]);
            }

            a.fnclex();
            a.fldcw(__word_ptr[rsi + Fcw]);
            a.Label(ref last);
            if (twoInstructions)
            {
                a.fsqrt();
            }
            else
            {
                op(a);
            }

            a.fnstcw(__word_ptr[rsi + After + 4]);
            Store(a, format);
            a.fnstcw(__word_ptr[rsi + After]);
            a.fnstsw(__word_ptr[rsi + After + 2]);
            a.fninit();
            a.fldcw(__word_ptr[rsi + SavedFcw]);
            a.lea(rdx, __[last]);
            a.mov(__qword_ptr[rsi + LabelAt], rdx);
            a.mov(__word_ptr[rsi + CsAt], cs);
            a.mov(__word_ptr[rsi + DsAt], ds);
        }

        var random = new Random(operation.Length * 7 + (int)format);
        var problems = new List<string>();
        using var run = new BothSides(Body);
        for (int n = 0; n < Inputs; n++)
        {
            byte[] input = new byte[BufferBytes];
            X87Value(random, n).Write(input.AsSpan(A));
            X87Value(random, n + 3).Write(input.AsSpan(B));
            int masks = random.Next(2) == 0 ? 0x3F : random.Next(64);
            ushort fcw = (ushort)(0x40 | masks | (new[] { 0, 2, 3 }[random.Next(3)] << 8) | (random.Next(4) << 10));
            BitConverter.TryWriteBytes(input.AsSpan(Fcw), fcw);
            random.NextBytes(input.AsSpan(Operand, 8));
            FillValues(random, input);
            (byte[] host, byte[] guest) = run.Run(input);
            string? problem = CompareImages(host, guest, format) ?? CompareSpan(host, guest, After, 6, "FCW/FSW after, FCW before the image");
            // AMD processors save and restore FIP, FDP and FOP with FXSAVE/XSAVE only while an exception is pending, so
            // a context switch of the test thread between the operation and the FNSAVE leaves other pointers (seen here
            // about once in a few hundred runs). The interpreter is deterministic: such an input is simply run again.
            for (int retry = 0; problem is not null && retry < 3; retry++)
            {
                (host, guest) = run.Run(input);
                problem = CompareImages(host, guest, format) ?? CompareSpan(host, guest, After, 6, "FCW/FSW after, FCW before the image");
            }
            if (problem is not null)
            {
                problems.Add(string.Create(CultureInfo.InvariantCulture, $"fcw {fcw:X4} a {Convert.ToHexString(input, A, 10)} b {Convert.ToHexString(input, B, 10)} m {Convert.ToHexString(input, Operand, 8)}: {problem}"));
            }
        }

        Assert.That(problems, Is.Empty, $"{problems.Count} of {Inputs} differ" + Environment.NewLine + string.Join(Environment.NewLine, problems.Take(8)));
    }

    public static IEnumerable<TestCaseData> LoadCases() =>
        Enum.GetValues<Format>().Select(f => new TestCaseData(f).SetName($"{(f is Format.Env14 or Format.Env28 ? "FLDENV then FNSTENV" : "FRSTOR then FNSAVE")} of {Size(f)} random bytes matches the host"));

    /// <summary>
    /// Random bytes (with the registers' values drawn from the edge and random 80-bit values) are loaded and stored back
    /// in the same format: which fields are kept, how the tag word is rebuilt from the registers, how ES and B follow the
    /// loaded flags and masks. The pending exceptions this may create are never delivered: only non-waiting instructions follow.
    /// </summary>
    [TestCaseSource(nameof(LoadCases))]
    public void LoadedImageStoresBackAsOnHost(Format format)
    {
        void Body(Assembler a)
        {
            a.fnstcw(__word_ptr[rsi + SavedFcw]);
            FillRegisters(a);
            Load(a, format);
            Store(a, format);
            a.fninit();
            a.fldcw(__word_ptr[rsi + SavedFcw]);
        }

        var random = new Random(100 + (int)format);
        var problems = new List<string>();
        using var run = new BothSides(Body);
        for (int n = 0; n < Inputs; n++)
        {
            byte[] input = new byte[BufferBytes];
            Span<byte> image = input.AsSpan(ImageIn, Size(format));
            random.NextBytes(image);
            int env = Wide(format) ? 28 : 14;
            if (random.Next(2) == 0)
            {
                image[0] |= 0x3F; // often all masked, so that ES stays clear
            }

            if (Size(format) > env)
            {
                for (int i = 0; i < 8; i++)
                {
                    X87Value(random, n + i).Write(image[(env + (10 * i))..]);
                }
            }

            FillValues(random, input);
            (byte[] host, byte[] guest) = run.Run(input);
            string? problem = CompareSpan(host, guest, Image, Size(format), "image");
            if (problem is not null)
            {
                problems.Add($"in {Convert.ToHexString(image)}: {problem}");
            }
        }

        Assert.That(problems, Is.Empty, $"{problems.Count} of {Inputs} differ" + Environment.NewLine + string.Join(Environment.NewLine, problems.Take(8)));
    }

    /// <summary>
    /// Empty registers keep their contents, which FNSAVE stores and from which FLDENV rebuilds the tags: load all eight from
    /// the input (Fill, 80 bytes) on both sides, then FNINIT (contents kept, all tags empty).
    /// </summary>
    private static void FillRegisters(Assembler a)
    {
        a.fninit();
        for (int i = 0; i < 8; i++)
        {
            a.fld(__tword_ptr[rsi + Fill + (10 * i)]);
        }

        a.fninit();
    }

    private static void FillValues(Random r, byte[] input)
    {
        for (int i = 0; i < 8; i++)
        {
            X87Value(r, r.Next(64)).Write(input.AsSpan(Fill + (10 * i)));
        }
    }

    public static IEnumerable<TestCaseData> ProtectedModeCases() =>
        from op in new[] { "fadd m64", "fcomp m64", "fsubr st(1), st", "fld m64" }
        from wide in new[] { true, false }
        select new TestCaseData(op, wide).SetName($"In 32-bit code FNSTENV {(wide ? 28 : 14)} bytes after {op} matches the host (compatibility mode)");

    /// <summary>
    /// The same comparison for 32-bit code: natively in compatibility mode (the Linux 32-bit user code segment), in the
    /// interpreter in flat 32-bit protected mode. Everything fits the 64-byte scratch block: A (0-9), an m64 operand
    /// (10-17), FCW saved (18) and in (20), CS (22), DS (24), an address just before the operation (26), the image (32-59).
    /// </summary>
    [TestCaseSource(nameof(ProtectedModeCases))]
    public void StoredImageMatchesHostIn32BitCode(string operation, bool wide)
    {
        if (NativeCpu.UnsupportedReason is { } reason)
        {
            Assert.Ignore(reason);
        }

        void Body(Assembler a)
        {
            Label here = a.CreateLabel();
            a.fnstcw(__word_ptr[esi + 18]);
            a.fninit();
            a.fld(__tword_ptr[esi]);
            a.fnclex();
            a.fldcw(__word_ptr[esi + 20]);
            // CALL/POP gives an address a fixed distance before the operation on both sides (32-bit code has no
            // RIP-relative LEA); a constant offset cancels out in the comparison.
            a.call(here);
            a.Label(ref here);
            a.pop(edx);
            a.mov(__dword_ptr[esi + 26], edx);
            switch (operation)
            {
                case "fadd m64": a.fadd(__qword_ptr[esi + 10]); break;
                case "fcomp m64": a.fcomp(__qword_ptr[esi + 10]); break;
                case "fsubr st(1), st": a.fsubr(st1, st0); break;
                default: a.fld(__qword_ptr[esi + 10]); break;
            }

            if (!wide)
            {
                a.db(0x66);
            }

            a.fnstenv(__[esi + 32]);
            a.fninit();
            a.fldcw(__word_ptr[esi + 18]);
            a.mov(__word_ptr[esi + 22], cs);
            a.mov(__word_ptr[esi + 24], ds);
        }

        const ulong code = 0x10_0000, scratch = 0x9_0000, stack = 0x8_F000;
        using var cpu = new NativeCpu();
        using var machine = new TestMachine(options: JitCoverage.For(engine));
        machine.StartProtected32((uint)code, (uint)stack);
        ulong halted = machine.Load(32, code, a =>
        {
            Body(a);
            a.hlt();
        });
        NativeStub stub = cpu.CompileCompat32(Body);
        var random = new Random(operation.Length + (wide ? 1 : 0));
        var problems = new List<string>();
        for (int n = 0; n < Inputs; n++)
        {
            RegisterFile input = default;
            Span<byte> bytes = input.Scratch;
            X87Value(random, n).Write(bytes);
            random.NextBytes(bytes.Slice(10, 8));
            int masks = random.Next(2) == 0 ? 0x3F : random.Next(64);
            BitConverter.TryWriteBytes(bytes[20..], (ushort)(0x40 | masks | (new[] { 0, 2, 3 }[random.Next(3)] << 8) | (random.Next(4) << 10)));
            input.Rsi = cpu.ScratchAddress;
            input.Rflags = 2;
            string? problem = null;
            for (int attempt = 0; attempt < 4 && (attempt == 0 || problem is not null); attempt++)
            {
                problem = RunOnce(input); // rerun as in StoredImageMatchesHost: a context switch can replace AMD's pointers
            }

            if (problem is not null)
            {
                problems.Add($"in {Convert.ToHexString(input.Scratch[..22])}:{problem}");
            }
        }

        Assert.That(problems, Is.Empty, $"{problems.Count} of {Inputs} differ" + Environment.NewLine + string.Join(Environment.NewLine, problems.Take(8)));

        string? RunOnce(RegisterFile input)
        {
            RegisterFile native = input;
            cpu.Run(stub, ref native);
            machine.StartProtected32((uint)code, (uint)stack);
            string? problem = InterpreterReplay.Compare(machine, code, halted, scratch, stack, input, native, [("A and the operand", 0, 18), ("FCW in", 20, 2)], compareRcx: false);
            byte[] guest = new byte[64];
            machine.Memory.Read(new GuestAddress(scratch), guest);
            byte[] host = ((ReadOnlySpan<byte>)native.Scratch).ToArray();
            string Normal(byte[] b, ulong at)
            {
                byte[] env = b.AsSpan(32, wide ? 28 : 14).ToArray();
                uint label = BitConverter.ToUInt32(b, 26);
                ushort cs = BitConverter.ToUInt16(b, 22), ds = BitConverter.ToUInt16(b, 24);
                if (wide)
                {
                    BitConverter.TryWriteBytes(env.AsSpan(12), BitConverter.ToUInt32(env, 12) - label);
                    BitConverter.TryWriteBytes(env.AsSpan(16), (ushort)(BitConverter.ToUInt16(env, 16) - cs));
                    BitConverter.TryWriteBytes(env.AsSpan(20), BitConverter.ToUInt32(env, 20) - (uint)at);
                    BitConverter.TryWriteBytes(env.AsSpan(24), (ushort)(BitConverter.ToUInt16(env, 24) - ds));
                }
                else
                {
                    BitConverter.TryWriteBytes(env.AsSpan(6), (ushort)(BitConverter.ToUInt16(env, 6) - (ushort)label));
                    BitConverter.TryWriteBytes(env.AsSpan(8), (ushort)(BitConverter.ToUInt16(env, 8) - cs));
                    BitConverter.TryWriteBytes(env.AsSpan(10), (ushort)(BitConverter.ToUInt16(env, 10) - (ushort)at));
                    BitConverter.TryWriteBytes(env.AsSpan(12), (ushort)(BitConverter.ToUInt16(env, 12) - ds));
                }

                return Convert.ToHexString(env);
            }

            string h = Normal(host, cpu.ScratchAddress), g = Normal(guest, scratch);
            if (h != g)
            {
                problem += $" image (pointers relative) host {h} interpreter {g}";
            }

            return problem;
        }
    }

    private static ExtendedFloat X87Value(Random r, int n) =>
        n < X87Values.Edges.Length && r.Next(2) == 0 ? X87Values.Edges[n] : r.Next(3) == 0 ? X87Values.Edges[r.Next(X87Values.Edges.Length)] : X87Values.Random(r);

    /// <summary>Compares two images after making FIP, FCS, FDP and FDS relative to each side's code, CS, buffer and DS.</summary>
    private static string? CompareImages(byte[] host, byte[] guest, Format format)
    {
        byte[] h = Normalized(host, format);
        byte[] g = Normalized(guest, format);
        return CompareSpan(h, g, 0, Size(format), "image (pointers relative)");
    }

    private static byte[] Normalized(byte[] buffer, Format format)
    {
        byte[] image = buffer.AsSpan(Image, Size(format)).ToArray();
        ulong label = BitConverter.ToUInt64(buffer, LabelAt);
        ushort cs = BitConverter.ToUInt16(buffer, CsAt);
        ushort ds = BitConverter.ToUInt16(buffer, DsAt);
        ulong bufferAddress = BitConverter.ToUInt64(buffer, BufferAddressAt);
        if (Wide(format))
        {
            // Protected-mode 32-bit layout (SDM Vol. 1, Figure 8-9): FIP at 12, FCS at 16 (FOP in 16-26 of the dword at
            // 16), FDP at 20, FDS at 24.
            BitConverter.TryWriteBytes(image.AsSpan(12), (uint)(BitConverter.ToUInt32(image, 12) - (uint)label));
            BitConverter.TryWriteBytes(image.AsSpan(16), (ushort)(BitConverter.ToUInt16(image, 16) - cs));
            BitConverter.TryWriteBytes(image.AsSpan(20), (uint)(BitConverter.ToUInt32(image, 20) - (uint)bufferAddress));
            BitConverter.TryWriteBytes(image.AsSpan(24), (ushort)(BitConverter.ToUInt16(image, 24) - ds));
        }
        else
        {
            // Protected-mode 16-bit layout (Figure 8-11): FIP at 6, FCS at 8, FDP at 10, FDS at 12.
            BitConverter.TryWriteBytes(image.AsSpan(6), (ushort)(BitConverter.ToUInt16(image, 6) - (ushort)label));
            BitConverter.TryWriteBytes(image.AsSpan(8), (ushort)(BitConverter.ToUInt16(image, 8) - cs));
            BitConverter.TryWriteBytes(image.AsSpan(10), (ushort)(BitConverter.ToUInt16(image, 10) - (ushort)bufferAddress));
            BitConverter.TryWriteBytes(image.AsSpan(12), (ushort)(BitConverter.ToUInt16(image, 12) - ds));
        }

        return image;
    }

    private static string? CompareSpan(byte[] host, byte[] guest, int at, int length, string what) =>
        host.AsSpan(at, length).SequenceEqual(guest.AsSpan(at, length))
            ? null
            : $"{what}: host {Convert.ToHexString(host, at, length)} interpreter {Convert.ToHexString(guest, at, length)}";

    // Where the runner records each side's buffer address (not written by any body).
    private const int BufferAddressAt = 1000;

    /// <summary>Runs one body natively on a pinned, 64-byte aligned buffer and in the interpreter on guest memory.</summary>
    private sealed class BothSides : IDisposable
    {
        private readonly NativeCpu _cpu;
        private readonly NativeStub _stub;
        private readonly TestMachine _machine = new();
        private readonly ulong _halted;
        private readonly byte[] _pinned = GC.AllocateArray<byte>(BufferBytes + 64, pinned: true);
        private readonly int _offset;

        public BothSides(Action<Assembler> body)
        {
            if (NativeCpu.UnsupportedReason is { } reason)
            {
                Assert.Ignore(reason);
            }

            _cpu = new NativeCpu();
            _stub = _cpu.Compile64(body);
            nint address = Marshal.UnsafeAddrOfPinnedArrayElement(_pinned, 0);
            _offset = (int)((64 - (address & 63)) & 63);
            _halted = _machine.Load(64, Code, a =>
            {
                a.mov(rsi, GuestBuffer);
                body(a);
                a.hlt();
            });
        }

        private ulong HostBuffer => (ulong)(Marshal.UnsafeAddrOfPinnedArrayElement(_pinned, 0) + _offset);

        public (byte[] Host, byte[] Guest) Run(byte[] input)
        {
            input.CopyTo(_pinned.AsSpan(_offset));
            RegisterFile regs = default;
            regs.Rsi = HostBuffer;
            regs.Rflags = 2;
            _cpu.Run(_stub, ref regs);
            byte[] host = _pinned.AsSpan(_offset, BufferBytes).ToArray();
            BitConverter.TryWriteBytes(host.AsSpan(BufferAddressAt), HostBuffer);

            _machine.StartLong64(Code);
            _machine.Memory.Write(new GuestAddress(GuestBuffer), input);
            VcpuExit exit = _machine.Run(1000);
            Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), exit.ToString());
            Assert.That(_machine.Vcpu.GetGeneralRegisters().Rip, Is.EqualTo(_halted));
            byte[] guest = new byte[BufferBytes];
            _machine.Memory.Read(new GuestAddress(GuestBuffer), guest);
            BitConverter.TryWriteBytes(guest.AsSpan(BufferAddressAt), GuestBuffer);
            return (host, guest);
        }

        public void Dispose()
        {
            _cpu.Dispose();
            _machine.Dispose();
        }
    }
}
