using Hypervisor.Accel.Tcg.Fpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Accel.Tcg.Tests.Fpu;

/// <summary>
/// The x87 stack model against the host: seeded random programs of loads, stores, exchanges, arithmetic, comparisons
/// and stack manipulation (including overflow and underflow, all exceptions masked), run natively and in
/// <see cref="X87State"/>, then the FXSAVE, FNSTENV and FNSAVE images compared.
/// Masked from the comparison, by rule: FOP, FIP, FCS, FDP and FDS (they hold host addresses, and AMD parts store
/// them in FXSAVE only when an exception is pending); MXCSR_MASK (a property of the host part); the reserved bytes
/// 10-15 of each FXSAVE register slot and bytes 160 and up (not x87 state).
/// </summary>
public sealed class X87StateTests : NativeFixture
{
    private delegate void StateOp(ref X87State s);

    // C0 (0x100), C2 (0x400), C3 (0x4000) and C1 (0x200) that an instruction leaves undefined per its SDM "FPU Flags Affected".
    private const ushort C023 = 0x4500, AllCodes = 0x4700;

    private sealed record Op(string Text, Action<Assembler> Emit, StateOp Apply, ushort Undefined = C023);

    private static Op RandomOp(Random r)
    {
        int i = r.Next(8);
        int k = r.Next(16);
        var arith = (X87ArithmeticOp)r.Next(6);
        switch (r.Next(22))
        {
            case 0:
            case 1:
            case 2:
                return new Op($"fld v{k}", a => a.fld(__tword_ptr[rdi + NativeFloat.Values + 16 * k]), (ref X87State s) => X87Instructions.Load(ref s, Value(k)));
            case 3:
                return new Op($"fld st{i}", a => a.fld(GetSt(i)), (ref X87State s) => X87Instructions.LoadRegister(ref s, i));
            case 4:
                return new Op($"fstp st{i}", a => a.fstp(GetSt(i)), (ref X87State s) => X87Instructions.StoreRegister(ref s, i, true));
            case 5:
                return new Op($"fst st{i}", a => a.fst(GetSt(i)), (ref X87State s) => X87Instructions.StoreRegister(ref s, i, false));
            case 6:
                return new Op($"fxch st{i}", a => a.fxch(st0, GetSt(i)), (ref X87State s) => X87Instructions.Exchange(ref s, i));
            case 7:
            case 8:
                return new Op($"{arith} st0,st{i}", a => EmitArith(a, arith, st0, GetSt(i), false), (ref X87State s) => X87Instructions.Arithmetic(ref s, arith, 0, i, false));
            case 9:
                return new Op($"{arith} st{i},st0", a => EmitArith(a, arith, GetSt(i), st0, false), (ref X87State s) => X87Instructions.Arithmetic(ref s, Reverse(arith), i, 0, false));
            case 10:
                return new Op($"{arith}p st{i},st0", a => EmitArith(a, arith, GetSt(i), st0, true), (ref X87State s) => X87Instructions.Arithmetic(ref s, Reverse(arith), i, 0, true));
            case 11:
                return new Op($"fcom st{i}", a => a.fcom(st0, GetSt(i)), (ref X87State s) => X87Instructions.Compare(ref s, null, i, false, false, 0, out _), 0);
            case 12:
                return new Op($"fucomp st{i}", a => a.fucomp(st0, GetSt(i)), (ref X87State s) => X87Instructions.Compare(ref s, null, i, true, false, 1, out _), 0);
            case 13:
                return new Op("fcompp", a => a.fcompp(), (ref X87State s) => X87Instructions.Compare(ref s, null, 1, false, false, 2, out _), 0);
            case 14:
                return new Op("fchs", a => a.fchs(), (ref X87State s) => X87Instructions.SignOp(ref s, false));
            case 15:
                return new Op("fabs", a => a.fabs(), (ref X87State s) => X87Instructions.SignOp(ref s, true));
            case 16:
                return new Op("fsqrt", a => a.fsqrt(), (ref X87State s) => X87Instructions.Unary(ref s, true));
            case 17:
                return new Op("fxam", a => a.fxam(), (ref X87State s) => X87Instructions.Examine(ref s), 0);
            case 18:
                return new Op("fincstp", a => a.fincstp(), (ref X87State s) => s.Rotate(1));
            case 19:
                return new Op("fdecstp", a => a.fdecstp(), (ref X87State s) => s.Rotate(-1));
            case 20:
                return new Op($"ffree st{i}", a => a.ffree(GetSt(i)), (ref X87State s) => s.Free(i), AllCodes);
            default:
                return new Op("frndint", a => a.frndint(), (ref X87State s) => X87Instructions.Unary(ref s, false));
        }
    }

    // In FADD ST(i),ST(0) form the destination is ST(i): FSUB ST(i),ST(0) computes ST(i) = ST(i) - ST(0)... except that
    // Intel's mnemonics for the reversed-register forms are swapped in the assembler (the "AT&T fsub bug" is in gas, not
    // here): Iced encodes fsub st(i),st0 as DC E8+i, which the SDM defines as ST(i) = ST(i) - ST(0).
    private static X87ArithmeticOp Reverse(X87ArithmeticOp op) => op;

    private static void EmitArith(Assembler a, X87ArithmeticOp op, AssemblerRegisterST d, AssemblerRegisterST s, bool pop)
    {
        switch (op)
        {
            case X87ArithmeticOp.Add: if (pop) a.faddp(d, s); else a.fadd(d, s); break;
            case X87ArithmeticOp.Mul: if (pop) a.fmulp(d, s); else a.fmul(d, s); break;
            case X87ArithmeticOp.Sub: if (pop) a.fsubp(d, s); else a.fsub(d, s); break;
            case X87ArithmeticOp.SubReverse: if (pop) a.fsubrp(d, s); else a.fsubr(d, s); break;
            case X87ArithmeticOp.Div: if (pop) a.fdivp(d, s); else a.fdiv(d, s); break;
            default: if (pop) a.fdivrp(d, s); else a.fdivr(d, s); break;
        }
    }

    private static AssemblerRegisterST GetSt(int i) => i switch { 0 => st0, 1 => st1, 2 => st2, 3 => st3, 4 => st4, 5 => st5, 6 => st6, _ => st7 };

    private static readonly ExtendedFloat[] Table = X87Values.Edges.Take(16).ToArray();

    private static ExtendedFloat Value(int k) => Table[k];

    [Test]
    public void RandomProgramsMatchSaveImages()
    {
        var m = new Mismatches();
        var r = new Random(2024);
        for (int prog = 0; prog < 1500; prog++)
        {
            ushort fcw = (ushort)(0x7F | (r.Next(4) << 10) | (new[] { 0, 2, 3 }[r.Next(3)] << 8));
            int length = r.Next(1, 24);
            var ops = Enumerable.Range(0, length).Select(_ => RandomOp(r)).ToList();
            nint stub = Native.Stub($"prog{prog}", a =>
            {
                // FNINIT keeps register contents: zero all eight so that empty registers match the model's.
                for (int z = 0; z < 8; z++)
                    a.fldz();
                a.fninit();
                a.fldcw(__word_ptr[rdi + NativeFloat.FcwIn]);
                foreach (var op in ops)
                    op.Emit(a);
                a.fxsave(__[rdi + NativeFloat.Save]);
                a.fnstenv(__[rdi + NativeFloat.Env]);
                a.fldcw(__word_ptr[rdi + NativeFloat.FcwIn]); // FNSTENV masked all exceptions; restore FCW for FNSAVE
                a.fnsave(__[rdi + NativeFloat.SaveLegacy]);
            });
            for (int k = 0; k < Table.Length; k++)
                Native.SetExtended(NativeFloat.Values + 16 * k, Table[k]);
            Native.Bytes(NativeFloat.Save, 512).Fill(0xCC);
            Native.FcwInValue = fcw;
            Native.MxcsrInValue = 0x1F80;
            Native.Run(stub);

            var s = X87State.Initial();
            s.LoadControlWord(fcw);
            ushort undefined = 0;
            foreach (var op in ops)
            {
                op.Apply(ref s);
                undefined = op.Undefined; // every op here defines or undefines all four condition bits
            }
            // A bit an instruction leaves undefined stays undefined until an instruction defines it; mask those in FSW.
            ushort fswMask = (ushort)~undefined;

            Span<byte> fx = new byte[512];
            fx.Fill(0xCC);
            s.WriteFxsave(fx, 0x1F80, 0, rexW: true);
            Span<byte> env = new byte[28];
            s.WriteEnvironment(env, X87EnvironmentFormat.Protected32);
            Span<byte> save = new byte[108];
            s.WriteSave(save, X87EnvironmentFormat.Protected32);

            var hostFx = Native.Bytes(NativeFloat.Save, 512);
            var hostEnv = Native.Bytes(NativeFloat.Env, 28);
            var hostSave = Native.Bytes(NativeFloat.SaveLegacy, 108);
            MaskStatus(hostFx, fx, 2, fswMask);
            MaskStatus(hostEnv, env, 4, fswMask);
            MaskStatus(hostSave, save, 4, fswMask);
            string diff = Compare("fxsave", hostFx, fx, FxsaveCompared) + Compare("fnstenv", hostEnv, env, EnvCompared) + Compare("fnsave", hostSave, save, SaveCompared);
            string program = string.Join("; ", ops.Select(o => o.Text));
            m.Check(diff.Length == 0, () => $"fcw={fcw:X4} [{program}]: {diff}");
        }
        m.AssertNone();
    }

    private static void MaskStatus(Span<byte> host, Span<byte> ours, int at, ushort mask)
    {
        host[at] &= (byte)mask;
        host[at + 1] &= (byte)(mask >> 8);
        ours[at] &= (byte)mask;
        ours[at + 1] &= (byte)(mask >> 8);
    }

    private static bool FxsaveCompared(int offset) => offset < 6 || (offset >= 24 && offset < 28) || (offset >= 32 && offset < 160 && (offset - 32) % 16 < 10);
    private static bool EnvCompared(int offset) => offset < 12;
    private static bool SaveCompared(int offset) => offset < 12 || offset >= 28;

    private static string Compare(string what, ReadOnlySpan<byte> host, ReadOnlySpan<byte> ours, Func<int, bool> compared)
    {
        for (int i = 0; i < ours.Length; i++)
        {
            if (compared(i) && host[i] != ours[i])
                return $"{what} differs at byte {i}: host {Convert.ToHexString(host[..Math.Min(host.Length, 160)])} ours {Convert.ToHexString(ours[..Math.Min(ours.Length, 160)])}. ";
        }
        return "";
    }

    [Test]
    public void FxrstorAndFrstorRoundTripTheModel()
    {
        // Our images must load back into the same state (a guest's task switch relies on it).
        var r = new Random(5);
        for (int n = 0; n < 200; n++)
        {
            var s = X87State.Initial();
            s.LoadControlWord((ushort)(0x40 | r.Next(0x1000) & 0xF3F));
            int pushes = r.Next(0, 10);
            for (int i = 0; i < pushes; i++)
                X87Instructions.Load(ref s, X87Values.Random(r));
            s.Fip = (ulong)r.NextInt64() & 0xFFFF_FFFF;
            s.Fdp = (ulong)r.NextInt64() & 0xFFFF_FFFF;
            s.Fop = (ushort)r.Next(0x800);
            s.Fcs = (ushort)r.Next(0x10000);
            s.Fds = (ushort)r.Next(0x10000);
            Span<byte> fx = new byte[512];
            s.WriteFxsave(fx, 0x1F80, 0xFFFF, rexW: false);
            var back = default(X87State);
            back.ReadFxrstor(fx, rexW: false);
            Assert.That((back.Fcw, back.Fsw, back.Ftw, back.Fip, back.Fdp, back.Fop, back.Fcs, back.Fds), Is.EqualTo((s.Fcw, s.Fsw, s.Ftw, s.Fip, s.Fdp, s.Fop, s.Fcs, s.Fds)));
            for (int i = 0; i < 8; i++)
                Assert.That(back.St(i), Is.EqualTo(s.St(i)));
            foreach (var format in Enum.GetValues<X87EnvironmentFormat>())
            {
                Span<byte> img = new byte[108];
                s.WriteSave(img, format);
                var b2 = default(X87State);
                b2.ReadSave(img, format);
                ulong ipMask = format switch { X87EnvironmentFormat.Real16 => 0xFFFFF, X87EnvironmentFormat.Protected16 => 0xFFFF, _ => 0xFFFF_FFFF };
                Assert.That((b2.Fcw, b2.Fsw, b2.Ftw, b2.Fip, b2.Fdp), Is.EqualTo((s.Fcw, s.Fsw, s.Ftw, s.Fip & ipMask, s.Fdp & ipMask)), format.ToString());
                for (int i = 0; i < 8; i++)
                    Assert.That(b2.St(i), Is.EqualTo(s.St(i)), format.ToString());
            }
        }
    }

    [Test]
    public void CoreRegisterFileRoundTrip()
    {
        // The core register file carries the FXSAVE view; copying out and back must reproduce the full tag word.
        var r = new Random(11);
        for (int n = 0; n < 100; n++)
        {
            var s = X87State.Initial();
            int pushes = r.Next(0, 9);
            for (int i = 0; i < pushes; i++)
                X87Instructions.Load(ref s, r.Next(3) == 0 ? X87Values.Edges[r.Next(X87Values.Edges.Length)] : X87Values.Random(r));
            var regs = new Hypervisor.Core.Registers.FpuRegisters();
            s.CopyTo(ref regs);
            var back = default(X87State);
            back.CopyFrom(regs);
            Assert.That((back.Fsw, back.Ftw, back.Fcw), Is.EqualTo((s.Fsw, s.Ftw, s.Fcw)));
            for (int i = 0; i < 8; i++)
                Assert.That(back.St(i), Is.EqualTo(s.St(i)));
        }
    }
}
