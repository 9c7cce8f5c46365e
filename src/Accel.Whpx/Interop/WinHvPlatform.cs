#pragma warning disable CA1707, IDE1006

using System.Runtime.InteropServices;
using System.Runtime.Versioning;

namespace Hypervisor.Accel.Whpx.Interop;

/// <summary>
/// Source-generated imports of WinHvPlatform.dll (winhvplatform.h). The DLL name is resolved by
/// <see cref="WhvLibrary"/>, which loads it from System32 and checks every export before the first call, so a
/// missing DLL or export becomes a probe reason instead of an <see cref="EntryPointNotFoundException"/>.
/// </summary>
[SupportedOSPlatform("windows")]
internal static unsafe partial class WinHvPlatform
{
    [LibraryImport(WhvLibrary.PlatformDll)]
    internal static partial int WHvGetCapability(WHV_CAPABILITY_CODE CapabilityCode, void* CapabilityBuffer, uint CapabilityBufferSizeInBytes, uint* WrittenSizeInBytes);

    [LibraryImport(WhvLibrary.PlatformDll)]
    internal static partial int WHvCreatePartition(out WhvPartitionHandle Partition);

    [LibraryImport(WhvLibrary.PlatformDll)]
    internal static partial int WHvSetupPartition(WhvPartitionHandle Partition);

    /// <summary>Called only by <see cref="WhvPartitionHandle.ReleaseHandle"/>; everyone else disposes the handle.</summary>
    [LibraryImport(WhvLibrary.PlatformDll)]
    internal static partial int WHvDeletePartition(nint Partition);

    [LibraryImport(WhvLibrary.PlatformDll)]
    internal static partial int WHvSetPartitionProperty(WhvPartitionHandle Partition, WHV_PARTITION_PROPERTY_CODE PropertyCode, [NativeType("const VOID*")] void* PropertyBuffer, uint PropertyBufferSizeInBytes);

    [LibraryImport(WhvLibrary.PlatformDll)]
    internal static partial int WHvMapGpaRange(WhvPartitionHandle Partition, void* SourceAddress, ulong GuestAddress, ulong SizeInBytes, WHV_MAP_GPA_RANGE_FLAGS Flags);

    [LibraryImport(WhvLibrary.PlatformDll)]
    internal static partial int WHvUnmapGpaRange(WhvPartitionHandle Partition, ulong GuestAddress, ulong SizeInBytes);

    [LibraryImport(WhvLibrary.PlatformDll)]
    internal static partial int WHvTranslateGva(WhvPartitionHandle Partition, uint VpIndex, ulong Gva, WHV_TRANSLATE_GVA_FLAGS TranslateFlags, WHV_TRANSLATE_GVA_RESULT* TranslationResult, ulong* Gpa);

    [LibraryImport(WhvLibrary.PlatformDll)]
    internal static partial int WHvCreateVirtualProcessor(WhvPartitionHandle Partition, uint VpIndex, uint Flags);

    [LibraryImport(WhvLibrary.PlatformDll)]
    internal static partial int WHvDeleteVirtualProcessor(WhvPartitionHandle Partition, uint VpIndex);

    [LibraryImport(WhvLibrary.PlatformDll)]
    internal static partial int WHvRunVirtualProcessor(WhvPartitionHandle Partition, uint VpIndex, void* ExitContext, uint ExitContextSizeInBytes);

    [LibraryImport(WhvLibrary.PlatformDll)]
    internal static partial int WHvCancelRunVirtualProcessor(WhvPartitionHandle Partition, uint VpIndex, uint Flags);

    [LibraryImport(WhvLibrary.PlatformDll)]
    internal static partial int WHvGetVirtualProcessorRegisters(WhvPartitionHandle Partition, uint VpIndex, [NativeType("const WHV_REGISTER_NAME*")] WHV_REGISTER_NAME* RegisterNames, uint RegisterCount, WHV_REGISTER_VALUE* RegisterValues);

    [LibraryImport(WhvLibrary.PlatformDll)]
    internal static partial int WHvSetVirtualProcessorRegisters(WhvPartitionHandle Partition, uint VpIndex, [NativeType("const WHV_REGISTER_NAME*")] WHV_REGISTER_NAME* RegisterNames, uint RegisterCount, [NativeType("const WHV_REGISTER_VALUE*")] WHV_REGISTER_VALUE* RegisterValues);
}

/// <summary>Source-generated imports of WinHvEmulation.dll (winhvemulation.h).</summary>
[SupportedOSPlatform("windows")]
internal static unsafe partial class WinHvEmulation
{
    [LibraryImport(WhvLibrary.EmulationDll)]
    internal static partial int WHvEmulatorCreateEmulator([NativeType("const WHV_EMULATOR_CALLBACKS*")] WHV_EMULATOR_CALLBACKS* Callbacks, out WhvEmulatorHandle Emulator);

    /// <summary>Called only by <see cref="WhvEmulatorHandle.ReleaseHandle"/>.</summary>
    [LibraryImport(WhvLibrary.EmulationDll)]
    internal static partial int WHvEmulatorDestroyEmulator(nint Emulator);

    [LibraryImport(WhvLibrary.EmulationDll)]
    internal static partial int WHvEmulatorTryIoEmulation(WhvEmulatorHandle Emulator, void* Context, [NativeType("const WHV_VP_EXIT_CONTEXT*")] WHV_VP_EXIT_CONTEXT* VpContext, [NativeType("const WHV_X64_IO_PORT_ACCESS_CONTEXT*")] WHV_X64_IO_PORT_ACCESS_CONTEXT* IoInstructionContext, WHV_EMULATOR_STATUS* EmulatorReturnStatus);

    [LibraryImport(WhvLibrary.EmulationDll)]
    internal static partial int WHvEmulatorTryMmioEmulation(WhvEmulatorHandle Emulator, void* Context, [NativeType("const WHV_VP_EXIT_CONTEXT*")] WHV_VP_EXIT_CONTEXT* VpContext, [NativeType("const WHV_MEMORY_ACCESS_CONTEXT*")] WHV_MEMORY_ACCESS_CONTEXT* MmioInstructionContext, WHV_EMULATOR_STATUS* EmulatorReturnStatus);
}

/// <summary>Owns a <c>WHV_PARTITION_HANDLE</c>; releasing it calls <c>WHvDeletePartition</c>.</summary>
[SupportedOSPlatform("windows")]
internal sealed class WhvPartitionHandle : SafeHandle
{
    public WhvPartitionHandle()
        : base(nint.Zero, ownsHandle: true)
    {
    }

    public override bool IsInvalid => handle == nint.Zero;

    protected override bool ReleaseHandle() => WinHvPlatform.WHvDeletePartition(handle) >= 0;
}

/// <summary>Owns a <c>WHV_EMULATOR_HANDLE</c>; releasing it calls <c>WHvEmulatorDestroyEmulator</c>.</summary>
[SupportedOSPlatform("windows")]
internal sealed class WhvEmulatorHandle : SafeHandle
{
    public WhvEmulatorHandle()
        : base(nint.Zero, ownsHandle: true)
    {
    }

    public override bool IsInvalid => handle == nint.Zero;

    protected override bool ReleaseHandle() => WinHvEmulation.WHvEmulatorDestroyEmulator(handle) >= 0;
}
