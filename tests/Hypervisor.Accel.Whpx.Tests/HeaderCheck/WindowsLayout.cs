using System.Reflection;

namespace Hypervisor.Accel.Whpx.Tests.HeaderCheck;

/// <summary>Names the C member whose offset (or size) a <see cref="WindowsLayout"/> constant states.</summary>
[AttributeUsage(AttributeTargets.Field)]
internal sealed class CLayoutAttribute(string cType, string? member = null) : Attribute
{
    public string CType { get; } = cType;

    /// <summary>The member path for <c>offsetof</c>, or null for <c>sizeof</c> of the type.</summary>
    public string? Member { get; } = member;
}

/// <summary>
/// Byte offsets of the Windows structures, written down from winhvplatformdefs.h and winhvemulation.h, independently
/// of our interop types. The translation tests lay out byte buffers with these, and
/// <see cref="WindowsLayoutTests"/> proves every one against the headers with the C compiler.
/// </summary>
internal static class WindowsLayout
{
    [CLayout("WHV_RUN_VP_EXIT_CONTEXT")] public const int ExitContextSize = 224;
    [CLayout("WHV_RUN_VP_EXIT_CONTEXT", "ExitReason")] public const int ExitReason = 0;
    [CLayout("WHV_RUN_VP_EXIT_CONTEXT", "VpContext.ExecutionState")] public const int ExecutionState = 8;
    [CLayout("WHV_RUN_VP_EXIT_CONTEXT", "VpContext.Cs")] public const int ExitCs = 16;
    [CLayout("WHV_RUN_VP_EXIT_CONTEXT", "VpContext.Rip")] public const int ExitRip = 32;
    [CLayout("WHV_RUN_VP_EXIT_CONTEXT", "VpContext.Rflags")] public const int ExitRflags = 40;

    /// <summary>The byte holding InstructionLength:4 (low nibble) and Cr8:4 (offsetof cannot name bit-fields).</summary>
    [CLayout("WHV_RUN_VP_EXIT_CONTEXT", "VpContext.Reserved")] public const int ExitReservedAfterLengthByte = 11;
    public const int ExitInstructionLengthByte = 10;

    [CLayout("WHV_RUN_VP_EXIT_CONTEXT", "IoPortAccess.AccessInfo")] public const int IoAccessInfo = 68;
    [CLayout("WHV_RUN_VP_EXIT_CONTEXT", "IoPortAccess.PortNumber")] public const int IoPortNumber = 72;
    [CLayout("WHV_RUN_VP_EXIT_CONTEXT", "IoPortAccess.Rax")] public const int IoRax = 80;
    [CLayout("WHV_RUN_VP_EXIT_CONTEXT", "IoPortAccess.Rcx")] public const int IoRcx = 88;

    [CLayout("WHV_RUN_VP_EXIT_CONTEXT", "MemoryAccess.AccessInfo")] public const int MemAccessInfo = 68;
    [CLayout("WHV_RUN_VP_EXIT_CONTEXT", "MemoryAccess.Gpa")] public const int MemGpa = 72;
    [CLayout("WHV_RUN_VP_EXIT_CONTEXT", "MemoryAccess.Gva")] public const int MemGva = 80;

    [CLayout("WHV_RUN_VP_EXIT_CONTEXT", "MsrAccess.AccessInfo")] public const int MsrAccessInfo = 48;
    [CLayout("WHV_RUN_VP_EXIT_CONTEXT", "MsrAccess.MsrNumber")] public const int MsrNumber = 52;
    [CLayout("WHV_RUN_VP_EXIT_CONTEXT", "MsrAccess.Rax")] public const int MsrRax = 56;
    [CLayout("WHV_RUN_VP_EXIT_CONTEXT", "MsrAccess.Rdx")] public const int MsrRdx = 64;

    [CLayout("WHV_RUN_VP_EXIT_CONTEXT", "CpuidAccess.Rax")] public const int CpuidRax = 48;
    [CLayout("WHV_RUN_VP_EXIT_CONTEXT", "CpuidAccess.Rcx")] public const int CpuidRcx = 56;
    [CLayout("WHV_RUN_VP_EXIT_CONTEXT", "CpuidAccess.Rdx")] public const int CpuidRdx = 64;
    [CLayout("WHV_RUN_VP_EXIT_CONTEXT", "CpuidAccess.Rbx")] public const int CpuidRbx = 72;
    [CLayout("WHV_RUN_VP_EXIT_CONTEXT", "CpuidAccess.DefaultResultRax")] public const int CpuidDefaultRax = 80;

    [CLayout("WHV_RUN_VP_EXIT_CONTEXT", "VpException.ExceptionInfo")] public const int ExceptionInfo = 68;
    [CLayout("WHV_RUN_VP_EXIT_CONTEXT", "VpException.ExceptionType")] public const int ExceptionType = 72;
    [CLayout("WHV_RUN_VP_EXIT_CONTEXT", "VpException.ErrorCode")] public const int ExceptionErrorCode = 76;

    [CLayout("WHV_RUN_VP_EXIT_CONTEXT", "UnsupportedFeature.FeatureCode")] public const int FeatureCode = 48;
    [CLayout("WHV_RUN_VP_EXIT_CONTEXT", "UnsupportedFeature.FeatureParameter")] public const int FeatureParameter = 56;

    [CLayout("WHV_REGISTER_VALUE")] public const int RegisterValueSize = 16;
    [CLayout("WHV_REGISTER_VALUE", "Segment.Base")] public const int SegmentBase = 0;
    [CLayout("WHV_REGISTER_VALUE", "Segment.Limit")] public const int SegmentLimit = 8;
    [CLayout("WHV_REGISTER_VALUE", "Segment.Selector")] public const int SegmentSelector = 12;
    [CLayout("WHV_REGISTER_VALUE", "Segment.Attributes")] public const int SegmentAttributes = 14;
    [CLayout("WHV_REGISTER_VALUE", "Table.Limit")] public const int TableLimit = 6;
    [CLayout("WHV_REGISTER_VALUE", "Table.Base")] public const int TableBase = 8;
    [CLayout("WHV_REGISTER_VALUE", "Fp.Mantissa")] public const int FpMantissa = 0;
    [CLayout("WHV_REGISTER_VALUE", "FpControlStatus.FpControl")] public const int FpControl = 0;
    [CLayout("WHV_REGISTER_VALUE", "FpControlStatus.FpStatus")] public const int FpStatus = 2;
    [CLayout("WHV_REGISTER_VALUE", "FpControlStatus.FpTag")] public const int FpTag = 4;
    [CLayout("WHV_REGISTER_VALUE", "FpControlStatus.LastFpOp")] public const int LastFpOp = 6;
    [CLayout("WHV_REGISTER_VALUE", "FpControlStatus.LastFpRip")] public const int LastFpRip = 8;
    [CLayout("WHV_REGISTER_VALUE", "XmmControlStatus.LastFpRdp")] public const int LastFpRdp = 0;
    [CLayout("WHV_REGISTER_VALUE", "XmmControlStatus.XmmStatusControl")] public const int Mxcsr = 8;
    [CLayout("WHV_REGISTER_VALUE", "XmmControlStatus.XmmStatusControlMask")] public const int MxcsrMask = 12;

    /// <summary>The 80-bit value's exponent and sign: the 16 bits after the 64-bit mantissa.</summary>
    public const int FpExponentSign = 8;

    [CLayout("WHV_EMULATOR_IO_ACCESS_INFO", "Direction")] public const int EmuIoDirection = 0;
    [CLayout("WHV_EMULATOR_IO_ACCESS_INFO", "Port")] public const int EmuIoPort = 2;
    [CLayout("WHV_EMULATOR_IO_ACCESS_INFO", "AccessSize")] public const int EmuIoAccessSize = 4;
    [CLayout("WHV_EMULATOR_IO_ACCESS_INFO", "Data")] public const int EmuIoData = 8;
    [CLayout("WHV_EMULATOR_IO_ACCESS_INFO")] public const int EmuIoSize = 12;
    [CLayout("WHV_EMULATOR_MEMORY_ACCESS_INFO", "GpaAddress")] public const int EmuMemGpa = 0;
    [CLayout("WHV_EMULATOR_MEMORY_ACCESS_INFO", "Direction")] public const int EmuMemDirection = 8;
    [CLayout("WHV_EMULATOR_MEMORY_ACCESS_INFO", "AccessSize")] public const int EmuMemAccessSize = 9;
    [CLayout("WHV_EMULATOR_MEMORY_ACCESS_INFO", "Data")] public const int EmuMemData = 10;
    [CLayout("WHV_EMULATOR_MEMORY_ACCESS_INFO")] public const int EmuMemSize = 24;

    /// <summary>The constants above as C assertions.</summary>
    public static IEnumerable<string> ToCAssertions() =>
        typeof(WindowsLayout).GetFields(BindingFlags.Static | BindingFlags.Public)
            .Select(f => (Field: f, Layout: f.GetCustomAttribute<CLayoutAttribute>(), Value: (int)f.GetRawConstantValue()!))
            .Where(x => x.Layout is not null)
            .Select(x => x.Layout!.Member is null
                ? $"_Static_assert(sizeof({x.Layout.CType}) == {x.Value}, \"WindowsLayout.{x.Field.Name}\");"
                : $"_Static_assert(offsetof({x.Layout.CType}, {x.Layout.Member}) == {x.Value}, \"WindowsLayout.{x.Field.Name}\");");
}
