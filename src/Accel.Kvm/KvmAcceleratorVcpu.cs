using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.Versioning;
using Hypervisor.Accel.Kvm.Interop;
using Hypervisor.Core.Io;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Memory;
using Hypervisor.Core.Registers;
using static Hypervisor.Accel.Kvm.Interop.KvmConstants;

namespace Hypervisor.Accel.Kvm;

/// <summary>
/// The kvm adapter's vCPU: runs <c>KVM_RUN</c> in a loop, answers port I/O and MMIO through the machine's buses,
/// injects interrupts from the interrupt source when the guest can take them, sleeps on HLT with interrupts enabled,
/// and returns only control exits.
/// </summary>
[SupportedOSPlatform("linux")]
internal sealed unsafe class KvmAcceleratorVcpu : IVcpu
{
    private readonly KvmVcpu _vcpu;
    private readonly IMemoryMap _memory;
    private readonly PortIoBus _ports;
    private readonly IInterruptSource? _interrupts;
    private readonly ILocalInterruptController? _lapic; // userspace local APIC: no in-kernel irqchip
    private ulong _cr8Written;
    private int _lapicNotified; // NotifyInterruptPending since the last look at the local APIC's NMI/INIT/SIPI requests
    private bool _tprStale;     // the local APIC's TPR may differ from _cr8Written (an MMIO exit, INIT, a notification)
    private ulong _apicBaseKnown; // the local APIC's IA32_APIC_BASE as last read or written by this vCPU
    private int _sourceNotified = 1; // NotifyInterruptPending since the interrupt source last said "nothing pending"
    private bool _waitingForSipi;
    private readonly ManualResetEventSlim _wake = new(false);
    private readonly ulong? _pinnedXcr0;
    private int _stopRequested;
    private int _pendingVector = -1; // acknowledged at the PIC but not yet accepted by KVM_INTERRUPT
    private long _exits;

    internal KvmAcceleratorVcpu(KvmAcceleratorVm vm, int index)
    {
        Index = index;
        _memory = vm.Memory;
        _ports = vm.Ports;
        _interrupts = vm.Context.InterruptSourceFor(index);
        _lapic = _interrupts as ILocalInterruptController;
        _waitingForSipi = index > 0 && _lapic is not null; // application processors wait for INIT/SIPI
        _pinnedXcr0 = vm.PinnedXcr0;
        _vcpu = vm.Vm.CreateVcpu(index);
        try
        {
            _vcpu.SetCpuid(KvmCpuid.Entries(vm.Cpuid, (uint)index));
            SetSystemRegisters(ResetState.System());
            SetGeneralRegisters(ResetState.General());
            SetFpuRegisters(ResetState.Fpu());
            PinXcr0();
        }
        catch
        {
            _vcpu.Dispose();
            throw;
        }
    }

    public int Index { get; }

    public VcpuStatistics Statistics => new(-1, Interlocked.Read(ref _exits));

    internal KvmVcpu Wrapper => _vcpu;

    /// <summary>The <c>KVM_EXIT_*</c> reason after which the last interrupt was handed to KVM (for diagnostics).</summary>
    internal uint LastExitBeforeInjection { get; private set; }

    public VcpuExit Run(long instructionLimit = long.MaxValue)
    {
        // One session for the whole loop: the thread claim and the descriptor/mapping references are taken once, not
        // per exit (see KvmVcpu.BeginRun).
        using KvmRunSession session = _vcpu.BeginRun();
        Volatile.Write(ref _sourceNotified, 1);
        if (_lapic is not null)
        {
            // Look at everything once per Run: the host may have changed the local APIC between runs.
            Volatile.Write(ref _lapicNotified, 1);
            _apicBaseKnown = _lapic.ApicBase;
        }

        while (true)
        {
            if (_lapic is not null)
            {
                // NMI, INIT and start-up requests come with a notification (ILocalInterruptController's contract), so
                // the local APIC is asked for them only after one, not at every exit. Clearing the flag before asking
                // loses nothing: a request is stored before its notification sets the flag again.
                if (Volatile.Read(ref _lapicNotified) != 0)
                {
                    Interlocked.Exchange(ref _lapicNotified, 0);
                    _tprStale = true;
                    if (TakeLocalApicEvents() is { } stopped)
                    {
                        return stopped;
                    }
                }

                // The TPR changes only through this vCPU (CR8, synced below; the APIC page, an MMIO exit) or INIT (a
                // notification); KVM loads kvm_run.cr8 into the guest at entry.
                if (_tprStale)
                {
                    _tprStale = false;
                    _cr8Written = (ulong)_lapic.TaskPriorityClass;
                }

                _vcpu.Cr8 = _cr8Written;
            }

            if (_interrupts is not null)
            {
                PrepareInterruptDelivery(_interrupts);
            }

            KvmExit exit = session.Run();
            _exits++;
            if (_lapic is not null)
            {
                SyncFromKvmRun();
            }

            switch (exit.Reason)
            {
                case KVM_EXIT_SET_TPR:
                    continue; // the guest lowered CR8 (synced above): the loop head may now inject

                case KVM_EXIT_IO:
                    CompletePortIo(exit);
                    continue;

                case KVM_EXIT_MMIO:
                    CompleteMmio(exit);
                    _tprStale = true; // the write may have been to the local APIC's TPR
                    Volatile.Write(ref _sourceNotified, 1); // or to its LVT (LINT0 opened to a pending 8259 INTR)
                    continue;

                case KVM_EXIT_IRQ_WINDOW_OPEN:
                    continue; // the loop head injects

                case KVM_EXIT_INTR:
                    if (Interlocked.Exchange(ref _stopRequested, 0) != 0)
                    {
                        return Control(VcpuExitReason.Interrupted);
                    }

                    continue; // NotifyInterruptPending pulled us out to inject

                case KVM_EXIT_HLT:
                    if (!_vcpu.InterruptFlag || _interrupts is null)
                    {
                        return Control(VcpuExitReason.Halted);
                    }

                    WaitForInterrupt(_interrupts);
                    continue; // a kick during the wait makes the next KVM_RUN return KVM_EXIT_INTR at once

                case KVM_EXIT_SHUTDOWN:
                    return Control(VcpuExitReason.Shutdown, "triple fault (KVM_EXIT_SHUTDOWN)");

                case KVM_EXIT_SYSTEM_EVENT:
                    return SystemEvent(exit);

                case KVM_EXIT_FAIL_ENTRY:
                    return Control(VcpuExitReason.GuestError, string.Create(CultureInfo.InvariantCulture,
                        $"KVM could not enter the guest (KVM_EXIT_FAIL_ENTRY): hardware entry failure reason 0x{exit.FailEntry.hardware_entry_failure_reason:X} on host CPU {exit.FailEntry.cpu}"));

                case KVM_EXIT_INTERNAL_ERROR:
                    return Control(VcpuExitReason.GuestError, DescribeInternalError(exit));

                case KVM_EXIT_DEBUG:
                    return Control(VcpuExitReason.Debug, string.Create(CultureInfo.InvariantCulture,
                        $"debug exception {exit.Debug.exception} at 0x{exit.Debug.pc:X} (DR6 0x{exit.Debug.dr6:X})"));

                case KVM_EXIT_EXCEPTION:
                    return Control(VcpuExitReason.GuestError, string.Create(CultureInfo.InvariantCulture,
                        $"unhandled guest exception {exit.Exception.exception} (error code 0x{exit.Exception.error_code:X})"));

                case KVM_EXIT_UNKNOWN:
                    return Control(VcpuExitReason.GuestError, string.Create(CultureInfo.InvariantCulture,
                        $"KVM_EXIT_UNKNOWN: hardware exit reason 0x{exit.Hardware.hardware_exit_reason:X}"));

                default:
                    return Control(VcpuExitReason.GuestError, string.Create(CultureInfo.InvariantCulture,
                        $"unexpected KVM exit reason {exit.Reason}"));
            }
        }
    }

    public void Kick()
    {
        Interlocked.Exchange(ref _stopRequested, 1);
        _vcpu.Kick();
        Wake();
    }

    public void NotifyInterruptPending()
    {
        Volatile.Write(ref _lapicNotified, 1); // before the kick: the loop head looks at the local APIC again
        Volatile.Write(ref _sourceNotified, 1); // and at the interrupt source
        Wake();
        // A guest running with interrupts enabled must leave KVM_RUN so that the loop head can inject. Kick even when
        // the vCPU is between runs: it may already have passed the loop head and be about to enter the guest, and a
        // pending kick makes that entry return at once. The wrapper reports KVM_EXIT_INTR, which the loop absorbs
        // because no stop was requested.
        _vcpu.Kick();
    }

    /// <summary>Where the guest's own XSETBV cannot reach KVM, gives KVM the XCR0 the guest would set (see <see cref="KvmXsetbvCheck"/>).</summary>
    private void PinXcr0()
    {
        if (_pinnedXcr0 is ulong xcr0)
        {
            _vcpu.SetXcr0(xcr0);
        }
    }

    /// <summary>Wakes a vCPU sleeping on HLT. Kicks and interrupt notifications may race with Dispose; they then do nothing.</summary>
    private void Wake()
    {
        if (_vcpu.IsDisposed)
        {
            return;
        }

        try
        {
            _wake.Set();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    /// <summary>
    /// Takes NMI, INIT and start-up IPIs from the local APIC (SDM Vol. 3A, 9.4.4, 11.6.1). An application processor
    /// waits here for its start-up IPI; returns an exit only when the wait is cut short by a kick.
    /// </summary>
    private VcpuExit? TakeLocalApicEvents()
    {
        while (true)
        {
            StartupRequest request = _lapic!.TakeStartupRequest();
            switch (request.Kind)
            {
                case StartupRequestKind.Init:
                    SetSystemRegisters(ResetState.System() with { ApicBase = _lapic.ApicBase });
                    SetGeneralRegisters(ResetState.General());
                    SetFpuRegisters(ResetState.Fpu());
                    PinXcr0();
                    _pendingVector = -1;
                    _waitingForSipi = (_lapic.ApicBase & (1UL << 8)) == 0; // the BSP restarts at the reset vector
                    _apicBaseKnown = _lapic.ApicBase;
                    break;
                case StartupRequestKind.Startup when _waitingForSipi:
                    // The start-up vector VV starts the processor in real mode at VV00:0000 (SDM Vol. 3A, 9.4.4.1).
                    kvm_sregs sregs = _vcpu.GetSregs();
                    sregs.cs.selector = (ushort)(request.Vector << 8);
                    sregs.cs.@base = (ulong)request.Vector << 12;
                    _vcpu.SetSregs(sregs);
                    kvm_regs regs = _vcpu.GetRegs();
                    regs.rip = 0;
                    _vcpu.SetRegs(regs);
                    _waitingForSipi = false;
                    break;
                default:
                    break;
            }

            if (!_waitingForSipi)
            {
                if (_lapic.TakeNmi())
                {
                    _vcpu.Nmi();
                }

                return null;
            }

            if (Interlocked.Exchange(ref _stopRequested, 0) != 0)
            {
                return Control(VcpuExitReason.Interrupted);
            }

            _wake.Wait(100);
            _wake.Reset();
        }
    }

    /// <summary>Brings the guest's CR8 and IA32_APIC_BASE, as KVM reports them at the exit, into the local APIC.</summary>
    private void SyncFromKvmRun()
    {
        ulong cr8 = _vcpu.Cr8;
        if (cr8 != _cr8Written)
        {
            _lapic!.TaskPriorityClass = (int)(cr8 & 0xF);
            _tprStale = true;
            Volatile.Write(ref _sourceNotified, 1); // a lower TPR may let a held interrupt through
        }

        // Only this vCPU writes the local APIC's base while it runs, so the value it last saw stands in for asking.
        ulong apicBase = _vcpu.ApicBase;
        if (apicBase != _apicBaseKnown)
        {
            _lapic!.TrySetApicBase(apicBase);
            _apicBaseKnown = _lapic.ApicBase;
            _tprStale = true; // disabling the APIC resets its registers
            Volatile.Write(ref _sourceNotified, 1); // and passes the 8259 straight through
        }
    }

    private void PrepareInterruptDelivery(IInterruptSource interrupts)
    {
        // A source that had nothing pending stays so until it notifies (IVcpu.NotifyInterruptPending: the PIC and the
        // local APIC notify on every rising INTR), so it is not asked again before that; request_interrupt_window was
        // cleared when it said so. Clearing the flag before asking loses nothing: INTR is set before the notification.
        if (_pendingVector < 0 && Volatile.Read(ref _sourceNotified) == 0)
        {
            return;
        }

        Interlocked.Exchange(ref _sourceNotified, 0);

        // ready_for_interrupt_injection is what the last exit reported; before the first run it reads 0, so KVM is
        // asked to exit as soon as the guest can take an interrupt (Documentation/virt/kvm/api.rst, struct kvm_run).
        bool ready = _vcpu.ReadyForInterruptInjection;
        if (_pendingVector < 0 && ready && interrupts.HasPendingInterrupt)
        {
            _pendingVector = interrupts.AcknowledgeInterrupt(); // -1 if the request went away meanwhile
        }

        // KVM_INTERRUPT refuses (EEXIST) while it still holds an undelivered vector; keep ours for the next window.
        if (_pendingVector >= 0 && ready && _vcpu.TryInterrupt((byte)_pendingVector))
        {
            _pendingVector = -1;
            LastExitBeforeInjection = _vcpu.LastExitReason;
        }

        bool waiting = _pendingVector >= 0 || interrupts.HasPendingInterrupt;
        _vcpu.RequestInterruptWindow = waiting;
        if (waiting)
        {
            Volatile.Write(ref _sourceNotified, 1); // keep asking at every entry until it is delivered
        }
    }

    private void WaitForInterrupt(IInterruptSource interrupts)
    {
        while (_pendingVector < 0 && !interrupts.HasPendingInterrupt && Volatile.Read(ref _stopRequested) == 0)
        {
            _wake.Wait(100);
            _wake.Reset();
        }

        // The interrupt is injected at the loop head; the HLT exit left ready_for_interrupt_injection set.
    }

    private void CompletePortIo(KvmExit exit)
    {
        kvm_run_io io = exit.Io;
        Span<byte> data = exit.IoData;
        int size = io.size;
        for (int offset = 0; offset + size <= data.Length; offset += size)
        {
            Span<byte> item = data.Slice(offset, size);
            if (io.direction == KVM_EXIT_IO_OUT)
            {
                uint value = size switch
                {
                    1 => item[0],
                    2 => BinaryPrimitives.ReadUInt16LittleEndian(item),
                    _ => BinaryPrimitives.ReadUInt32LittleEndian(item),
                };
                _ports.Write(io.port, size, value);
            }
            else
            {
                uint value = _ports.Read(io.port, size);
                switch (size)
                {
                    case 1: item[0] = (byte)value; break;
                    case 2: BinaryPrimitives.WriteUInt16LittleEndian(item, (ushort)value); break;
                    default: BinaryPrimitives.WriteUInt32LittleEndian(item, value); break;
                }
            }
        }
    }

    private void CompleteMmio(KvmExit exit)
    {
        kvm_run_mmio mmio = exit.Mmio;
        Span<byte> data = exit.MmioData;
        var address = new GuestAddress(mmio.phys_addr);
        Span<byte> value = stackalloc byte[8];
        if (mmio.is_write != 0)
        {
            value.Clear();
            data.CopyTo(value);
            _memory.WriteMmio(address, data.Length, BinaryPrimitives.ReadUInt64LittleEndian(value));
        }
        else
        {
            BinaryPrimitives.WriteUInt64LittleEndian(value, _memory.ReadMmio(address, data.Length));
            value[..data.Length].CopyTo(data);
        }
    }

    private VcpuExit SystemEvent(KvmExit exit)
    {
        uint type = exit.SystemEvent.type;
        string what = type switch
        {
            KVM_SYSTEM_EVENT_SHUTDOWN => "shutdown",
            KVM_SYSTEM_EVENT_RESET => "reset",
            KVM_SYSTEM_EVENT_CRASH => "crash",
            _ => "type " + type.ToString(CultureInfo.InvariantCulture),
        };
        return Control(VcpuExitReason.Shutdown, $"KVM system event: {what}");
    }

    private static string DescribeInternalError(KvmExit exit)
    {
        ref readonly kvm_run_internal e = ref exit.Internal;
        string kind = e.suberror switch
        {
            KVM_INTERNAL_ERROR_EMULATION => "KVM could not emulate an instruction",
            KVM_INTERNAL_ERROR_SIMUL_EX => "an exception occurred while delivering another",
            KVM_INTERNAL_ERROR_DELIVERY_EV => "an exit occurred while delivering an event",
            KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON => "unexpected hardware exit reason",
            _ => "suberror " + e.suberror.ToString(CultureInfo.InvariantCulture),
        };
        var text = new System.Text.StringBuilder("KVM internal error: ").Append(kind);
        uint count = Math.Min(e.ndata, 16u);
        if (count > 0)
        {
            text.Append(" (data");
            for (int i = 0; i < count; i++)
            {
                text.Append(CultureInfo.InvariantCulture, $" 0x{e.data[i]:X}");
            }

            text.Append(')');
        }

        return text.ToString();
    }

    private VcpuExit Control(VcpuExitReason reason, string? detail = null)
    {
        ulong rip = _vcpu.GetRegs().rip;
        return new VcpuExit(reason, rip, detail);
    }

    public GeneralRegisters GetGeneralRegisters() => KvmRegisterMapping.ToCore(_vcpu.GetRegs());

    public void SetGeneralRegisters(in GeneralRegisters registers) => _vcpu.SetRegs(KvmRegisterMapping.ToKvm(registers));

    public SystemRegisters GetSystemRegisters() => KvmRegisterMapping.ToCore(_vcpu.GetSregs());

    public void SetSystemRegisters(in SystemRegisters registers)
    {
        kvm_sregs sregs = _vcpu.GetSregs(); // keeps interrupt_bitmap (a pending interrupt) as KVM has it
        KvmRegisterMapping.ToKvm(registers, ref sregs);
        if (_lapic is null)
        {
            sregs.apic_base &= ~KvmCpuid.ApicBaseEnable; // no local APIC behind it (see KvmCpuid)
        }
        _vcpu.SetSregs(sregs);
    }

    public FpuRegisters GetFpuRegisters() => KvmRegisterMapping.ToCore(_vcpu.GetFpu());

    public void SetFpuRegisters(in FpuRegisters registers) => _vcpu.SetFpu(KvmRegisterMapping.ToKvm(registers));

    public bool TryGetMsr(uint index, out ulong value)
    {
        Span<kvm_msr_entry> entry = [new kvm_msr_entry { index = index }];
        bool ok = _vcpu.GetMsrs(entry) == 1;
        value = ok ? entry[0].data : 0;
        return ok;
    }

    public bool TrySetMsr(uint index, ulong value)
    {
        ReadOnlySpan<kvm_msr_entry> entry = [new kvm_msr_entry { index = index, data = value }];
        return _vcpu.SetMsrs(entry) == 1;
    }

    public void Dispose()
    {
        _vcpu.Dispose(); // throws while running
        _wake.Dispose();
    }
}
