// struct kvm_run (include/uapi/linux/kvm.h): the page shared between KVM and user space for one vCPU,
// mapped from the vCPU fd at offset 0. Only the x86 members of the exit union are declared; the union is
// 256 bytes at offset 32 and the synced-register area (2048 bytes) follows kvm_valid_regs/kvm_dirty_regs.
#pragma warning disable IDE1006 // kernel names on purpose
#pragma warning disable CS0649 // fields are written by the kernel
using System.Runtime.InteropServices;

namespace Hypervisor.Accel.Kvm.Interop;

[StructLayout(LayoutKind.Explicit, Size = 2352)]
internal struct kvm_run
{
    // in
    [FieldOffset(0)] public byte request_interrupt_window;
    [FieldOffset(1)] public byte immediate_exit;

    // out
    [FieldOffset(8)] public uint exit_reason;
    [FieldOffset(12)] public byte ready_for_interrupt_injection;
    [FieldOffset(13)] public byte if_flag;
    [FieldOffset(14)] public ushort flags;

    // in (pre_kvm_run), out (post_kvm_run)
    [FieldOffset(16)] public ulong cr8;
    [FieldOffset(24)] public ulong apic_base;

    // The exit union.
    [FieldOffset(32)] public kvm_run_hw hw;
    [FieldOffset(32)] public kvm_run_fail_entry fail_entry;
    [FieldOffset(32)] public kvm_run_ex ex;
    [FieldOffset(32)] public kvm_run_io io;
    [FieldOffset(32)] public kvm_run_debug debug;
    [FieldOffset(32)] public kvm_run_mmio mmio;
    [FieldOffset(32)] public kvm_run_internal @internal;
    [FieldOffset(32)] public kvm_run_system_event system_event;

    [FieldOffset(288)] public ulong kvm_valid_regs;
    [FieldOffset(296)] public ulong kvm_dirty_regs;

    /// <summary>Offset of the exit union inside kvm_run.</summary>
    internal const int ExitUnionOffset = 32;

    /// <summary>Size of the exit union (<c>char padding[256]</c>).</summary>
    internal const int ExitUnionSize = 256;

    /// <summary>Offset of the synced-register union <c>s</c>.</summary>
    internal const int SyncRegsOffset = 304;
}

[StructLayout(LayoutKind.Sequential)]
internal struct kvm_run_hw
{
    public ulong hardware_exit_reason;
}

[StructLayout(LayoutKind.Sequential)]
internal struct kvm_run_fail_entry
{
    public ulong hardware_entry_failure_reason;
    public uint cpu;
}

[StructLayout(LayoutKind.Sequential)]
internal struct kvm_run_ex
{
    public uint exception;
    public uint error_code;
}

[StructLayout(LayoutKind.Sequential)]
internal struct kvm_run_io
{
    public byte direction;
    public byte size;
    public ushort port;
    public uint count;
    public ulong data_offset;
}

/// <summary><c>struct kvm_debug_exit_arch</c> as the <c>debug</c> member of the exit union.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct kvm_run_debug
{
    public uint exception;
    public uint pad;
    public ulong pc;
    public ulong dr6;
    public ulong dr7;
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct kvm_run_mmio
{
    public ulong phys_addr;
    public fixed byte data[8];
    public uint len;
    public byte is_write;
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct kvm_run_internal
{
    public uint suberror;
    public uint ndata;
    public fixed ulong data[16];
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct kvm_run_system_event
{
    public uint type;
    public uint ndata;
    public fixed ulong data[16];
}
