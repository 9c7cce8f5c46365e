using System.Runtime.Intrinsics.X86;
using Hypervisor.Accel.Tcg.Tests.Guests;
using Hypervisor.Accel.Tcg.Tests.Native;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Memory;
using Hypervisor.Core.Registers;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Accel.Tcg.Tests.Differential;

/// <summary>
/// Runs instruction forms end to end (Iced decoding, operand plumbing, the interpreter, flags) on the tcg vCPU in
/// 64-bit mode and natively on the host CPU from the same registers, flags and scratch memory, and compares every
/// general register, the scratch memory and the flags the Intel SDM defines for the instruction. The undefined flags
/// masked for each form are written next to it (SDM Vol. 2, each instruction's "Flags Affected").
/// </summary>
[TestFixture]
public class InterpreterVsHostTests
{
    private const int CasesPerForm = 150;
    private const ulong GuestScratch = 0x6000;
    private const ulong Status = 0x8D5; // CF PF AF ZF SF OF
    private const ulong OF = 0x800, SF = 0x80, ZF = 0x40, AF = 0x10, PF = 0x4, CF = 0x1;

    private NativeCpu? _native;
    private TestMachine? _machine;

    /// <summary>An instruction form: its body, the flags the SDM leaves undefined for given inputs, and an input fix-up.</summary>
    internal sealed record Form(string Name, Action<Assembler> Body, Func<RegisterFile, ulong>? Undefined = null,
        RefAction? Fixup = null, Func<bool>? HostSupports = null, bool UsesScratch = false)
    {
        public override string ToString() => Name;
    }

    internal delegate void RefAction(ref RegisterFile r);

    [OneTimeSetUp]
    public void Setup()
    {
        if (NativeCpu.UnsupportedReason is { } reason)
        {
            Assert.Ignore("differential tests need the host CPU: " + reason);
        }

        _native = new NativeCpu();
        _machine = new TestMachine();
    }

    [OneTimeTearDown]
    public void TearDown()
    {
        _native?.Dispose();
        _machine?.Dispose();
    }

    private static ulong Const(ulong v) => v;

    private static ulong ShiftUndefined(RegisterFile r, int bits, bool rotate)
    {
        int count = (int)(r.Rcx & (bits == 64 ? 0x3FUL : 0x1FUL));
        if (count == 0)
        {
            return 0;
        }

        ulong u = count == 1 ? 0 : OF;
        return rotate ? u : u | AF;
    }

    private static IEnumerable<Form> Forms()
    {
        foreach (var (name, emit) in new (string, Action<Assembler>)[]
                 {
                     ("add", a => a.add(rax, rcx)), ("adc", a => a.adc(rax, rcx)), ("sub", a => a.sub(rax, rcx)),
                     ("sbb", a => a.sbb(rax, rcx)), ("cmp", a => a.cmp(rax, rcx)), ("add32", a => a.add(eax, ecx)),
                     ("sub16", a => a.sub(ax, cx)), ("adc8", a => a.adc(al, cl)), ("sbb8h", a => a.sbb(ah, bl)),
                     ("addimm8", a => a.add(rdx, -5)), ("subimm32", a => a.sub(edx, 0x1234_5678)),
                     ("cmpimm", a => a.cmp(bx, 0x7FFF)), ("neg", a => a.neg(rdx)), ("neg8", a => a.neg(dl)),
                     ("inc", a => a.inc(rsi)), ("dec32", a => a.dec(esi)), ("inc16", a => a.inc(si)),
                     ("dec8", a => a.dec(bh)), ("not32", a => a.not(edi)), ("xadd", a => a.xadd(rax, rcx)),
                     ("xadd8", a => a.xadd(al, cl)), ("cmpxchg", a => a.cmpxchg(rdx, rcx)),
                     ("cmpxchg32", a => a.cmpxchg(edx, ecx)),
                 })
        {
            yield return new Form(name, emit);
        }

        foreach (var (name, emit) in new (string, Action<Assembler>)[]
                 {
                     ("and", a => a.and(rax, rcx)), ("or32", a => a.or(eax, ecx)), ("xor16", a => a.xor(ax, cx)),
                     ("test8", a => a.test(al, cl)), ("andimm", a => a.and(rbx, -256)), ("testimm", a => a.test(edx, 0x8000_0001)),
                 })
        {
            yield return new Form(name, emit, _ => AF); // logic: AF undefined
        }

        foreach (var (name, emit, bits, rotate) in new (string, Action<Assembler>, int, bool)[]
                 {
                     ("shl", a => a.shl(rax, cl), 64, false), ("shr32", a => a.shr(eax, cl), 32, false),
                     ("sar16", a => a.sar(ax, cl), 16, false), ("sar8", a => a.sar(dl, cl), 8, false),
                     ("sal8", a => a.sal(bl, cl), 8, false),
                     ("rol", a => a.rol(rax, cl), 64, true), ("ror32", a => a.ror(eax, cl), 32, true),
                     ("rcl16", a => a.rcl(ax, cl), 16, true), ("rcr8", a => a.rcr(dl, cl), 8, true),
                     ("rcl64", a => a.rcl(rdx, cl), 64, true),
                 })
        {
            yield return new Form(name, emit, r => ShiftUndefined(r, bits, rotate));
        }

        yield return new Form("shl1", a => a.shl(rax, 1), _ => AF);
        yield return new Form("shr5", a => a.shr(edx, 5), _ => AF | OF);
        yield return new Form("shld", a => a.shld(rax, rdx, cl), r => ShiftUndefined(r, 64, false));
        yield return new Form("shrd32", a => a.shrd(eax, edx, cl), r => ShiftUndefined(r, 32, false));
        yield return new Form("shrdimm", a => a.shrd(rbx, rsi, 7), _ => AF | OF);

        // Multiply: SF ZF AF PF undefined (SDM Vol. 2, MUL/IMUL).
        ulong mulUndef = SF | ZF | AF | PF;
        yield return new Form("imul2", a => a.imul(rax, rcx), _ => mulUndef);
        yield return new Form("imul3", a => a.imul(edx, ecx, 0x12345), _ => mulUndef);
        yield return new Form("imul16", a => a.imul(si, di), _ => mulUndef);
        yield return new Form("mul", a => a.mul(rcx), _ => mulUndef);
        yield return new Form("mul8", a => a.mul(cl), _ => mulUndef);
        yield return new Form("imul1", a => a.imul(ecx), _ => mulUndef);

        // Divide: all flags undefined; inputs are fixed up so no #DE reaches the native stub.
        yield return new Form("div32", a => a.div(ecx), _ => Status, (ref RegisterFile r) =>
        {
            r.Rcx |= 1;
            r.Rdx = (uint)r.Rdx % (uint)r.Rcx;
        });
        yield return new Form("div64", a => a.div(rcx), _ => Status, (ref RegisterFile r) =>
        {
            r.Rcx |= 1;
            r.Rdx %= r.Rcx;
        });
        yield return new Form("idiv32", a => a.idiv(ecx), _ => Status, (ref RegisterFile r) =>
        {
            r.Rcx = (uint)((int)r.Rcx == 0 || (int)r.Rcx == -1 ? 7 : (int)r.Rcx);
            r.Rdx = (int)r.Rax < 0 ? 0xFFFF_FFFFUL : 0; // EDX:EAX = sign-extended EAX: the quotient always fits
        });
        yield return new Form("div8", a => a.div(bl), _ => Status, (ref RegisterFile r) =>
        {
            r.Rbx |= 1;
            r.Rax = (r.Rax & ~0xFF00UL) | (((r.Rax >> 8) & 0xFF) % (r.Rbx & 0xFF) << 8);
        });

        // Bit tests: CF defined, OF SF AF PF undefined, ZF unchanged.
        ulong btUndef = OF | SF | AF | PF;
        yield return new Form("bt", a => a.bt(rax, rcx), _ => btUndef);
        yield return new Form("bts32", a => a.bts(eax, ecx), _ => btUndef);
        yield return new Form("btr16", a => a.btr(ax, cx), _ => btUndef);
        yield return new Form("btcimm", a => a.btc(rdx, 45), _ => btUndef);
        yield return new Form("bsf", a => a.bsf(rax, rcx), _ => CF | OF | SF | AF | PF);
        yield return new Form("bsr32", a => a.bsr(eax, ecx), _ => CF | OF | SF | AF | PF);
        yield return new Form("popcnt", a => a.popcnt(rax, rcx), HostSupports: () => Popcnt.IsSupported);
        yield return new Form("lzcnt32", a => a.lzcnt(eax, ecx), _ => OF | SF | AF | PF, HostSupports: () => Lzcnt.IsSupported);
        yield return new Form("tzcnt", a => a.tzcnt(rax, rcx), _ => OF | SF | AF | PF, HostSupports: () => Bmi1.IsSupported);

        // Moves and conversions: no flags.
        foreach (var (name, emit) in new (string, Action<Assembler>)[]
                 {
                     ("cmovz", a => a.cmovz(rax, rcx)), ("cmovb32", a => a.cmovb(eax, ecx)),
                     ("cmovle16", a => a.cmovle(ax, cx)), ("cmovp", a => a.cmovp(rdx, rsi)), ("cmovg", a => a.cmovg(rdx, rsi)),
                     ("seta", a => a.seta(al)), ("setl", a => a.setl(bh)), ("seto", a => a.seto(sil)),
                     ("bswap", a => a.bswap(rax)), ("bswap32", a => a.bswap(ecx)),
                     ("movzx", a => a.movzx(eax, cl)), ("movzx16", a => a.movzx(rdx, si)), ("movsx", a => a.movsx(eax, bh)),
                     ("movsx16", a => a.movsx(ax, dl)), ("movsxd", a => a.movsxd(rax, ecx)),
                     ("lea", a => a.lea(rax, __[rcx + rdx * 4 + 0x12])), ("lea32", a => a.lea(eax, __[rcx + rdx * 8 - 3])),
                     ("lea16", a => a.lea(ax, __[rsi + rdi])), ("xchg", a => a.xchg(rax, rcx)), ("xchg32", a => a.xchg(ebx, edx)),
                     ("xchg8", a => a.xchg(al, ah)), ("mov32", a => a.mov(eax, ecx)), ("mov16", a => a.mov(ax, cx)),
                     ("mov8h", a => a.mov(ch, dl)), ("cbw", a => a.cbw()), ("cwde", a => a.cwde()), ("cdqe", a => a.cdqe()),
                     ("cwd", a => a.cwd()), ("cdq", a => a.cdq()), ("cqo", a => a.cqo()), ("lahf", a => a.lahf()),
                     ("sahf", a => a.sahf()), ("cmc", a => a.cmc()), ("clc", a => a.clc()), ("stc", a => a.stc()),
                     ("std", a => a.std()), ("cld", a => { a.std(); a.cld(); }),
                 })
        {
            yield return new Form(name, emit);
        }

        // BMI1/BMI2/ADX.
        yield return new Form("andn", a => a.andn(rax, rcx, rdx), _ => AF | PF, HostSupports: () => Bmi1.IsSupported);
        yield return new Form("bextr", a => a.bextr(eax, ecx, edx), _ => AF | SF | PF, HostSupports: () => Bmi1.IsSupported);
        yield return new Form("blsr", a => a.blsr(rax, rcx), _ => AF | PF, HostSupports: () => Bmi1.IsSupported);
        yield return new Form("blsi", a => a.blsi(eax, ecx), _ => AF | PF, HostSupports: () => Bmi1.IsSupported);
        yield return new Form("blsmsk", a => a.blsmsk(rax, rcx), _ => AF | PF, HostSupports: () => Bmi1.IsSupported);
        yield return new Form("bzhi", a => a.bzhi(rax, rcx, rdx), _ => AF | PF, HostSupports: () => Bmi2.IsSupported);
        yield return new Form("pdep", a => a.pdep(rax, rcx, rdx), HostSupports: () => Bmi2.IsSupported);
        yield return new Form("pext", a => a.pext(eax, ecx, edx), HostSupports: () => Bmi2.IsSupported);
        yield return new Form("rorx", a => a.rorx(rax, rcx, 13), HostSupports: () => Bmi2.IsSupported);
        yield return new Form("sarx", a => a.sarx(rax, rcx, rdx), HostSupports: () => Bmi2.IsSupported);
        yield return new Form("shlx32", a => a.shlx(eax, ecx, edx), HostSupports: () => Bmi2.IsSupported);
        yield return new Form("shrx", a => a.shrx(rax, rcx, rdx), HostSupports: () => Bmi2.IsSupported);
        yield return new Form("mulx", a => a.mulx(rax, rcx, rsi), HostSupports: () => Bmi2.IsSupported);
        yield return new Form("adcx", a => a.adcx(rax, rcx), HostSupports: () => (X86Base.CpuId(7, 0).Ebx & (1 << 19)) != 0);
        yield return new Form("adox", a => a.adox(eax, ecx), HostSupports: () => (X86Base.CpuId(7, 0).Ebx & (1 << 19)) != 0);

        // Flag producer followed by a flag consumer in the same block: the interpreter's fast path keeps the flags of
        // ADD/SUB/CMP/logic/INC/DEC lazily and evaluates SETcc/CMOVcc/Jcc from the operands, so every condition is
        // checked after every kind of producer and size (the final RFLAGS are compared too).
        var setcc = new (string, Action<Assembler>)[]
        {
            ("o", a => a.seto(dl)), ("no", a => a.setno(dl)), ("b", a => a.setb(dl)), ("ae", a => a.setae(dl)),
            ("e", a => a.sete(dl)), ("ne", a => a.setne(dl)), ("be", a => a.setbe(dl)), ("a", a => a.seta(dl)),
            ("s", a => a.sets(dl)), ("ns", a => a.setns(dl)), ("p", a => a.setp(dl)), ("np", a => a.setnp(dl)),
            ("l", a => a.setl(dl)), ("ge", a => a.setge(dl)), ("le", a => a.setle(dl)), ("g", a => a.setg(dl)),
        };
        foreach (var (producer, emit, undefined) in new (string, Action<Assembler>, ulong)[]
                 {
                     ("cmp", a => a.cmp(rax, rcx), 0), ("cmp32", a => a.cmp(eax, ecx), 0), ("cmp8", a => a.cmp(al, cl), 0),
                     ("cmp16imm", a => a.cmp(ax, 0x1234), 0), ("sub", a => a.sub(rax, rcx), 0), ("add32", a => a.add(eax, ecx), 0),
                     ("test", a => a.test(rax, rcx), AF), ("and16", a => a.and(ax, cx), AF), ("xor8", a => a.xor(al, cl), AF),
                     ("inc", a => a.inc(rsi), 0), ("dec32", a => a.dec(esi), 0),
                 })
        {
            foreach (var (cc, consume) in setcc)
            {
                yield return new Form($"lazy-{producer}-set{cc}", a => { emit(a); consume(a); }, _ => undefined);
            }
        }

        yield return new Form("lazy-cmp-cmovl", a => { a.cmp(rax, rcx); a.cmovl(rdx, rsi); });
        yield return new Form("lazy-dec-cmovbe", a => { a.stc(); a.dec(ecx); a.cmovbe(edx, esi); });
        yield return new Form("lazy-cmp-inc-setb", a => { a.cmp(rax, rcx); a.inc(rsi); a.setb(dl); a.adc(rdi, 0); });
        yield return new Form("lazy-add-shl", a => { a.add(rax, rcx); a.shl(rdx, 1); }, _ => AF);
        yield return new Form("lazy-sub-mem", a => { a.sub(__qword_ptr[rbp + 8], rcx); a.setg(dl); }, UsesScratch: true);
        yield return new Form("lazy-and-mem", a => { a.and(__dword_ptr[rbp + 4], ecx); a.sets(dl); }, _ => AF, UsesScratch: true);

        // Memory forms through RBP (the scratch block natively, 0x6000 in the guest).
        yield return new Form("add-mem", a => a.add(__qword_ptr[rbp + 8], rcx), UsesScratch: true);
        yield return new Form("shl-mem", a => a.shl(__dword_ptr[rbp + 4], cl), r => ShiftUndefined(r, 32, false), UsesScratch: true);
        yield return new Form("xadd-mem", a => a.xadd(__word_ptr[rbp + 2], ax), UsesScratch: true);
        yield return new Form("cmpxchg-mem", a => a.cmpxchg(__qword_ptr[rbp], rcx), UsesScratch: true);
        yield return new Form("bts-mem", a => a.bts(__qword_ptr[rbp + 16], rcx), _ => btUndef,
            (ref RegisterFile r) => r.Rcx = (r.Rcx & 0xFF) - 64, UsesScratch: true); // bit string offset -64..191
        yield return new Form("btc-mem32", a => a.btc(__dword_ptr[rbp + 32], edx), _ => btUndef,
            (ref RegisterFile r) => r.Rdx = (ulong)((long)(r.Rdx & 0xFF) - 128) & 0xFFFF_FFFF, UsesScratch: true);
        yield return new Form("movbe", a => a.movbe(rax, __qword_ptr[rbp + 8]), UsesScratch: true,
            HostSupports: () => (X86Base.CpuId(1, 0).Ecx & (1 << 22)) != 0);
        yield return new Form("cmpxchg8b", a => a.cmpxchg8b(__qword_ptr[rbp + 8]), UsesScratch: true);
        yield return new Form("cmpxchg16b", a => a.cmpxchg16b(__xmmword_ptr[rbp + 16]), UsesScratch: true,
            HostSupports: () => (X86Base.CpuId(1, 0).Ecx & (1 << 13)) != 0);
        // Locked read-modify-writes (one compare-and-swap of the aligned 8 bytes around the operand, TcgCpu.Atomic.cs;
        // the split, bit-string and 16-byte forms take the machine's atomic lock instead).
        yield return new Form("lock-add-mem", a => a.@lock.add(__qword_ptr[rbp + 8], rcx), UsesScratch: true);
        yield return new Form("lock-adc-mem16", a => a.@lock.adc(__word_ptr[rbp + 6], dx), UsesScratch: true);
        yield return new Form("lock-sbb-mem8", a => a.@lock.sbb(__byte_ptr[rbp + 3], cl), UsesScratch: true);
        yield return new Form("lock-split-sub", a => a.@lock.sub(__dword_ptr[rbp + 6], ecx), UsesScratch: true);
        yield return new Form("lock-inc-neg-not", a => { a.@lock.inc(__dword_ptr[rbp + 4]); a.@lock.neg(__word_ptr[rbp + 2]); a.@lock.not(__byte_ptr[rbp + 1]); },
            UsesScratch: true);
        yield return new Form("lock-xadd-mem", a => a.@lock.xadd(__dword_ptr[rbp + 12], eax), UsesScratch: true);
        yield return new Form("lock-cmpxchg-mem", a => a.@lock.cmpxchg(__qword_ptr[rbp], rcx), UsesScratch: true);
        yield return new Form("lock-cmpxchg-mem8", a => a.@lock.cmpxchg(__byte_ptr[rbp + 5], dl), UsesScratch: true);
        yield return new Form("xchg-mem", a => a.xchg(__word_ptr[rbp + 10], si), UsesScratch: true);
        yield return new Form("lock-bts-mem", a => a.@lock.bts(__qword_ptr[rbp + 16], rcx), _ => btUndef,
            (ref RegisterFile r) => r.Rcx = (r.Rcx & 0xFF) - 64, UsesScratch: true);
        yield return new Form("lock-btr-mem16", a => a.@lock.btr(__word_ptr[rbp + 32], dx), _ => btUndef,
            (ref RegisterFile r) => r.Rdx = (ulong)((long)(r.Rdx & 0x7F) - 64) & 0xFFFF, UsesScratch: true);
        yield return new Form("lock-btc-imm", a => a.@lock.btc(__dword_ptr[rbp + 20], 37), _ => btUndef, UsesScratch: true);
        yield return new Form("lock-cmpxchg8b", a => a.@lock.cmpxchg8b(__qword_ptr[rbp + 8]), UsesScratch: true);
        yield return new Form("lock-cmpxchg16b", a => a.@lock.cmpxchg16b(__xmmword_ptr[rbp + 16]), UsesScratch: true,
            HostSupports: () => (X86Base.CpuId(1, 0).Ecx & (1 << 13)) != 0);
        yield return new Form("movs-mem", a => { a.mov(rsi, rbp); a.lea(rdi, __[rbp + 32]); a.mov(ecx, 5); a.rep.movsb(); a.sub(rsi, rbp); a.sub(rdi, rbp); },
            UsesScratch: true, Fixup: (ref RegisterFile r) => r.Rflags &= ~0x400UL);
        yield return new Form("scas-mem", a => { a.mov(rdi, rbp); a.mov(ecx, 40); a.repne.scasb(); a.sub(rdi, rbp); },
            UsesScratch: true, Fixup: (ref RegisterFile r) => r.Rflags &= ~0x400UL);
    }

    private static readonly Dictionary<string, Form> s_forms = Forms().ToDictionary(f => f.Name);

    public static IEnumerable<string> FormNames() => s_forms.Keys;

    [TestCaseSource(nameof(FormNames))]
    public void MatchesHost(string name)
    {
        Form form = s_forms[name];
        if (form.HostSupports is { } supported && !supported())
        {
            Assert.Ignore($"the host CPU lacks the extension {form.Name} needs");
        }

        NativeCpu native = _native!;
        TestMachine m = _machine!;
        NativeStub stub = native.Compile64(form.Body);
        m.Load(64, 0x8000, a =>
        {
            form.Body(a);
            a.hlt();
        });

        var random = new Random(form.Name.GetHashCode(StringComparison.Ordinal) ^ 0x5EED);
        ulong[] edges = [0, 1, 2, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF,
            0x7FFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000, ulong.MaxValue, 31, 32, 63, 64];
        for (int c = 0; c < CasesPerForm; c++)
        {
            var input = new RegisterFile();
            for (int i = 0; i < 16; i++)
            {
                input[i] = random.Next(3) == 0 ? edges[random.Next(edges.Length)] : (ulong)random.NextInt64() ^ ((ulong)random.Next() << 63);
            }

            input.Rsp = 0;
            input.Rflags = (ulong)random.Next() & NativeCpu.InputFlagsMask & ~0x400UL;
            Span<byte> scratch = new byte[64];
            random.NextBytes(scratch);
            form.Fixup?.Invoke(ref input);
            if (form.UsesScratch && random.Next(2) == 0)
            {
                // Make compare-and-exchange forms succeed half of the time.
                BitConverter.TryWriteBytes(scratch[..8], input.Rax);
                BitConverter.TryWriteBytes(scratch.Slice(8, 8), input.Rax);
                BitConverter.TryWriteBytes(scratch.Slice(16, 8), input.Rax);
                BitConverter.TryWriteBytes(scratch.Slice(24, 8), input.Rdx);
            }

            // Native run.
            RegisterFile expected = input;
            scratch.CopyTo(expected.Scratch);
            if (form.UsesScratch)
            {
                expected.Rbp = native.ScratchAddress;
            }

            native.Run(stub, ref expected);

            // tcg run.
            m.StartLong64(0x8000);
            GeneralRegisters g = default;
            for (int i = 0; i < 16; i++)
            {
                g[i] = input[i];
            }

            g.Rsp = 0x7_F000;
            if (form.UsesScratch)
            {
                g.Rbp = GuestScratch;
            }

            g.Rip = 0x8000;
            g.Rflags = input.Rflags | 2;
            m.Vcpu.SetGeneralRegisters(g);
            m.Memory.Write(new GuestAddress(GuestScratch), scratch);
            VcpuExit exit = m.Run(1000);
            Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), $"{form.Name} case {c}: {exit.Detail}");
            GeneralRegisters actual = m.Vcpu.GetGeneralRegisters();

            string inputs = string.Join(" ", Enumerable.Range(0, 16).Where(i => i != 4).Select(i => $"r{i}={input[i]:X}")) +
                            $" fl={input.Rflags:X}";
            for (int i = 0; i < 16; i++)
            {
                if (i == 4 || (form.UsesScratch && i == 5))
                {
                    continue;
                }

                Assert.That(actual[i], Is.EqualTo(expected[i]), $"{form.Name} case {c}: register {i}; inputs {inputs}");
            }

            ulong undefined = form.Undefined?.Invoke(input) ?? 0;
            ulong mask = (Status | 0x400) & ~undefined;
            Assert.That(actual.Rflags & mask, Is.EqualTo(expected.Rflags & mask),
                $"{form.Name} case {c}: flags (undefined mask 0x{undefined:X}); inputs {inputs}");
            if (form.UsesScratch)
            {
                byte[] guest = new byte[64];
                m.Memory.Read(new GuestAddress(GuestScratch), guest);
                byte[] host = new byte[64];
                ((ReadOnlySpan<byte>)expected.Scratch).CopyTo(host);
                Assert.That(guest, Is.EqualTo(host), $"{form.Name} case {c}: scratch memory; inputs {inputs}");
            }
        }
    }
}
