using System.Runtime.Versioning;
using Hypervisor.Accel.Whpx.Interop;

namespace Hypervisor.Accel.Whpx;

/// <summary>
/// A WHPX partition (the VM): created, configured and set up in one step, owning its handle. GPA mappings made
/// through it live as long as the partition.
/// </summary>
[SupportedOSPlatform("windows")]
internal sealed unsafe class WhpPartition : IDisposable
{
    private WhpPartition(WhvPartitionHandle handle, uint processorCount, bool cpuidExits)
    {
        Handle = handle;
        ProcessorCount = processorCount;
        CpuidExits = cpuidExits;
    }

    public WhvPartitionHandle Handle { get; }

    public uint ProcessorCount { get; }

    /// <summary>Whether the leaves given to <see cref="Create"/> exit with <c>WHvRunVpExitReasonX64Cpuid</c>.</summary>
    public bool CpuidExits { get; }

    /// <summary>
    /// Creates a partition for up to <paramref name="processorCount"/> virtual processors, without the platform's
    /// local APIC (interrupts come from our interrupt controller through the pending-interruption register). Where the
    /// platform offers CPUID exits (<c>WHvCapabilityCodeExtendedVmExits</c>, X64CpuidExit), the leaves in
    /// <paramref name="cpuidExitLeaves"/> exit to user space.
    /// </summary>
    public static WhpPartition Create(uint processorCount, ReadOnlySpan<uint> cpuidExitLeaves = default)
    {
        WhpxException.ThrowIfFailed(WinHvPlatform.WHvCreatePartition(out WhvPartitionHandle handle), nameof(WinHvPlatform.WHvCreatePartition));
        try
        {
            var property = default(WHV_PARTITION_PROPERTY);
            property.ProcessorCount = processorCount;
            SetProperty(handle, WHV_PARTITION_PROPERTY_CODE.WHvPartitionPropertyCodeProcessorCount, ref property);

            // The local APIC emulation mode is left at its default, WHvX64LocalApicEmulationModeNone: setting it
            // explicitly would fail on builds that predate the property, for no change in behaviour.

            bool cpuidExits = !cpuidExitLeaves.IsEmpty && SupportsCpuidExits();
            if (cpuidExits)
            {
                // Both are partition properties that must be set before WHvSetupPartition. The exit list's buffer is
                // the UINT32 array itself (WHV_PARTITION_PROPERTY.CpuidExitList[]), its size the array's in bytes.
                property = default;
                property.ExtendedVmExits = WhvBitFields.ExtendedExitCpuid.Set(0, 1);
                SetProperty(handle, WHV_PARTITION_PROPERTY_CODE.WHvPartitionPropertyCodeExtendedVmExits, ref property);
                fixed (uint* leaves = cpuidExitLeaves)
                {
                    WhpxException.ThrowIfFailed(
                        WinHvPlatform.WHvSetPartitionProperty(handle, WHV_PARTITION_PROPERTY_CODE.WHvPartitionPropertyCodeCpuidExitList,
                            leaves, (uint)(cpuidExitLeaves.Length * sizeof(uint))),
                        $"{nameof(WinHvPlatform.WHvSetPartitionProperty)}({WHV_PARTITION_PROPERTY_CODE.WHvPartitionPropertyCodeCpuidExitList})");
                }
            }

            WhpxException.ThrowIfFailed(WinHvPlatform.WHvSetupPartition(handle), nameof(WinHvPlatform.WHvSetupPartition));
            return new WhpPartition(handle, processorCount, cpuidExits);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Maps host memory at <paramref name="host"/> (page-aligned) into the guest at <paramref name="guestAddress"/>.</summary>
    public void MapGpaRange(nint host, ulong guestAddress, ulong sizeInBytes, WHV_MAP_GPA_RANGE_FLAGS flags) =>
        WhpxException.ThrowIfFailed(
            WinHvPlatform.WHvMapGpaRange(Handle, (void*)host, guestAddress, sizeInBytes, flags),
            nameof(WinHvPlatform.WHvMapGpaRange));

    public void UnmapGpaRange(ulong guestAddress, ulong sizeInBytes) =>
        WhpxException.ThrowIfFailed(
            WinHvPlatform.WHvUnmapGpaRange(Handle, guestAddress, sizeInBytes),
            nameof(WinHvPlatform.WHvUnmapGpaRange));

    public void Dispose() => Handle.Dispose();

    /// <summary>Whether this platform can exit on CPUID (<c>WHvCapabilityCodeExtendedVmExits</c>, bit X64CpuidExit).</summary>
    private static bool SupportsCpuidExits()
    {
        WHV_CAPABILITY capability = default;
        uint written;
        int hr = WinHvPlatform.WHvGetCapability(WHV_CAPABILITY_CODE.WHvCapabilityCodeExtendedVmExits, &capability, (uint)sizeof(WHV_CAPABILITY), &written);
        return hr >= 0 && WhvBitFields.ExtendedExitCpuid.IsSet(capability.ExtendedVmExits);
    }

    private static void SetProperty(WhvPartitionHandle handle, WHV_PARTITION_PROPERTY_CODE code, ref WHV_PARTITION_PROPERTY property)
    {
        fixed (WHV_PARTITION_PROPERTY* p = &property)
        {
            WhpxException.ThrowIfFailed(
                WinHvPlatform.WHvSetPartitionProperty(handle, code, p, (uint)sizeof(WHV_PARTITION_PROPERTY)),
                $"{nameof(WinHvPlatform.WHvSetPartitionProperty)}({code})");
        }
    }
}

/// <summary>
/// One virtual processor of a <see cref="WhpPartition"/>: run, cancel, registers. Register buffers are 16-byte
/// aligned native memory, allocated once, so no call allocates.
/// </summary>
/// <remarks>Everything but <see cref="Cancel"/> is for the vCPU's own thread.</remarks>
[SupportedOSPlatform("windows")]
internal sealed unsafe class WhpVirtualProcessor : IDisposable, IWhpxEmulatorTarget
{
    /// <summary>Capacity of <see cref="Values"/>, enough for the largest register group.</summary>
    public const int ValueCapacity = 32;

    private readonly WhpPartition _partition;
    private bool _disposed;

    public WhpVirtualProcessor(WhpPartition partition, uint index)
    {
        _partition = partition;
        Index = index;
        WhpxException.ThrowIfFailed(
            WinHvPlatform.WHvCreateVirtualProcessor(partition.Handle, index, 0),
            nameof(WinHvPlatform.WHvCreateVirtualProcessor));
        Values = (WHV_REGISTER_VALUE*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)(ValueCapacity * sizeof(WHV_REGISTER_VALUE)), 16);
        ExitContext = (WHV_RUN_VP_EXIT_CONTEXT*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)sizeof(WHV_RUN_VP_EXIT_CONTEXT), 16);
        System.Runtime.InteropServices.NativeMemory.Clear(Values, (nuint)(ValueCapacity * sizeof(WHV_REGISTER_VALUE)));
        System.Runtime.InteropServices.NativeMemory.Clear(ExitContext, (nuint)sizeof(WHV_RUN_VP_EXIT_CONTEXT));
    }

    public uint Index { get; }

    /// <summary>A 16-byte aligned scratch array of <see cref="ValueCapacity"/> register values.</summary>
    public WHV_REGISTER_VALUE* Values { get; }

    /// <summary>Where <see cref="Run"/> writes the exit; valid until the next run.</summary>
    public WHV_RUN_VP_EXIT_CONTEXT* ExitContext { get; }

    public Span<WHV_REGISTER_VALUE> ValueSpan => new(Values, ValueCapacity);

    /// <summary>Reads <paramref name="names"/> into the first entries of <see cref="Values"/>.</summary>
    public void GetRegisters(ReadOnlySpan<WHV_REGISTER_NAME> names)
    {
        fixed (WHV_REGISTER_NAME* n = names)
        {
            WhpxException.ThrowIfFailed(
                WinHvPlatform.WHvGetVirtualProcessorRegisters(_partition.Handle, Index, n, (uint)names.Length, Values),
                nameof(WinHvPlatform.WHvGetVirtualProcessorRegisters));
        }
    }

    /// <summary>Writes the first entries of <see cref="Values"/> to <paramref name="names"/>.</summary>
    public void SetRegisters(ReadOnlySpan<WHV_REGISTER_NAME> names)
    {
        fixed (WHV_REGISTER_NAME* n = names)
        {
            WhpxException.ThrowIfFailed(
                WinHvPlatform.WHvSetVirtualProcessorRegisters(_partition.Handle, Index, n, (uint)names.Length, Values),
                nameof(WinHvPlatform.WHvSetVirtualProcessorRegisters));
        }
    }

    /// <summary>Runs until an exit, which is written to <see cref="ExitContext"/>.</summary>
    public void Run() =>
        WhpxException.ThrowIfFailed(
            WinHvPlatform.WHvRunVirtualProcessor(_partition.Handle, Index, ExitContext, (uint)sizeof(WHV_RUN_VP_EXIT_CONTEXT)),
            nameof(WinHvPlatform.WHvRunVirtualProcessor));

    /// <summary>Makes a running <see cref="Run"/> return with a canceled exit. Thread-safe.</summary>
    public void Cancel() =>
        WhpxException.ThrowIfFailed(
            WinHvPlatform.WHvCancelRunVirtualProcessor(_partition.Handle, Index, 0),
            nameof(WinHvPlatform.WHvCancelRunVirtualProcessor));

    int IWhpxEmulatorTarget.GetRegisters(WHV_REGISTER_NAME* names, uint count, WHV_REGISTER_VALUE* values) =>
        WinHvPlatform.WHvGetVirtualProcessorRegisters(_partition.Handle, Index, names, count, values);

    int IWhpxEmulatorTarget.SetRegisters(WHV_REGISTER_NAME* names, uint count, WHV_REGISTER_VALUE* values) =>
        WinHvPlatform.WHvSetVirtualProcessorRegisters(_partition.Handle, Index, names, count, values);

    int IWhpxEmulatorTarget.TranslateGva(ulong gva, WHV_TRANSLATE_GVA_FLAGS flags, WHV_TRANSLATE_GVA_RESULT_CODE* result, ulong* gpa)
    {
        WHV_TRANSLATE_GVA_RESULT translation;
        int hr = WinHvPlatform.WHvTranslateGva(_partition.Handle, Index, gva, flags, &translation, gpa);
        *result = translation.ResultCode;
        return hr;
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _ = WinHvPlatform.WHvDeleteVirtualProcessor(_partition.Handle, Index);
        System.Runtime.InteropServices.NativeMemory.AlignedFree(Values);
        System.Runtime.InteropServices.NativeMemory.AlignedFree(ExitContext);
    }
}
