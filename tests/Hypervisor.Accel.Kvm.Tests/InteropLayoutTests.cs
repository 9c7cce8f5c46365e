using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Hypervisor.Accel.Kvm.Interop;

namespace Hypervisor.Accel.Kvm.Tests;

/// <summary>
/// Our struct sizes, field offsets, ioctl request numbers and constants against the kernel header, as gcc sees it.
/// Runs on any Linux host; no /dev/kvm needed.
/// </summary>
[TestFixture]
public sealed class InteropLayoutTests
{
    private static Dictionary<string, ulong>? s_header;
    private static string? s_skipReason;

    private static readonly (string CName, Type Type, string[] Fields)[] Layouts =
    [
        ("kvm_regs", typeof(kvm_regs), ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip", "rflags"]),
        ("kvm_segment", typeof(kvm_segment), ["base", "limit", "selector", "type", "present", "dpl", "db", "s", "l", "g", "avl", "unusable", "padding"]),
        ("kvm_dtable", typeof(kvm_dtable), ["base", "limit", "padding"]),
        ("kvm_sregs", typeof(kvm_sregs), ["cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt", "gdt", "idt", "cr0", "cr2", "cr3", "cr4", "cr8", "efer", "apic_base", "interrupt_bitmap"]),
        ("kvm_fpu", typeof(kvm_fpu), ["fpr", "fcw", "fsw", "ftwx", "pad1", "last_opcode", "last_ip", "last_dp", "xmm", "mxcsr", "pad2"]),
        ("kvm_msr_entry", typeof(kvm_msr_entry), ["index", "reserved", "data"]),
        ("kvm_msrs", typeof(kvm_msrs), ["nmsrs", "pad"]),
        ("kvm_msr_list", typeof(kvm_msr_list), ["nmsrs"]),
        ("kvm_cpuid_entry2", typeof(kvm_cpuid_entry2), ["function", "index", "flags", "eax", "ebx", "ecx", "edx", "padding"]),
        ("kvm_cpuid2", typeof(kvm_cpuid2), ["nent", "padding"]),
        ("kvm_userspace_memory_region", typeof(kvm_userspace_memory_region), ["slot", "flags", "guest_phys_addr", "memory_size", "userspace_addr"]),
        ("kvm_interrupt", typeof(kvm_interrupt), ["irq"]),
        ("kvm_xsave", typeof(kvm_xsave), ["region"]),
        ("kvm_xcr", typeof(kvm_xcr), ["xcr", "reserved", "value"]),
        ("kvm_xcrs", typeof(kvm_xcrs), ["nr_xcrs", "flags", "xcrs", "padding"]),
        ("kvm_run", typeof(kvm_run),
        [
            "request_interrupt_window", "immediate_exit", "exit_reason", "ready_for_interrupt_injection", "if_flag", "flags", "cr8", "apic_base",
            "hw.hardware_exit_reason",
            "fail_entry.hardware_entry_failure_reason", "fail_entry.cpu",
            "ex.exception", "ex.error_code",
            "io.direction", "io.size", "io.port", "io.count", "io.data_offset",
            "debug.arch.exception", "debug.arch.pc", "debug.arch.dr6", "debug.arch.dr7",
            "mmio.phys_addr", "mmio.data", "mmio.len", "mmio.is_write",
            "internal.suberror", "internal.ndata", "internal.data",
            "system_event.type", "system_event.ndata", "system_event.data",
            "kvm_valid_regs", "kvm_dirty_regs",
        ]),
    ];

    // The kernel's debug member is a struct { struct kvm_debug_exit_arch arch; }; ours flattens the arch level.
    private static string ManagedPath(string cPath) => cPath.Replace("debug.arch.", "debug.", StringComparison.Ordinal);

    private static readonly (string Name, ulong Value)[] Numbers =
    [
        ("KVMIO", Ioctl.KVMIO),
        ("KVM_API_VERSION", KvmConstants.KVM_API_VERSION),
        ("KVM_GET_API_VERSION", Ioctl.KVM_GET_API_VERSION),
        ("KVM_CREATE_VM", Ioctl.KVM_CREATE_VM),
        ("KVM_GET_MSR_INDEX_LIST", Ioctl.KVM_GET_MSR_INDEX_LIST),
        ("KVM_CHECK_EXTENSION", Ioctl.KVM_CHECK_EXTENSION),
        ("KVM_GET_VCPU_MMAP_SIZE", Ioctl.KVM_GET_VCPU_MMAP_SIZE),
        ("KVM_GET_SUPPORTED_CPUID", Ioctl.KVM_GET_SUPPORTED_CPUID),
        ("KVM_CREATE_VCPU", Ioctl.KVM_CREATE_VCPU),
        ("KVM_SET_USER_MEMORY_REGION", Ioctl.KVM_SET_USER_MEMORY_REGION),
        ("KVM_SET_TSS_ADDR", Ioctl.KVM_SET_TSS_ADDR),
        ("KVM_SET_IDENTITY_MAP_ADDR", Ioctl.KVM_SET_IDENTITY_MAP_ADDR),
        ("KVM_RUN", Ioctl.KVM_RUN),
        ("KVM_GET_REGS", Ioctl.KVM_GET_REGS),
        ("KVM_SET_REGS", Ioctl.KVM_SET_REGS),
        ("KVM_GET_SREGS", Ioctl.KVM_GET_SREGS),
        ("KVM_SET_SREGS", Ioctl.KVM_SET_SREGS),
        ("KVM_INTERRUPT", Ioctl.KVM_INTERRUPT),
        ("KVM_GET_MSRS", Ioctl.KVM_GET_MSRS),
        ("KVM_SET_MSRS", Ioctl.KVM_SET_MSRS),
        ("KVM_GET_FPU", Ioctl.KVM_GET_FPU),
        ("KVM_SET_FPU", Ioctl.KVM_SET_FPU),
        ("KVM_SET_CPUID2", Ioctl.KVM_SET_CPUID2),
        ("KVM_NMI", Ioctl.KVM_NMI),
        ("KVM_GET_XSAVE", Ioctl.KVM_GET_XSAVE),
        ("KVM_SET_XSAVE", Ioctl.KVM_SET_XSAVE),
        ("KVM_GET_XSAVE2", Ioctl.KVM_GET_XSAVE2),
        ("KVM_GET_XCRS", Ioctl.KVM_GET_XCRS),
        ("KVM_SET_XCRS", Ioctl.KVM_SET_XCRS),
        ("KVM_CAP_XCRS", KvmConstants.KVM_CAP_XCRS),
        ("KVM_MAX_XCRS", KvmConstants.KVM_MAX_XCRS),
        ("KVM_CAP_XSAVE", KvmConstants.KVM_CAP_XSAVE),
        ("KVM_CAP_XSAVE2", KvmConstants.KVM_CAP_XSAVE2),
        ("KVM_MEM_LOG_DIRTY_PAGES", KvmConstants.KVM_MEM_LOG_DIRTY_PAGES),
        ("KVM_MEM_READONLY", KvmConstants.KVM_MEM_READONLY),
        ("KVM_NR_INTERRUPTS", KvmConstants.KVM_NR_INTERRUPTS),
        ("KVM_EXIT_UNKNOWN", KvmConstants.KVM_EXIT_UNKNOWN),
        ("KVM_EXIT_EXCEPTION", KvmConstants.KVM_EXIT_EXCEPTION),
        ("KVM_EXIT_IO", KvmConstants.KVM_EXIT_IO),
        ("KVM_EXIT_HYPERCALL", KvmConstants.KVM_EXIT_HYPERCALL),
        ("KVM_EXIT_DEBUG", KvmConstants.KVM_EXIT_DEBUG),
        ("KVM_EXIT_HLT", KvmConstants.KVM_EXIT_HLT),
        ("KVM_EXIT_MMIO", KvmConstants.KVM_EXIT_MMIO),
        ("KVM_EXIT_IRQ_WINDOW_OPEN", KvmConstants.KVM_EXIT_IRQ_WINDOW_OPEN),
        ("KVM_EXIT_SHUTDOWN", KvmConstants.KVM_EXIT_SHUTDOWN),
        ("KVM_EXIT_FAIL_ENTRY", KvmConstants.KVM_EXIT_FAIL_ENTRY),
        ("KVM_EXIT_INTR", KvmConstants.KVM_EXIT_INTR),
        ("KVM_EXIT_SET_TPR", KvmConstants.KVM_EXIT_SET_TPR),
        ("KVM_EXIT_TPR_ACCESS", KvmConstants.KVM_EXIT_TPR_ACCESS),
        ("KVM_EXIT_NMI", KvmConstants.KVM_EXIT_NMI),
        ("KVM_EXIT_INTERNAL_ERROR", KvmConstants.KVM_EXIT_INTERNAL_ERROR),
        ("KVM_EXIT_SYSTEM_EVENT", KvmConstants.KVM_EXIT_SYSTEM_EVENT),
        ("KVM_EXIT_NOTIFY", KvmConstants.KVM_EXIT_NOTIFY),
        ("KVM_EXIT_IO_IN", KvmConstants.KVM_EXIT_IO_IN),
        ("KVM_EXIT_IO_OUT", KvmConstants.KVM_EXIT_IO_OUT),
        ("KVM_INTERNAL_ERROR_EMULATION", KvmConstants.KVM_INTERNAL_ERROR_EMULATION),
        ("KVM_INTERNAL_ERROR_SIMUL_EX", KvmConstants.KVM_INTERNAL_ERROR_SIMUL_EX),
        ("KVM_INTERNAL_ERROR_DELIVERY_EV", KvmConstants.KVM_INTERNAL_ERROR_DELIVERY_EV),
        ("KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON", KvmConstants.KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON),
        ("KVM_SYSTEM_EVENT_SHUTDOWN", KvmConstants.KVM_SYSTEM_EVENT_SHUTDOWN),
        ("KVM_SYSTEM_EVENT_RESET", KvmConstants.KVM_SYSTEM_EVENT_RESET),
        ("KVM_SYSTEM_EVENT_CRASH", KvmConstants.KVM_SYSTEM_EVENT_CRASH),
        ("KVM_CAP_IRQCHIP", KvmConstants.KVM_CAP_IRQCHIP),
        ("KVM_CAP_HLT", KvmConstants.KVM_CAP_HLT),
        ("KVM_CAP_USER_MEMORY", KvmConstants.KVM_CAP_USER_MEMORY),
        ("KVM_CAP_SET_TSS_ADDR", KvmConstants.KVM_CAP_SET_TSS_ADDR),
        ("KVM_CAP_EXT_CPUID", KvmConstants.KVM_CAP_EXT_CPUID),
        ("KVM_CAP_NR_VCPUS", KvmConstants.KVM_CAP_NR_VCPUS),
        ("KVM_CAP_NR_MEMSLOTS", KvmConstants.KVM_CAP_NR_MEMSLOTS),
        ("KVM_CAP_INTERNAL_ERROR_DATA", KvmConstants.KVM_CAP_INTERNAL_ERROR_DATA),
        ("KVM_CAP_MAX_VCPUS", KvmConstants.KVM_CAP_MAX_VCPUS),
        ("KVM_CAP_READONLY_MEM", KvmConstants.KVM_CAP_READONLY_MEM),
        ("KVM_CAP_IMMEDIATE_EXIT", KvmConstants.KVM_CAP_IMMEDIATE_EXIT),
        ("KVM_CPUID_FLAG_SIGNIFCANT_INDEX", KvmConstants.KVM_CPUID_FLAG_SIGNIFCANT_INDEX),
    ];

    public static IEnumerable<TestCaseData> SizeCases() =>
        Layouts.Select(l => new TestCaseData($"sizeof(struct {l.CName})", (ulong)SizeOf(l.Type)).SetName($"sizeof({l.CName})"));

    public static IEnumerable<TestCaseData> OffsetCases() =>
        Layouts.SelectMany(l => l.Fields.Select(f =>
            new TestCaseData($"offsetof(struct {l.CName}, {f})", (ulong)OffsetOf(l.Type, ManagedPath(f))).SetName($"offsetof({l.CName}, {f})")));

    public static IEnumerable<TestCaseData> NumberCases() =>
        Numbers.Select(n => new TestCaseData(n.Name, n.Value).SetName(n.Name));

    [OneTimeSetUp]
    public void CompileHeaderProbe()
    {
        if (s_header is not null || s_skipReason is not null)
        {
            return;
        }

        var expressions = SizeCases().Concat(OffsetCases()).Concat(NumberCases()).Select(c => (string)c.Arguments[0]!).ToList();
        // The C expression for a union member's size is checked too, so that a short managed member cannot hide.
        expressions.Add("sizeof(((struct kvm_run *)0)->s)");
        s_header = KernelHeader.Evaluate(expressions, out s_skipReason);
    }

    [TestCaseSource(nameof(SizeCases))]
    public void StructSizeMatchesHeader(string cExpression, ulong ours) => Check(cExpression, ours);

    [TestCaseSource(nameof(OffsetCases))]
    public void FieldOffsetMatchesHeader(string cExpression, ulong ours) => Check(cExpression, ours);

    [TestCaseSource(nameof(NumberCases))]
    public void IoctlNumberAndConstantMatchHeader(string macro, ulong ours) => Check(macro, ours);

    [Test]
    public void SyncRegsAreaFillsTheRestOfKvmRun()
    {
        Check("sizeof(((struct kvm_run *)0)->s)", (ulong)(SizeOf(typeof(kvm_run)) - kvm_run.SyncRegsOffset));
    }

    private static void Check(string cExpression, ulong ours)
    {
        if (s_header is null)
        {
            Assert.Ignore(s_skipReason ?? "kernel header not evaluated");
        }

        Assert.That(s_header, Does.ContainKey(cExpression), "gcc did not print this expression");
        Assert.That(ours, Is.EqualTo(s_header[cExpression]), cExpression);
    }

    private static int SizeOf(Type type) =>
        (int)typeof(Unsafe).GetMethod(nameof(Unsafe.SizeOf))!.MakeGenericMethod(type).Invoke(null, null)!;

    private static int OffsetOf(Type type, string path)
    {
        int offset = 0;
        foreach (string name in path.Split('.'))
        {
            offset += (int)Marshal.OffsetOf(type, name);
            type = type.GetField(name)!.FieldType;
        }

        return offset;
    }
}
