// Constants of the KVM API (values from include/uapi/linux/kvm.h; tests compare them with the installed header).
#pragma warning disable IDE1006 // kernel names on purpose
namespace Hypervisor.Accel.Kvm.Interop;

internal static class KvmConstants
{
    /// <summary>The only stable KVM API version (Documentation/virt/kvm/api.rst, 4.1).</summary>
    internal const int KVM_API_VERSION = 12;

    internal const uint KVM_MEM_LOG_DIRTY_PAGES = 1u << 0;
    internal const uint KVM_MEM_READONLY = 1u << 1;

    internal const int KVM_NR_INTERRUPTS = 256;

    internal const uint KVM_EXIT_UNKNOWN = 0;
    internal const uint KVM_EXIT_EXCEPTION = 1;
    internal const uint KVM_EXIT_IO = 2;
    internal const uint KVM_EXIT_HYPERCALL = 3;
    internal const uint KVM_EXIT_DEBUG = 4;
    internal const uint KVM_EXIT_HLT = 5;
    internal const uint KVM_EXIT_MMIO = 6;
    internal const uint KVM_EXIT_IRQ_WINDOW_OPEN = 7;
    internal const uint KVM_EXIT_SHUTDOWN = 8;
    internal const uint KVM_EXIT_FAIL_ENTRY = 9;
    internal const uint KVM_EXIT_INTR = 10;
    internal const uint KVM_EXIT_SET_TPR = 11;
    internal const uint KVM_EXIT_TPR_ACCESS = 12;
    internal const uint KVM_EXIT_NMI = 16;
    internal const uint KVM_EXIT_INTERNAL_ERROR = 17;
    internal const uint KVM_EXIT_SYSTEM_EVENT = 24;
    internal const uint KVM_EXIT_NOTIFY = 37;

    internal const byte KVM_EXIT_IO_IN = 0;
    internal const byte KVM_EXIT_IO_OUT = 1;

    internal const uint KVM_INTERNAL_ERROR_EMULATION = 1;
    internal const uint KVM_INTERNAL_ERROR_SIMUL_EX = 2;
    internal const uint KVM_INTERNAL_ERROR_DELIVERY_EV = 3;
    internal const uint KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON = 4;

    internal const uint KVM_SYSTEM_EVENT_SHUTDOWN = 1;
    internal const uint KVM_SYSTEM_EVENT_RESET = 2;
    internal const uint KVM_SYSTEM_EVENT_CRASH = 3;

    internal const int KVM_CAP_IRQCHIP = 0;
    internal const int KVM_CAP_HLT = 1;
    internal const int KVM_CAP_USER_MEMORY = 3;
    internal const int KVM_CAP_SET_TSS_ADDR = 4;
    internal const int KVM_CAP_EXT_CPUID = 7;
    internal const int KVM_CAP_NR_VCPUS = 9;
    internal const int KVM_CAP_NR_MEMSLOTS = 10;
    internal const int KVM_CAP_INTERNAL_ERROR_DATA = 40;
    internal const int KVM_CAP_MAX_VCPUS = 66;
    internal const int KVM_CAP_READONLY_MEM = 81;
    internal const int KVM_CAP_XSAVE = 55;
    internal const int KVM_CAP_XCRS = 56;
    internal const int KVM_CAP_IMMEDIATE_EXIT = 136;
    internal const int KVM_CAP_XSAVE2 = 208;

    internal const uint KVM_CPUID_FLAG_SIGNIFCANT_INDEX = 1u << 0;

    internal const int KVM_MAX_XCRS = 16;
}
