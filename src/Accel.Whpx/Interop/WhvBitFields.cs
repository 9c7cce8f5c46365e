#pragma warning disable CA1707

namespace Hypervisor.Accel.Whpx.Interop;

/// <summary>
/// Every C bit-field this backend reads or writes, as shift and width. Encoders and decoders use only these, and
/// the header-check test proves each one against the C compiler's layout of the named member.
/// </summary>
internal static class WhvBitFields
{
    // WHV_X64_PENDING_INTERRUPTION_REGISTER (AsUINT64)
    [NativeBitField("WHV_X64_PENDING_INTERRUPTION_REGISTER", "InterruptionPending", 0, 8)]
    public static readonly BitField PendingInterruptionPending = new(0, 1);
    [NativeBitField("WHV_X64_PENDING_INTERRUPTION_REGISTER", "InterruptionType", 0, 8)]
    public static readonly BitField PendingInterruptionType = new(1, 3);
    [NativeBitField("WHV_X64_PENDING_INTERRUPTION_REGISTER", "DeliverErrorCode", 0, 8)]
    public static readonly BitField PendingDeliverErrorCode = new(4, 1);
    [NativeBitField("WHV_X64_PENDING_INTERRUPTION_REGISTER", "InstructionLength", 0, 8)]
    public static readonly BitField PendingInstructionLength = new(5, 4);
    [NativeBitField("WHV_X64_PENDING_INTERRUPTION_REGISTER", "InterruptionVector", 0, 8)]
    public static readonly BitField PendingInterruptionVector = new(16, 16);
    [NativeBitField("WHV_X64_PENDING_INTERRUPTION_REGISTER", "ErrorCode", 0, 8)]
    public static readonly BitField PendingErrorCode = new(32, 32);

    // WHV_X64_DELIVERABILITY_NOTIFICATIONS_REGISTER (AsUINT64)
    [NativeBitField("WHV_X64_DELIVERABILITY_NOTIFICATIONS_REGISTER", "NmiNotification", 0, 8)]
    public static readonly BitField NotifyNmi = new(0, 1);
    [NativeBitField("WHV_X64_DELIVERABILITY_NOTIFICATIONS_REGISTER", "InterruptNotification", 0, 8)]
    public static readonly BitField NotifyInterrupt = new(1, 1);

    // WHV_X64_INTERRUPT_STATE_REGISTER (AsUINT64)
    [NativeBitField("WHV_X64_INTERRUPT_STATE_REGISTER", "InterruptShadow", 0, 8)]
    public static readonly BitField InterruptShadow = new(0, 1);
    [NativeBitField("WHV_X64_INTERRUPT_STATE_REGISTER", "NmiMasked", 0, 8)]
    public static readonly BitField NmiMasked = new(1, 1);

    // WHV_X64_SEGMENT_REGISTER.Attributes (16 bits at offset 14)
    [NativeBitField("WHV_X64_SEGMENT_REGISTER", "SegmentType", 14, 2)]
    public static readonly BitField SegmentType = new(0, 4);
    [NativeBitField("WHV_X64_SEGMENT_REGISTER", "NonSystemSegment", 14, 2)]
    public static readonly BitField SegmentNonSystem = new(4, 1);
    [NativeBitField("WHV_X64_SEGMENT_REGISTER", "DescriptorPrivilegeLevel", 14, 2)]
    public static readonly BitField SegmentDpl = new(5, 2);
    [NativeBitField("WHV_X64_SEGMENT_REGISTER", "Present", 14, 2)]
    public static readonly BitField SegmentPresent = new(7, 1);
    [NativeBitField("WHV_X64_SEGMENT_REGISTER", "Available", 14, 2)]
    public static readonly BitField SegmentAvailable = new(12, 1);
    [NativeBitField("WHV_X64_SEGMENT_REGISTER", "Long", 14, 2)]
    public static readonly BitField SegmentLong = new(13, 1);
    [NativeBitField("WHV_X64_SEGMENT_REGISTER", "Default", 14, 2)]
    public static readonly BitField SegmentDefault = new(14, 1);
    [NativeBitField("WHV_X64_SEGMENT_REGISTER", "Granularity", 14, 2)]
    public static readonly BitField SegmentGranularity = new(15, 1);

    // WHV_X64_FP_REGISTER second quadword
    [NativeBitField("WHV_X64_FP_REGISTER", "BiasedExponent", 8, 8)]
    public static readonly BitField FpBiasedExponent = new(0, 15);
    [NativeBitField("WHV_X64_FP_REGISTER", "Sign", 8, 8)]
    public static readonly BitField FpSign = new(15, 1);

    // WHV_VP_EXIT_CONTEXT byte 2 and ExecutionState
    [NativeBitField("WHV_VP_EXIT_CONTEXT", "InstructionLength", 2, 1)]
    public static readonly BitField ExitInstructionLength = new(0, 4);
    [NativeBitField("WHV_VP_EXIT_CONTEXT", "Cr8", 2, 1)]
    public static readonly BitField ExitCr8 = new(4, 4);
    [NativeBitField("WHV_VP_EXIT_CONTEXT", "ExecutionState.Cpl", 0, 2)]
    public static readonly BitField ExecCpl = new(0, 2);
    [NativeBitField("WHV_VP_EXIT_CONTEXT", "ExecutionState.Cr0Pe", 0, 2)]
    public static readonly BitField ExecCr0Pe = new(2, 1);
    [NativeBitField("WHV_VP_EXIT_CONTEXT", "ExecutionState.EferLma", 0, 2)]
    public static readonly BitField ExecEferLma = new(4, 1);
    [NativeBitField("WHV_VP_EXIT_CONTEXT", "ExecutionState.InterruptionPending", 0, 2)]
    public static readonly BitField ExecInterruptionPending = new(6, 1);
    [NativeBitField("WHV_VP_EXIT_CONTEXT", "ExecutionState.InterruptShadow", 0, 2)]
    public static readonly BitField ExecInterruptShadow = new(12, 1);

    // WHV_MEMORY_ACCESS_INFO (AsUINT32)
    [NativeBitField("WHV_MEMORY_ACCESS_INFO", "AccessType", 0, 4)]
    public static readonly BitField MemoryAccessType = new(0, 2);
    [NativeBitField("WHV_MEMORY_ACCESS_INFO", "GpaUnmapped", 0, 4)]
    public static readonly BitField MemoryGpaUnmapped = new(2, 1);
    [NativeBitField("WHV_MEMORY_ACCESS_INFO", "GvaValid", 0, 4)]
    public static readonly BitField MemoryGvaValid = new(3, 1);

    // WHV_X64_IO_PORT_ACCESS_INFO (AsUINT32)
    [NativeBitField("WHV_X64_IO_PORT_ACCESS_INFO", "IsWrite", 0, 4)]
    public static readonly BitField IoIsWrite = new(0, 1);
    [NativeBitField("WHV_X64_IO_PORT_ACCESS_INFO", "AccessSize", 0, 4)]
    public static readonly BitField IoAccessSize = new(1, 3);
    [NativeBitField("WHV_X64_IO_PORT_ACCESS_INFO", "StringOp", 0, 4)]
    public static readonly BitField IoStringOp = new(4, 1);
    [NativeBitField("WHV_X64_IO_PORT_ACCESS_INFO", "RepPrefix", 0, 4)]
    public static readonly BitField IoRepPrefix = new(5, 1);

    // WHV_X64_MSR_ACCESS_INFO (AsUINT32)
    [NativeBitField("WHV_X64_MSR_ACCESS_INFO", "IsWrite", 0, 4)]
    public static readonly BitField MsrIsWrite = new(0, 1);

    // WHV_VP_EXCEPTION_INFO (AsUINT32)
    [NativeBitField("WHV_VP_EXCEPTION_INFO", "ErrorCodeValid", 0, 4)]
    public static readonly BitField ExceptionErrorCodeValid = new(0, 1);
    [NativeBitField("WHV_VP_EXCEPTION_INFO", "SoftwareException", 0, 4)]
    public static readonly BitField ExceptionSoftware = new(1, 1);

    // WHV_EXTENDED_VM_EXITS (AsUINT64)
    [NativeBitField("WHV_EXTENDED_VM_EXITS", "X64CpuidExit", 0, 8)]
    public static readonly BitField ExtendedExitCpuid = new(0, 1);
    [NativeBitField("WHV_EXTENDED_VM_EXITS", "X64MsrExit", 0, 8)]
    public static readonly BitField ExtendedExitMsr = new(1, 1);
    [NativeBitField("WHV_EXTENDED_VM_EXITS", "ExceptionExit", 0, 8)]
    public static readonly BitField ExtendedExitException = new(2, 1);

    // WHV_CAPABILITY_FEATURES (AsUINT64)
    [NativeBitField("WHV_CAPABILITY_FEATURES", "LocalApicEmulation", 0, 8)]
    public static readonly BitField FeatureLocalApicEmulation = new(1, 1);
    [NativeBitField("WHV_CAPABILITY_FEATURES", "Xsave", 0, 8)]
    public static readonly BitField FeatureXsave = new(2, 1);
    [NativeBitField("WHV_CAPABILITY_FEATURES", "DirtyPageTracking", 0, 8)]
    public static readonly BitField FeatureDirtyPageTracking = new(3, 1);

    // WHV_EMULATOR_STATUS (AsUINT32)
    [NativeBitField("WHV_EMULATOR_STATUS", "EmulationSuccessful", 0, 4)]
    public static readonly BitField EmulationSuccessful = new(0, 1);
    [NativeBitField("WHV_EMULATOR_STATUS", "InternalEmulationFailure", 0, 4)]
    public static readonly BitField EmulationInternalFailure = new(1, 1);
    [NativeBitField("WHV_EMULATOR_STATUS", "IoPortCallbackFailed", 0, 4)]
    public static readonly BitField EmulationIoPortCallbackFailed = new(2, 1);
    [NativeBitField("WHV_EMULATOR_STATUS", "MemoryCallbackFailed", 0, 4)]
    public static readonly BitField EmulationMemoryCallbackFailed = new(3, 1);
    [NativeBitField("WHV_EMULATOR_STATUS", "TranslateGvaPageCallbackFailed", 0, 4)]
    public static readonly BitField EmulationTranslateGvaFailed = new(4, 1);
}
