// The KVM structures used by the x86 KVM API, with the kernel's names and layouts
// (include/uapi/linux/kvm.h and arch/x86/include/uapi/asm/kvm.h). All of them are blittable;
// tests compare every size and field offset with the installed headers through a compiled C program.
#pragma warning disable IDE1006 // kernel names on purpose
#pragma warning disable CS0649 // fields are written by the kernel
using System.Runtime.InteropServices;

namespace Hypervisor.Accel.Kvm.Interop;

[StructLayout(LayoutKind.Sequential)]
internal struct kvm_regs
{
    public ulong rax, rbx, rcx, rdx;
    public ulong rsi, rdi, rsp, rbp;
    public ulong r8, r9, r10, r11;
    public ulong r12, r13, r14, r15;
    public ulong rip, rflags;
}

[StructLayout(LayoutKind.Sequential)]
internal struct kvm_segment
{
    public ulong @base;
    public uint limit;
    public ushort selector;
    public byte type;
    public byte present, dpl, db, s, l, g, avl;
    public byte unusable;
    public byte padding;
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct kvm_dtable
{
    public ulong @base;
    public ushort limit;
    public fixed ushort padding[3];
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct kvm_sregs
{
    public kvm_segment cs, ds, es, fs, gs, ss;
    public kvm_segment tr, ldt;
    public kvm_dtable gdt, idt;
    public ulong cr0, cr2, cr3, cr4, cr8;
    public ulong efer;
    public ulong apic_base;
    public fixed ulong interrupt_bitmap[(KvmConstants.KVM_NR_INTERRUPTS + 63) / 64];
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct kvm_fpu
{
    public fixed byte fpr[8 * 16];
    public ushort fcw;
    public ushort fsw;
    public byte ftwx;
    public byte pad1;
    public ushort last_opcode;
    public ulong last_ip;
    public ulong last_dp;
    public fixed byte xmm[16 * 16];
    public uint mxcsr;
    public uint pad2;
}

[StructLayout(LayoutKind.Sequential)]
internal struct kvm_msr_entry
{
    public uint index;
    public uint reserved;
    public ulong data;
}

/// <summary>Header of <c>struct kvm_msrs</c>; <c>nmsrs</c> entries of <see cref="kvm_msr_entry"/> follow it.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct kvm_msrs
{
    public uint nmsrs;
    public uint pad;
}

/// <summary>Header of <c>struct kvm_msr_list</c>; <c>nmsrs</c> 32-bit indices follow it.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct kvm_msr_list
{
    public uint nmsrs;
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct kvm_cpuid_entry2
{
    public uint function;
    public uint index;
    public uint flags;
    public uint eax;
    public uint ebx;
    public uint ecx;
    public uint edx;
    public fixed uint padding[3];
}

/// <summary>Header of <c>struct kvm_cpuid2</c>; <c>nent</c> entries of <see cref="kvm_cpuid_entry2"/> follow it.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct kvm_cpuid2
{
    public uint nent;
    public uint padding;
}

[StructLayout(LayoutKind.Sequential)]
internal struct kvm_userspace_memory_region
{
    public uint slot;
    public uint flags;
    public ulong guest_phys_addr;
    public ulong memory_size;
    public ulong userspace_addr;
}

[StructLayout(LayoutKind.Sequential)]
internal struct kvm_interrupt
{
    public uint irq;
}

/// <summary>
/// <c>struct kvm_xsave</c>: the XSAVE area in standard (uncompacted) format; the legacy FXSAVE region is its first
/// 512 bytes and the XSAVE header (XSTATE_BV at byte 512) follows (Intel SDM vol. 1, 13.4). With
/// <c>KVM_CAP_XSAVE2</c> the kernel may read or write more than these 4096 bytes.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct kvm_xsave
{
    public fixed uint region[1024];
}

/// <summary><c>struct kvm_xcr</c>: one extended control register (XCR0 is index 0).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct kvm_xcr
{
    public uint xcr;
    public uint reserved;
    public ulong value;
}

/// <summary>
/// <c>struct kvm_xcrs</c> (arch/x86/include/uapi/asm/kvm.h): <c>nr_xcrs</c> entries of <see cref="kvm_xcr"/> in
/// <c>xcrs</c> (room for <c>KVM_MAX_XCRS</c>), then padding.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct kvm_xcrs
{
    public uint nr_xcrs;
    public uint flags;
    public fixed ulong xcrs[KvmConstants.KVM_MAX_XCRS * 2]; // kvm_xcr is 16 bytes: two ulongs each
    public fixed ulong padding[16];
}
