using System.Runtime.Versioning;
using System.Text;
using Hypervisor.Core;
using Hypervisor.Core.Accelerators;
using Hypervisor.Core.Io;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Memory;
using Hypervisor.Core.Registers;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Accel.Kvm.Tests;

/// <summary>The accelerator's answers where KVM cannot run; these run everywhere.</summary>
[TestFixture]
public sealed class KvmAcceleratorProbeTests
{
    [Test]
    public void SelectingKvmWithoutTheDeviceFailsWithTheProbeReason()
    {
        var selector = new AcceleratorSelector([new KvmAccelerator("/nonexistent/kvm")]);
        using var builder = new VirtualMachineBuilder();
        GuestMemoryLayout.AddRam(builder.Memory, 2 << 20);
        var e = Assert.Throws<AcceleratorUnavailableException>(() => builder.Build(selector, selector.Parse("kvm")));
        Assert.That(e!.Attempts.Select(a => a.Reason), Has.Some.Contain(OperatingSystem.IsLinux() ? "/nonexistent/kvm does not exist" : "Linux"));
    }

    [Test]
    public void ProbeMapsCapabilitiesOrReason()
    {
        var accelerator = new KvmAccelerator();
        AcceleratorProbeResult result = accelerator.Probe();
        KvmProbeResult raw = KvmProbe.Probe();
        Assert.Multiple(() =>
        {
            Assert.That(accelerator.Name, Is.EqualTo("kvm"));
            Assert.That(result.IsAvailable, Is.EqualTo(raw.IsAvailable));
            Assert.That(result.Reason, Is.EqualTo(raw.Reason));
            Assert.That(result.Capabilities.HardwareAccelerated, Is.EqualTo(raw.IsAvailable));
            Assert.That(result.Capabilities.MaxVcpus, Is.EqualTo(raw.Capabilities?.MaxVcpus ?? 0));
        });
    }

    [Test]
    public void UnknownOptionIsAConfigurationError()
    {
        var accelerator = new KvmAccelerator();
        using var builder = new VirtualMachineBuilder();
        var context = new VmCreationContext(builder.Memory, builder.Ports, null,
            new AcceleratorOptions([new KeyValuePair<string, string>("jit", "off")]), Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance);
        Assert.That(() => accelerator.CreateVm(context), Throws.TypeOf<HypervisorConfigurationException>().With.Message.Contains("no option 'jit'"));
    }
}

/// <summary>The adapter through the core's machine, on the real kernel.</summary>
[TestFixture]
[Category("Kvm")]
[NonParallelizable]
[SupportedOSPlatform("linux")]
public sealed class KvmAcceleratorTests
{
    private const ushort DebugPort = 0xE9;
    private const int FirmwareSize = 0x10000;

    [SetUp]
    public void RequireKvm() => KvmHost.RequireKvm();

    /// <summary>Collects bytes written to a port; optionally reacts to one.</summary>
    private sealed class CapturePort(Action<byte>? onWrite = null) : IPortDevice
    {
        private readonly StringBuilder _text = new();

        public string Text
        {
            get
            {
                lock (_text)
                {
                    return _text.ToString();
                }
            }
        }

        public uint Read(ushort offset, int size) => 0x42;

        public void Write(ushort offset, int size, uint value)
        {
            lock (_text)
            {
                _text.Append((char)(byte)value);
            }

            onWrite?.Invoke((byte)value);
        }
    }

    /// <summary>An interrupt controller output with one latched vector.</summary>
    private sealed class OneShotInterrupt : IInterruptSource
    {
        private int _vector = -1;

        public bool HasPendingInterrupt => Volatile.Read(ref _vector) >= 0;

        public int AcknowledgeInterrupt() => Interlocked.Exchange(ref _vector, -1);

        public void Raise(byte vector) => Volatile.Write(ref _vector, vector);
    }

    private sealed class RecordingMmio : IMmioDevice
    {
        public List<(ulong Offset, int Size, ulong Value)> Writes { get; } = [];

        public ulong Read(ulong offset, int size) => 0xA0 + offset;

        public void Write(ulong offset, int size, ulong value) => Writes.Add((offset, size, value));
    }

    /// <summary>A 64 KiB firmware image: <paramref name="main"/> at its start, a jump to it at the reset vector.</summary>
    private static byte[] Firmware(Action<Assembler> main, Action<Assembler>? handler = null, ushort handlerOffset = 0x8000)
    {
        var image = new byte[FirmwareSize];
        Guest.Assemble16(0, main).CopyTo(image, 0);
        if (handler is not null)
        {
            Guest.Assemble16(handlerOffset, handler).CopyTo(image, handlerOffset);
        }

        // JMP NEAR rel16 from 0xFFF0 to offset 0: 0xFFF3 + 0x000D wraps to 0 within CS (Iced would pick the short form).
        image[0xFFF0] = 0xE9;
        image[0xFFF1] = 0x0D;
        image[0xFFF2] = 0x00;
        return image;
    }

    private static VirtualMachine Build(byte[] firmware, CapturePort port, IInterruptSource? interrupts = null,
        Action<VirtualMachineBuilder>? configure = null)
    {
        var selector = new AcceleratorSelector([new KvmAccelerator()]);
        using var builder = new VirtualMachineBuilder();
        GuestMemoryLayout.AddRam(builder.Memory, 2 << 20);
        GuestMemoryLayout.AddFirmware(builder.Memory, firmware);
        builder.Ports.Register(DebugPort, 1, port, "debugcon");
        builder.InterruptSource = interrupts;
        configure?.Invoke(builder);
        return builder.Build(selector, selector.Parse("kvm"));
    }

    private static void Print(Assembler a, string text)
    {
        a.mov(dx, DebugPort);
        foreach (char c in text)
        {
            a.mov(al, (byte)c);
            a.@out(dx, al);
        }
    }

    [Test]
    public void FirmwareStartsAtTheResetVectorAndPortWritesReachTheBus()
    {
        byte[] firmware = Firmware(a =>
        {
            Print(a, "KVM");
            a.cli();
            a.hlt();
        });
        var port = new CapturePort();
        using VirtualMachine machine = Build(firmware, port);
        MachineRunResult result = machine.Run(new MachineRunOptions(Timeout: TimeSpan.FromSeconds(30)));
        int codeLength = Guest.Assemble16(0, a => { Print(a, "KVM"); a.cli(); a.hlt(); }).Length;
        Assert.Multiple(() =>
        {
            Assert.That(machine.AcceleratorName, Is.EqualTo("kvm"));
            Assert.That(port.Text, Is.EqualTo("KVM"));
            Assert.That(result.Reason, Is.EqualTo(MachineStopReason.Halted), result.Detail);
            Assert.That(result.LastExit.InstructionPointer, Is.EqualTo((ulong)codeLength), "IP after HLT, relative to CS base 0xFFFF0000");
            Assert.That(result.Exits, Is.GreaterThanOrEqualTo(4));
        });
    }

    [Test]
    public void InReadsFromTheBusAndUnclaimedPortsReadAllOnes()
    {
        byte[] firmware = Firmware(a =>
        {
            a.mov(dx, DebugPort);
            a.@in(al, dx);      // CapturePort answers 0x42 ('B')
            a.@out(dx, al);
            a.@in(al, 0x77);    // nobody: 0xFF
            a.@out(dx, al);
            a.cli();
            a.hlt();
        });
        var port = new CapturePort();
        using VirtualMachine machine = Build(firmware, port);
        MachineRunResult result = machine.Run(new MachineRunOptions(Timeout: TimeSpan.FromSeconds(30)));
        Assert.Multiple(() =>
        {
            Assert.That(result.Reason, Is.EqualTo(MachineStopReason.Halted), result.Detail);
            Assert.That(port.Text, Is.EqualTo("B\u00FF"));
            Assert.That(machine.Ports.UnclaimedReadCount, Is.EqualTo(1));
        });
    }

    [Test]
    public void MmioGoesToTheDeviceAndRomWritesAreDropped()
    {
        var mmio = new RecordingMmio();
        byte[] firmware = Firmware(a =>
        {
            a.mov(ax, 0xB000);
            a.mov(ds, ax);
            a.mov(__byte_ptr[0x10], 0x5A);    // MMIO write
            a.mov(al, __byte_ptr[0x20]);      // MMIO read: 0xA0 + 0x20
            a.mov(dx, DebugPort);
            a.@out(dx, al);
            a.mov(ax, 0xF000);
            a.mov(ds, ax);
            a.mov(__byte_ptr[0x100], 0x99);   // ROM (firmware low alias at 0xF0100): dropped
            a.mov(al, __byte_ptr[0x100]);
            a.@out(dx, al);
            a.cli();
            a.hlt();
        });
        byte original = firmware[0x100];
        var port = new CapturePort();
        using VirtualMachine machine = Build(firmware, port, configure: b => b.Memory.AddMmio(new GuestAddress(0xB0000), 0x1000, mmio, "test-mmio"));
        long unclaimedBefore = machine.Memory.UnclaimedAccessCount;
        MachineRunResult result = machine.Run(new MachineRunOptions(Timeout: TimeSpan.FromSeconds(30)));
        Assert.Multiple(() =>
        {
            Assert.That(result.Reason, Is.EqualTo(MachineStopReason.Halted), result.Detail);
            Assert.That(mmio.Writes, Is.EqualTo(new[] { (0x10UL, 1, 0x5AUL) }));
            Assert.That(port.Text, Is.EqualTo(new string([(char)0xC0, (char)original])));
            Assert.That(machine.Memory.UnclaimedAccessCount - unclaimedBefore, Is.EqualTo(1), "the ROM write was counted");
        });
    }

    private static void InstallVector(Assembler a, byte vector, ushort handlerOffset)
    {
        a.xor(ax, ax);
        a.mov(ds, ax);
        a.mov(__word_ptr[vector * 4], handlerOffset);
        a.mov(__word_ptr[(vector * 4) + 2], 0xF000); // the firmware's low alias: F000:handler
    }

    private static void PrintingHandler(Assembler a)
    {
        a.push(ax);
        a.push(dx);
        Print(a, "I");
        a.pop(dx);
        a.pop(ax);
        a.iret();
    }

    // Rare failure inside the kvm-guest tool's emulated AMD-V: the handler ran and the guest then stayed halted.
    // Reproduced on 2026-11-27 with StiHltShadowStress (20000 STI;HLT wake-ups in one guest): 9 interrupts, in each of
    // two boots, arrived before the HLT. Every one was injected after KVM_EXIT_IRQ_WINDOW_OPEN, i.e. KVM reported
    // ready_for_interrupt_injection with the guest at the HLT, inside the STI shadow (Intel SDM Vol. 2B, STI; AMD APM
    // Vol. 2, 15.21.5 "interrupt shadow"). The adapter follows KVM's contract (inject only when ready after the exit), so
    // the early delivery comes from below KVM's API: KVM's view of the shadow is the VMCB's int_state, which the emulated
    // SVM wrote. Once in about 2200 wake-ups here; the handler then returns onto HLT with nothing left to wake it.
    // Retried until that is fixed below us; see StiHltShadowStress.
    [Test]
    [Retry(3)]
    public void DeviceInterruptWakesHltWithInterruptsEnabled() => WakeHltWithDeviceInterrupt();

    /// <summary>The same, many times in one process: <c>--filter Name~DeviceInterruptWakesHltStress</c>.</summary>
    [Test]
    [Explicit("stress run of DeviceInterruptWakesHltWithInterruptsEnabled, for investigating its rare failure")]
    [Repeat(200)]
    public void DeviceInterruptWakesHltStress() => WakeHltWithDeviceInterrupt();

    /// <summary>
    /// The guest raises the device's interrupt with interrupts off, then executes STI; HLT. The interrupt must be
    /// taken after HLT (the STI shadow covers HLT; Intel SDM Vol. 2B, STI), so the handler returns past HLT and the
    /// guest prints 'E'. The handler prints 'H' instead of 'I' if its return address points at a HLT, which shows an
    /// interrupt delivered before HLT executed.
    /// </summary>
    private static void WakeHltWithDeviceInterrupt()
    {
        var irq = new OneShotInterrupt();
        byte[] firmware = Firmware(a =>
        {
            InstallVector(a, 0x20, 0x8000);
            Print(a, "A");  // the device raises IRQ → vector 0x20 when it sees 'A'
            a.sti();
            a.hlt();        // waits for the interrupt; the handler prints 'I'
            a.cli();
            Print(a, "E");
            a.hlt();
        }, ReturnCheckingHandler);
        VirtualMachine? machine = null;
        var port = new CapturePort(b =>
        {
            if (b == 'A')
            {
                irq.Raise(0x20);
                machine!.Control.NotifyInterruptPending();
            }
        });
        machine = Build(firmware, port, irq);
        using (machine)
        {
            MachineRunResult result = machine.Run(new MachineRunOptions(Timeout: TimeSpan.FromSeconds(30)));
            uint injectedAfter = ((KvmAcceleratorVcpu)machine.Vcpus[0]).LastExitBeforeInjection;
            Assert.Multiple(() =>
            {
                Assert.That(port.Text, Is.EqualTo("AIE"), $"interrupt injected after KVM exit reason {injectedAfter}");
                Assert.That(result.Reason, Is.EqualTo(MachineStopReason.Halted), result.Detail);
            });
        }
    }

    /// <summary>
    /// The STI;HLT wake-up of <see cref="DeviceInterruptWakesHltWithInterruptsEnabled"/> 20000 times in one guest, to
    /// expose it to host interrupts landing in the STI shadow: the device is triggered with interrupts off, then STI;
    /// HLT. The handler reports 'H' (and steps its return address over the HLT, so the loop goes on) whenever the
    /// interrupt arrived before the HLT executed, which the STI shadow forbids (Intel SDM Vol. 2B, STI).
    /// <c>--filter Name~StiHltShadowStress</c>.
    /// </summary>
    [Test]
    [Explicit("reproduces the emulated AMD-V's early interrupt (9 in 20000 on 2026-11-27); not for CI until fixed below KVM")]
    public void StiHltShadowStress()
    {
        const int Iterations = 20000;
        var irq = new OneShotInterrupt();
        byte[] firmware = Firmware(a =>
        {
            Label loop = a.CreateLabel();
            InstallVector(a, 0x20, 0x8000);
            a.mov(cx, Iterations);
            a.mov(dx, DebugPort);
            a.Label(ref loop);
            a.cli();
            a.mov(al, (byte)'T'); // the device raises IRQ → vector 0x20
            a.@out(dx, al);
            a.sti();
            a.hlt();
            a.dec(cx);
            a.jnz(loop);
            a.cli();
            Print(a, "E");
            a.hlt();
        }, a =>
        {
            Label done = a.CreateLabel();
            a.push(ax);
            a.push(bp);
            a.push(si);
            a.mov(bp, sp);
            a.mov(si, __word_ptr[bp + 6]); // return IP: above SI, BP, AX
            a.mov(al, __byte_ptr.cs[si]);
            a.cmp(al, 0xF4);
            a.jne(done);
            a.inc(__word_ptr[bp + 6]); // continue after the HLT the interrupt should have woken
            a.mov(al, (byte)'H');
            a.@out(dx, al);
            a.Label(ref done);
            a.pop(si);
            a.pop(bp);
            a.pop(ax);
            a.iret();
        });
        VirtualMachine? machine = null;
        var injectedAfter = new List<uint>(); // the KVM exit after which each early interrupt was injected
        var port = new CapturePort(b =>
        {
            if (b == 'T')
            {
                irq.Raise(0x20);
                machine!.Control.NotifyInterruptPending();
            }
            else if (b == 'H')
            {
                injectedAfter.Add(((KvmAcceleratorVcpu)machine!.Vcpus[0]).LastExitBeforeInjection);
            }
        });
        machine = Build(firmware, port, irq);
        using (machine)
        {
            MachineRunResult result = machine.Run(new MachineRunOptions(Timeout: TimeSpan.FromMinutes(10)));
            string text = port.Text;
            int early = text.Count(c => c == 'H');
            TestContext.Out.WriteLine($"{text.Count(c => c == 'T')} wake-ups, {early} interrupts taken before HLT (injected after KVM exits {string.Join(",", injectedAfter)}), {result.Exits} exits in {result.Elapsed.TotalSeconds:0.0} s");
            Assert.Multiple(() =>
            {
                Assert.That(early, Is.Zero, "interrupts delivered inside the STI shadow");
                Assert.That(text.Count(c => c == 'T'), Is.EqualTo(Iterations));
                Assert.That(text, Does.EndWith("E"));
                Assert.That(result.Reason, Is.EqualTo(MachineStopReason.Halted), result.Detail);
            });
        }
    }

    /// <summary>Prints 'I', or 'H' when the instruction it returns to is a HLT (0xF4).</summary>
    private static void ReturnCheckingHandler(Assembler a)
    {
        Label notHlt = a.CreateLabel();
        Label print = a.CreateLabel();
        a.push(ax);
        a.push(dx);
        a.push(bp);
        a.push(si);
        a.mov(bp, sp);
        a.mov(si, __word_ptr[bp + 8]); // return IP: above SI, BP, DX, AX
        a.mov(al, __byte_ptr.cs[si]);
        a.cmp(al, 0xF4);
        a.jne(notHlt);
        a.mov(al, (byte)'H');
        a.jmp(print);
        a.Label(ref notHlt);
        a.mov(al, (byte)'I');
        a.Label(ref print);
        a.mov(dx, DebugPort);
        a.@out(dx, al);
        a.pop(si);
        a.pop(bp);
        a.pop(dx);
        a.pop(ax);
        a.iret();
    }

    [Test]
    public void InterruptFromAnotherThreadReachesASpinningGuest()
    {
        var irq = new OneShotInterrupt();
        byte[] firmware = Firmware(a =>
        {
            var wait = a.CreateLabel();
            InstallVector(a, 0x21, 0x8000);
            a.mov(__byte_ptr[0x600], 0);
            Print(a, "A");
            a.sti();
            a.Label(ref wait);
            a.cmp(__byte_ptr[0x600], 0);
            a.je(wait);
            a.cli();
            Print(a, "E");
            a.hlt();
        }, a =>
        {
            a.mov(__byte_ptr[0x600], 1);
            PrintingHandler(a);
        });
        var port = new CapturePort();
        using VirtualMachine machine = Build(firmware, port, irq);
        using var raiser = new Timer(_ =>
        {
            irq.Raise(0x21);
            machine.Control.NotifyInterruptPending();
        }, null, 500, Timeout.Infinite);
        MachineRunResult result = machine.Run(new MachineRunOptions(Timeout: TimeSpan.FromSeconds(30)));
        Assert.Multiple(() =>
        {
            Assert.That(port.Text, Is.EqualTo("AIE"));
            Assert.That(result.Reason, Is.EqualTo(MachineStopReason.Halted), result.Detail);
        });
    }

    [Test]
    public void CancellationStopsASpinningGuestQuickly()
    {
        byte[] firmware = Firmware(a =>
        {
            var loop = a.CreateLabel();
            a.cli();
            Print(a, "S");
            a.Label(ref loop);
            a.jmp(loop);
        });
        using var cancellation = new CancellationTokenSource();
        var sinceCancel = new System.Diagnostics.Stopwatch();
        // Cancel only once the guest is known to be running, so that the vCPU is inside KVM_RUN when the kick comes.
        // Registered after the machine's own callback, ours runs first (LIFO), so the stopwatch starts before the kick.
        var port = new CapturePort(b =>
        {
            cancellation.Token.Register(sinceCancel.Start);
            cancellation.CancelAfter(200);
        });
        using VirtualMachine machine = Build(firmware, port);
        MachineRunResult result = machine.Run(new MachineRunOptions(Timeout: TimeSpan.FromSeconds(60)), cancellation.Token);
        sinceCancel.Stop();
        Assert.Multiple(() =>
        {
            Assert.That(port.Text, Is.EqualTo("S"));
            Assert.That(result.Reason, Is.EqualTo(MachineStopReason.Cancelled));
            Assert.That(result.LastExit.Reason, Is.EqualTo(VcpuExitReason.Interrupted));
            // Natively this is the kick latency plus a thread join: a few ms idle, but the bound allows for a loaded CI host. Inside the emulated kvm-guest on a
            // shared 2-core host, runtime and thread switches are tens of times slower and vary widely, so the bound
            // only rules out "never" (the machine's 60 s timeout) there.
            Assert.That(sinceCancel.Elapsed, Is.LessThan(TimeSpan.FromMilliseconds(KvmHost.InEmulatedGuest ? 5000 : 1000)));
        });
    }

    [Test]
    public void TripleFaultIsAShutdownExit()
    {
        byte[] firmware = Firmware(a =>
        {
            a.xor(ax, ax);
            a.mov(ds, ax);
            a.lidt(__fword_ptr[0x500]); // RAM is zero: an IDT with limit 0
            a.mov(eax, cr0);
            a.or(al, 1);
            a.mov(cr0, eax);            // protected mode (CS keeps its cached code descriptor), where the limit is enforced:
            a.int3();                   // INT3 → #GP → #DF → shutdown (Intel SDM vol. 3A, 6.15, interrupt 8)
        });
        using VirtualMachine machine = Build(firmware, new CapturePort());
        MachineRunResult result = machine.Run(new MachineRunOptions(Timeout: TimeSpan.FromSeconds(30)));
        if (result.Reason == MachineStopReason.GuestError && (result.Detail ?? "").Contains("could not emulate", StringComparison.Ordinal))
        {
            // A host KVM without unrestricted guest (Intel VMX) emulates this state and cannot emulate INT3; kvm-guest (SVM) runs it.
            Assert.Ignore("this host's KVM emulates the mode switch and cannot emulate INT3: " + result.Detail);
        }

        Assert.Multiple(() =>
        {
            Assert.That(result.Reason, Is.EqualTo(MachineStopReason.Shutdown), result.Detail);
            Assert.That(result.LastExit.Reason, Is.EqualTo(VcpuExitReason.Shutdown));
        });
    }

    [Test]
    public void CoreRegisterTypesReachTheCpu()
    {
        const uint KernelGsBase = 0xC000_0102; // IA32_KERNEL_GS_BASE (Intel SDM vol. 4, table 2-2)
        byte[] firmware = Firmware(a =>
        {
            a.add(bp, bx);
            a.mov(ecx, KernelGsBase);
            a.rdmsr();
            a.mov(esi, eax);
            a.movd(edi, xmm3);
            a.cli();
            a.hlt();
        });
        using VirtualMachine machine = Build(firmware, new CapturePort());
        IVcpu vcpu = machine.Vcpus[0];
        GeneralRegisters general = vcpu.GetGeneralRegisters();
        Assert.That(general.Rdx, Is.EqualTo((ulong)ResetState.ProcessorSignature), "EDX holds the processor signature at reset");
        general.Rbp = 0x1234;
        general.Rbx = 0x1111;
        general.R12 = 0xFEDC_BA98_7654_3210;
        vcpu.SetGeneralRegisters(general);
        SystemRegisters system = vcpu.GetSystemRegisters();
        system.Cr4 |= 1 << 9; // OSFXSR
        vcpu.SetSystemRegisters(system);
        FpuRegisters fpu = vcpu.GetFpuRegisters();
        fpu.Xmm[3] = new UInt128(0x1111_2222_3333_4444, 0x5555_6666_CAFE_F00D);
        fpu.St[2] = new Float80(0x8000_0000_0000_0001, 0x3FFF);
        vcpu.SetFpuRegisters(fpu);
        Assert.That(vcpu.TrySetMsr(KernelGsBase, 0x0000_1234_5678_9ABC), Is.True);

        MachineRunResult result = machine.Run(new MachineRunOptions(Timeout: TimeSpan.FromSeconds(30)));
        bool sseEmulationFailed = result.Reason == MachineStopReason.GuestError && (result.Detail ?? "").Contains("could not emulate", StringComparison.Ordinal);
        GeneralRegisters after = vcpu.GetGeneralRegisters();
        FpuRegisters fpuAfter = vcpu.GetFpuRegisters();
        Assert.Multiple(() =>
        {
            Assert.That(after.Rsi, Is.EqualTo(0x5678_9ABCUL), "RDMSR saw our MSR (RAX was overwritten by RDMSR)");
            Assert.That(after.Rbp, Is.EqualTo(0x2345UL), "ADD BP,BX executed on our values");
            Assert.That(after.R12, Is.EqualTo(0xFEDC_BA98_7654_3210UL));
            Assert.That(fpuAfter.Xmm[3], Is.EqualTo(new UInt128(0x1111_2222_3333_4444, 0x5555_6666_CAFE_F00D)));
            Assert.That(fpuAfter.St[2], Is.EqualTo(new Float80(0x8000_0000_0000_0001, 0x3FFF)));
            Assert.That(vcpu.GetSystemRegisters().Cr4 & (1 << 9), Is.Not.Zero);
            Assert.That(vcpu.TryGetMsr(KernelGsBase, out ulong msr), Is.True);
            Assert.That(msr, Is.EqualTo(0x0000_1234_5678_9ABCUL));
            Assert.That(vcpu.TryGetMsr(0xDEAD_0000, out _), Is.False, "an MSR KVM does not know");
        });
        if (sseEmulationFailed)
        {
            // Seen on a nested host whose KVM emulates this real-mode code and cannot emulate MOVD; kvm-guest runs it natively.
            Assert.Ignore("registers checked, but this host's KVM cannot execute MOVD in real mode: " + result.Detail);
        }

        Assert.Multiple(() =>
        {
            Assert.That(result.Reason, Is.EqualTo(MachineStopReason.Halted), result.Detail);
            Assert.That(after.Rdi, Is.EqualTo(0xCAFE_F00DUL), "MOVD EDI,XMM3 saw our XMM3");
        });
    }

    [Test]
    public void CpuidLeafOneAgreesWithTheResetSignatureAndVcpuIndex()
    {
        byte[] firmware = Firmware(a =>
        {
            a.mov(eax, 1);
            a.cpuid();
            a.cli();
            a.hlt();
        });
        using VirtualMachine machine = Build(firmware, new CapturePort());
        MachineRunResult result = machine.Run(new MachineRunOptions(Timeout: TimeSpan.FromSeconds(30)));
        GeneralRegisters after = machine.Vcpus[0].GetGeneralRegisters();
        Assert.Multiple(() =>
        {
            Assert.That(result.Reason, Is.EqualTo(MachineStopReason.Halted), result.Detail);
            Assert.That(after.Rax, Is.EqualTo((ulong)ResetState.ProcessorSignature), "CPUID.1:EAX executed by the CPU");
            Assert.That(after.Rbx >> 24, Is.EqualTo(0UL), "initial APIC ID of vCPU 0");
            Assert.That(after.Rdx & 1, Is.EqualTo(1UL), "FPU on chip, as the host's KVM reports");
        });
    }

    [Test]
    public void KickAndInterruptNotificationAfterDisposeAreHarmless()
    {
        using VirtualMachine machine = Build(Firmware(a =>
        {
            a.cli();
            a.hlt();
        }), new CapturePort());
        IVcpu vcpu = machine.Vcpus[0];
        vcpu.Dispose();
        Assert.Multiple(() =>
        {
            Assert.That(vcpu.Kick, Throws.Nothing);
            Assert.That(vcpu.NotifyInterruptPending, Throws.Nothing);
            Assert.That(() => vcpu.Run(), Throws.InstanceOf<ObjectDisposedException>());
        });
    }

    [Test]
    public void DisposingTheVmWhileAVcpuRunsIsAnErrorNotACrash()
    {
        byte[] firmware = Firmware(a =>
        {
            var loop = a.CreateLabel();
            a.Label(ref loop);
            a.jmp(loop);
        });
        using VirtualMachine machine = Build(firmware, new CapturePort());
        IVcpu vcpu = machine.Vcpus[0];
        VcpuExit exit = default;
        var thread = new Thread(() => exit = vcpu.Run());
        thread.Start();
        var wrapper = ((KvmAcceleratorVcpu)vcpu).Wrapper;
        Assert.That(SpinWait.SpinUntil(() => wrapper.IsRunning, 5000), Is.True);
        Assert.Multiple(() =>
        {
            Assert.That(() => machine.Selection.Vm.Dispose(), Throws.InvalidOperationException);
            Assert.That(() => vcpu.Dispose(), Throws.InvalidOperationException);
            Assert.That(() => vcpu.Run(), Throws.InvalidOperationException);
        });
        vcpu.Kick();
        Assert.That(thread.Join(10_000), Is.True);
        Assert.That(exit.Reason, Is.EqualTo(VcpuExitReason.Interrupted));
    }
}
