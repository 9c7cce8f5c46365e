// Request numbers for the KVM ioctls, computed from the kernel's _IOC encoding
// (include/uapi/asm-generic/ioctl.h: nr 8 bits, type 8 bits, size 14 bits, dir 2 bits on x86)
// and the sizes of our own struct definitions, exactly as the kernel header computes them.
// Tests compare every value with the macros of /usr/include/linux/kvm.h.
#pragma warning disable IDE1006 // kernel names on purpose
namespace Hypervisor.Accel.Kvm.Interop;

internal static unsafe class Ioctl
{
    private const int _IOC_NRBITS = 8;
    private const int _IOC_TYPEBITS = 8;
    private const int _IOC_SIZEBITS = 14;
    private const int _IOC_NRSHIFT = 0;
    private const int _IOC_TYPESHIFT = _IOC_NRSHIFT + _IOC_NRBITS;
    private const int _IOC_SIZESHIFT = _IOC_TYPESHIFT + _IOC_TYPEBITS;
    private const int _IOC_DIRSHIFT = _IOC_SIZESHIFT + _IOC_SIZEBITS;

    internal const uint _IOC_NONE = 0;
    internal const uint _IOC_WRITE = 1;
    internal const uint _IOC_READ = 2;

    /// <summary>The ioctl type byte of KVM (kvm.h: <c>#define KVMIO 0xAE</c>).</summary>
    internal const uint KVMIO = 0xAE;

    internal static uint _IOC(uint dir, uint type, uint nr, uint size)
    {
        if (size >= 1u << _IOC_SIZEBITS)
        {
            throw new ArgumentOutOfRangeException(nameof(size), size, "ioctl argument size does not fit the 14-bit _IOC size field.");
        }

        return (dir << _IOC_DIRSHIFT) | (type << _IOC_TYPESHIFT) | (nr << _IOC_NRSHIFT) | (size << _IOC_SIZESHIFT);
    }

    internal static uint _IO(uint type, uint nr) => _IOC(_IOC_NONE, type, nr, 0);

    internal static uint _IOR<T>(uint type, uint nr) where T : unmanaged => _IOC(_IOC_READ, type, nr, (uint)sizeof(T));

    internal static uint _IOW<T>(uint type, uint nr) where T : unmanaged => _IOC(_IOC_WRITE, type, nr, (uint)sizeof(T));

    internal static uint _IOWR<T>(uint type, uint nr) where T : unmanaged => _IOC(_IOC_READ | _IOC_WRITE, type, nr, (uint)sizeof(T));

    // System ioctls (on the /dev/kvm fd).
    internal static readonly uint KVM_GET_API_VERSION = _IO(KVMIO, 0x00);
    internal static readonly uint KVM_CREATE_VM = _IO(KVMIO, 0x01);
    internal static readonly uint KVM_GET_MSR_INDEX_LIST = _IOWR<kvm_msr_list>(KVMIO, 0x02);
    internal static readonly uint KVM_CHECK_EXTENSION = _IO(KVMIO, 0x03);
    internal static readonly uint KVM_GET_VCPU_MMAP_SIZE = _IO(KVMIO, 0x04);
    internal static readonly uint KVM_GET_SUPPORTED_CPUID = _IOWR<kvm_cpuid2>(KVMIO, 0x05);

    // VM ioctls.
    internal static readonly uint KVM_CREATE_VCPU = _IO(KVMIO, 0x41);
    internal static readonly uint KVM_SET_USER_MEMORY_REGION = _IOW<kvm_userspace_memory_region>(KVMIO, 0x46);
    internal static readonly uint KVM_SET_TSS_ADDR = _IO(KVMIO, 0x47);
    internal static readonly uint KVM_SET_IDENTITY_MAP_ADDR = _IOW<ulong>(KVMIO, 0x48);

    // vCPU ioctls.
    internal static readonly uint KVM_RUN = _IO(KVMIO, 0x80);
    internal static readonly uint KVM_GET_REGS = _IOR<kvm_regs>(KVMIO, 0x81);
    internal static readonly uint KVM_SET_REGS = _IOW<kvm_regs>(KVMIO, 0x82);
    internal static readonly uint KVM_GET_SREGS = _IOR<kvm_sregs>(KVMIO, 0x83);
    internal static readonly uint KVM_SET_SREGS = _IOW<kvm_sregs>(KVMIO, 0x84);
    internal static readonly uint KVM_INTERRUPT = _IOW<kvm_interrupt>(KVMIO, 0x86);
    internal static readonly uint KVM_GET_MSRS = _IOWR<kvm_msrs>(KVMIO, 0x88);
    internal static readonly uint KVM_SET_MSRS = _IOW<kvm_msrs>(KVMIO, 0x89);
    internal static readonly uint KVM_GET_FPU = _IOR<kvm_fpu>(KVMIO, 0x8c);
    internal static readonly uint KVM_SET_FPU = _IOW<kvm_fpu>(KVMIO, 0x8d);
    internal static readonly uint KVM_SET_CPUID2 = _IOW<kvm_cpuid2>(KVMIO, 0x90);
    internal static readonly uint KVM_NMI = _IO(KVMIO, 0x9a);
    internal static readonly uint KVM_GET_XSAVE = _IOR<kvm_xsave>(KVMIO, 0xa4);
    internal static readonly uint KVM_SET_XSAVE = _IOW<kvm_xsave>(KVMIO, 0xa5);
    internal static readonly uint KVM_GET_XCRS = _IOR<kvm_xcrs>(KVMIO, 0xa6);
    internal static readonly uint KVM_SET_XCRS = _IOW<kvm_xcrs>(KVMIO, 0xa7);
    internal static readonly uint KVM_GET_XSAVE2 = _IOR<kvm_xsave>(KVMIO, 0xcf);
}
