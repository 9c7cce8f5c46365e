// Native names and layouts from winhvemulation.h; checked against the MinGW-w64 copy by the header-check test.
#pragma warning disable CA1707, CA1051, CA1815, IDE1006

using System.Runtime.InteropServices;

namespace Hypervisor.Accel.Whpx.Interop;

/// <summary>C: <c>union WHV_EMULATOR_STATUS</c>; bits in <see cref="WhvBitFields"/>.</summary>
[StructLayout(LayoutKind.Explicit, Size = 4)]
internal struct WHV_EMULATOR_STATUS
{
    [FieldOffset(0)] public uint AsUINT32;
}

[StructLayout(LayoutKind.Explicit, Size = 24)]
internal unsafe struct WHV_EMULATOR_MEMORY_ACCESS_INFO
{
    [FieldOffset(0)] public ulong GpaAddress;

    /// <summary>0 = read, 1 = write (WHV_MEMORY_ACCESS_TYPE values).</summary>
    [FieldOffset(8)] public byte Direction;
    [FieldOffset(9)] public byte AccessSize;
    [FieldOffset(10)] public fixed byte Data[8];
}

[StructLayout(LayoutKind.Explicit, Size = 12)]
internal struct WHV_EMULATOR_IO_ACCESS_INFO
{
    /// <summary>0 = in (read from the port), 1 = out.</summary>
    [FieldOffset(0)] public byte Direction;
    [FieldOffset(2)] public ushort Port;
    [FieldOffset(4)] public ushort AccessSize;
    [FieldOffset(8)] public uint Data;
}

/// <summary>
/// C: <c>struct WHV_EMULATOR_CALLBACKS</c>. The function pointers are <c>CALLBACK</c> (stdcall, which is the
/// one x64 convention) and point at <c>[UnmanagedCallersOnly]</c> methods.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 48)]
internal unsafe struct WHV_EMULATOR_CALLBACKS
{
    [FieldOffset(0)] public uint Size;
    [FieldOffset(4)] public uint Reserved;
    [FieldOffset(8)] public delegate* unmanaged[Stdcall]<void*, WHV_EMULATOR_IO_ACCESS_INFO*, int> WHvEmulatorIoPortCallback;
    [FieldOffset(16)] public delegate* unmanaged[Stdcall]<void*, WHV_EMULATOR_MEMORY_ACCESS_INFO*, int> WHvEmulatorMemoryCallback;
    [FieldOffset(24)] public delegate* unmanaged[Stdcall]<void*, WHV_REGISTER_NAME*, uint, WHV_REGISTER_VALUE*, int> WHvEmulatorGetVirtualProcessorRegisters;
    [FieldOffset(32)] public delegate* unmanaged[Stdcall]<void*, WHV_REGISTER_NAME*, uint, WHV_REGISTER_VALUE*, int> WHvEmulatorSetVirtualProcessorRegisters;
    [FieldOffset(40)] public delegate* unmanaged[Stdcall]<void*, ulong, WHV_TRANSLATE_GVA_FLAGS, WHV_TRANSLATE_GVA_RESULT_CODE*, ulong*, int> WHvEmulatorTranslateGvaPage;
}
