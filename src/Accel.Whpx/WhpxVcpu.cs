using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using Hypervisor.Accel.Whpx.Interop;
using Hypervisor.Accel.Whpx.Translation;
using Hypervisor.Core.Io;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Registers;
using static Hypervisor.Accel.Whpx.Interop.WHV_REGISTER_NAME;

namespace Hypervisor.Accel.Whpx;

/// <summary>
/// A whpx vCPU: runs the virtual processor, answers port I/O and MMIO through the instruction emulator and the
/// machine's buses, injects the interrupt controller's interrupts, and maps the remaining exits to
/// <see cref="VcpuExit"/> values.
/// </summary>
[SupportedOSPlatform("windows")]
internal sealed unsafe class WhpxVcpu : IVcpu
{
    private static readonly WHV_REGISTER_NAME[] InjectionStateNames =
        [WHvX64RegisterRflags, WHvRegisterInterruptState, WHvRegisterPendingInterruption];

    private static readonly WHV_REGISTER_NAME[] InjectNames =
        [WHvRegisterPendingInterruption, WHvX64RegisterDeliverabilityNotifications];

    private static readonly WHV_REGISTER_NAME[] WindowNames = [WHvX64RegisterDeliverabilityNotifications];
    private static readonly WHV_REGISTER_NAME[] PendingNames = [WHvRegisterPendingInterruption];
    private static readonly WHV_REGISTER_NAME[] RipNames = [WHvX64RegisterRip];
    private static readonly WHV_REGISTER_NAME[] Cr8Names = [WHvX64RegisterCr8];
    private static readonly WHV_REGISTER_NAME[] ApicBaseNames = [WHvX64RegisterApicBase];
    private static readonly WHV_REGISTER_NAME[] CpuidResultNames =
        [WHvX64RegisterRax, WHvX64RegisterRbx, WHvX64RegisterRcx, WHvX64RegisterRdx, WHvX64RegisterRip];

    private readonly WhpVirtualProcessor _vp;
    private readonly WhpxEmulatorContext _emulatorContext;
    private readonly WhvEmulatorHandle _emulator;
    private readonly WHV_EMULATOR_CALLBACKS* _callbacks;
    private readonly IInterruptSource? _interrupts;
    private readonly ILocalInterruptController? _lapic; // our local APIC: the partition emulates none
    private readonly Hypervisor.Core.Cpu.CpuidTable _cpuid;
    private int _cr8Written;
    private readonly ManualResetEventSlim _wake = new(false);
    private int _kick;
    private int _inRun;
    private long _exits;
    private bool _windowRequested;
    private bool _disposed;

    public WhpxVcpu(WhpPartition partition, uint index, Core.Accelerators.VmCreationContext context, Hypervisor.Core.Cpu.CpuidTable cpuid)
    {
        Index = (int)index;
        _cpuid = cpuid;
        _interrupts = context.InterruptSourceFor((int)index);
        _lapic = _interrupts as ILocalInterruptController;
        _vp = new WhpVirtualProcessor(partition, index);
        try
        {
            _emulatorContext = new WhpxEmulatorContext(context.Ports, context.Memory, _vp);
            _callbacks = (WHV_EMULATOR_CALLBACKS*)NativeMemory.AlignedAlloc((nuint)sizeof(WHV_EMULATOR_CALLBACKS), 16);
            *_callbacks = WhpxEmulatorCallbacks.Table;
            WhpxException.ThrowIfFailed(
                WinHvEmulation.WHvEmulatorCreateEmulator(_callbacks, out _emulator),
                nameof(WinHvEmulation.WHvEmulatorCreateEmulator));

            var general = ResetState.General();
            SetGeneralRegisters(general);
            var system = ResetState.System();
            SetSystemRegisters(system);
            var fpu = ResetState.Fpu();
            SetFpuRegisters(fpu);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public int Index { get; }

    public VcpuStatistics Statistics => new(-1, Interlocked.Read(ref _exits));

    public GeneralRegisters GetGeneralRegisters()
    {
        _vp.GetRegisters(WhpxRegisters.GeneralNames);
        return WhpxRegisters.ReadGeneral(_vp.ValueSpan);
    }

    public void SetGeneralRegisters(in GeneralRegisters registers)
    {
        WhpxRegisters.WriteGeneral(registers, _vp.ValueSpan);
        _vp.SetRegisters(WhpxRegisters.GeneralNames);
    }

    public SystemRegisters GetSystemRegisters()
    {
        _vp.GetRegisters(WhpxRegisters.SystemNames);
        return WhpxRegisters.ReadSystem(_vp.ValueSpan);
    }

    public void SetSystemRegisters(in SystemRegisters registers)
    {
        WhpxRegisters.WriteSystem(registers, _vp.ValueSpan);

        // The partition has no platform local APIC, so the APIC base (the last name) is not a register WHPX
        // accepts here; everything else is written.
        _vp.SetRegisters(WhpxRegisters.SystemNames.AsSpan(0, WhpxRegisters.SystemNames.Length - 1));
    }

    public FpuRegisters GetFpuRegisters()
    {
        _vp.GetRegisters(WhpxRegisters.FpuNames);
        return WhpxRegisters.ReadFpu(_vp.ValueSpan);
    }

    public void SetFpuRegisters(in FpuRegisters registers)
    {
        WhpxRegisters.WriteFpu(registers, _vp.ValueSpan);
        _vp.SetRegisters(WhpxRegisters.FpuNames);
    }

    public bool TryGetMsr(uint index, out ulong value)
    {
        value = 0;
        if (!WhpxRegisters.TryMapMsr(index, out WHV_REGISTER_NAME name, out WhpxRegisters.MsrKind kind))
        {
            return false;
        }

        try
        {
            _vp.GetRegisters([name]);
            value = kind == WhpxRegisters.MsrKind.SegmentBase ? _vp.Values[0].Segment.Base : _vp.Values[0].Reg64;
            return true;
        }
        catch (WhpxException)
        {
            return false;
        }
    }

    public bool TrySetMsr(uint index, ulong value)
    {
        if (!WhpxRegisters.TryMapMsr(index, out WHV_REGISTER_NAME name, out WhpxRegisters.MsrKind kind))
        {
            return false;
        }

        try
        {
            if (kind == WhpxRegisters.MsrKind.SegmentBase)
            {
                _vp.GetRegisters([name]);
                _vp.Values[0].Segment.Base = value;
            }
            else
            {
                _vp.Values[0] = default;
                _vp.Values[0].Reg64 = value;
            }

            _vp.SetRegisters([name]);
            return true;
        }
        catch (WhpxException)
        {
            return false;
        }
    }

    public VcpuExit Run(long instructionLimit = long.MaxValue)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        Volatile.Write(ref _inRun, 1);
        try
        {
            if (Interlocked.Exchange(ref _kick, 0) != 0)
            {
                return new VcpuExit(VcpuExitReason.Interrupted, ReadRip());
            }

            while (true)
            {
                // A kick that arrived while an exit was being handled (outside WHvRunVirtualProcessor) is seen here
                // rather than relying on the cancel reaching the next run.
                if (Volatile.Read(ref _kick) != 0 && Interlocked.Exchange(ref _kick, 0) != 0)
                {
                    return new VcpuExit(VcpuExitReason.Interrupted, ReadRip());
                }

                if (_lapic is not null)
                {
                    SyncTprToVp();
                }

                PrepareInterrupts();
                _vp.Run();
                Interlocked.Increment(ref _exits);
                WhpxExit exit = WhpxExit.Decode(*_vp.ExitContext);
                if (_lapic is not null)
                {
                    SyncFromExit(exit);
                }
                switch (exit.Action)
                {
                    case WhpxExitAction.Resume:
                        break;

                    case WhpxExitAction.EmulateIo:
                    case WhpxExitAction.EmulateMmio:
                        if (Emulate(exit) is VcpuExit failed)
                        {
                            return failed;
                        }

                        break;

                    case WhpxExitAction.Halt:
                        if (!exit.InterruptsEnabled || _interrupts is null)
                        {
                            // Nothing can wake it: interrupts are off, or there is no interrupt controller.
                            return new VcpuExit(VcpuExitReason.Halted, exit.Rip);
                        }

                        if (!WaitForInterrupt())
                        {
                            return new VcpuExit(VcpuExitReason.Interrupted, exit.Rip);
                        }

                        break;

                    case WhpxExitAction.InterruptWindow:
                        _windowRequested = false; // WHPX clears the notification when it delivers the exit
                        break;

                    case WhpxExitAction.Msr:
                        // No model-specific register outside the platform's set exists on our CPU: #GP(0), as
                        // RDMSR/WRMSR of an unimplemented MSR raises on hardware (SDM Vol. 2B, RDMSR).
                        _vp.Values[0] = default;
                        _vp.Values[0].PendingInterruption = WhpxInterrupts.EncodeException(13, 0);
                        _vp.SetRegisters(PendingNames);
                        break;

                    case WhpxExitAction.Cpuid:
                        CompleteCpuid(exit);
                        break;

                    case WhpxExitAction.Canceled:
                        if (Interlocked.Exchange(ref _kick, 0) != 0)
                        {
                            return new VcpuExit(VcpuExitReason.Interrupted, exit.Rip);
                        }

                        break; // canceled to inject an interrupt: loop

                    case WhpxExitAction.Shutdown:
                        return new VcpuExit(VcpuExitReason.Shutdown, exit.Rip, exit.Describe());

                    default:
                        return new VcpuExit(VcpuExitReason.GuestError, exit.Rip, exit.Describe());
                }
            }
        }
        finally
        {
            Volatile.Write(ref _inRun, 0);
        }
    }

    public void Kick()
    {
        Volatile.Write(ref _kick, 1);
        _wake.Set();
        CancelIfRunning();
    }

    public void NotifyInterruptPending()
    {
        _wake.Set();
        CancelIfRunning();
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _emulator?.Dispose();
        _emulatorContext?.Dispose();
        if (_callbacks is not null)
        {
            NativeMemory.AlignedFree(_callbacks);
        }

        _vp.Dispose();
        _wake.Dispose();
    }

    private void CancelIfRunning()
    {
        if (Volatile.Read(ref _inRun) != 0 && !_disposed)
        {
            _vp.Cancel();
        }
    }

    private ulong ReadRip()
    {
        _vp.GetRegisters(RipNames);
        return _vp.Values[0].Reg64;
    }

    private VcpuExit? Emulate(in WhpxExit exit)
    {
        WHV_EMULATOR_STATUS status;
        WHV_RUN_VP_EXIT_CONTEXT* context = _vp.ExitContext;
        void* handle = (void*)_emulatorContext.Handle;
        int hr = exit.Action == WhpxExitAction.EmulateIo
            ? WinHvEmulation.WHvEmulatorTryIoEmulation(_emulator, handle, &context->VpContext, &context->IoPortAccess, &status)
            : WinHvEmulation.WHvEmulatorTryMmioEmulation(_emulator, handle, &context->VpContext, &context->MemoryAccess, &status);
        _emulatorContext.ThrowIfCallbackFailed();
        WhpxException.ThrowIfFailed(hr, exit.Action == WhpxExitAction.EmulateIo
            ? nameof(WinHvEmulation.WHvEmulatorTryIoEmulation)
            : nameof(WinHvEmulation.WHvEmulatorTryMmioEmulation));
        if (WhvBitFields.EmulationSuccessful.IsSet(status.AsUINT32))
        {
            return null;
        }

        string what = exit.Action == WhpxExitAction.EmulateIo
            ? $"port 0x{exit.Port:X} ({(exit.IsWrite ? "OUT" : "IN")}, {exit.AccessSize} bytes)"
            : $"guest-physical 0x{exit.Gpa:X} ({exit.MemoryAccessType})";
        return new VcpuExit(VcpuExitReason.GuestError, exit.Rip,
            $"the WHPX instruction emulator could not complete the access to {what}: status 0x{status.AsUINT32:X}");
    }

    private void CompleteCpuid(in WhpxExit exit)
    {
        // The leaves of WhpxCpuid.ExitLeaves exit: answer from the CPU model, limited by the platform's own answer
        // (see WhpxCpuid), and step over the instruction. CPUID writes 32-bit results, zero-extended.
        ref readonly WHV_X64_CPUID_ACCESS_CONTEXT cpuid = ref _vp.ExitContext->CpuidAccess;
        var platform = new Hypervisor.Core.Cpu.CpuidResult(
            (uint)cpuid.DefaultResultRax, (uint)cpuid.DefaultResultRbx, (uint)cpuid.DefaultResultRcx, (uint)cpuid.DefaultResultRdx);
        Hypervisor.Core.Cpu.CpuidResult answer = WhpxCpuid.Answer(_cpuid, (uint)cpuid.Rax, (uint)cpuid.Rcx, (uint)Index, platform);
        Span<WHV_REGISTER_VALUE> v = _vp.ValueSpan;
        v[..5].Clear();
        v[0].Reg64 = answer.Eax;
        v[1].Reg64 = answer.Ebx;
        v[2].Reg64 = answer.Ecx;
        v[3].Reg64 = answer.Edx;
        v[4].Reg64 = exit.Rip + (ulong)exit.InstructionLength;
        _vp.SetRegisters(CpuidResultNames);
    }

    /// <summary>
    /// TPR changed through the APIC page: CR8 in the partition follows it (CR8 = TPR[7:4], SDM Vol. 3A, 11.8.6), as
    /// the partition has no local APIC of its own to keep them together.
    /// </summary>
    private void SyncTprToVp()
    {
        int tpr = _lapic!.TaskPriorityClass;
        if (tpr != _cr8Written)
        {
            _vp.Values[0] = default;
            _vp.Values[0].Reg64 = (ulong)tpr;
            _vp.SetRegisters(Cr8Names);
            _cr8Written = tpr;
        }
    }

    /// <summary>
    /// Brings the guest's CR8 (from the exit context's VpContext, WHV_VP_EXIT_CONTEXT.Cr8) and, on MMIO exits (where the
    /// guest may be about to use the APIC page), its IA32_APIC_BASE into the local APIC.
    /// </summary>
    private void SyncFromExit(in WhpxExit exit)
    {
        int cr8 = (int)WhvBitFields.ExitCr8.Get(_vp.ExitContext->VpContext.InstructionLengthCr8);
        if (cr8 != _cr8Written)
        {
            _lapic!.TaskPriorityClass = cr8;
            _cr8Written = cr8;
        }

        if (exit.Action == WhpxExitAction.EmulateMmio)
        {
            _vp.GetRegisters(ApicBaseNames);
            ulong apicBase = _vp.Values[0].Reg64;
            if (apicBase != _lapic!.ApicBase)
            {
                _lapic.TrySetApicBase(apicBase);
            }
        }
    }

    private void PrepareInterrupts()
    {
        if (_interrupts is null || !_interrupts.HasPendingInterrupt)
        {
            return;
        }

        _vp.GetRegisters(InjectionStateNames);
        Span<WHV_REGISTER_VALUE> v = _vp.ValueSpan;
        switch (WhpxInterrupts.Decide(true, v[0].Reg64, v[1].InterruptState, v[2].PendingInterruption))
        {
            case InjectionDecision.Inject:
                int vector = _interrupts.AcknowledgeInterrupt();
                if (vector < 0)
                {
                    return;
                }

                v[..2].Clear();
                v[0].PendingInterruption = WhpxInterrupts.EncodeExternalInterrupt((byte)vector);
                v[1].DeliverabilityNotifications = WhpxInterrupts.EncodeInterruptWindowRequest(false);
                _vp.SetRegisters(InjectNames);
                _windowRequested = false;
                break;

            case InjectionDecision.RequestWindow when !_windowRequested:
                v[0] = default;
                v[0].DeliverabilityNotifications = WhpxInterrupts.EncodeInterruptWindowRequest(true);
                _vp.SetRegisters(WindowNames);
                _windowRequested = true;
                break;
        }
    }

    /// <summary>HLT with interrupts enabled: wait for an interrupt (true) or a kick (false).</summary>
    private bool WaitForInterrupt()
    {
        while (true)
        {
            // Reset before looking, so a Set that races with the checks is not lost.
            _wake.Reset();
            if (Interlocked.Exchange(ref _kick, 0) != 0)
            {
                return false;
            }

            if (_interrupts?.HasPendingInterrupt == true)
            {
                return true;
            }

            _wake.Wait(TimeSpan.FromMilliseconds(50));
        }
    }
}
