using Hypervisor.Accel.Whpx.Interop;

namespace Hypervisor.Accel.Whpx.Translation;

/// <summary>What the run loop does with an exit.</summary>
internal enum WhpxExitAction
{
    /// <summary>Nothing to do (no exit reason, or an interrupt window to fill): run again.</summary>
    Resume,

    /// <summary>Port I/O: run the instruction emulator, whose callbacks reach the port bus.</summary>
    EmulateIo,

    /// <summary>A GPA access that is not plain RAM: run the instruction emulator, whose callbacks reach the memory map.</summary>
    EmulateMmio,

    /// <summary>The guest executed HLT.</summary>
    Halt,

    /// <summary>The guest can now take an external interrupt.</summary>
    InterruptWindow,

    /// <summary>RDMSR/WRMSR of an MSR the hypervisor does not handle.</summary>
    Msr,

    /// <summary>CPUID of a leaf configured to exit.</summary>
    Cpuid,

    /// <summary>WHvCancelRunVirtualProcessor was called.</summary>
    Canceled,

    /// <summary>Triple fault (WHPX's unrecoverable exception).</summary>
    Shutdown,

    /// <summary>A state the backend cannot continue from; the detail says why.</summary>
    GuestError,
}

/// <summary>One exit of <c>WHvRunVirtualProcessor</c>, decoded into plain values.</summary>
internal readonly record struct WhpxExit(
    WHV_RUN_VP_EXIT_REASON Reason,
    WhpxExitAction Action,
    ulong Rip,
    ulong Rflags,
    int InstructionLength,
    int Cpl,
    bool InterruptShadow,
    ushort Port,
    int AccessSize,
    bool IsWrite,
    bool IsString,
    bool IsRep,
    ulong Rax,
    ulong Gpa,
    WHV_MEMORY_ACCESS_TYPE MemoryAccessType,
    bool GpaUnmapped,
    uint MsrNumber,
    ulong Rdx,
    ulong Rcx,
    ulong Rbx,
    byte ExceptionType,
    uint ErrorCode,
    bool ErrorCodeValid,
    ulong ExceptionParameter,
    WHV_X64_UNSUPPORTED_FEATURE_CODE UnsupportedFeature,
    ulong FeatureParameter)
{
    /// <summary>RFLAGS.IF (SDM Vol. 1, 3.4.3.3).</summary>
    public bool InterruptsEnabled => (Rflags & 0x200) != 0;

    /// <summary>Decodes <paramref name="context"/> as written by <c>WHvRunVirtualProcessor</c>.</summary>
    public static WhpxExit Decode(in WHV_RUN_VP_EXIT_CONTEXT context)
    {
        ulong state = context.VpContext.ExecutionState;
        var exit = new WhpxExit
        {
            Reason = context.ExitReason,
            Rip = context.VpContext.Rip,
            Rflags = context.VpContext.Rflags,
            InstructionLength = (int)WhvBitFields.ExitInstructionLength.Get(context.VpContext.InstructionLengthCr8),
            Cpl = (int)WhvBitFields.ExecCpl.Get(state),
            InterruptShadow = WhvBitFields.ExecInterruptShadow.IsSet(state),
        };

        switch (context.ExitReason)
        {
            case WHV_RUN_VP_EXIT_REASON.WHvRunVpExitReasonNone:
                return exit with { Action = WhpxExitAction.Resume };

            case WHV_RUN_VP_EXIT_REASON.WHvRunVpExitReasonX64IoPortAccess:
            {
                ref readonly WHV_X64_IO_PORT_ACCESS_CONTEXT io = ref context.IoPortAccess;
                ulong info = io.AccessInfo;
                return exit with
                {
                    Action = WhpxExitAction.EmulateIo,
                    Port = io.PortNumber,
                    AccessSize = (int)WhvBitFields.IoAccessSize.Get(info),
                    IsWrite = WhvBitFields.IoIsWrite.IsSet(info),
                    IsString = WhvBitFields.IoStringOp.IsSet(info),
                    IsRep = WhvBitFields.IoRepPrefix.IsSet(info),
                    Rax = io.Rax,
                    Rcx = io.Rcx,
                };
            }

            case WHV_RUN_VP_EXIT_REASON.WHvRunVpExitReasonMemoryAccess:
            {
                ref readonly WHV_MEMORY_ACCESS_CONTEXT mem = ref context.MemoryAccess;
                ulong info = mem.AccessInfo;
                var type = (WHV_MEMORY_ACCESS_TYPE)WhvBitFields.MemoryAccessType.Get(info);
                return exit with
                {
                    Action = WhpxExitAction.EmulateMmio,
                    Gpa = mem.Gpa,
                    MemoryAccessType = type,
                    IsWrite = type == WHV_MEMORY_ACCESS_TYPE.WHvMemoryAccessWrite,
                    GpaUnmapped = WhvBitFields.MemoryGpaUnmapped.IsSet(info),
                };
            }

            case WHV_RUN_VP_EXIT_REASON.WHvRunVpExitReasonX64Halt:
                return exit with { Action = WhpxExitAction.Halt };

            case WHV_RUN_VP_EXIT_REASON.WHvRunVpExitReasonX64InterruptWindow:
                return exit with { Action = WhpxExitAction.InterruptWindow };

            case WHV_RUN_VP_EXIT_REASON.WHvRunVpExitReasonX64MsrAccess:
            {
                ref readonly WHV_X64_MSR_ACCESS_CONTEXT msr = ref context.MsrAccess;
                return exit with
                {
                    Action = WhpxExitAction.Msr,
                    MsrNumber = msr.MsrNumber,
                    IsWrite = WhvBitFields.MsrIsWrite.IsSet(msr.AccessInfo),
                    Rax = msr.Rax,
                    Rdx = msr.Rdx,
                };
            }

            case WHV_RUN_VP_EXIT_REASON.WHvRunVpExitReasonX64Cpuid:
            {
                ref readonly WHV_X64_CPUID_ACCESS_CONTEXT cpuid = ref context.CpuidAccess;
                return exit with
                {
                    Action = WhpxExitAction.Cpuid,
                    Rax = cpuid.Rax,
                    Rcx = cpuid.Rcx,
                    Rdx = cpuid.Rdx,
                    Rbx = cpuid.Rbx,
                };
            }

            case WHV_RUN_VP_EXIT_REASON.WHvRunVpExitReasonCanceled:
                return exit with { Action = WhpxExitAction.Canceled };

            case WHV_RUN_VP_EXIT_REASON.WHvRunVpExitReasonUnrecoverableException:
                return exit with { Action = WhpxExitAction.Shutdown };

            case WHV_RUN_VP_EXIT_REASON.WHvRunVpExitReasonException:
            {
                ref readonly WHV_VP_EXCEPTION_CONTEXT e = ref context.VpException;
                return exit with
                {
                    Action = WhpxExitAction.GuestError,
                    ExceptionType = e.ExceptionType,
                    ErrorCode = e.ErrorCode,
                    ErrorCodeValid = WhvBitFields.ExceptionErrorCodeValid.IsSet(e.ExceptionInfo),
                    ExceptionParameter = e.ExceptionParameter,
                };
            }

            case WHV_RUN_VP_EXIT_REASON.WHvRunVpExitReasonUnsupportedFeature:
                return exit with
                {
                    Action = WhpxExitAction.GuestError,
                    UnsupportedFeature = context.UnsupportedFeature.FeatureCode,
                    FeatureParameter = context.UnsupportedFeature.FeatureParameter,
                };

            default:
                // Invalid VP register value, and exits we never enable (APIC EOI/SMI/INIT-SIPI/write traps, RDTSC,
                // hypercalls, SynIC): the guest cannot continue meaningfully.
                return exit with { Action = WhpxExitAction.GuestError };
        }
    }

    /// <summary>A description of a <see cref="WhpxExitAction.GuestError"/> or <see cref="WhpxExitAction.Shutdown"/> exit.</summary>
    public string Describe() => Reason switch
    {
        WHV_RUN_VP_EXIT_REASON.WHvRunVpExitReasonUnrecoverableException =>
            $"triple fault (WHPX unrecoverable exception) at RIP 0x{Rip:X}",
        WHV_RUN_VP_EXIT_REASON.WHvRunVpExitReasonInvalidVpRegisterValue =>
            $"WHPX rejected the virtual processor's register state (invalid VP register value) at RIP 0x{Rip:X}",
        WHV_RUN_VP_EXIT_REASON.WHvRunVpExitReasonUnsupportedFeature =>
            $"the guest used a feature WHPX does not support ({UnsupportedFeature}, parameter 0x{FeatureParameter:X}) at RIP 0x{Rip:X}",
        WHV_RUN_VP_EXIT_REASON.WHvRunVpExitReasonException =>
            $"guest exception {ExceptionType}" + (ErrorCodeValid ? $" (error code 0x{ErrorCode:X})" : string.Empty) + $" at RIP 0x{Rip:X}",
        _ => $"unexpected WHPX exit {Reason} (0x{(uint)Reason:X}) at RIP 0x{Rip:X}",
    };
}
