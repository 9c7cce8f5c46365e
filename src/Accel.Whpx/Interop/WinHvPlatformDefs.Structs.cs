// Native names and layouts from winhvplatformdefs.h; every size and offset here is asserted against the MinGW-w64
// copy of the header by the header-check test (tests/Hypervisor.Accel.Whpx.Tests/HeaderCheck).
#pragma warning disable CA1707, CA1051, CA1815, IDE1006

using System.Runtime.InteropServices;

namespace Hypervisor.Accel.Whpx.Interop;

/// <summary>C: <c>union DECLSPEC_ALIGN(16) WHV_UINT128</c>. Arrays of it must be 16-byte aligned by the allocator.</summary>
[StructLayout(LayoutKind.Explicit, Size = 16)]
internal struct WHV_UINT128
{
    [FieldOffset(0)] public ulong Low64;
    [FieldOffset(8)] public ulong High64;
}

[StructLayout(LayoutKind.Explicit, Size = 16)]
internal struct WHV_X64_FP_REGISTER
{
    [FieldOffset(0)] public ulong Mantissa;

    /// <summary>BiasedExponent:15, Sign:1, Reserved:48.</summary>
    [FieldOffset(8), BitFieldStorage] public ulong ExponentAndSign;
}

[StructLayout(LayoutKind.Explicit, Size = 16)]
internal struct WHV_X64_FP_CONTROL_STATUS_REGISTER
{
    [FieldOffset(0)] public ushort FpControl;
    [FieldOffset(2)] public ushort FpStatus;
    [FieldOffset(4)] public byte FpTag;
    [FieldOffset(5)] public byte Reserved;
    [FieldOffset(6)] public ushort LastFpOp;
    [FieldOffset(8)] public ulong LastFpRip;
    [FieldOffset(8)] public uint LastFpEip;
    [FieldOffset(12)] public ushort LastFpCs;
    [FieldOffset(14)] public ushort Reserved2;
}

[StructLayout(LayoutKind.Explicit, Size = 16)]
internal struct WHV_X64_XMM_CONTROL_STATUS_REGISTER
{
    [FieldOffset(0)] public ulong LastFpRdp;
    [FieldOffset(0)] public uint LastFpDp;
    [FieldOffset(4)] public ushort LastFpDs;
    [FieldOffset(6)] public ushort Reserved;
    [FieldOffset(8)] public uint XmmStatusControl;
    [FieldOffset(12)] public uint XmmStatusControlMask;
}

[StructLayout(LayoutKind.Explicit, Size = 16)]
internal struct WHV_X64_SEGMENT_REGISTER
{
    [FieldOffset(0)] public ulong Base;
    [FieldOffset(8)] public uint Limit;
    [FieldOffset(12)] public ushort Selector;

    /// <summary>SegmentType:4, NonSystemSegment:1, DescriptorPrivilegeLevel:2, Present:1, Reserved:4, Available:1,
    /// Long:1, Default:1, Granularity:1 (see <see cref="WhvBitFields"/>).</summary>
    [FieldOffset(14)] public ushort Attributes;
}

[StructLayout(LayoutKind.Explicit, Size = 16)]
internal unsafe struct WHV_X64_TABLE_REGISTER
{
    [FieldOffset(0)] public fixed ushort Pad[3];
    [FieldOffset(6)] public ushort Limit;
    [FieldOffset(8)] public ulong Base;
}

/// <summary>C: <c>union WHV_REGISTER_VALUE</c>, 16 bytes, 16-byte aligned in native arrays.</summary>
[StructLayout(LayoutKind.Explicit, Size = 16)]
internal struct WHV_REGISTER_VALUE
{
    [FieldOffset(0)] public WHV_UINT128 Reg128;
    [FieldOffset(0)] public ulong Reg64;
    [FieldOffset(0)] public uint Reg32;
    [FieldOffset(0)] public ushort Reg16;
    [FieldOffset(0)] public byte Reg8;
    [FieldOffset(0)] public WHV_X64_FP_REGISTER Fp;
    [FieldOffset(0)] public WHV_X64_FP_CONTROL_STATUS_REGISTER FpControlStatus;
    [FieldOffset(0)] public WHV_X64_XMM_CONTROL_STATUS_REGISTER XmmControlStatus;
    [FieldOffset(0)] public WHV_X64_SEGMENT_REGISTER Segment;
    [FieldOffset(0)] public WHV_X64_TABLE_REGISTER Table;

    /// <summary>WHV_X64_INTERRUPT_STATE_REGISTER.AsUINT64.</summary>
    [FieldOffset(0)] public ulong InterruptState;

    /// <summary>WHV_X64_PENDING_INTERRUPTION_REGISTER.AsUINT64.</summary>
    [FieldOffset(0)] public ulong PendingInterruption;

    /// <summary>WHV_X64_DELIVERABILITY_NOTIFICATIONS_REGISTER.AsUINT64.</summary>
    [FieldOffset(0)] public ulong DeliverabilityNotifications;
}

[StructLayout(LayoutKind.Explicit, Size = 40)]
internal struct WHV_VP_EXIT_CONTEXT
{
    /// <summary>WHV_X64_VP_EXECUTION_STATE.AsUINT16.</summary>
    [FieldOffset(0)] public ushort ExecutionState;

    /// <summary>InstructionLength:4, Cr8:4.</summary>
    [FieldOffset(2), BitFieldStorage] public byte InstructionLengthCr8;
    [FieldOffset(3)] public byte Reserved;
    [FieldOffset(4)] public uint Reserved2;
    [FieldOffset(8)] public WHV_X64_SEGMENT_REGISTER Cs;
    [FieldOffset(24)] public ulong Rip;
    [FieldOffset(32)] public ulong Rflags;
}

[StructLayout(LayoutKind.Explicit, Size = 40)]
internal unsafe struct WHV_MEMORY_ACCESS_CONTEXT
{
    [FieldOffset(0)] public byte InstructionByteCount;
    [FieldOffset(1)] public fixed byte Reserved[3];
    [FieldOffset(4)] public fixed byte InstructionBytes[16];

    /// <summary>WHV_MEMORY_ACCESS_INFO.AsUINT32: AccessType:2, GpaUnmapped:1, GvaValid:1.</summary>
    [FieldOffset(20)] public uint AccessInfo;
    [FieldOffset(24)] public ulong Gpa;
    [FieldOffset(32)] public ulong Gva;
}

[StructLayout(LayoutKind.Explicit, Size = 96)]
internal unsafe struct WHV_X64_IO_PORT_ACCESS_CONTEXT
{
    [FieldOffset(0)] public byte InstructionByteCount;
    [FieldOffset(1)] public fixed byte Reserved[3];
    [FieldOffset(4)] public fixed byte InstructionBytes[16];

    /// <summary>WHV_X64_IO_PORT_ACCESS_INFO.AsUINT32: IsWrite:1, AccessSize:3, StringOp:1, RepPrefix:1.</summary>
    [FieldOffset(20)] public uint AccessInfo;
    [FieldOffset(24)] public ushort PortNumber;
    [FieldOffset(26)] public fixed ushort Reserved2[3];
    [FieldOffset(32)] public ulong Rax;
    [FieldOffset(40)] public ulong Rcx;
    [FieldOffset(48)] public ulong Rsi;
    [FieldOffset(56)] public ulong Rdi;
    [FieldOffset(64)] public WHV_X64_SEGMENT_REGISTER Ds;
    [FieldOffset(80)] public WHV_X64_SEGMENT_REGISTER Es;
}

[StructLayout(LayoutKind.Explicit, Size = 24)]
internal struct WHV_X64_MSR_ACCESS_CONTEXT
{
    /// <summary>WHV_X64_MSR_ACCESS_INFO.AsUINT32: IsWrite:1.</summary>
    [FieldOffset(0)] public uint AccessInfo;
    [FieldOffset(4)] public uint MsrNumber;
    [FieldOffset(8)] public ulong Rax;
    [FieldOffset(16)] public ulong Rdx;
}

[StructLayout(LayoutKind.Explicit, Size = 64)]
internal struct WHV_X64_CPUID_ACCESS_CONTEXT
{
    [FieldOffset(0)] public ulong Rax;
    [FieldOffset(8)] public ulong Rcx;
    [FieldOffset(16)] public ulong Rdx;
    [FieldOffset(24)] public ulong Rbx;
    [FieldOffset(32)] public ulong DefaultResultRax;
    [FieldOffset(40)] public ulong DefaultResultRcx;
    [FieldOffset(48)] public ulong DefaultResultRdx;
    [FieldOffset(56)] public ulong DefaultResultRbx;
}

[StructLayout(LayoutKind.Explicit, Size = 40)]
internal unsafe struct WHV_VP_EXCEPTION_CONTEXT
{
    [FieldOffset(0)] public byte InstructionByteCount;
    [FieldOffset(1)] public fixed byte Reserved[3];
    [FieldOffset(4)] public fixed byte InstructionBytes[16];

    /// <summary>WHV_VP_EXCEPTION_INFO.AsUINT32: ErrorCodeValid:1, SoftwareException:1.</summary>
    [FieldOffset(20)] public uint ExceptionInfo;
    [FieldOffset(24)] public byte ExceptionType;
    [FieldOffset(25)] public fixed byte Reserved2[3];
    [FieldOffset(28)] public uint ErrorCode;
    [FieldOffset(32)] public ulong ExceptionParameter;
}

[StructLayout(LayoutKind.Explicit, Size = 4)]
internal struct WHV_X64_INTERRUPTION_DELIVERABLE_CONTEXT
{
    [FieldOffset(0)] public WHV_X64_PENDING_INTERRUPTION_TYPE DeliverableType;
}

[StructLayout(LayoutKind.Explicit, Size = 16)]
internal struct WHV_X64_UNSUPPORTED_FEATURE_CONTEXT
{
    [FieldOffset(0)] public WHV_X64_UNSUPPORTED_FEATURE_CODE FeatureCode;
    [FieldOffset(4)] public uint Reserved;
    [FieldOffset(8)] public ulong FeatureParameter;
}

[StructLayout(LayoutKind.Explicit, Size = 4)]
internal struct WHV_RUN_VP_CANCELED_CONTEXT
{
    [FieldOffset(0)] public WHV_RUN_VP_CANCEL_REASON CancelReason;
}

[StructLayout(LayoutKind.Explicit, Size = 4)]
internal struct WHV_X64_APIC_EOI_CONTEXT
{
    [FieldOffset(0)] public uint InterruptVector;
}

[StructLayout(LayoutKind.Explicit, Size = 40)]
internal struct WHV_X64_RDTSC_CONTEXT
{
    [FieldOffset(0)] public ulong TscAux;
    [FieldOffset(8)] public ulong VirtualOffset;
    [FieldOffset(16)] public ulong Tsc;
    [FieldOffset(24)] public ulong ReferenceTime;

    /// <summary>WHV_X64_RDTSC_INFO.AsUINT64: IsRdtscp:1.</summary>
    [FieldOffset(32)] public ulong RdtscInfo;
}

/// <summary>
/// C: <c>struct WHV_RUN_VP_EXIT_CONTEXT</c> (224 bytes): the reason, the common VP context, and a union of per-reason
/// contexts starting at offset 48. The size includes the largest member (the 176-byte hypercall context), which
/// this backend never reads.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 224)]
internal struct WHV_RUN_VP_EXIT_CONTEXT
{
    [FieldOffset(0)] public WHV_RUN_VP_EXIT_REASON ExitReason;
    [FieldOffset(4)] public uint Reserved;
    [FieldOffset(8)] public WHV_VP_EXIT_CONTEXT VpContext;
    [FieldOffset(48)] public WHV_MEMORY_ACCESS_CONTEXT MemoryAccess;
    [FieldOffset(48)] public WHV_X64_IO_PORT_ACCESS_CONTEXT IoPortAccess;
    [FieldOffset(48)] public WHV_X64_MSR_ACCESS_CONTEXT MsrAccess;
    [FieldOffset(48)] public WHV_X64_CPUID_ACCESS_CONTEXT CpuidAccess;
    [FieldOffset(48)] public WHV_VP_EXCEPTION_CONTEXT VpException;
    [FieldOffset(48)] public WHV_X64_INTERRUPTION_DELIVERABLE_CONTEXT InterruptWindow;
    [FieldOffset(48)] public WHV_X64_UNSUPPORTED_FEATURE_CONTEXT UnsupportedFeature;
    [FieldOffset(48)] public WHV_RUN_VP_CANCELED_CONTEXT CancelReason;
    [FieldOffset(48)] public WHV_X64_APIC_EOI_CONTEXT ApicEoi;
    [FieldOffset(48)] public WHV_X64_RDTSC_CONTEXT ReadTsc;
}

[StructLayout(LayoutKind.Explicit, Size = 24)]
internal struct WHV_PROCESSOR_FEATURES_BANKS
{
    [FieldOffset(0)] public uint BanksCount;
    [FieldOffset(4)] public uint Reserved0;
    [FieldOffset(8)] public ulong Bank0;
    [FieldOffset(16)] public ulong Bank1;
}

/// <summary>C: <c>union WHV_CAPABILITY</c> (24 bytes: the largest member is the processor feature banks).</summary>
[StructLayout(LayoutKind.Explicit, Size = 24)]
internal struct WHV_CAPABILITY
{
    /// <summary>WINBOOL.</summary>
    [FieldOffset(0)] public int HypervisorPresent;

    /// <summary>WHV_CAPABILITY_FEATURES.AsUINT64.</summary>
    [FieldOffset(0)] public ulong Features;

    /// <summary>WHV_EXTENDED_VM_EXITS.AsUINT64.</summary>
    [FieldOffset(0)] public ulong ExtendedVmExits;
    [FieldOffset(0)] public WHV_PROCESSOR_VENDOR ProcessorVendor;

    /// <summary>WHV_PROCESSOR_FEATURES.AsUINT64.</summary>
    [FieldOffset(0)] public ulong ProcessorFeatures;

    /// <summary>WHV_PROCESSOR_XSAVE_FEATURES.AsUINT64.</summary>
    [FieldOffset(0)] public ulong ProcessorXsaveFeatures;
    [FieldOffset(0)] public byte ProcessorClFlushSize;
    [FieldOffset(0)] public ulong ExceptionExitBitmap;

    /// <summary>WHV_X64_MSR_EXIT_BITMAP.AsUINT64.</summary>
    [FieldOffset(0)] public ulong X64MsrExitBitmap;
    [FieldOffset(0)] public ulong ProcessorClockFrequency;
    [FieldOffset(0)] public ulong InterruptClockFrequency;
    [FieldOffset(0)] public WHV_PROCESSOR_FEATURES_BANKS ProcessorFeaturesBanks;
}

[StructLayout(LayoutKind.Explicit, Size = 32)]
internal unsafe struct WHV_X64_CPUID_RESULT
{
    [FieldOffset(0)] public uint Function;
    [FieldOffset(4)] public fixed uint Reserved[3];
    [FieldOffset(16)] public uint Eax;
    [FieldOffset(20)] public uint Ebx;
    [FieldOffset(24)] public uint Ecx;
    [FieldOffset(28)] public uint Edx;
}

/// <summary>C: <c>union WHV_PARTITION_PROPERTY</c> (48 bytes). Only the members this backend sets are declared.</summary>
[StructLayout(LayoutKind.Explicit, Size = 48)]
internal struct WHV_PARTITION_PROPERTY
{
    /// <summary>WHV_EXTENDED_VM_EXITS.AsUINT64.</summary>
    [FieldOffset(0)] public ulong ExtendedVmExits;
    [FieldOffset(0)] public uint ProcessorCount;
    [FieldOffset(0)] public ulong ExceptionExitBitmap;
    [FieldOffset(0)] public WHV_X64_LOCAL_APIC_EMULATION_MODE LocalApicEmulationMode;

    /// <summary>WHV_X64_MSR_EXIT_BITMAP.AsUINT64.</summary>
    [FieldOffset(0)] public ulong X64MsrExitBitmap;

    /// <summary>
    /// <c>UINT32 CpuidExitList[1]</c>: the first of the leaves that exit. The property's buffer is the whole UINT32
    /// array, passed on its own with its size in bytes; this member only pins its place and element size.
    /// </summary>
    [FieldOffset(0)] public uint CpuidExitList;
}

[StructLayout(LayoutKind.Explicit, Size = 8)]
internal struct WHV_TRANSLATE_GVA_RESULT
{
    [FieldOffset(0)] public WHV_TRANSLATE_GVA_RESULT_CODE ResultCode;
    [FieldOffset(4)] public uint Reserved;
}
