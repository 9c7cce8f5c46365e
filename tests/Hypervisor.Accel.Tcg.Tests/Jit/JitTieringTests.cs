using Hypervisor.Accel.Tcg.Decoding;
using Hypervisor.Accel.Tcg.Jit;
using Hypervisor.Accel.Tcg.Tests.Guests;
using Hypervisor.Core.Accelerators;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Registers;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Accel.Tcg.Tests.Jit;

/// <summary>
/// Tiering of the tcg JIT: on by default (interpret first, translate what is hot), <c>jit=off</c> forcing the
/// interpreter, the threshold counted in retired instructions although untranslated blocks are looked up only once per
/// batch of executions, and the cost model that declines regions not worth compiling. Guest results are checked
/// against the same computation on the host.
/// </summary>
[TestFixture]
public sealed class JitTieringTests
{
    private const ulong CodeBase = 0x1_0000;

    /// <summary>r9 = sum over i in [1, n] of (i * i) xor (i >> 3), in a loop of one block: 7 instructions per iteration.</summary>
    private static void SumLoop(Assembler a, int n)
    {
        Label loop = a.CreateLabel();
        a.xor(r9d, r9d);
        a.mov(ecx, n);
        a.Label(ref loop);
        a.mov(eax, ecx);
        a.imul(eax, ecx);
        a.mov(edx, ecx);
        a.shr(edx, 3);
        a.xor(eax, edx);
        a.add(r9, rax);
        a.dec(ecx);
        a.jnz(loop);
        a.hlt();
    }

    private const int LoopInstructions = 8; // the 7 above plus the JNZ

    private static ulong HostSum(int n)
    {
        ulong sum = 0;
        for (uint i = (uint)n; i != 0; i--)
        {
            sum += (i * i) ^ (i >> 3);
        }

        return sum;
    }

    private static AcceleratorOptions Options(params (string Key, string Value)[] options) =>
        new([.. options.Select(o => new KeyValuePair<string, string>(o.Key, o.Value))]);

    [Test]
    public void TheJitIsOnByDefaultAndTranslatesAHotLoop()
    {
        const int N = 400_000; // 3.2 M instructions: the loop passes the default threshold (200,000) early
        using var m = new TestMachine(); // no options: the defaults of TcgAccelerator
        m.StartLong64(CodeBase);
        m.Load(64, CodeBase, a => SumLoop(a, N));

        // Run a part, let the background compiler finish what it queued, then run to the end in the translation.
        VcpuExit first = m.Run(1_000_000);
        Assert.That(m.Cpu.Jit, Is.Not.Null, "tcg without options runs the tiered JIT");
        Assert.That(m.Cpu.Jit!.WaitIdle(TimeSpan.FromSeconds(30)), Is.True, "background compiler finished");
        VcpuExit exit = first.Reason == VcpuExitReason.Halted ? first : m.Run(100_000_000);
        GeneralRegisters g = m.Vcpu.GetGeneralRegisters();
        JitStatistics s = m.Cpu.Jit.Statistics;
        Assert.Multiple(() =>
        {
            Assert.That(m.Cpu.Jit.Options.Threshold, Is.EqualTo(JitOptions.DefaultThreshold));
            Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), exit.ToString());
            Assert.That(g.R9, Is.EqualTo(HostSum(N)));
            Assert.That(s.Translations, Is.EqualTo(1), "one region: the loop");
            Assert.That(s.JitInstructions, Is.GreaterThan((long)N * LoopInstructions / 2), "most of the loop ran translated");
        });
    }

    [Test]
    public void JitOffForcesTheInterpreter()
    {
        const int N = 400_000;
        using var m = new TestMachine(options: Options(("jit", "off")));
        m.StartLong64(CodeBase);
        m.Load(64, CodeBase, a => SumLoop(a, N));
        VcpuExit exit = m.Run(100_000_000);
        Assert.Multiple(() =>
        {
            Assert.That(m.Cpu.Jit, Is.Null);
            Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), exit.ToString());
            Assert.That(m.Vcpu.GetGeneralRegisters().R9, Is.EqualTo(HostSum(N)));
            Assert.That(m.Vcpu.Statistics.Details, Is.Null, "no JIT counters");
        });
    }

    /// <summary>
    /// The loop block is looked up only once per batch of executions, but each lookup counts the whole batch: a loop
    /// that retires somewhat less than the threshold stays interpreted, one that retires somewhat more is translated
    /// (inline here, so the moment is deterministic), and both compute the host's result.
    /// </summary>
    [TestCase(0.8, false)]
    [TestCase(1.25, true)]
    public void BatchedLookupsStillCountEveryExecution(double fraction, bool translated)
    {
        const int Threshold = 100_000;
        int n = (int)(Threshold * fraction / LoopInstructions);
        using var m = new TestMachine(options: Options(("jit", "on"), ("jit-threshold", Threshold.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            ("jit-background", "off")));
        m.StartLong64(CodeBase);
        m.Load(64, CodeBase, a => SumLoop(a, n));
        VcpuExit exit = m.Run(100_000_000);
        JitStatistics s = m.Cpu.Jit!.Statistics;
        Assert.Multiple(() =>
        {
            Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), exit.ToString());
            Assert.That(m.Vcpu.GetGeneralRegisters().R9, Is.EqualTo(HostSum(n)));
            Assert.That(s.Translations, Is.EqualTo(translated ? 1 : 0));
            Assert.That(s.JitInstructions, translated ? Is.GreaterThan(0) : Is.Zero);
        });
    }

    /// <summary>
    /// A subroutine of one RET called from a hot loop on another page (like the kernel's return thunk): hot, but a
    /// region of one instruction per entry is declined, while the loop calling it is translated.
    /// </summary>
    [Test]
    public void AShortRegionWithoutALoopIsDeclined()
    {
        const int N = 100_000;
        const ulong Thunk = CodeBase + 0x2000;
        using var m = new TestMachine(options: Options(("jit", "on"), ("jit-threshold", "10000"), ("jit-background", "off")));
        m.StartLong64(CodeBase);
        m.Load(64, Thunk, a => a.ret());
        m.Load(64, CodeBase, a =>
        {
            Label loop = a.CreateLabel();
            a.xor(r9d, r9d);
            a.mov(ecx, N);
            a.mov(rbx, Thunk);
            a.Label(ref loop);
            a.add(r9, rcx);
            a.call(rbx);
            a.dec(ecx);
            a.jnz(loop);
            a.hlt();
        });
        VcpuExit exit = m.Run(100_000_000);
        JitStatistics s = m.Cpu.Jit!.Statistics;
        Assert.Multiple(() =>
        {
            Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Halted), exit.ToString());
            Assert.That(m.Vcpu.GetGeneralRegisters().R9, Is.EqualTo((ulong)N * (N + 1) / 2));
            Assert.That(s.Translations, Is.EqualTo(1), "the loop, not the one-instruction subroutine");
            Assert.That(s.JitInstructions, Is.GreaterThan(0));
        });
    }

    [Test]
    public void CostModelDeclinesRegionsOfInterpreterCallsAndShortStraightCode()
    {
        Assert.Multiple(() =>
        {
            // A loop of native instructions: worth it however short.
            Assert.That(Worth(a =>
            {
                Label top = a.CreateLabel();
                a.Label(ref top);
                a.dec(ecx);
                a.jnz(top);
            }), Is.True);

            // Straight native code: only from MinStraightInstructions on.
            Assert.That(Worth(a => Repeat(JitEngine.MinStraightInstructions - 1, () => a.add(eax, ecx))), Is.False);
            Assert.That(Worth(a => Repeat(JitEngine.MinStraightInstructions, () => a.add(eax, ecx))), Is.True);

            // A loop mostly of instructions the translator leaves to the interpreter (SSE): declined.
            Assert.That(Worth(a =>
            {
                Label top = a.CreateLabel();
                a.Label(ref top);
                Repeat(6, () => a.pxor(xmm0, xmm1));
                a.dec(ecx);
                a.jnz(top);
            }), Is.False);
        });

        static void Repeat(int n, Action emit)
        {
            for (int i = 0; i < n; i++)
            {
                emit();
            }
        }
    }

    /// <summary>Whether the cost model translates the 64-bit block <paramref name="emit"/> assembles (one block, ending at its branch or at the end).</summary>
    private static bool Worth(Action<Assembler> emit)
    {
        byte[] code = TestMachine.Assemble(64, CodeBase, emit);
        var block = new DecodedBlock { Rip = CodeBase, PhysicalAddress = CodeBase, Page = CodeBase >> 12, Bitness = 64, Cached = true };
        Decoder d = Decoder.Create(64, new ByteArrayCodeReader(code), CodeBase);
        while (d.IP < CodeBase + (ulong)code.Length)
        {
            d.Decode(out block.Instructions[block.Count++]);
        }

        return JitEngine.WorthTranslating([block], 64);
    }
}
