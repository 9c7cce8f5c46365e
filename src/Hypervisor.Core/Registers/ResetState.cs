namespace Hypervisor.Core.Registers;

/// <summary>The architectural state of an x86 processor after a hardware reset (Intel SDM Vol. 3A, 10.1.1, Table 10-1).</summary>
public static class ResetState
{
    /// <summary>
    /// The processor signature our CPU model reports in EDX after reset and in CPUID leaf 1 EAX: family 6, model 0x3A
    /// would claim a real part, so we report family 6, model 2, stepping 3 (the same as QEMU's <c>qemu64</c>).
    /// </summary>
    public const uint ProcessorSignature = 0x0000_0623;

    /// <summary>General registers after reset: EDX = processor signature, RIP = 0xFFF0, RFLAGS = 2.</summary>
    public static GeneralRegisters General(uint processorSignature = ProcessorSignature) => new()
    {
        Rdx = processorSignature,
        Rip = 0xFFF0,
        Rflags = 0x2,
    };

    /// <summary>
    /// System registers after reset: CS = 0xF000 with base 0xFFFF0000, other segments zero with 64 KiB limits,
    /// CR0 = 0x60000010, GDTR/IDTR limit 0xFFFF, TR and LDTR present system segments.
    /// </summary>
    public static SystemRegisters System()
    {
        var data = SegmentRegister.RealMode(0);
        return new SystemRegisters
        {
            Cs = new SegmentRegister(0xF000, 0xFFFF_0000, 0xFFFF, 0xB, true, 0, false, true, false, false, false, false),
            Ds = data,
            Es = data,
            Fs = data,
            Gs = data,
            Ss = data,
            Tr = new SegmentRegister(0, 0, 0xFFFF, 0xB, true, 0, false, false, false, false, false, false),
            Ldt = new SegmentRegister(0, 0, 0xFFFF, 0x2, true, 0, false, false, false, false, false, false),
            Gdt = new DescriptorTableRegister(0, 0xFFFF),
            Idt = new DescriptorTableRegister(0, 0xFFFF),
            Cr0 = 0x6000_0010,
            ApicBase = 0xFEE0_0900, // enabled, bootstrap processor
        };
    }

    /// <summary>FPU state after reset: FCW 0x0040, MXCSR 0x1F80, everything else zero (SDM Table 10-1).</summary>
    public static FpuRegisters Fpu() => new() { Fcw = 0x0040, Mxcsr = 0x1F80 };
}
